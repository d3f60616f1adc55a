// What one client, and all of them together, may hold on a node. Each limit is an agent
// setting (the name in `setting` comments); a refusal names the limit and its setting.

export interface ServerLimits {
  /**
   * Bytes a consume stream may have waiting beyond the HTTP/2 flow-control window
   * before it stops reading the log (max-stream-buffer-bytes). One message always goes.
   */
  streamBufferBytes: number;
  /** Long-lived streams (Consume*Stream, ProduceStream) on one connection (max-streams-per-connection). */
  streamsPerConnection: number;
  /** Long-lived streams on the node, all connections together (max-streams). */
  streams: number;
  /** Open connections from one client address to the HTTP port (max-connections-per-address). */
  connectionsPerAddress: number;
  /** Open connections to the HTTP port, all addresses together (max-connections). */
  connections: number;
  /**
   * An HTTP connection that has not sent a whole request head within this is closed;
   * gRPC connections that finish no HTTP/2 handshake are closed after it too (handshake-timeout-ms).
   */
  handshakeTimeoutMs: number;
  /** HTTP/2 PING to a gRPC client after this much silence (keepalive-time-ms). */
  keepaliveTimeMs: number;
  /** A gRPC connection whose PING is unanswered this long is closed (keepalive-timeout-ms). */
  keepaliveTimeoutMs: number;
  /** A gRPC connection with no call for this long is closed (connection-idle-ms). */
  connectionIdleMs: number;
}

export const DEFAULT_LIMITS: Readonly<ServerLimits> = {
  streamBufferBytes: 256 * 1024,
  streamsPerConnection: 100,
  streams: 500,
  connectionsPerAddress: 64,
  connections: 1024,
  handshakeTimeoutMs: 10_000,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  connectionIdleMs: 30 * 60_000,
};

/**
 * Unary calls also take HTTP/2 streams: the protocol cap on one connection leaves this
 * much room above the long-lived streams, so that the excess of those gets a readable
 * RESOURCE_EXHAUSTED rather than a refused HTTP/2 stream.
 */
export const UNARY_STREAM_HEADROOM = 100;

/** The process's open-file limits, from /proc/self/limits (Linux); undefined elsewhere. */
export function parseFdLimits(procLimits: string): { soft: number; hard: number } | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(procLimits);
  if (!m) return undefined;
  const n = (s: string | undefined) => (s === 'unlimited' ? Infinity : Number(s));
  return { soft: n(m[1]), hard: n(m[2]) };
}

/** True when `err` or one of its causes is the system refusing a new file descriptor. */
export function isDescriptorExhaustion(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EMFILE' || code === 'ENFILE') return true;
    e = e.cause;
  }
  return false;
}
