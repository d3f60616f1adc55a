import type { Tags } from '../core/codec.js';
import type { ProtocolConfig } from '../core/config.js';
import { SwimCore, type MemberEvent } from '../core/swim.js';
import { SimClock, SimNetwork, type NetworkOptions } from './sim-network.js';

export interface RecordedEvent {
  at: number;
  event: MemberEvent;
}

/** One simulated member: a core, its address, and what it reported. */
export interface SimMember {
  readonly name: string;
  readonly address: string;
  readonly core: SwimCore;
  /** 'running' until it crashes or finishes leaving. */
  state: 'running' | 'crashed' | 'stopped';
  leaving: boolean;
  readonly events: RecordedEvent[];
  /** Last event type per member name, as this member reported it. */
  readonly lastEvent: Map<string, MemberEvent['type']>;
  joinOutcomes: { at: number; contacted: number; error?: string }[];
  tickGeneration: number;
  /** How many ticks ran at the current instant (guards against a stuck deadline). */
  ticksAtNow: number;
  lastTickAt: number;
  streamBytes: number;
}

/** What counts as a wrong event: a broken sequence or a verdict about a healthy member. */
export interface Violation {
  at: number;
  text: string;
}

const VALID_NEXT: Record<string, readonly MemberEvent['type'][]> = {
  none: ['join'],
  join: ['update', 'leave', 'failed'],
  update: ['update', 'leave', 'failed'],
  failed: ['join', 'leave'],
  leave: ['join'],
};

/** A `failed` event about a running member that the observer could reach. */
export interface FalseFailure {
  readonly observer: string;
  readonly subject: string;
  readonly at: number;
  /** Observer and subject were on different sides of the last partition. */
  readonly acrossCut: boolean;
  /** Time since the heal; undefined when the partition still held. */
  readonly sinceHeal: number | undefined;
}

/**
 * A cluster of SwimCores on a SimNetwork, on simulated time. It delivers packets and
 * state exchanges, runs each core's timers at its deadline, records every event and
 * checks the event invariants as they happen.
 */
export class SimCluster {
  readonly clock = new SimClock();
  readonly network: SimNetwork;
  readonly members = new Map<string, SimMember>();
  private readonly byAddress = new Map<string, SimMember>();
  readonly violations: Violation[] = [];
  /** `failed` events about a member that was running and reachable from the observer. */
  falsePositives = 0;
  /**
   * The same, once a partition was made: at the heal, verdicts that the cut-off side
   * reached during the cut reach the rest and are refuted only afterwards.
   */
  falsePositivesAfterPartition = 0;
  /** Every false `failed` event after a partition was made, for the budget checks. */
  readonly falseFailuresAfterPartition: FalseFailure[] = [];
  private partitioned = false;
  /** Members on the cut-off side of the last partition. */
  private cutOff = new Set<string>();
  /** When the last partition healed (undefined while it holds or before any). */
  healedAt: number | undefined;
  /** Highest incarnation held by earlier processes of a restarted member. */
  private readonly retiredIncarnations = new Map<string, number>();

  constructor(
    private readonly seed: number,
    private readonly config: ProtocolConfig,
    network: NetworkOptions,
  ) {
    this.network = new SimNetwork(this.clock, seed, network);
  }

  get now(): number {
    return this.clock.now;
  }

  /**
   * Adds a member, or restarts one that crashed or left: a fresh process with the same
   * name and address, starting again at incarnation 1.
   */
  add(name: string, tags: Tags = {}): SimMember {
    const previous = this.members.get(name);
    if (previous) {
      if (previous.state === 'running') throw new Error(`${name} is still running`);
      // Others may rightly hold the old process's higher incarnation until it refutes.
      const old = previous.core.localMember().incarnation;
      this.retiredIncarnations.set(name, Math.max(old, this.retiredIncarnations.get(name) ?? 0));
    }
    const address = `${name}:8401`;
    const core = new SwimCore({
      name,
      address,
      tags,
      config: this.config,
      seed: (this.seed * 7919 + this.members.size * 104729 + (previous ? 31 : 0)) >>> 0,
    });
    const m: SimMember = {
      name,
      address,
      core,
      state: 'running',
      leaving: false,
      events: [],
      lastEvent: new Map(),
      joinOutcomes: [],
      tickGeneration: 0,
      ticksAtNow: 0,
      lastTickAt: -1,
      streamBytes: 0,
    };
    this.members.set(name, m);
    this.byAddress.set(address, m);
    core.start(this.now);
    this.drain(m);
    return m;
  }

  join(name: string, seeds: readonly string[]): void {
    const m = this.get(name);
    m.core.join(seeds.map((s) => this.get(s).address));
    this.drain(m);
  }

  setTags(name: string, tags: Tags): void {
    const m = this.get(name);
    m.core.setTags(tags);
    this.drain(m);
  }

  crash(name: string): void {
    this.get(name).state = 'crashed';
  }

  /** Starts a graceful leave; the member stops once its announcement is out. */
  leave(name: string): void {
    const m = this.get(name);
    m.leaving = true;
    m.core.leave(this.now);
    this.drain(m);
  }

  isolate(names: readonly string[]): void {
    this.partitioned = true;
    this.cutOff = new Set(names);
    this.healedAt = undefined;
    this.network.isolate(names.map((n) => this.get(n).address));
  }

  heal(): void {
    this.healedAt = this.now;
    this.network.heal();
  }

  running(): SimMember[] {
    return [...this.members.values()].filter((m) => m.state === 'running');
  }

  /** Runs until `done()` holds or `maxMs` of simulated time pass; returns the time it held. */
  runUntil(done: () => boolean, maxMs: number): number | undefined {
    const deadline = this.now + maxMs;
    const checkEvery = 100;
    for (let t = this.now; t < deadline;) {
      t = Math.min(deadline, t + checkEvery);
      this.clock.runUntil(t);
      if (done()) return this.now;
    }
    return undefined;
  }

  runFor(ms: number): void {
    this.clock.runUntil(this.now + ms);
  }

  get(name: string): SimMember {
    const m = this.members.get(name);
    if (!m) throw new Error(`no simulated member ${name}`);
    return m;
  }

  /** Sends out what a core produced and re-arms its timer. */
  private drain(m: SimMember): void {
    if (m.state !== 'running') return;
    const out = m.core.takeOutput();
    for (const p of out.packets) {
      this.network.sendPacket(m.address, p.to, () => {
        const to = this.byAddress.get(p.to);
        if (!to || to.state !== 'running') return;
        to.core.handlePacket(m.address, p.data, this.now);
        this.drain(to);
      });
    }
    for (const s of out.streams) this.runStream(m, s.id, s.to, s.data);
    for (const e of out.events) this.record(m, e);
    for (const j of out.joins) m.joinOutcomes.push({ at: this.now, ...j });
    if (m.leaving && m.core.leaveSent()) {
      m.state = 'stopped';
      return;
    }
    this.armTimer(m);
  }

  private armTimer(m: SimMember): void {
    const generation = ++m.tickGeneration;
    this.clock.schedule(m.core.nextDeadline(), () => {
      if (m.tickGeneration !== generation || m.state !== 'running') return;
      if (m.lastTickAt === this.now) {
        if (++m.ticksAtNow > 100) {
          this.violate(`${m.name}: timer deadline does not advance`);
          m.state = 'crashed';
          return;
        }
      } else {
        m.lastTickAt = this.now;
        m.ticksAtNow = 0;
      }
      m.core.tick(this.now);
      this.drain(m);
    });
  }

  /** A TCP state exchange: refused at once by a dead host, timed out across a cut. */
  private runStream(from: SimMember, id: number, to: string, data: Uint8Array): void {
    const net = this.network;
    const fail = (after: number): void =>
      this.clock.schedule(this.now + after, () => {
        if (from.state !== 'running') return;
        from.core.streamFailed(id, this.now);
        this.drain(from);
      });
    const target = this.byAddress.get(to);
    const timeout = this.config.streamTimeoutMs;
    if (!net.canTalk(from.address, to)) return fail(timeout);
    if (!target || target.state !== 'running') return fail(2 * net.delay());
    from.streamBytes += data.length;
    this.clock.schedule(this.now + net.delay(), () => {
      if (!net.canTalk(from.address, to)) return fail(timeout);
      if (target.state !== 'running') return fail(net.delay());
      const reply = target.core.handleStreamRequest(data, this.now);
      this.drain(target);
      if (!reply) return fail(net.delay());
      target.streamBytes += reply.length;
      this.clock.schedule(this.now + net.delay(), () => {
        if (from.state !== 'running') return;
        if (!net.canTalk(from.address, to)) {
          from.core.streamFailed(id, this.now);
        } else {
          from.core.streamReply(id, reply, this.now);
        }
        this.drain(from);
      });
    });
  }

  private record(observer: SimMember, event: MemberEvent): void {
    observer.events.push({ at: this.now, event });
    const name = event.member.name;
    const previous = observer.lastEvent.get(name) ?? 'none';
    if (!VALID_NEXT[previous]?.includes(event.type)) {
      this.violate(`${observer.name}: ${event.type} of ${name} after ${previous}`);
    }
    observer.lastEvent.set(name, event.type);
    if (event.local !== (name === observer.name)) {
      this.violate(`${observer.name}: event about ${name} has local=${event.local}`);
    }
    if (event.local && event.type === 'failed') {
      this.violate(`${observer.name}: declared itself failed`);
    }
    if (event.local && event.type === 'leave' && !observer.leaving) {
      this.violate(`${observer.name}: left without being asked to`);
    }
    if (event.type === 'failed') {
      const subject = this.members.get(name);
      if (
        subject?.state === 'running' &&
        !subject.leaving &&
        this.network.canTalk(observer.address, subject.address)
      ) {
        if (this.partitioned) {
          this.falsePositivesAfterPartition++;
          this.falseFailuresAfterPartition.push({
            observer: observer.name,
            subject: name,
            at: this.now,
            acrossCut: this.cutOff.has(observer.name) !== this.cutOff.has(name),
            sinceHeal: this.healedAt === undefined ? undefined : this.now - this.healedAt,
          });
        } else this.falsePositives++;
      }
    }
  }

  /**
   * State invariants, checked periodically: nobody believes an incarnation of a member
   * higher than the member itself holds, and a running member never sees itself as
   * anything but alive (or left, after leaving).
   */
  checkState(): void {
    const own = new Map(this.retiredIncarnations);
    for (const m of this.members.values()) {
      own.set(m.name, Math.max(own.get(m.name) ?? 0, m.core.localMember().incarnation));
    }
    for (const m of this.running()) {
      for (const v of m.core.memberViews()) {
        const truth = own.get(v.name);
        if (truth !== undefined && v.incarnation > truth) {
          this.violate(
            `${m.name}: holds incarnation ${v.incarnation} of ${v.name}, which is at ${truth}`,
          );
        }
      }
      const self = m.core.localMember();
      const expected = m.leaving ? 'left' : 'alive';
      if (self.status !== expected) {
        this.violate(`${m.name}: sees itself ${self.status}, expected ${expected}`);
      }
    }
  }

  violate(text: string): void {
    this.violations.push({ at: this.now, text });
  }
}
