// Forwards a produce that reached a follower to the leader, over gRPC (one hop: the
// leader appends; it never forwards again). With TLS the node presents its own
// certificate (node certificates carry clientAuth as well as serverAuth); the leader's
// chain check is what authenticates the hop, and the caller's own identity was already
// authorized on the node it called.
import * as grpc from '@grpc/grpc-js';

import { decodeStatusDetails, LogClient } from '../api/index.js';
import type { TlsMaterial } from '../auth/index.js';
import { NotLeaderError, type LeaderForwarder, type LeaderHint } from '../server/index.js';

/** The leader could not be reached: the produce certainly did not happen (retry). */
export class LeaderUnreachableError extends Error {
  override readonly name = 'LeaderUnreachableError';
  constructor(
    readonly leader: LeaderHint,
    options?: ErrorOptions,
  ) {
    super(`the leader ${leader.id} at ${leader.addr} cannot be reached; retry shortly`, options);
  }
}

/**
 * A forwarded produce failed after it was sent: it may or may not have been appended.
 * Retrying it blindly could store it twice.
 */
export class ForwardOutcomeUnknownError extends Error {
  override readonly name = 'ForwardOutcomeUnknownError';
  constructor(
    readonly leader: LeaderHint,
    options?: ErrorOptions,
  ) {
    super(
      `the produce was forwarded to the leader ${leader.id}, which did not confirm it; its outcome is unknown`,
      options,
    );
  }
}

/** The leader refused the forwarding node itself (certificates or ACL between nodes). */
export class ForwardRefusedError extends Error {
  override readonly name = 'ForwardRefusedError';
  constructor(
    readonly leader: LeaderHint,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `the leader ${leader.id} refused a produce forwarded by this node (${reason}); ` +
        "check that nodes' certificates are signed by the leader's client CA",
      options,
    );
  }
}

/** What a failed forwarded call means for the caller. */
export function forwardFailure(err: grpc.ServiceError, leader: LeaderHint): Error {
  const raw = err.metadata?.get('grpc-status-details-bin')[0];
  let reason: string | undefined;
  let hint: LeaderHint | undefined;
  if (raw instanceof Buffer) {
    try {
      const info = decodeStatusDetails(raw).errorInfo[0];
      reason = info?.reason;
      const id = info?.metadata.leader_id;
      const addr = info?.metadata.leader_addr;
      if (id && addr) hint = { id, addr };
    } catch {
      reason = undefined; // undecodable details: judged by the code alone
    }
  }
  // The "leader" no longer leads: nothing was appended there.
  if (reason === 'NOT_LEADER') return new NotLeaderError(hint, { cause: err });
  if (err.code === grpc.status.PERMISSION_DENIED || err.code === grpc.status.UNAUTHENTICATED)
    return new ForwardRefusedError(leader, err.details, { cause: err });
  // Never connected: the call was not sent.
  if (
    err.code === grpc.status.UNAVAILABLE &&
    /No connection established|ECONNREFUSED/.test(err.details)
  )
    return new LeaderUnreachableError(leader, { cause: err });
  return new ForwardOutcomeUnknownError(leader, { cause: err });
}

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
        if (err) reject(forwardFailure(err, leader));
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
