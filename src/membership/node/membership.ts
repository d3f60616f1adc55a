import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import type { Tags } from '../core/codec.js';
import {
  MembershipAddressError,
  MembershipBindError,
  MembershipClosedError,
  MembershipConfigError,
  MembershipJoinError,
  MembershipStreamError,
} from '../core/errors.js';
import { membershipDefaults, validateProtocolConfig, type ProtocolConfig } from '../core/config.js';
import {
  emptyStats,
  SwimCore,
  type CoreDiagnosticKind,
  type CoreStats,
  type MemberEvent,
  type MemberView,
  type Output,
} from '../core/swim.js';
import { GossipCipher, parseKey, SEAL_OVERHEAD } from './cipher.js';
import { readFrame, writeFrame } from './frames.js';

export interface MembershipOptions {
  /** Unique name of this member in the cluster. */
  name: string;
  /** Host to bind the gossip sockets (UDP and TCP) to; default 127.0.0.1. */
  bindHost?: string;
  /** Port of both gossip sockets; default 8401, 0 picks a free one. */
  bindPort?: number;
  /** host:port other members should use; default bindHost:port (required for 0.0.0.0). */
  advertiseAddress?: string;
  tags?: Tags;
  /** Protocol timings; default membershipDefaults.lan(). */
  protocol?: ProtocolConfig;
  /** Base64 AES key (16, 24 or 32 bytes) that every member shares; gossip is in clear without. */
  encryptionKey?: string;
  /**
   * Told why something received or sent was dropped (a bad key, a conflicting address,
   * a broken state exchange, ...): the counters in stats() say how often, this says why.
   * Called synchronously; it should only log. Default: nothing.
   */
  onDiagnostic?: (d: MembershipDiagnostic) => void;
}

export type MembershipDiagnosticKind =
  | CoreDiagnosticKind
  | 'decryptFailure'
  | 'streamFailure'
  | 'sendError'
  | 'diagnosticListenerFailed';

/** One dropped packet, frame or exchange, explained. */
export interface MembershipDiagnostic {
  readonly kind: MembershipDiagnosticKind;
  /** The peer's host:port, when known. */
  readonly peer?: string;
  readonly message: string;
  readonly error?: Error;
}

/** Counters of the core plus what the driver dropped before the core saw it. */
export interface MembershipStats extends CoreStats {
  /** Packets or frames that failed authentication (wrong key, tampering, or clear text). */
  decryptFailures: number;
  /** State exchanges that could not connect, timed out or were too large. */
  streamFailures: number;
  /** UDP sends that failed locally. */
  sendErrors: number;
}

interface PendingJoin {
  resolve: (contacted: number) => void;
  reject: (err: Error) => void;
}

/**
 * One member of a gossip cluster on real sockets: UDP for probes and gossip, TCP on the
 * same port for state exchanges, timers driving a SwimCore. Events come out in order as
 * `membership.on('event', …)` and as `for await (const e of membership.events())`.
 */
export class Membership extends EventEmitter<{ event: [MemberEvent] }> {
  readonly name: string;
  /** Made by start(), once the bound port (and so our address) is known. */
  private coreInstance: SwimCore | undefined;
  private readonly config: ProtocolConfig;
  private readonly cipher: GossipCipher | undefined;
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly openSockets = new Set<Socket>();
  private readonly joins = new Map<number, PendingJoin>();
  private readonly subscribers = new Set<EventQueue>();
  private leaveWaiters: (() => void)[] = [];
  private state: 'new' | 'running' | 'closed' = 'new';
  private advertised = '';
  private diagnosticListener: ((d: MembershipDiagnostic) => void) | undefined;
  private readonly driverStats = { decryptFailures: 0, streamFailures: 0, sendErrors: 0 };

  constructor(private readonly options: MembershipOptions) {
    super();
    this.name = options.name;
    this.config = options.protocol ?? membershipDefaults.lan();
    this.diagnosticListener = options.onDiagnostic;
    validateProtocolConfig(this.config);
    this.cipher =
      options.encryptionKey !== undefined
        ? new GossipCipher(parseKey(options.encryptionKey))
        : undefined;
    if (this.cipher && this.config.maxPacketBytes + SEAL_OVERHEAD > 65_000) {
      throw new MembershipConfigError('maxPacketBytes leaves no room for encryption');
    }
  }

  private get core(): SwimCore {
    if (!this.coreInstance) throw new MembershipClosedError('membership is not started');
    return this.coreInstance;
  }

  /** The advertised host:port, known once start() resolved. */
  get address(): string {
    return this.advertised;
  }

  /** Binds the sockets, announces this member (a local join event) and starts probing. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new MembershipClosedError('start() may be called once');
    const host = this.options.bindHost ?? '127.0.0.1';
    const port = await this.bind(host, this.options.bindPort ?? 8401);
    if (this.options.advertiseAddress === undefined && (host === '0.0.0.0' || host === '::')) {
      await this.closeSockets();
      throw new MembershipConfigError(
        'advertiseAddress is required when binding to all interfaces',
      );
    }
    this.advertised = this.options.advertiseAddress ?? formatAddress(host, port);
    this.coreInstance = new SwimCore({
      name: this.name,
      address: this.advertised,
      tags: this.options.tags ?? {},
      config: this.config,
      seed: randomInt(2 ** 31),
    });
    this.state = 'running';
    this.core.start(now());
    this.pump();
  }

  /**
   * Joins a cluster through seed addresses (host:port), retrying with backoff; resolves
   * to the number of seeds that answered, rejects with MembershipJoinError when none did.
   */
  join(addresses: readonly string[]): Promise<number> {
    this.assertRunning();
    return new Promise((resolve, reject) => {
      const id = this.core.join(addresses);
      this.joins.set(id, { resolve, reject });
      this.pump();
    });
  }

  /** Replaces this member's tags; gossiped to all, and a local update event. */
  setTags(tags: Tags): void {
    this.assertRunning();
    this.core.setTags(tags);
    this.pump();
  }

  /**
   * Leaves gracefully: announces it, waits until the announcement went out (at most
   * `timeoutMs`), then closes. Others see a leave event rather than a failure.
   */
  async leave(timeoutMs = 5000): Promise<void> {
    if (this.state !== 'running') return;
    this.core.leave(now());
    this.pump();
    if (!this.core.leaveSent()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.leaveWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.close();
  }

  /** Stops at once (others will see a failure unless leave() ran first). Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    for (const j of this.joins.values()) j.reject(new MembershipClosedError('membership closed'));
    this.joins.clear();
    for (const w of this.leaveWaiters) w();
    this.leaveWaiters = [];
    for (const s of this.subscribers) s.end();
    this.subscribers.clear();
    await this.closeSockets();
  }

  /** Every known member, this one included, with dead and left ones until forgotten. */
  members(): MemberView[] {
    return this.coreInstance?.memberViews() ?? [];
  }

  /** Members currently believed alive (or suspected but not yet failed). */
  liveMembers(): MemberView[] {
    return this.members().filter((m) => m.status === 'alive' || m.status === 'suspect');
  }

  localMember(): MemberView {
    return this.core.localMember();
  }

  stats(): MembershipStats {
    return { ...(this.coreInstance?.stats ?? emptyStats()), ...this.driverStats };
  }

  /** Events from now on, in order, until close(). Several iterators may run at once. */
  events(): AsyncIterableIterator<MemberEvent> {
    const queue = new EventQueue(() => this.subscribers.delete(queue));
    if (this.state === 'closed') queue.end();
    else this.subscribers.add(queue);
    return queue;
  }

  // ---- driving the core ----

  /** Sends what the core produced, delivers its events and re-arms the timer. */
  private pump(): void {
    if (this.state !== 'running') return;
    const out: Output = this.core.takeOutput();
    for (const p of out.packets) this.sendPacket(p.to, p.data);
    for (const s of out.streams) void this.runStream(s.id, s.to, s.data);
    for (const e of out.events) {
      for (const s of this.subscribers) s.push(e);
      this.emit('event', e);
    }
    for (const d of out.diagnostics) this.diagnose(d);
    for (const j of out.joins) {
      const pending = this.joins.get(j.id);
      this.joins.delete(j.id);
      if (!pending) continue;
      if (j.error === undefined) pending.resolve(j.contacted);
      else pending.reject(new MembershipJoinError(j.error));
    }
    if (this.leaveWaiters.length > 0 && this.core.leaveSent()) {
      for (const w of this.leaveWaiters) w();
      this.leaveWaiters = [];
    }
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, this.core.nextDeadline() - now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.state !== 'running') return;
      this.core.tick(now());
      this.pump();
    }, Math.ceil(delay));
  }

  /** Reports one dropped input or output to the diagnostic listener, if any. */
  private diagnose(d: MembershipDiagnostic): void {
    const listener = this.diagnosticListener;
    if (!listener) return;
    try {
      listener(d);
    } catch (err) {
      // A failing logger must not stop gossip; it hears about it once, then no more.
      this.diagnosticListener = undefined;
      try {
        listener({
          kind: 'diagnosticListenerFailed',
          message: 'the diagnostic listener threw; it is detached',
          error: err instanceof Error ? err : new Error(String(err)),
        });
      } catch {
        // Detached either way.
      }
    }
  }

  private sendPacket(to: string, data: Uint8Array): void {
    const udp = this.udp;
    if (!udp) return;
    let target;
    try {
      target = parseAddress(to);
    } catch (err) {
      this.driverStats.sendErrors++;
      this.diagnose({
        kind: 'sendError',
        peer: to,
        message: `cannot send to ${to}: not host:port`,
        error: err instanceof Error ? err : undefined,
      });
      return;
    }
    const payload = this.cipher ? this.cipher.seal(data) : data;
    udp.send(payload, target.port, target.host, (err) => {
      if (!err) return;
      this.driverStats.sendErrors++;
      this.diagnose({
        kind: 'sendError',
        peer: to,
        message: `send to ${to}: ${err.message}`,
        error: err,
      });
    });
  }

  private onPacket(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.state !== 'running') return;
    let plain: Uint8Array | undefined = msg;
    if (this.cipher) {
      plain = this.cipher.open(msg);
      if (!plain) {
        this.driverStats.decryptFailures++;
        const peer = formatAddress(rinfo.address, rinfo.port);
        this.diagnose({
          kind: 'decryptFailure',
          peer,
          message: `packet from ${peer} failed authentication (wrong key, tampered, or clear text)`,
        });
        return;
      }
    }
    this.core.handlePacket(formatAddress(rinfo.address, rinfo.port), plain, now());
    this.pump();
  }

  /** Client side of a state exchange; the outcome goes back into the core. */
  private async runStream(id: number, to: string, data: Uint8Array): Promise<void> {
    let reply: Uint8Array | undefined;
    try {
      const target = parseAddress(to);
      const socket = await this.connect(target.host, target.port);
      try {
        writeFrame(socket, this.cipher ? this.cipher.seal(data) : data);
        const frame = await readFrame(socket, this.maxFrameBytes(), this.config.streamTimeoutMs);
        reply = this.cipher ? this.cipher.open(frame) : frame;
        if (!reply) {
          this.driverStats.decryptFailures++;
          this.diagnose({
            kind: 'decryptFailure',
            peer: to,
            message: `state exchange reply from ${to} failed authentication`,
          });
        }
      } finally {
        socket.destroy();
      }
    } catch (err) {
      if (!(err instanceof MembershipStreamError || err instanceof MembershipAddressError))
        throw err;
      this.driverStats.streamFailures++;
      this.diagnose({
        kind: 'streamFailure',
        peer: to,
        message: `state exchange with ${to}: ${err.message}`,
        error: err,
      });
    }
    if (this.state !== 'running') return;
    if (reply) this.core.streamReply(id, reply, now());
    else this.core.streamFailed(id, now());
    this.pump();
  }

  /** Server side of a state exchange. */
  private async serveStream(socket: Socket): Promise<void> {
    try {
      const frame = await readFrame(socket, this.maxFrameBytes(), this.config.streamTimeoutMs);
      if (this.state !== 'running') return;
      const request = this.cipher ? this.cipher.open(frame) : frame;
      if (!request) {
        this.driverStats.decryptFailures++;
        this.diagnose({
          kind: 'decryptFailure',
          peer: peerOf(socket),
          message: `state exchange request from ${peerOf(socket)} failed authentication`,
        });
        return;
      }
      const reply = this.core.handleStreamRequest(request, now());
      this.pump();
      if (reply) writeFrame(socket, this.cipher ? this.cipher.seal(reply) : reply);
    } catch (err) {
      if (!(err instanceof MembershipStreamError)) throw err;
      this.driverStats.streamFailures++;
      this.diagnose({
        kind: 'streamFailure',
        peer: peerOf(socket),
        message: `serving a state exchange to ${peerOf(socket)}: ${err.message}`,
        error: err,
      });
    } finally {
      socket.end();
    }
  }

  private connect(host: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MembershipStreamError(`connect to ${host}:${port} timed out`));
      }, this.config.streamTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(socket);
      });
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(
          new MembershipStreamError(`connect to ${host}:${port}: ${err.message}`, { cause: err }),
        );
      };
      socket.once('error', onError);
    });
  }

  private maxFrameBytes(): number {
    return this.config.maxStreamBytes + (this.cipher ? SEAL_OVERHEAD : 0);
  }

  /** Binds TCP then UDP on the same port; with port 0, retries until both get one. */
  private async bind(host: string, port: number): Promise<number> {
    let lastError: unknown;
    for (let attempt = 0; attempt < (port === 0 ? 20 : 1); attempt++) {
      const tcp = createServer((socket) => {
        this.openSockets.add(socket);
        socket.once('close', () => this.openSockets.delete(socket));
        socket.on('error', (err) => {
          this.driverStats.streamFailures++;
          this.diagnose({
            kind: 'streamFailure',
            peer: peerOf(socket),
            message: `state exchange socket from ${peerOf(socket)}: ${err.message}`,
            error: err,
          });
        });
        void this.serveStream(socket);
      });
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ host, port }, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        throw new MembershipBindError(`cannot listen on TCP ${formatAddress(host, port)}`, {
          cause: err,
        });
      }
      const address = tcp.address();
      const bound = typeof address === 'object' && address ? address.port : port;
      const udp = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind({ address: host, port: bound }, () => {
            udp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        lastError = err;
        udp.close();
        await new Promise<void>((resolve) => tcp.close(() => resolve()));
        continue;
      }
      udp.on('message', (msg, rinfo) => this.onPacket(msg, rinfo));
      udp.on('error', () => this.driverStats.sendErrors++);
      this.udp = udp;
      this.tcp = tcp;
      return bound;
    }
    throw new MembershipBindError(`cannot bind UDP on ${formatAddress(host, port)}`, {
      cause: lastError,
    });
  }

  private async closeSockets(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    for (const s of this.openSockets) s.destroy();
    if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  private assertRunning(): void {
    if (this.state !== 'running') {
      throw new MembershipClosedError(
        `membership is ${this.state === 'new' ? 'not started' : 'closed'}`,
      );
    }
  }
}

/** Splits "host:port" or "[v6]:port". */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) {
    throw new MembershipAddressError(`address must be host:port, got ${JSON.stringify(address)}`);
  }
  return { host: m[1] as string, port };
}

export function formatAddress(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

const now = (): number => performance.now();

/** A buffered async iterator over events, ended by close(). */
class EventQueue implements AsyncIterableIterator<MemberEvent> {
  private readonly buffer: MemberEvent[] = [];
  private waiting: ((r: IteratorResult<MemberEvent>) => void) | undefined;
  private ended = false;

  constructor(private readonly onReturn: () => void) {}

  push(e: MemberEvent): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w({ value: e, done: false });
    } else {
      this.buffer.push(e);
    }
  }

  end(): void {
    this.ended = true;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<MemberEvent>> {
    const e = this.buffer.shift();
    if (e) return Promise.resolve({ value: e, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  return(): Promise<IteratorResult<MemberEvent>> {
    this.onReturn();
    this.end();
    this.buffer.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<MemberEvent> {
    return this;
  }
}

function peerOf(socket: Socket): string {
  return socket.remoteAddress !== undefined && socket.remotePort !== undefined
    ? formatAddress(socket.remoteAddress, socket.remotePort)
    : 'unknown peer';
}
