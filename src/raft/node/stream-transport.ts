// Raft's transport over streams (hashicorp raft's NetworkTransport over a StreamLayer is
// the model). Each node dials each peer it sends to; a connection carries messages one
// way, and answers travel on the answering node's own connection back.
//
// Per peer, two outbound channels: `control` (votes, heartbeats, every response, empty
// appends) and `bulk` (appends with entries, snapshot chunks), each its own connection,
// so a heartbeat never waits behind megabytes of entries. Each channel has a bounded
// queue that DROPS when full (Raft tolerates loss and retries); queued frames go out in
// one write per turn of the event loop (batching), and a channel stops writing while its
// socket is full (backpressure), so its queue fills and then drops instead of growing.
//
// Wire: every frame is [u32 length][u32 CRC-32 of payload][payload], big-endian. The
// first frame each way is a JSON handshake: the dialer states its protocol version
// range, cluster id, group id (`default`; one Raft group per connection), its own id,
// the id it means to reach and the channel; the acceptor answers with the version
// chosen or a reason, and closes on refusal. After that each frame is one message in
// the codec of codec.ts. An authenticated stream layer (mutual TLS) proves the peer's
// id; the claimed id must equal it, and every message's `from` must equal the bound id.
import type { Duplex } from 'node:stream';
import { crc32 } from 'node:zlib';

import type { NodeId } from '../core/index.js';
import { decodeMessage, encodeMessage } from './codec.js';
import type { WireMessage } from './messages.js';
import type { Transport } from './ports.js';

/** A connected stream; `peerId` is the identity the layer proved (mutual TLS), if any. */
export interface PeerStream {
  readonly stream: Duplex;
  readonly peerId?: string;
}

/** How the transport reaches peers and is reached (net/'s TLS or plain layers). */
export interface StreamLayer {
  dial(addr: string, o: { signal: AbortSignal }): Promise<PeerStream>;
  /** Inbound streams, until the layer closes. The transport is the one consumer. */
  accept(): AsyncIterable<PeerStream>;
}

/** The transport protocol versions this build speaks. */
export const TRANSPORT_VERSIONS = { min: 1, max: 1 } as const;
export const DEFAULT_GROUP = 'default';
const PROTOCOL = 'commitlog-raft';

export type Channel = 'control' | 'bulk';

export interface TransportLogger {
  warn(fields: object, message: string): void;
  info?(fields: object, message: string): void;
}

export interface StreamTransportOptions {
  readonly id: NodeId;
  /** Both sides must agree; a peer of another cluster is refused at the handshake. */
  readonly clusterId: string;
  /** The Raft group this transport carries. Default `default`. */
  readonly group?: string;
  readonly layer: StreamLayer;
  /** The cluster's address book: where peer `id` listens (host:port), or undefined. */
  addressOf(id: NodeId): string | undefined;
  /** A peer could not be reached (dial, handshake or connection failed). */
  onUnreachable?(id: NodeId): void;
  readonly logger?: TransportLogger;
  /** Protocol versions to offer and accept. Default TRANSPORT_VERSIONS. */
  readonly versions?: { readonly min: number; readonly max: number };
  /**
   * Refuse inbound streams that carry no proven identity (a plaintext layer). Default
   * false: plaintext is for loopback development, where the claimed id is taken as is.
   */
  readonly requirePeerIdentity?: boolean;
  /**
   * The certificate identity a Raft id must present (default: the id itself). A
   * deployment whose Raft ids extend a node name (name.suffix) maps them back here.
   */
  identityOf?(id: NodeId): string;
  /** Control queue bound, in messages. Default 1024. */
  readonly maxControlQueue?: number;
  /** Bulk queue bound, in bytes. Default 64 MiB. */
  readonly maxBulkQueueBytes?: number;
  /** Largest frame accepted or sent. Default 64 MiB. */
  readonly maxFrameBytes?: number;
  /** Reconnect backoff: doubles from minMs to maxMs, jittered. Default 50..2000. */
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
  /** Dial plus handshake deadline. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** The same refusal (peer and reason) is logged once per interval. Default 10 s. */
  readonly logIntervalMs?: number;
}

export interface PeerTransportStats {
  sentMessages: number;
  sentBytes: number;
  receivedMessages: number;
  receivedBytes: number;
  /** Messages waiting in this peer's queues now. */
  queueDepth: number;
  /** Messages dropped: queue full, peer unreachable or connection lost. */
  drops: number;
  reconnects: number;
  handshakeFailures: number;
}

export interface StreamTransportStats {
  readonly peers: Readonly<Record<NodeId, Readonly<PeerTransportStats>>>;
  /** Inbound handshakes refused (wrong cluster, version, identity...). */
  readonly inboundRefused: number;
  /** Inbound frames dropped: bad checksum, undecodable, or a `from` not the peer's. */
  readonly badFrames: number;
}

/** A frame failed its checksum, was too large, or the handshake was malformed. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
}

/** The options cannot work (an empty node id, cluster id or group). */
export class TransportConfigError extends Error {
  override readonly name = 'TransportConfigError';
}

/** The peer refused our handshake, or answered one we must refuse. */
export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
}

const HEADER = 8;

/** Logs each distinct key at most once per interval: a misconfigured peer retries often. */
class RateLimitedWarn {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly logger: TransportLogger | undefined,
    private readonly intervalMs: number,
  ) {}

  warn(key: string, fields: object, message: string): void {
    if (this.logger === undefined) return;
    const now = performance.now();
    const at = this.last.get(key);
    if (at !== undefined && now - at < this.intervalMs) return;
    this.last.delete(key);
    this.last.set(key, now);
    if (this.last.size > 1024) this.last.delete(this.last.keys().next().value!);
    this.logger.warn(fields, message);
  }
}

/** One frame: header and payload in one buffer. */
export function encodeFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.byteLength);
  out.writeUInt32BE(payload.byteLength, 0);
  out.writeUInt32BE(crc32(payload), 4);
  out.set(payload, HEADER);
  return out;
}

/** Splits a byte stream into verified frame payloads. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Adds bytes; returns the complete payloads. Throws FrameError on corruption. */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    if (this.buffered < HEADER) return out;
    let buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    let at = 0;
    while (buf.length - at >= HEADER) {
      const len = buf.readUInt32BE(at);
      if (len > this.maxFrameBytes)
        throw new FrameError(`frame of ${len} bytes exceeds ${this.maxFrameBytes}`);
      if (buf.length - at < HEADER + len) break;
      const payload = buf.subarray(at + HEADER, at + HEADER + len);
      if (crc32(payload) !== buf.readUInt32BE(at + 4))
        throw new FrameError('frame checksum mismatch');
      out.push(payload);
      at += HEADER + len;
    }
    buf = buf.subarray(at);
    this.chunks = buf.length > 0 ? [buf] : [];
    this.buffered = buf.length;
    return out;
  }
}

interface Hello {
  p: string;
  min: number;
  max: number;
  cluster: string;
  group: string;
  from: string;
  to: string;
  channel: Channel;
}
type HelloReply = { ok: true; version: number; id: string } | { ok: false; reason: string };

/** JSON.parse that reports a malformed handshake as a HandshakeError. */
function parseJson(frame: Buffer): unknown {
  try {
    return JSON.parse(frame.toString('utf8'));
  } catch (e) {
    throw new HandshakeError('malformed handshake', { cause: e });
  }
}

const json = (v: unknown): Buffer => encodeFrame(Buffer.from(JSON.stringify(v), 'utf8'));

function channelOf(m: WireMessage): Channel {
  if (m.type === 'snapshotChunk') return 'bulk';
  if (m.type === 'append' && m.entries.length > 0) return 'bulk';
  return 'control';
}

function emptyStats(): PeerTransportStats {
  return {
    sentMessages: 0,
    sentBytes: 0,
    receivedMessages: 0,
    receivedBytes: 0,
    queueDepth: 0,
    drops: 0,
    reconnects: 0,
    handshakeFailures: 0,
  };
}

/** Reads exactly one frame from a stream (the handshake), within a deadline. */
function readOneFrame(
  stream: Duplex,
  reader: FrameReader,
  ms: number,
): Promise<{ frame: Buffer; rest: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const done = (e?: Error, v?: { frame: Buffer; rest: Buffer[] }): void => {
      clearTimeout(timer);
      stream.removeListener('data', onData);
      stream.removeListener('close', onClose);
      stream.removeListener('error', onError);
      if (e) reject(e);
      else resolve(v!);
    };
    const onData = (chunk: Buffer): void => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        done(e as Error);
        return;
      }
      if (frames.length > 0) {
        // Pause before handing over, so frames after the handshake wait for the reader.
        stream.pause();
        done(undefined, { frame: frames[0]!, rest: frames.slice(1) });
      }
    };
    const onClose = (): void => done(new HandshakeError('connection closed during the handshake'));
    const onError = (e: Error): void => done(e);
    const timer = setTimeout(() => done(new HandshakeError(`no handshake within ${ms} ms`)), ms);
    stream.on('data', onData);
    stream.once('close', onClose);
    stream.once('error', onError);
  });
}

class OutChannel {
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private stream: Duplex | undefined;
  private state: 'idle' | 'connecting' | 'connected' | 'backoff' = 'idle';
  private attempts = 0;
  private flushScheduled = false;
  private writable = true;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly t: StreamTransport,
    private readonly peer: NodeId,
    readonly channel: Channel,
    private readonly stats: PeerTransportStats,
  ) {}

  get depth(): number {
    return this.queue.length;
  }

  enqueue(frame: Buffer): void {
    const full =
      this.channel === 'control'
        ? this.queue.length >= this.t.maxControlQueue
        : this.queuedBytes + frame.length > this.t.maxBulkQueueBytes && this.queue.length > 0;
    if (full) {
      this.stats.drops++;
      return;
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    this.stats.queueDepth++;
    if (this.state === 'connected') this.scheduleFlush();
    else if (this.state === 'idle') void this.connect();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || !this.writable) return;
    this.flushScheduled = true;
    // Messages sent in the same turn go out in one write.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const stream = this.stream;
    if (stream === undefined || this.queue.length === 0 || !this.writable) return;
    // One write of at most ~1 MiB per turn keeps a bulk channel from monopolising the loop.
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.length <= 1 << 20)) {
      bytes += this.queue[n]!.length;
      n++;
    }
    const batch = this.queue.splice(0, n);
    this.queuedBytes -= bytes;
    this.stats.queueDepth -= n;
    this.stats.sentMessages += n;
    this.stats.sentBytes += bytes;
    const ok = stream.write(n === 1 ? batch[0] : Buffer.concat(batch, bytes));
    if (!ok) {
      this.writable = false;
      stream.once('drain', () => {
        this.writable = true;
        this.scheduleFlush();
      });
    } else if (this.queue.length > 0) this.scheduleFlush();
  }

  private async connect(): Promise<void> {
    this.state = 'connecting';
    const addr = this.t.opts.addressOf(this.peer);
    if (addr === undefined) {
      this.fail(new HandshakeError(`no address known for ${this.peer}`), false);
      return;
    }
    const signal = AbortSignal.any([
      this.t.closing.signal,
      AbortSignal.timeout(this.t.handshakeTimeoutMs),
    ]);
    let stream: Duplex | undefined;
    try {
      const dialed = await this.t.opts.layer.dial(addr, { signal });
      stream = dialed.stream;
      if (this.t.closed) throw new HandshakeError('transport closed');
      stream.on('error', () => {});
      if (dialed.peerId !== undefined && dialed.peerId !== this.t.identity(this.peer))
        throw new HandshakeError(
          `dialled ${this.peer} at ${addr}, but its certificate names ${dialed.peerId}`,
        );
      const hello: Hello = {
        p: PROTOCOL,
        min: this.t.versions.min,
        max: this.t.versions.max,
        cluster: this.t.opts.clusterId,
        group: this.t.group,
        from: this.t.opts.id,
        to: this.peer,
        channel: this.channel,
      };
      stream.write(json(hello));
      const { frame } = await readOneFrame(
        stream,
        new FrameReader(64 * 1024),
        this.t.handshakeTimeoutMs,
      );
      const reply = parseJson(frame) as HelloReply | null;
      if (typeof reply !== 'object' || reply === null)
        throw new HandshakeError(`${this.peer} at ${addr} answered no handshake`);
      if (!reply.ok)
        throw new HandshakeError(`${this.peer} at ${addr} refused us: ${reply.reason}`);
      if (reply.id !== this.peer)
        throw new HandshakeError(`dialled ${this.peer} at ${addr}, but ${reply.id} answered`);
      if (reply.version < this.t.versions.min || reply.version > this.t.versions.max)
        throw new HandshakeError(`${this.peer} chose version ${reply.version}, outside ours`);
    } catch (e) {
      stream?.destroy();
      this.fail(e as Error, e instanceof HandshakeError || e instanceof FrameError);
      return;
    }
    if (this.t.closed) {
      stream.destroy();
      return;
    }
    this.stream = stream;
    this.state = 'connected';
    this.writable = true;
    this.attempts = 0;
    // Inbound data is never expected after the handshake; keep the stream flowing so a
    // FIN is seen, and treat any close as a lost connection.
    stream.resume();
    stream.once('close', () => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.fail(new HandshakeError('connection lost'), false);
    });
    this.scheduleFlush();
  }

  private fail(e: Error, handshake: boolean): void {
    if (this.t.closed) return;
    if (handshake) {
      this.stats.handshakeFailures++;
      this.t.log.warn(
        `out|${this.peer}|${e.message}`,
        { peer: this.peer, channel: this.channel, err: e.message },
        `raft transport: handshake with ${this.peer} failed: ${e.message}`,
      );
    }
    // Queued messages are stale by the time a peer comes back; Raft resends.
    this.stats.drops += this.queue.length;
    this.stats.queueDepth -= this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    this.stats.reconnects++;
    this.state = 'backoff';
    const { minMs, maxMs } = this.t.backoff;
    const base = Math.min(maxMs, minMs * 2 ** Math.min(this.attempts, 20));
    this.attempts++;
    const delay = base / 2 + Math.random() * (base / 2);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.state = 'idle';
      if (this.queue.length > 0) void this.connect();
    }, delay);
    this.timer.unref();
    this.t.opts.onUnreachable?.(this.peer);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.stream?.destroy();
    this.stream = undefined;
    this.stats.queueDepth -= this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
  }
}

export class StreamTransport implements Transport {
  readonly group: string;
  readonly versions: { readonly min: number; readonly max: number };
  readonly maxControlQueue: number;
  readonly maxBulkQueueBytes: number;
  readonly maxFrameBytes: number;
  readonly backoff: { readonly minMs: number; readonly maxMs: number };
  readonly handshakeTimeoutMs: number;
  readonly closing = new AbortController();
  readonly log: RateLimitedWarn;
  private readonly out = new Map<NodeId, { control: OutChannel; bulk: OutChannel }>();
  private readonly perPeer = new Map<NodeId, PeerTransportStats>();
  private readonly inbound = new Set<Duplex>();
  private handler: ((m: WireMessage) => void) | undefined;
  private inboundRefused = 0;
  private badFrames = 0;

  constructor(readonly opts: StreamTransportOptions) {
    if (opts.id === '') throw new TransportConfigError('a transport needs a non-empty node id');
    if (opts.clusterId === '')
      throw new TransportConfigError('a transport needs a non-empty cluster id');
    if (opts.group === '') throw new TransportConfigError('the Raft group id cannot be empty');
    this.group = opts.group ?? DEFAULT_GROUP;
    this.versions = opts.versions ?? TRANSPORT_VERSIONS;
    this.maxControlQueue = opts.maxControlQueue ?? 1024;
    this.maxBulkQueueBytes = opts.maxBulkQueueBytes ?? 64 << 20;
    this.maxFrameBytes = opts.maxFrameBytes ?? 64 << 20;
    this.backoff = opts.backoff ?? { minMs: 50, maxMs: 2000 };
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    this.log = new RateLimitedWarn(opts.logger, opts.logIntervalMs ?? 10_000);
    void this.acceptLoop();
  }

  /** The certificate identity `id` must present. */
  identity(id: NodeId): string {
    return this.opts.identityOf ? this.opts.identityOf(id) : id;
  }

  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  send(m: WireMessage): void {
    if (this.closed || m.to === this.opts.id || m.to === '') return;
    const stats = this.statsOf(m.to);
    let frame: Buffer;
    try {
      const payload = encodeMessage(m);
      if (payload.byteLength > this.maxFrameBytes) {
        stats.drops++;
        return;
      }
      frame = encodeFrame(payload);
    } catch (e) {
      // An unencodable message is a bug upstream: say so, but never throw into Raft.
      stats.drops++;
      this.log.warn(
        `encode|${m.type}`,
        { peer: m.to, type: m.type, err: (e as Error).message },
        `raft transport: dropped an unencodable ${m.type} to ${m.to}: ${(e as Error).message}`,
      );
      return;
    }
    let peer = this.out.get(m.to);
    if (peer === undefined) {
      peer = {
        control: new OutChannel(this, m.to, 'control', stats),
        bulk: new OutChannel(this, m.to, 'bulk', stats),
      };
      this.out.set(m.to, peer);
    }
    peer[channelOf(m)].enqueue(frame);
  }

  listen(handler: (m: WireMessage) => void): () => void {
    this.handler = handler;
    return () => {
      if (this.handler === handler) this.handler = undefined;
    };
  }

  stats(): StreamTransportStats {
    const peers: Record<NodeId, PeerTransportStats> = {};
    for (const [id, s] of this.perPeer) peers[id] = { ...s };
    return { peers, inboundRefused: this.inboundRefused, badFrames: this.badFrames };
  }

  /** Drops every connection and queue. Close the stream layer afterwards (it owns accept). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closing.abort(new HandshakeError('transport closed'));
    for (const p of this.out.values()) {
      p.control.close();
      p.bulk.close();
    }
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
    return Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private statsOf(id: NodeId): PeerTransportStats {
    let s = this.perPeer.get(id);
    if (s === undefined) {
      s = emptyStats();
      this.perPeer.set(id, s);
    }
    return s;
  }

  private async acceptLoop(): Promise<void> {
    try {
      for await (const s of this.opts.layer.accept()) {
        if (this.closed) {
          s.stream.destroy();
          break;
        }
        void this.serveInbound(s);
      }
    } catch (e) {
      this.opts.logger?.warn(
        { err: (e as Error).message },
        `raft transport: accepting stopped: ${(e as Error).message}`,
      );
    }
  }

  private refuseInbound(stream: Duplex, who: string, reason: string): void {
    this.inboundRefused++;
    this.log.warn(
      `in|${who}|${reason}`,
      { peer: who, reason },
      `raft transport: refused a connection from ${who}: ${reason}`,
    );
    stream.end(json({ ok: false, reason } satisfies HelloReply));
    setTimeout(() => stream.destroy(), 1000).unref();
  }

  private async serveInbound({ stream, peerId }: PeerStream): Promise<void> {
    this.inbound.add(stream);
    stream.on('error', () => {});
    stream.once('close', () => this.inbound.delete(stream));
    const reader = new FrameReader(this.maxFrameBytes);
    let hello: Hello;
    let rest: Buffer[];
    const who = peerId ?? 'an unauthenticated peer';
    try {
      // The same reader goes on after the handshake, so no byte after it is lost.
      const first = await readOneFrame(stream, reader, this.handshakeTimeoutMs);
      rest = first.rest;
      hello = parseJson(first.frame) as Hello;
      if (typeof hello !== 'object' || hello === null || hello.p !== PROTOCOL)
        throw new HandshakeError('not a commitlog Raft handshake');
    } catch (e) {
      if (peerId !== undefined) this.statsOf(peerId).handshakeFailures++;
      this.refuseInbound(stream, who, (e as Error).message);
      return;
    }
    const from = typeof hello.from === 'string' ? hello.from : '';
    const fail = (reason: string): void => {
      const id = peerId ?? (from !== '' ? from : undefined);
      if (id !== undefined) this.statsOf(id).handshakeFailures++;
      this.refuseInbound(stream, peerId ?? (from || '?'), reason);
    };
    const lo = Math.max(this.versions.min, Number(hello.min));
    const hi = Math.min(this.versions.max, Number(hello.max));
    if (!(lo <= hi))
      return fail(
        `incompatible protocol version: we speak ${this.versions.min}..${this.versions.max}, ` +
          `the peer ${String(hello.min)}..${String(hello.max)}`,
      );
    if (hello.cluster !== this.opts.clusterId)
      return fail(
        `wrong cluster id ${JSON.stringify(hello.cluster)} (this is ${JSON.stringify(this.opts.clusterId)})`,
      );
    if (hello.group !== this.group)
      return fail(`unknown Raft group ${JSON.stringify(hello.group)}`);
    if (from === '') return fail('empty node id');
    if (peerId === undefined && this.opts.requirePeerIdentity === true)
      return fail('no authenticated identity (plaintext peer)');
    if (peerId !== undefined && this.identity(from) !== peerId)
      return fail(`claims to be ${JSON.stringify(from)}, but its certificate names ${peerId}`);
    if (hello.to !== this.opts.id)
      return fail(`meant for ${JSON.stringify(hello.to)}, this is ${this.opts.id}`);
    stream.write(json({ ok: true, version: hi, id: this.opts.id } satisfies HelloReply));
    const stats = this.statsOf(from);
    const deliver = (payload: Buffer): boolean => {
      stats.receivedBytes += payload.length + HEADER;
      let m: WireMessage;
      try {
        m = decodeMessage(payload);
      } catch {
        this.badFrames++;
        return false;
      }
      // The bound identity is the only `from` this connection may carry.
      if (m.from !== from || m.to !== this.opts.id) {
        this.badFrames++;
        return false;
      }
      stats.receivedMessages++;
      this.handler?.(m);
      return true;
    };
    for (const p of rest) if (!deliver(p)) return this.dropInbound(stream, from, 'a bad message');
    stream.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        this.badFrames++;
        this.dropInbound(stream, from, (e as Error).message);
        return;
      }
      for (const p of frames) {
        if (!deliver(p)) {
          this.dropInbound(stream, from, 'an undecodable message or a foreign `from`');
          return;
        }
      }
    });
    stream.resume();
  }

  private dropInbound(stream: Duplex, from: string, why: string): void {
    this.log.warn(
      `drop|${from}|${why}`,
      { peer: from, reason: why },
      `raft transport: closed the connection from ${from}: ${why}`,
    );
    stream.destroy();
  }
}
