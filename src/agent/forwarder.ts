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

/** One leader address's client and the forwarded calls it carries. */
interface ClientEntry {
  readonly client: LogClient;
  calls: number;
  /** Replaced after new TLS material: closed once its last call settles. */
  retired: boolean;
}

export class GrpcLeaderForwarder implements LeaderForwarder {
  private readonly clients = new Map<string, ClientEntry>();
  /** Retired clients with calls still running. */
  private readonly draining = new Set<ClientEntry>();
  /** What new clients are made with; replaced by a committed stageTls. */
  private credentials: grpc.ChannelCredentials;

  constructor(
    private readonly nodeName: string,
    tls: TlsMaterial | undefined,
  ) {
    this.credentials = tls ? channelCredentials(tls) : grpc.credentials.createInsecure();
  }

  /**
   * Prepares a switch to new TLS material (certificate rotation) and returns its commit.
   * Once committed, new forwarded calls go through new clients with the new material.
   * An old client is closed once its calls have settled, not at once: grpc-js fails a
   * call still waiting for its connection when the channel closes, and a forwarded
   * produce failed that way has an unknown outcome for the caller.
   */
  stageTls(material: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>): () => void {
    const credentials = channelCredentials(material);
    return () => {
      this.credentials = credentials;
      for (const entry of this.clients.values()) {
        entry.retired = true;
        if (entry.calls === 0) entry.client.close();
        else this.draining.add(entry);
      }
      this.clients.clear();
    };
  }

  private client(addr: string): ClientEntry {
    let entry = this.clients.get(addr);
    if (!entry) {
      const client = new LogClient(addr, this.credentials, { 'grpc.keepalive_time_ms': 30_000 });
      entry = { client, calls: 0, retired: false };
      this.clients.set(addr, entry);
    }
    return entry;
  }

  append(
    values: readonly Uint8Array[],
    leader: LeaderHint,
    o: { signal: AbortSignal },
  ): Promise<bigint> {
    const entry = this.client(leader.addr);
    const md = new grpc.Metadata();
    md.set(FORWARDED_BY, this.nodeName);
    entry.calls++;
    const settled = (): void => {
      entry.calls--;
      if (entry.retired && entry.calls === 0) {
        this.draining.delete(entry);
        entry.client.close();
      }
    };
    return new Promise<bigint>((resolve, reject) => {
      const records = values.map((v) => ({
        value: Buffer.from(v.buffer, v.byteOffset, v.byteLength),
        offset: 0n,
        term: 0n,
        type: 0,
      }));
      let call: grpc.ClientUnaryCall;
      try {
        call = entry.client.produceBatch({ records }, md, (err, res) => {
          o.signal.removeEventListener('abort', cancel);
          settled();
          if (err) reject(forwardFailure(err, leader));
          else resolve(res.firstOffset);
        });
      } catch (err) {
        settled();
        throw err;
      }
      const cancel = (): void => call.cancel();
      o.signal.addEventListener('abort', cancel, { once: true });
    });
  }

  close(): void {
    for (const entry of [...this.clients.values(), ...this.draining]) entry.client.close();
    this.clients.clear();
    this.draining.clear();
  }

  /** Clients open: per leader address in use, plus retired ones still finishing calls. */
  openClients(): { current: number; draining: number } {
    return { current: this.clients.size, draining: this.draining.size };
  }
}

/**
 * A node presents its own certificate to the leader (node certificates carry clientAuth
 * as well as serverAuth) and checks the leader's chain to the CA.
 */
function channelCredentials(
  tls: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>,
): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    Buffer.from(tls.ca),
    Buffer.from(tls.key),
    Buffer.from(tls.cert),
    // Node certificates name their host, which may differ from the advertised
    // address a peer dials; the chain to the cluster's CA is what is checked.
    { checkServerIdentity: () => undefined },
  );
}
