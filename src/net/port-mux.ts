// One TCP listener for gRPC and Raft. Each accepted connection is classified off the
// accept loop, by its first bytes and within a deadline, then handed to its sink as the
// raw socket with the bytes read so far pushed back (`unshift`): TLS is NOT terminated
// here, so the sink does the handshake and sees the peer certificate itself (grpc-js
// through `createConnectionInjector(creds).injectConnection(socket)`).
//
// - TLS mode: the ClientHello's ALPN decides: `commitlog-raft/1` → raft, `h2` → grpc.
// - Plain mode (loopback development): the HTTP/2 preface → grpc, RAFT_MAGIC → raft.
//
// A stranger (garbage, HTTP/1, an unknown ALPN, silence, a slow trickle) is closed at
// the deadline at the latest, counted, and logged at most once per logIntervalMs; the
// number of live connections per source address and of unclassified ones is bounded.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import { MAX_HELLO_BYTES, readClientHello } from './client-hello.js';

/** ALPN protocol name of Raft peer connections. */
export const RAFT_ALPN = 'commitlog-raft/1';
/** ALPN protocol name of gRPC (HTTP/2 over TLS). */
export const GRPC_ALPN = 'h2';
/** What a client sends first on plaintext HTTP/2 (RFC 9113 §3.4). */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/**
 * What a plaintext Raft peer sends first. Its first byte (0x01) is neither a TLS record
 * (0x16) nor printable, so no HTTP client, TLS client or telnet session sends it.
 */
export const RAFT_MAGIC = Buffer.from('\x01CLRAFT\x01', 'latin1');

/** Where a classified connection goes. The sink owns the socket from then on. */
export type ConnectionSink = (socket: Duplex, info: ConnectionInfo) => void;

export interface ConnectionInfo {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** TLS mode: the ClientHello's ALPN list and SNI. */
  readonly alpn?: readonly string[];
  readonly sni?: string;
}

export type RefusalReason =
  | 'timeout' // nothing recognisable before the deadline (silence, slowloris)
  | 'not-tls' // TLS mode, and the first bytes are no ClientHello
  | 'unknown-alpn' // a ClientHello naming neither h2 nor commitlog-raft/1
  | 'unknown-protocol' // plain mode, neither the HTTP/2 preface nor RAFT_MAGIC
  | 'no-route' // recognised, but this mux has no sink for it
  | 'source-limit' // too many live connections from one address
  | 'pending-limit' // too many connections being classified at once
  | 'closed-early'; // the peer went away before it said what it is

export interface Refusal {
  readonly reason: RefusalReason;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

/** A pino-compatible logger (only warn is used). */
export interface MuxLogger {
  warn(fields: object, message: string): void;
}

export interface PortMuxOptions {
  /** 'tls': route by ClientHello ALPN. 'plain': by the first bytes (loopback only). */
  readonly mode: 'tls' | 'plain';
  readonly routes: { readonly grpc?: ConnectionSink; readonly raft?: ConnectionSink };
  /** A connection not classified within this is closed. Default 5000. */
  readonly sniffTimeoutMs?: number;
  /** Live connections (classifying or routed) per remote address. Default 256. */
  readonly maxPerSource?: number;
  /** Connections being classified at once, all sources together. Default 1024. */
  readonly maxPending?: number;
  readonly logger?: MuxLogger;
  /** At most one refusal log line per interval; the next line counts the rest. Default 10 s. */
  readonly logIntervalMs?: number;
  readonly onRefused?: (r: Refusal) => void;
}

export interface PortMuxStats {
  readonly accepted: number;
  readonly routed: { readonly grpc: number; readonly raft: number };
  readonly refused: Readonly<Record<RefusalReason, number>>;
  /** Connections being classified now. */
  readonly pending: number;
}

export class PortMuxClosedError extends Error {
  override readonly name = 'PortMuxClosedError';
}

const REASONS: readonly RefusalReason[] = [
  'timeout',
  'not-tls',
  'unknown-alpn',
  'unknown-protocol',
  'no-route',
  'source-limit',
  'pending-limit',
  'closed-early',
];

export class PortMux {
  private readonly server: Server;
  private readonly sniffTimeoutMs: number;
  private readonly maxPerSource: number;
  private readonly maxPending: number;
  private readonly logIntervalMs: number;
  private readonly perSource = new Map<string, number>();
  private readonly pendingSockets = new Set<Socket>();
  private readonly counts = {
    accepted: 0,
    grpc: 0,
    raft: 0,
    refused: Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>,
  };
  private lastLogAt = -Infinity;
  private suppressed = 0;
  private closed = false;

  constructor(private readonly o: PortMuxOptions) {
    this.sniffTimeoutMs = o.sniffTimeoutMs ?? 5000;
    this.maxPerSource = o.maxPerSource ?? 256;
    this.maxPending = o.maxPending ?? 1024;
    this.logIntervalMs = o.logIntervalMs ?? 10_000;
    // noDelay: Raft heartbeats and unary gRPC are latency-bound small writes.
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** Binds; port 0 picks a free port. Resolves with the bound address. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    if (this.closed) throw new PortMuxClosedError('the port multiplexer is closed');
    this.server.listen(port, host);
    await Promise.race([
      once(this.server, 'listening'),
      once(this.server, 'error').then(([e]) => Promise.reject(e as Error)),
    ]);
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /**
   * Stops accepting and drops connections still being classified. Routed connections
   * belong to their sinks, which close them.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.pendingSockets) s.destroy();
    this.pendingSockets.clear();
    if (!this.server.listening) return;
    // server.close's callback waits for every connection, routed ones included; what
    // matters here is that the port stops accepting, which happens at once.
    this.server.close();
    this.flushLog();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  stats(): PortMuxStats {
    return {
      accepted: this.counts.accepted,
      routed: { grpc: this.counts.grpc, raft: this.counts.raft },
      refused: { ...this.counts.refused },
      pending: this.pendingSockets.size,
    };
  }

  private accept(socket: Socket): void {
    this.counts.accepted++;
    const remoteAddress = socket.remoteAddress ?? '?';
    const remotePort = socket.remotePort ?? 0;
    // Errors (resets) before or after routing must never crash the process; sinks add
    // their own listeners.
    socket.on('error', () => {});
    if (this.closed) {
      socket.destroy();
      return;
    }
    const live = this.perSource.get(remoteAddress) ?? 0;
    if (live >= this.maxPerSource) return this.refuse(socket, 'source-limit');
    if (this.pendingSockets.size >= this.maxPending) return this.refuse(socket, 'pending-limit');
    this.perSource.set(remoteAddress, live + 1);
    socket.once('close', () => {
      const n = (this.perSource.get(remoteAddress) ?? 1) - 1;
      if (n <= 0) this.perSource.delete(remoteAddress);
      else this.perSource.set(remoteAddress, n);
    });
    this.pendingSockets.add(socket);

    let buffered: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      this.pendingSockets.delete(socket);
    };
    const refuse = (reason: RefusalReason): void => {
      finish();
      this.refuse(socket, reason);
    };
    const onEnd = (): void => {
      if (!settled) refuse('closed-early');
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const verdict = this.classify(buffered);
      if (verdict === 'more') {
        if (buffered.length > MAX_HELLO_BYTES + 64) refuse('not-tls');
        return;
      }
      if (typeof verdict === 'string') return refuse(verdict);
      const sink = this.o.routes[verdict.route];
      if (sink === undefined) return refuse('no-route');
      finish();
      // Hand over the raw socket with what was read pushed back, paused so no byte is
      // lost before the sink attaches its own reader.
      socket.pause();
      socket.unshift(buffered);
      this.counts[verdict.route]++;
      sink(socket, {
        remoteAddress,
        remotePort,
        ...(verdict.alpn !== undefined ? { alpn: verdict.alpn } : {}),
        ...(verdict.sni !== undefined ? { sni: verdict.sni } : {}),
      });
    };
    const timer = setTimeout(() => refuse('timeout'), this.sniffTimeoutMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  }

  private classify(
    b: Buffer,
  ): 'more' | RefusalReason | { route: 'grpc' | 'raft'; alpn?: readonly string[]; sni?: string } {
    if (this.o.mode === 'tls') {
      const hello = readClientHello(b);
      if (hello === 'incomplete') return 'more';
      if (hello === 'not-tls') return 'not-tls';
      const extra =
        hello.sni !== undefined ? { alpn: hello.alpn, sni: hello.sni } : { alpn: hello.alpn };
      // The client's first protocol we know decides (ALPN lists are in preference order).
      for (const name of hello.alpn) {
        if (name === RAFT_ALPN) return { route: 'raft', ...extra };
        if (name === GRPC_ALPN) return { route: 'grpc', ...extra };
      }
      return 'unknown-alpn';
    }
    const n = Math.min(b.length, HTTP2_PREFACE.length);
    if (b.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n)))
      return n === HTTP2_PREFACE.length ? { route: 'grpc' } : 'more';
    const m = Math.min(b.length, RAFT_MAGIC.length);
    if (b.subarray(0, m).equals(RAFT_MAGIC.subarray(0, m)))
      return m === RAFT_MAGIC.length ? { route: 'raft' } : 'more';
    return 'unknown-protocol';
  }

  private refuse(socket: Socket, reason: RefusalReason): void {
    this.counts.refused[reason]++;
    const refusal: Refusal = {
      reason,
      remoteAddress: socket.remoteAddress ?? '?',
      remotePort: socket.remotePort ?? 0,
    };
    socket.destroy();
    this.o.onRefused?.(refusal);
    const now = performance.now();
    if (now - this.lastLogAt < this.logIntervalMs) {
      this.suppressed++;
      return;
    }
    this.lastLogAt = now;
    this.o.logger?.warn(
      { ...refusal, suppressed: this.suppressed, refused: { ...this.counts.refused } },
      `rpc port: closed a connection from ${refusal.remoteAddress}:${refusal.remotePort} (${reason})` +
        (this.suppressed > 0 ? `; ${this.suppressed} more refused since the last line` : ''),
    );
    this.suppressed = 0;
  }

  private flushLog(): void {
    if (this.suppressed === 0) return;
    this.o.logger?.warn(
      { suppressed: this.suppressed, refused: { ...this.counts.refused } },
      `rpc port: ${this.suppressed} more connections refused since the last line`,
    );
    this.suppressed = 0;
  }
}
