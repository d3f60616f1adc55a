// Forwards a produce that reached a follower to the leader, over gRPC (one hop: the
// leader appends; it never forwards again). With TLS the node presents its own
// certificate (node certificates carry clientAuth as well as serverAuth); the leader's
// chain check is what authenticates the hop, and the caller's own identity was already
// authorized on the node it called.
import * as grpc from '@grpc/grpc-js';

import { LogClient } from '../api/index.js';
import type { TlsMaterial } from '../auth/index.js';
import type { LeaderForwarder, LeaderHint } from '../server/index.js';

/** A header naming the node a forwarded call came through (for logs and loops). */
export const FORWARDED_BY = 'x-commitlog-forwarded-by';

export class GrpcLeaderForwarder implements LeaderForwarder {
  private readonly clients = new Map<string, LogClient>();

  constructor(
    private readonly nodeName: string,
    private readonly tls: TlsMaterial | undefined,
  ) {}

  private client(addr: string): LogClient {
    let c = this.clients.get(addr);
    if (!c) {
      const creds = this.tls
        ? grpc.credentials.createSsl(
            Buffer.from(this.tls.ca),
            Buffer.from(this.tls.key),
            Buffer.from(this.tls.cert),
            // Node certificates name their host, which may differ from the advertised
            // address a peer dials; the chain to the cluster's CA is what is checked.
            { checkServerIdentity: () => undefined },
          )
        : grpc.credentials.createInsecure();
      c = new LogClient(addr, creds, { 'grpc.keepalive_time_ms': 30_000 });
      this.clients.set(addr, c);
    }
    return c;
  }

  append(
    values: readonly Uint8Array[],
    leader: LeaderHint,
    o: { signal: AbortSignal },
  ): Promise<bigint> {
    const client = this.client(leader.addr);
    const md = new grpc.Metadata();
    md.set(FORWARDED_BY, this.nodeName);
    return new Promise<bigint>((resolve, reject) => {
      const records = values.map((v) => ({
        value: Buffer.from(v.buffer, v.byteOffset, v.byteLength),
        offset: 0n,
        term: 0n,
        type: 0,
      }));
      const call = client.produceBatch({ records }, md, (err, res) => {
        o.signal.removeEventListener('abort', cancel);
        if (err) reject(err);
        else resolve(res.firstOffset);
      });
      const cancel = (): void => call.cancel();
      o.signal.addEventListener('abort', cancel, { once: true });
    });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
