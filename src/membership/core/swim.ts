import { MembershipCodecError, MembershipNotStartedError } from './errors.js';
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import {
  assemblePacket,
  decodePacket,
  decodePushPull,
  encodeMessage,
  encodePushPull,
  PACKET_OVERHEAD,
  type AliveMessage,
  type DeadMessage,
  type MemberStatus,
  type PacketMessage,
  type PushPullMember,
  type SuspectMessage,
  type Tags,
} from './codec.js';
import {
  pushPullScale,
  retransmitLimit,
  suspicionTimeout,
  validateProtocolConfig,
  type ProtocolConfig,
} from './config.js';
import {
  incarnationNewer,
  incarnationOlder,
  latestIncarnation,
  nextIncarnation,
} from './incarnation.js';
import { Random } from './random.js';
import { Suspicion } from './suspicion.js';

/** What other members know of one member. */
export interface MemberInfo {
  readonly name: string;
  /** host:port of its gossip socket (UDP and TCP). */
  readonly address: string;
  readonly tags: Tags;
}

export interface MemberView extends MemberInfo {
  readonly status: MemberStatus;
  readonly incarnation: number;
}

export type MemberEventType = 'join' | 'update' | 'leave' | 'failed';

/** A change in the membership as this member sees it. */
export interface MemberEvent {
  readonly type: MemberEventType;
  readonly member: MemberInfo;
  /** True when the event is about this member itself. */
  readonly local: boolean;
}

/** A UDP packet to send. */
export interface OutgoingPacket {
  readonly to: string;
  readonly data: Uint8Array;
}

/**
 * A TCP state exchange to run: send `data`, read one reply, then report it with
 * streamReply(id, reply) or streamFailed(id).
 */
export interface StreamRequest {
  readonly id: number;
  readonly to: string;
  readonly data: Uint8Array;
}

/** The end of a join() started in the core. */
export interface JoinOutcome {
  readonly id: number;
  /** Seed addresses that answered the state exchange. */
  readonly contacted: number;
  /** Set when every attempt failed. */
  readonly error?: string;
}

export interface Output {
  packets: OutgoingPacket[];
  streams: StreamRequest[];
  events: MemberEvent[];
  joins: JoinOutcome[];
  /** Input the core dropped, explained (each is also counted in CoreStats). */
  diagnostics: CoreDiagnostic[];
}

export type CoreDiagnosticKind =
  'packetOversized' | 'packetMalformed' | 'streamMalformed' | 'pingMisdirected' | 'addressConflict';

/** Why the core dropped something it received. */
export interface CoreDiagnostic {
  readonly kind: CoreDiagnosticKind;
  /** The address it came from, when known. */
  readonly peer?: string;
  readonly message: string;
}

/** Counters of what this member received and sent. */
export interface CoreStats {
  packetsReceived: number;
  packetsSent: number;
  bytesReceived: number;
  bytesSent: number;
  /** Packets that did not parse; dropped. */
  packetsMalformed: number;
  /** Packets longer than maxPacketBytes; dropped. */
  packetsOversized: number;
  /** State exchanges (requests or replies) that did not parse; dropped. */
  streamsMalformed: number;
  /** Pings addressed to another member name (a stale address); ignored. */
  pingsMisdirected: number;
  /** Alive messages claiming a known name from another address; ignored. */
  addressConflicts: number;
  /** Times this member refuted a suspicion or death about itself. */
  refutations: number;
  /** Suspicions this member raised after a failed probe. */
  suspicionsRaised: number;
}

export function emptyStats(): CoreStats {
  return {
    packetsReceived: 0,
    packetsSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    packetsMalformed: 0,
    packetsOversized: 0,
    streamsMalformed: 0,
    pingsMisdirected: 0,
    addressConflicts: 0,
    refutations: 0,
    suspicionsRaised: 0,
  };
}

export interface CoreOptions {
  name: string;
  address: string;
  tags?: Tags;
  config: ProtocolConfig;
  /** Seeds the random choices (probe order, gossip targets). */
  seed: number;
}

interface MemberState {
  name: string;
  address: string;
  tags: Tags;
  incarnation: number;
  status: MemberStatus;
  /** When the status last changed, on the caller's clock. */
  changedAt: number;
}

interface Probe {
  seq: number;
  target: string;
  startedAt: number;
  /** When the direct ping is given up and indirect pings go out. */
  directDeadline: number;
  indirectSent: boolean;
  /** End of the probe round, stretched by local health. */
  deadline: number;
  expectedNacks: number;
  nacks: number;
}

/** A ping we send on behalf of a member that could not reach the target itself. */
interface Relay {
  requesterAddress: string;
  requesterSeq: number;
  wantNack: boolean;
  deadline: number;
}

interface JoinAttempt {
  addresses: string[];
  attempt: number;
  pending: Set<number>;
  contacted: number;
  /** When the next attempt starts, if one is due. */
  retryAt?: number;
}

type StreamPurpose = { kind: 'join'; joinId: number } | { kind: 'sync' } | { kind: 'reconnect' };

const MAX_MESSAGES_PER_PACKET = 255;

const sameTags = (a: Tags, b: Tags): boolean => {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
};

const infoOf = (m: MemberState): MemberInfo => ({
  name: m.name,
  address: m.address,
  tags: m.tags,
});

/**
 * The SWIM protocol of one member, with memberlist's Lifeguard refinements, as a pure
 * state machine. It never reads a clock and owns no socket: the caller passes `now`
 * (milliseconds on any monotonic clock) to every call, calls tick() at nextDeadline(),
 * and after each call sends what takeOutput() returns.
 */
export class SwimCore {
  readonly name: string;
  private readonly config: ProtocolConfig;
  private readonly random: Random;
  private readonly awareness: Awareness;
  private readonly broadcasts = new BroadcastQueue();
  private readonly members = new Map<string, MemberState>();
  /** Probe order: names shuffled at each wrap, new members inserted at random places. */
  private probeOrder: string[] = [];
  private probeIndex = 0;
  private probe: Probe | undefined;
  private readonly relays = new Map<number, Relay>();
  private readonly suspicions = new Map<string, Suspicion>();
  private readonly streams = new Map<number, StreamPurpose>();
  private readonly joins = new Map<number, JoinAttempt>();
  private seq = 0;
  private nextStreamId = 1;
  private nextJoinId = 1;
  private nextProbeAt = 0;
  private nextGossipAt = 0;
  private nextPushPullAt = 0;
  private nextReconnectAt = 0;
  private leaving = false;
  private leaveBroadcastId: number | undefined;
  private started = false;
  private output: Output = { packets: [], streams: [], events: [], joins: [], diagnostics: [] };
  readonly stats: CoreStats = emptyStats();
  private readonly initial: { address: string; tags: Tags };

  constructor(options: CoreOptions) {
    validateProtocolConfig(options.config);
    this.name = options.name;
    this.config = options.config;
    this.random = new Random(options.seed);
    this.awareness = new Awareness(options.config.awarenessMaxMultiplier);
    this.initial = { address: options.address, tags: { ...(options.tags ?? {}) } };
  }

  // ---- inputs ----

  /** Announces this member (a local join event) and starts the periodic work. */
  start(now: number): void {
    if (this.started) return;
    this.started = true;
    this.aliveNode(
      {
        type: 'alive',
        incarnation: 1,
        name: this.name,
        address: this.initial.address,
        tags: this.initial.tags,
      },
      now,
      true,
    );
    // Random offsets keep members that start together from acting in lockstep.
    this.nextProbeAt = now + this.random.int(this.config.probeIntervalMs);
    this.nextGossipAt = now + this.random.int(this.config.gossipIntervalMs);
    this.nextPushPullAt = now + this.randomStagger(this.config.pushPullIntervalMs);
    this.nextReconnectAt = now + this.randomStagger(this.config.reconnectIntervalMs);
  }

  /** Runs whatever timers are due at `now`. */
  tick(now: number): void {
    if (!this.started) return;
    this.tickProbe(now);
    for (const [seq, relay] of this.relays) {
      if (now < relay.deadline) continue;
      this.relays.delete(seq);
      if (relay.wantNack) {
        this.sendPacket(relay.requesterAddress, [{ type: 'nack', seq: relay.requesterSeq }]);
      }
    }
    for (const [name, suspicion] of this.suspicions) {
      if (now < suspicion.deadline) continue;
      const m = this.members.get(name);
      if (m?.status === 'suspect' && suspicion.takeLastChance()) {
        this.lastChanceProbe(m, suspicion, now);
        continue;
      }
      this.suspicions.delete(name);
      if (m?.status === 'suspect') {
        this.deadNode({ type: 'dead', incarnation: m.incarnation, name, from: this.name }, now);
      }
    }
    if (now >= this.nextGossipAt) {
      this.nextGossipAt = now + this.config.gossipIntervalMs;
      this.gossip(now);
    }
    if (this.config.pushPullIntervalMs > 0 && now >= this.nextPushPullAt) {
      this.nextPushPullAt = now + pushPullScale(this.config.pushPullIntervalMs, this.liveCount());
      const target = this.pickMembers(1, (m) => m.status === 'alive')[0];
      if (target) this.requestStream(target.address, { kind: 'sync' }, false);
    }
    if (now >= this.nextReconnectAt) {
      this.nextReconnectAt = now + this.config.reconnectIntervalMs;
      const target = this.pickMembers(1, (m) => m.status === 'dead')[0];
      if (target) this.requestStream(target.address, { kind: 'reconnect' }, false);
    }
    for (const [id, join] of this.joins) {
      if (join.retryAt !== undefined && now >= join.retryAt) this.attemptJoin(id, join);
    }
  }

  /** Handles one UDP packet from `from` (host:port). Bad packets are counted and dropped. */
  handlePacket(from: string, data: Uint8Array, now: number): void {
    if (!this.started) return;
    this.stats.packetsReceived++;
    this.stats.bytesReceived += data.length;
    if (data.length > this.config.maxPacketBytes) {
      this.stats.packetsOversized++;
      this.diagnose(
        'packetOversized',
        `${data.length} bytes > ${this.config.maxPacketBytes}`,
        from,
      );
      return;
    }
    let messages: PacketMessage[];
    try {
      messages = decodePacket(data);
    } catch (err) {
      if (!(err instanceof MembershipCodecError)) throw err;
      this.stats.packetsMalformed++;
      this.diagnose('packetMalformed', err.message, from);
      return;
    }
    for (const m of messages) this.handleMessage(from, m, now);
  }

  /**
   * Serves a state exchange started by another member: merges its state and returns
   * ours (after the merge, so that refutations are already in it), or undefined when
   * the request does not parse.
   */
  handleStreamRequest(data: Uint8Array, now: number): Uint8Array | undefined {
    if (!this.started) return undefined;
    let remote;
    try {
      remote = decodePushPull(data, this.config.maxStreamBytes);
    } catch (err) {
      if (!(err instanceof MembershipCodecError)) throw err;
      this.stats.streamsMalformed++;
      this.diagnose('streamMalformed', `state exchange request: ${err.message}`);
      return undefined;
    }
    this.mergeRemoteState(remote.members, now);
    return encodePushPull({ join: false, members: this.localState() });
  }

  /** The answer to a StreamRequest. */
  streamReply(id: number, data: Uint8Array, now: number): void {
    const purpose = this.streams.get(id);
    if (!purpose) return;
    this.streams.delete(id);
    let remote;
    try {
      remote = decodePushPull(data, this.config.maxStreamBytes);
    } catch (err) {
      if (!(err instanceof MembershipCodecError)) throw err;
      this.stats.streamsMalformed++;
      this.diagnose('streamMalformed', `state exchange reply: ${err.message}`);
      this.streamDone(id, purpose, false, now);
      return;
    }
    this.mergeRemoteState(remote.members, now);
    this.streamDone(id, purpose, true, now);
  }

  /** A StreamRequest that could not connect, timed out or broke. */
  streamFailed(id: number, now: number): void {
    const purpose = this.streams.get(id);
    if (!purpose) return;
    this.streams.delete(id);
    this.streamDone(id, purpose, false, now);
  }

  /**
   * Starts joining through seed addresses: a state exchange with each, repeated with
   * exponential backoff until one answers or joinMaxAttempts is spent. The outcome
   * comes out in Output.joins under the returned id.
   */
  join(addresses: readonly string[]): number {
    const id = this.nextJoinId++;
    const own = this.members.get(this.name)?.address;
    const join: JoinAttempt = {
      addresses: [...new Set(addresses)].filter((a) => a !== own),
      attempt: 0,
      pending: new Set(),
      contacted: 0,
    };
    this.joins.set(id, join);
    if (join.addresses.length === 0) {
      this.joins.delete(id);
      this.output.joins.push({ id, contacted: 0, error: 'no seed address other than our own' });
      return id;
    }
    this.attemptJoin(id, join);
    return id;
  }

  /** Changes this member's tags: a new incarnation, gossiped, and a local update event. */
  setTags(tags: Tags): void {
    const self = this.self();
    const next: AliveMessage = {
      type: 'alive',
      incarnation: nextIncarnation(self.incarnation),
      name: this.name,
      address: self.address,
      tags: { ...tags },
    };
    // Encoding first rejects oversized tags before anything changes.
    const encoded = encodeMessage(next);
    self.incarnation = next.incarnation;
    self.tags = next.tags;
    this.broadcasts.enqueue(this.name, encoded);
    this.emit('update', self);
  }

  /**
   * Leaves gracefully: gossips that this member left (a dead message from itself) and
   * emits the local leave event. Keep the member running until leaveSent() is true.
   */
  leave(now: number): void {
    if (this.leaving) return;
    this.leaving = true;
    const self = this.self();
    this.deadNode(
      { type: 'dead', incarnation: self.incarnation, name: this.name, from: this.name },
      now,
    );
  }

  // ---- outputs and queries ----

  takeOutput(): Output {
    const out = this.output;
    this.output = { packets: [], streams: [], events: [], joins: [], diagnostics: [] };
    return out;
  }

  /** The earliest time at which tick() has work to do. */
  nextDeadline(): number {
    let t = Math.min(this.nextGossipAt, this.nextReconnectAt);
    if (this.config.pushPullIntervalMs > 0) t = Math.min(t, this.nextPushPullAt);
    if (this.probe) {
      t = Math.min(t, this.probe.deadline);
      if (!this.probe.indirectSent) t = Math.min(t, this.probe.directDeadline);
    } else {
      t = Math.min(t, this.nextProbeAt);
    }
    for (const r of this.relays.values()) t = Math.min(t, r.deadline);
    for (const s of this.suspicions.values()) t = Math.min(t, s.deadline);
    for (const j of this.joins.values()) if (j.retryAt !== undefined) t = Math.min(t, j.retryAt);
    return t;
  }

  /** True once the leave announcement went out as often as gossip sends news (or nobody is left to tell). */
  leaveSent(): boolean {
    if (!this.leaving) return false;
    if (this.liveCount() === 0) return true;
    return this.leaveBroadcastId === undefined || !this.broadcasts.has(this.leaveBroadcastId);
  }

  /** Every member known, this one included, with dead and left ones until forgotten. */
  memberViews(): MemberView[] {
    return [...this.members.values()].map((m) => ({
      name: m.name,
      address: m.address,
      tags: m.tags,
      status: m.status,
      incarnation: m.incarnation,
    }));
  }

  localMember(): MemberView {
    const m = this.self();
    return { ...infoOf(m), status: m.status, incarnation: m.incarnation };
  }

  /** Local health score, 0 when healthy (Lifeguard). */
  healthScore(): number {
    return this.awareness.getScore();
  }

  pendingBroadcasts(): number {
    return this.broadcasts.size();
  }

  // ---- message handling ----

  private handleMessage(from: string, m: PacketMessage, now: number): void {
    switch (m.type) {
      case 'ping':
        if (m.target !== this.name) {
          this.stats.pingsMisdirected++;
          this.diagnose('pingMisdirected', `ping for ${m.target} reached ${this.name}`, from);
          return;
        }
        this.sendPacket(m.sourceAddress || from, [{ type: 'ack', seq: m.seq }]);
        return;
      case 'indirect-ping': {
        const seq = this.nextSeq();
        this.relays.set(seq, {
          requesterAddress: m.sourceAddress || from,
          requesterSeq: m.seq,
          wantNack: m.wantNack,
          deadline: now + this.config.probeTimeoutMs,
        });
        this.sendPacket(m.targetAddress, [
          {
            type: 'ping',
            seq,
            target: m.target,
            sourceName: this.name,
            sourceAddress: this.self().address,
          },
        ]);
        return;
      }
      case 'ack': {
        if (this.probe?.seq === m.seq) {
          this.awareness.applyDelta(-1);
          this.nextProbeAt = this.probe.startedAt + this.config.probeIntervalMs;
          this.probe = undefined;
          return;
        }
        const relay = this.relays.get(m.seq);
        if (relay) {
          this.relays.delete(m.seq);
          this.sendPacket(relay.requesterAddress, [{ type: 'ack', seq: relay.requesterSeq }]);
        }
        return;
      }
      case 'nack':
        if (this.probe?.seq === m.seq) this.probe.nacks++;
        return;
      case 'alive':
        this.aliveNode(m, now, false);
        return;
      case 'suspect':
        this.suspectNode(m, now);
        return;
      case 'dead':
        this.deadNode(m, now);
        return;
    }
  }

  private aliveNode(a: AliveMessage, now: number, bootstrap: boolean): void {
    const isLocal = a.name === this.name;
    let m = this.members.get(a.name);
    const isNew = m === undefined;
    if (m === undefined) {
      if (isLocal && !bootstrap) return;
      m = {
        name: a.name,
        address: a.address,
        tags: a.tags,
        incarnation: 0,
        status: 'dead',
        changedAt: now,
      };
      this.members.set(a.name, m);
      // A random place in the probe order keeps the time to first probe short on average.
      const at = this.random.int(this.probeOrder.length + 1);
      this.probeOrder.splice(at, 0, a.name);
    }
    let readdressed = false;
    if (m.address !== a.address) {
      const reclaimable =
        this.config.deadNodeReclaimMs > 0 && now - m.changedAt > this.config.deadNodeReclaimMs;
      if (m.status === 'left' || (m.status === 'dead' && reclaimable)) {
        readdressed = true;
      } else {
        this.stats.addressConflicts++;
        this.diagnose(
          'addressConflict',
          `${a.name} announced at ${a.address}, known at ${m.address} (${m.status})`,
          a.address,
        );
        return;
      }
    }
    if (!isNew && !incarnationNewer(a.incarnation, m.incarnation) && !isLocal && !readdressed)
      return;
    if (isLocal && incarnationOlder(a.incarnation, m.incarnation)) return;
    this.suspicions.delete(a.name);
    if (isLocal && !bootstrap) {
      if (a.incarnation === m.incarnation && sameTags(a.tags, m.tags)) return;
      // Someone gossips an older or different version of us: assert ours.
      this.refute(m, a.incarnation);
      return;
    }
    this.broadcasts.enqueue(a.name, encodeMessage(a));
    const oldStatus = m.status;
    const oldTags = m.tags;
    const oldAddress = m.address;
    m.incarnation = a.incarnation;
    m.tags = a.tags;
    m.address = a.address;
    if (m.status !== 'alive') {
      m.status = 'alive';
      m.changedAt = now;
    }
    if (isNew || oldStatus === 'dead' || oldStatus === 'left') this.emit('join', m);
    else if (!sameTags(oldTags, a.tags) || oldAddress !== a.address) this.emit('update', m);
  }

  private suspectNode(s: SuspectMessage, now: number): void {
    const m = this.members.get(s.name);
    if (!m) return;
    if (incarnationOlder(s.incarnation, m.incarnation)) {
      if (s.name === this.name) this.reassert(m);
      return;
    }
    const suspicion = this.suspicions.get(s.name);
    if (suspicion) {
      if (suspicion.confirm(s.from)) this.broadcasts.enqueue(s.name, encodeMessage(s));
      return;
    }
    if (m.status === 'left' && !this.broadcasts.hasNewsAbout(m.name)) {
      // The accuser missed the leave and would end up reporting a failure: tell it again.
      this.broadcasts.enqueue(
        m.name,
        encodeMessage({ type: 'dead', incarnation: m.incarnation, name: m.name, from: m.name }),
      );
      return;
    }
    if (m.status !== 'alive') return;
    if (s.name === this.name) {
      this.refute(m, s.incarnation);
      return;
    }
    this.broadcasts.enqueue(s.name, encodeMessage(s));
    m.incarnation = s.incarnation;
    m.status = 'suspect';
    m.changedAt = now;
    const n = this.liveCount();
    const k = n - 2 < this.config.suspicionMult - 2 ? 0 : this.config.suspicionMult - 2;
    const min = suspicionTimeout(this.config.suspicionMult, n, this.config.probeIntervalMs);
    const max = this.config.suspicionMaxTimeoutMult * min;
    this.suspicions.set(s.name, new Suspicion(s.from, k, min, max, now));
  }

  private deadNode(d: DeadMessage, now: number): void {
    const m = this.members.get(d.name);
    if (!m) return;
    if (incarnationOlder(d.incarnation, m.incarnation)) {
      if (d.name === this.name) this.reassert(m);
      return;
    }
    const isLeave = d.from === d.name;
    // A member first declared failed that then announces its leave is recorded as left,
    // so that everybody ends with the same verdict (as Serf does with leave intents).
    const failedThenLeft = m.status === 'dead' && isLeave;
    if ((m.status === 'dead' || m.status === 'left') && !failedThenLeft) return;
    if (!isLeave && d.name !== this.name && d.from !== this.name) {
      // Another member's verdict only confirms our own suspicion: our timer decides, and
      // the member keeps its chance to refute. Stale verdicts reach us from members that
      // were cut off when a partition heals; taken as final they would flap live members.
      this.suspectNode(
        { type: 'suspect', incarnation: d.incarnation, name: d.name, from: d.from },
        now,
      );
      return;
    }
    this.suspicions.delete(d.name);
    if (d.name === this.name && !this.leaving) {
      this.refute(m, d.incarnation);
      return;
    }
    const id = this.broadcasts.enqueue(d.name, encodeMessage(d));
    if (d.name === this.name) this.leaveBroadcastId = id;
    m.incarnation = d.incarnation;
    m.status = isLeave ? 'left' : 'dead';
    m.changedAt = now;
    this.emit(isLeave ? 'leave' : 'failed', m);
  }

  /** Answers an accusation about ourselves with a higher incarnation. */
  private refute(self: MemberState, accused: number): void {
    self.incarnation = nextIncarnation(latestIncarnation(self.incarnation, accused));
    this.stats.refutations++;
    // Being accused hints that we are the slow one (Lifeguard).
    this.awareness.applyDelta(1);
    this.broadcasts.enqueue(
      this.name,
      encodeMessage({
        type: 'alive',
        incarnation: self.incarnation,
        name: this.name,
        address: self.address,
        tags: self.tags,
      }),
    );
  }

  /**
   * Someone still spreads an accusation we already refuted: it missed the refutation,
   * so gossip our current incarnation again (once, while none is queued).
   */
  private reassert(self: MemberState): void {
    if (this.leaving || this.broadcasts.hasNewsAbout(this.name)) return;
    this.broadcasts.enqueue(
      this.name,
      encodeMessage({
        type: 'alive',
        incarnation: self.incarnation,
        name: this.name,
        address: self.address,
        tags: self.tags,
      }),
    );
  }

  /**
   * Before declaring a member dead, ping it once more with the accusation attached: a
   * live member that missed the accusation refutes in the ack, and one whose refutation
   * we missed sends it again. Costs one probe timeout per real failure.
   */
  private lastChanceProbe(m: MemberState, suspicion: Suspicion, now: number): void {
    suspicion.deadline = now + this.config.probeTimeoutMs;
    // The accusation goes first, so that the refutation it triggers rides on the ack.
    this.sendPacket(m.address, [
      { type: 'suspect', incarnation: m.incarnation, name: m.name, from: this.name },
      {
        type: 'ping',
        seq: this.nextSeq(),
        target: m.name,
        sourceName: this.name,
        sourceAddress: this.self().address,
      },
    ]);
  }

  private mergeRemoteState(remote: readonly PushPullMember[], now: number): void {
    for (const r of remote) {
      switch (r.status) {
        case 'alive':
          this.aliveNode(
            {
              type: 'alive',
              incarnation: r.incarnation,
              name: r.name,
              address: r.address,
              tags: r.tags,
            },
            now,
            false,
          );
          break;
        case 'left':
          this.deadNode(
            { type: 'dead', incarnation: r.incarnation, name: r.name, from: r.name },
            now,
          );
          break;
        case 'dead':
        case 'suspect':
          // A remote verdict of death is only a suspicion here: the member may still refute it.
          this.suspectNode(
            { type: 'suspect', incarnation: r.incarnation, name: r.name, from: this.name },
            now,
          );
          break;
      }
    }
  }

  // ---- periodic work ----

  private tickProbe(now: number): void {
    const probe = this.probe;
    if (probe) {
      if (!probe.indirectSent && now >= probe.directDeadline) this.sendIndirectPings(probe);
      if (now >= probe.deadline) this.probeFailed(probe, now);
      return;
    }
    if (now >= this.nextProbeAt) this.startProbe(now);
  }

  private startProbe(now: number): void {
    const target = this.nextProbeTarget(now);
    if (!target) {
      this.nextProbeAt = now + this.config.probeIntervalMs;
      return;
    }
    const seq = this.nextSeq();
    const messages: PacketMessage[] = [];
    if (target.status === 'suspect') {
      // Tell a suspect directly, so that it can refute even if gossip misses it; first,
      // so that the refutation rides on the ack.
      messages.push({
        type: 'suspect',
        incarnation: target.incarnation,
        name: target.name,
        from: this.name,
      });
    }
    messages.push({
      type: 'ping',
      seq,
      target: target.name,
      sourceName: this.name,
      sourceAddress: this.self().address,
    });
    this.probe = {
      seq,
      target: target.name,
      startedAt: now,
      directDeadline: now + this.config.probeTimeoutMs,
      indirectSent: false,
      deadline: now + this.awareness.scaleTimeout(this.config.probeIntervalMs),
      expectedNacks: 0,
      nacks: 0,
    };
    this.sendPacket(target.address, messages);
  }

  private sendIndirectPings(probe: Probe): void {
    probe.indirectSent = true;
    const target = this.members.get(probe.target);
    if (!target) return;
    const helpers = this.pickMembers(
      this.config.indirectChecks,
      (m) => m.status === 'alive' && m.name !== probe.target,
    );
    probe.expectedNacks = helpers.length;
    for (const h of helpers) {
      this.sendPacket(h.address, [
        {
          type: 'indirect-ping',
          seq: probe.seq,
          target: target.name,
          targetAddress: target.address,
          wantNack: true,
          sourceName: this.name,
          sourceAddress: this.self().address,
        },
      ]);
    }
  }

  private probeFailed(probe: Probe, now: number): void {
    this.probe = undefined;
    this.nextProbeAt = Math.max(probe.startedAt + this.config.probeIntervalMs, now);
    // Helpers that did not even nack point at our own network rather than the target's.
    const missedNacks = Math.max(0, probe.expectedNacks - probe.nacks);
    this.awareness.applyDelta(probe.expectedNacks > 0 ? missedNacks : 1);
    const target = this.members.get(probe.target);
    if (!target || (target.status !== 'alive' && target.status !== 'suspect')) return;
    this.stats.suspicionsRaised++;
    this.suspectNode(
      { type: 'suspect', incarnation: target.incarnation, name: target.name, from: this.name },
      now,
    );
  }

  private nextProbeTarget(now: number): MemberState | undefined {
    for (let checked = 0; checked <= this.probeOrder.length; checked++) {
      if (this.probeIndex >= this.probeOrder.length) {
        this.resetProbeOrder(now);
        if (this.probeOrder.length === 0) return undefined;
      }
      const name = this.probeOrder[this.probeIndex++];
      const m = name === undefined ? undefined : this.members.get(name);
      if (m && m.name !== this.name && (m.status === 'alive' || m.status === 'suspect')) return m;
    }
    return undefined;
  }

  /** At each wrap of the probe order: forget long-dead members and reshuffle. */
  private resetProbeOrder(now: number): void {
    this.probeIndex = 0;
    for (const m of [...this.members.values()]) {
      const age = now - m.changedAt;
      if (
        (m.status === 'dead' && age > this.config.reconnectTimeoutMs) ||
        (m.status === 'left' && age > this.config.tombstoneTimeoutMs)
      ) {
        this.members.delete(m.name);
      }
    }
    this.probeOrder = this.random.shuffle([...this.members.keys()]);
  }

  private gossip(now: number): void {
    const targets = this.pickMembers(this.config.gossipNodes, (m) => {
      if (m.status === 'alive' || m.status === 'suspect') return true;
      return m.status === 'dead' && now - m.changedAt <= this.config.gossipToTheDeadMs;
    });
    for (const t of targets) {
      const news = this.takeBroadcasts(this.config.maxPacketBytes - PACKET_OVERHEAD, 0);
      if (news.length === 0) return;
      this.emitPacket(t.address, assemblePacket(news));
    }
  }

  // ---- helpers ----

  private sendPacket(to: string, messages: PacketMessage[]): void {
    const encoded = messages.map(encodeMessage);
    const used = encoded.reduce((n, e) => n + e.length, PACKET_OVERHEAD);
    const news = this.takeBroadcasts(this.config.maxPacketBytes - used, encoded.length);
    this.emitPacket(to, assemblePacket([...encoded, ...news]));
  }

  private takeBroadcasts(budget: number, alreadyInPacket: number): Uint8Array[] {
    const limit = retransmitLimit(this.config.retransmitMult, this.liveCount());
    return this.broadcasts.take(0, budget, limit, MAX_MESSAGES_PER_PACKET - alreadyInPacket);
  }

  private emitPacket(to: string, data: Uint8Array): void {
    this.stats.packetsSent++;
    this.stats.bytesSent += data.length;
    this.output.packets.push({ to, data });
  }

  private requestStream(to: string, purpose: StreamPurpose, join: boolean): number {
    const id = this.nextStreamId++;
    this.streams.set(id, purpose);
    this.output.streams.push({
      id,
      to,
      data: encodePushPull({ join, members: this.localState() }),
    });
    return id;
  }

  private attemptJoin(id: number, join: JoinAttempt): void {
    join.retryAt = undefined;
    join.attempt++;
    for (const address of join.addresses) {
      join.pending.add(this.requestStream(address, { kind: 'join', joinId: id }, true));
    }
  }

  private streamDone(streamId: number, purpose: StreamPurpose, ok: boolean, now: number): void {
    if (purpose.kind !== 'join') return;
    const join = this.joins.get(purpose.joinId);
    if (!join) return;
    join.pending.delete(streamId);
    if (ok) join.contacted++;
    if (join.pending.size > 0) return;
    if (join.contacted > 0) {
      this.joins.delete(purpose.joinId);
      this.output.joins.push({ id: purpose.joinId, contacted: join.contacted });
      return;
    }
    if (join.attempt >= this.config.joinMaxAttempts) {
      this.joins.delete(purpose.joinId);
      this.output.joins.push({
        id: purpose.joinId,
        contacted: 0,
        error: `no seed answered after ${join.attempt} attempts`,
      });
      return;
    }
    const backoff = Math.min(
      this.config.joinBackoffMs * 2 ** (join.attempt - 1),
      this.config.joinMaxBackoffMs,
    );
    join.retryAt = now + backoff;
  }

  private localState(): PushPullMember[] {
    return [...this.members.values()].map((m) => ({
      name: m.name,
      address: m.address,
      tags: m.tags,
      incarnation: m.incarnation,
      status: m.status,
    }));
  }

  /** Up to k random members other than this one that pass `filter`. */
  private pickMembers(k: number, filter: (m: MemberState) => boolean): MemberState[] {
    const candidates: MemberState[] = [];
    for (const m of this.members.values())
      if (m.name !== this.name && filter(m)) candidates.push(m);
    return this.random.pick(candidates, k);
  }

  /** Members believed to be running (alive or suspect), this one included. */
  private liveCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.status === 'alive' || m.status === 'suspect') n++;
    return n;
  }

  private randomStagger(interval: number): number {
    return interval > 0 ? this.random.int(interval) : 0;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  private self(): MemberState {
    const m = this.members.get(this.name);
    if (!m) throw new MembershipNotStartedError('the membership core is used before start()');
    return m;
  }

  private diagnose(kind: CoreDiagnosticKind, message: string, peer?: string): void {
    this.output.diagnostics.push(peer === undefined ? { kind, message } : { kind, message, peer });
  }

  private emit(type: MemberEventType, m: MemberState): void {
    this.output.events.push({ type, member: infoOf(m), local: m.name === this.name });
  }
}
