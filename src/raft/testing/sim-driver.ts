// Deterministic simulation of the real driver: RaftNode instances (not bare cores) on
// simulated time, with storage ports whose writes take time and become durable only
// when they complete, a crash that can strike between any two storage calls (or during
// one: an append in flight is lost or torn, other writes are lost or done; a hard state
// saved without sync reaches the disk or not), snapshots streamed in chunks over a lossy
// network, one-way partitions and paused nodes.
//
// Every step resolves at most one simulated event, then lets the nodes' promise chains
// run to quiescence, so a seed replays identically. RaftNode's loop yields to the event
// loop (setImmediate) every 64 turns and whenever performance.now() moved 10 ms: while
// a simulation runs, performance.now() reads simulated time, so those yields fall on
// the same turns in every replay, and each step drains two rounds of immediates.
//
// Leaders send before their own fsync (leaderSendsBeforeSync) on even seeds.
//
// Invariants, beyond those of the core simulation: one vote per node per term across
// restarts; no message leaves a node before the state it depends on is durable; at most
// one uncommitted configuration entry in a leader's log; a node that is not a voter of
// its own configuration never leads; and after the faults stop, a leader and a committed
// write within a bound.
import {
  NONE,
  decodeConfState,
  type ConfState,
  type Entry,
  type HardState,
  type NodeId,
  type RaftConfig,
  type SnapshotMeta,
} from '../core/index.js';
import type { WireMessage } from '../node/messages.js';
import type {
  HardStateStorage,
  LogStorage,
  SnapshotPort,
  SnapshotSink,
  StoredLog,
  Transport,
} from '../node/ports.js';
import { RaftNode } from '../node/raft-node.js';
import { Rng } from './rng.js';

export interface DriverSimOptions {
  readonly seed: number;
  /** Simulated milliseconds with faults; then a fault-free phase checks liveness. */
  readonly durationMs: number;
  /** Bound on the liveness phase, in simulated milliseconds. */
  readonly livenessMs?: number;
  readonly raft?: Partial<RaftConfig>;
  /**
   * Leaders send their appends before their own writes are durable (RaftNode's
   * leaderSendsBeforeSync). Default: on for even seeds, off for odd ones.
   */
  readonly leaderSendsBeforeSync?: boolean;
  /**
   * A disk that acknowledges writes before they are durable (proves that the check
   * "nothing is sent before it is durable" can fail).
   */
  readonly lyingDisk?: boolean;
}

export interface DriverSimResult {
  readonly seed: number;
  readonly violation?: string;
  readonly trace: readonly string[];
  readonly stats: DriverSimStats;
}

export interface DriverSimStats {
  acked: number;
  crashes: number;
  tornWrites: number;
  /** Unsynced hard-state writes (commit-only) that a crash lost. */
  lostUnsyncedWrites: number;
  snapshotsInstalled: number;
  /** Restarts that found the log's snapshot install done and the state machine's not. */
  resumedInstalls: number;
  confChanges: number;
  reads: number;
  messages: number;
  elections: number;
}

export class DriverSimViolation extends Error {
  override readonly name = 'DriverSimViolation';
}

/** Two simulations cannot share the process: both would own performance.now(). */
export class DriverSimBusyError extends Error {
  override readonly name = 'DriverSimBusyError';
}

const TICK_MS = 10;
const MAX_NODES = 6;
const NO_SNAPSHOT: SnapshotMeta = {
  lastIndex: 0,
  lastTerm: 0,
  config: { voters: [], learners: [], addresses: {} },
};

/** What survives a crash. */
interface Disk {
  hard: HardState | undefined;
  snap: SnapshotMeta;
  /** Entries snap.lastIndex+1 .. */
  entries: Entry[];
  /** The state machine's durable state: key of entry i at [i - 1]. */
  smState: string[];
  /** Received snapshots, by last index, durable once the sink finished, until installed. */
  staged: Map<number, string[]>;
}

interface SimNode {
  readonly id: NodeId;
  node: RaftNode | undefined;
  /** Incremented at every crash: ports of an older process do nothing, for ever. */
  generation: number;
  disk: Disk;
  /** Applied state of the running process. */
  sm: string[];
  /** Bytes per snapshot chunk this node's port reads. */
  readonly chunkSize: number;
  /** A storage write in flight: what a crash now does to it. */
  inFlight: { tear: () => void } | undefined;
  /** A hard state saved without sync: in the page cache, kept or lost by a crash. */
  unsyncedHard: HardState | undefined;
  handler: ((m: WireMessage) => void) | undefined;
  paused: boolean;
  starting: boolean;
  /** Votes this node granted, by term (across restarts). */
  readonly grants: Map<number, NodeId>;
}

interface Event {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

let clockOwner: DriverSimulation | undefined;

export async function runDriverSimulation(opts: DriverSimOptions): Promise<DriverSimResult> {
  if (clockOwner) throw new DriverSimBusyError('another driver simulation is running');
  const sim = new DriverSimulation(opts);
  clockOwner = sim;
  // The driver decides when to yield by performance.now(): simulated time keeps that
  // decision, and so the interleaving of the nodes, the same in every replay.
  Object.defineProperty(performance, 'now', {
    value: () => sim.clock,
    configurable: true,
    writable: true,
  });
  try {
    await sim.run();
    return { seed: opts.seed, trace: [], stats: sim.stats };
  } catch (err) {
    const violation =
      err instanceof DriverSimViolation
        ? err.message
        : err instanceof Error
          ? `${err.name}: ${err.message}`
          : String(err);
    return { seed: opts.seed, violation, trace: sim.trace(), stats: sim.stats };
  } finally {
    await sim.stopAll();
    delete (performance as { now?: unknown }).now;
    clockOwner = undefined;
  }
}

const immediate = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Lets every promise chain run. A node's loop that yields during a step schedules its
 * immediate after ours; the second round runs after it, and a loop yields at most once
 * more before it waits on a simulated write.
 */
async function settle(): Promise<void> {
  await immediate();
  await immediate();
}

class DriverSimulation {
  readonly stats: DriverSimStats = {
    acked: 0,
    crashes: 0,
    tornWrites: 0,
    lostUnsyncedWrites: 0,
    snapshotsInstalled: 0,
    resumedInstalls: 0,
    confChanges: 0,
    reads: 0,
    messages: 0,
    elections: 0,
  };
  private readonly rng: Rng;
  private readonly nodes = new Map<NodeId, SimNode>();
  private queue: Event[] = [];
  private seq = 0;
  private now = 0;
  private faults = true;
  private readonly raft: Partial<RaftConfig>;
  private nextNode: number;
  private nextPayload = 1;
  /** One-way cuts "a>b", and drop/dup rates. */
  private cuts = new Set<string>();
  /** Delivery time of the last message on each link (links are FIFO). */
  private readonly linkClock = new Map<string, number>();
  private dropRate: number;
  private readonly dupRate: number;
  private readonly maxNetDelay: number;
  private readonly maxDiskDelay: number;
  private readonly leaders = new Map<number, NodeId>();
  private readonly logRegistry = new Map<string, string>();
  private readonly applied: string[] = [];
  private readonly acked = new Map<number, string>();
  private maxAcked = 0;
  private readonly events: string[] = [];
  private failure: Error | undefined;

  constructor(private readonly opts: DriverSimOptions) {
    this.rng = new Rng(opts.seed);
    this.raft = {
      electionTicks: 10,
      heartbeatTicks: 1,
      maxInflightMsgs: 1 + this.rng.int(4),
      maxMsgBytes: 64 + this.rng.int(400),
      retainEntries: this.rng.int(8),
      snapshotTimeoutTicks: 30,
      ...opts.raft,
    };
    this.dropRate = this.rng.next() * 0.08;
    this.dupRate = this.rng.next() * 0.04;
    this.maxNetDelay = 1 + this.rng.int(6);
    this.maxDiskDelay = this.rng.int(4);
    const n = this.rng.chance(0.5) ? 3 : 5;
    const ids = Array.from({ length: n }, (_, k) => `n${k + 1}`);
    this.nextNode = n + 1;
    this.bootstrapConf = { voters: ids, learners: [], addresses: {} };
    for (const id of ids) this.addNode(id);
  }

  private readonly bootstrapConf: ConfState;

  /** Simulated milliseconds: what performance.now() reads during the run. */
  get clock(): number {
    return this.now;
  }

  trace(): string[] {
    return this.events.slice(-40);
  }

  async run(): Promise<void> {
    // Not awaited: the first start writes the bootstrap configuration, a simulated write.
    for (const n of this.nodes.values()) void this.start(n);
    this.schedule(0, () => this.tickAll());
    this.schedule(0, () => this.chaos());
    await this.runUntil(this.opts.durationMs, () => false);
    this.faults = false;
    this.cuts.clear();
    this.dropRate = 0;
    for (const n of this.nodes.values()) n.paused = false;
    // Not awaited: a restart may finish a snapshot install, a write the queue runs.
    for (const n of this.nodes.values()) if (!n.node && !n.starting) void this.start(n);
    this.event('faults stop');
    await this.checkLiveness(this.opts.livenessMs ?? 20_000);
  }

  async stopAll(): Promise<void> {
    for (const n of this.nodes.values()) {
      n.generation++;
      const node = n.node;
      n.node = undefined;
      // close() waits for the loop, which may wait on a write that never completes.
      if (node) void node.close().catch(() => undefined);
    }
    this.queue = [];
  }

  // ---- scheduling -----------------------------------------------------------------

  private schedule(delay: number, run: () => void): void {
    const e: Event = { at: this.now + delay, seq: this.seq++, run };
    // Binary insertion keeps the queue ordered by (at, seq).
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const q = this.queue[mid]!;
      if (q.at < e.at || (q.at === e.at && q.seq < e.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, e);
  }

  private async runUntil(endMs: number, done: () => boolean): Promise<boolean> {
    while (this.queue.length > 0 && this.queue[0]!.at <= endMs) {
      const e = this.queue.shift()!;
      this.now = e.at;
      e.run();
      await settle();
      if (this.failure) throw this.failure;
      if (done()) return true;
    }
    this.now = endMs;
    return done();
  }

  private violate(text: string): void {
    this.failure ??= new DriverSimViolation(`[${this.now} ms] ${text}`);
  }

  private event(text: string): void {
    this.events.push(`[${this.now}] ${text}`);
    if (this.events.length > 400) this.events.splice(0, 200);
  }

  // ---- nodes ----------------------------------------------------------------------

  private addNode(id: NodeId): SimNode {
    const n: SimNode = {
      id,
      node: undefined,
      generation: 0,
      disk: { hard: undefined, snap: NO_SNAPSHOT, entries: [], smState: [], staged: new Map() },
      sm: [],
      chunkSize: 8 + this.rng.int(120),
      inFlight: undefined,
      unsyncedHard: undefined,
      handler: undefined,
      paused: false,
      starting: false,
      grants: new Map(),
    };
    this.nodes.set(id, n);
    return n;
  }

  private async start(n: SimNode): Promise<void> {
    // Founding members start with the bootstrap configuration every time (as a real
    // deployment passes the same flag); it applies only while their storage is empty.
    const bootstrap = this.bootstrapConf.voters.includes(n.id) ? this.bootstrapConf : undefined;
    n.starting = true;
    n.sm = n.disk.smState.slice();
    const gen = n.generation;
    const resumes = n.disk.smState.length < n.disk.snap.lastIndex;
    try {
      const node = await RaftNode.start({
        id: n.id,
        logStorage: this.logStorage(n, gen),
        hardStateStorage: this.hardStorage(n, gen),
        snapshots: this.snapshotPort(n, gen),
        transport: this.transport(n, gen),
        apply: (entries) => this.apply(n, gen, entries),
        applied: n.disk.smState.length,
        bootstrap,
        tickMs: 0,
        leaderSendsBeforeSync: this.opts.leaderSendsBeforeSync ?? this.opts.seed % 2 === 0,
        raft: { ...this.raft, seed: this.opts.seed + this.now },
      });
      if (gen !== n.generation) {
        void node.close().catch(() => undefined);
        return;
      }
      n.node = node;
      if (resumes) {
        if (n.disk.smState.length < n.disk.snap.lastIndex)
          this.violate(`${n.id} started without finishing snapshot ${n.disk.snap.lastIndex}`);
        this.stats.resumedInstalls++;
        this.event(`${n.id} finished installing snapshot ${n.disk.snap.lastIndex}`);
      }
      node.onLeaderChange((c) => {
        if (c.role !== 'leader' || gen !== n.generation) return;
        this.stats.elections++;
        this.event(`${n.id} leads term ${c.term}`);
        const prev = this.leaders.get(c.term);
        if (prev !== undefined && prev !== n.id)
          this.violate(`election safety: ${prev} and ${n.id} both lead term ${c.term}`);
        this.leaders.set(c.term, n.id);
        const conf = node.status().config;
        if (!conf.voters.includes(n.id))
          this.violate(`${n.id} leads term ${c.term} but is not a voter of its configuration`);
      });
      this.event(
        `${n.id} starts (applied ${n.sm.length}, log ${n.disk.snap.lastIndex}+${n.disk.entries.length})`,
      );
    } catch (err) {
      this.violate(`${n.id} cannot restart: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      n.starting = false;
    }
  }

  private crash(n: SimNode): void {
    const node = n.node;
    if (!node) return;
    n.generation++;
    n.node = undefined;
    n.handler = undefined;
    if (n.inFlight) {
      n.inFlight.tear();
      n.inFlight = undefined;
    }
    if (n.unsyncedHard) {
      // An unsynced write reaches the disk before the crash, or not.
      if (this.rng.chance(0.5)) n.disk.hard = n.unsyncedHard;
      else this.stats.lostUnsyncedWrites++;
      n.unsyncedHard = undefined;
    }
    this.stats.crashes++;
    this.event(`${n.id} crashes`);
    void node.close().catch(() => undefined);
  }

  /** A storage write: durable when it completes, torn or lost by a crash before. */
  private write(
    n: SimNode,
    gen: number,
    what: string,
    done: () => void,
    tear?: () => void,
    crashAfter = 0.004,
  ): Promise<void> {
    if (gen !== n.generation) return new Promise<void>(() => undefined);
    if (this.opts.lyingDisk) {
      this.schedule(1 + this.rng.int(this.maxDiskDelay + 1), () => {
        if (gen === n.generation) done();
      });
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      n.inFlight = {
        tear: () => {
          if (tear && this.rng.chance(0.5)) {
            tear();
            this.stats.tornWrites++;
            this.event(`${n.id}: ${what} torn by the crash`);
          } else if (!tear && this.rng.chance(0.3)) {
            // The write reached the disk just before the crash.
            done();
          }
        },
      };
      this.schedule(this.rng.int(this.maxDiskDelay + 1), () => {
        if (gen !== n.generation) return;
        n.inFlight = undefined;
        done();
        resolve();
        // A crash right after a storage call returns: between two calls.
        if (this.faults && this.rng.chance(crashAfter)) this.schedule(0, () => this.crash(n));
      });
    });
  }

  private logStorage(n: SimNode, gen: number): LogStorage {
    const d = (): Disk => n.disk;
    return {
      load: async (): Promise<StoredLog> => {
        const termRuns: [number, number][] = [];
        const configs: { index: number; config: ConfState }[] = [];
        for (const e of d().entries) {
          if (termRuns.length === 0 || termRuns[termRuns.length - 1]![1] !== e.term)
            termRuns.push([e.index, e.term]);
          if (e.type === 'config')
            configs.push({ index: e.index, config: decodeConfState(e.data) });
        }
        return {
          snapshot: d().snap,
          lastIndex: d().snap.lastIndex + d().entries.length,
          termRuns,
          configs,
        };
      },
      entries: async (lo, hi) => {
        const base = d().snap.lastIndex + 1;
        if (lo < base || hi > base + d().entries.length)
          throw new DriverSimViolation(`${n.id}: entries [${lo}, ${hi}) not stored`);
        return d().entries.slice(lo - base, hi - base);
      },
      append: (entries) => {
        const first = entries[0]!.index;
        if (first !== d().snap.lastIndex + d().entries.length + 1)
          this.violate(`${n.id}: append at ${first} does not continue the stored log`);
        const torn = this.rng.int(entries.length);
        const store = (es: readonly Entry[]): void => {
          for (const e of es) {
            this.register(n, e);
            d().entries.push(e);
          }
        };
        return this.write(
          n,
          gen,
          `append ${first}..${first + entries.length - 1}`,
          () => store(entries),
          () => store(entries.slice(0, torn)),
        );
      },
      truncateSuffix: (from) => {
        const commit = d().hard?.commit ?? 0;
        if (from <= commit)
          this.violate(`${n.id} truncates from ${from}, below its commit ${commit}`);
        return this.write(n, gen, `truncate from ${from}`, () => {
          d().entries.length = Math.max(0, from - d().snap.lastIndex - 1);
        });
      },
      compactPrefix: (meta) =>
        this.write(n, gen, `compact to ${meta.lastIndex}`, () => {
          const drop = meta.lastIndex - d().snap.lastIndex;
          if (drop <= 0) return;
          d().entries = d().entries.slice(drop);
          d().snap = meta;
        }),
      // Often followed by a crash: the restart must finish the state machine's install.
      installSnapshot: (meta) =>
        this.write(
          n,
          gen,
          `install snapshot ${meta.lastIndex}`,
          () => {
            d().snap = meta;
            d().entries = [];
          },
          undefined,
          0.25,
        ),
    };
  }

  private hardStorage(n: SimNode, gen: number): HardStateStorage {
    return {
      load: async () => n.disk.hard,
      save: (state, options) => {
        if (options?.sync === false) {
          // Only the commit index moved (RaftNode's contract): buffered, not durable.
          const durable = n.disk.hard;
          if (durable && (durable.term !== state.term || durable.vote !== state.vote))
            this.violate(`${n.id} saves term/vote ${state.term}/${state.vote || '-'} without sync`);
          if (gen === n.generation) n.unsyncedHard = state;
          return Promise.resolve();
        }
        const prev = n.grants.get(state.term);
        if (state.vote !== NONE) {
          if (prev !== undefined && prev !== state.vote)
            this.violate(`${n.id} votes for ${state.vote} in term ${state.term}, after ${prev}`);
        }
        return this.write(n, gen, `save ${state.term}/${state.vote || '-'}/${state.commit}`, () => {
          if (state.vote !== NONE) n.grants.set(state.term, state.vote);
          n.disk.hard = state;
          n.unsyncedHard = undefined;
        });
      },
    };
  }

  private snapshotPort(n: SimNode, gen: number): SnapshotPort {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const sim = this;
    return {
      read(meta: SnapshotMeta): AsyncIterable<Uint8Array> {
        if (n.sm.length < meta.lastIndex)
          sim.violate(`${n.id}: snapshot at ${meta.lastIndex} beyond applied ${n.sm.length}`);
        const bytes = new TextEncoder().encode(JSON.stringify(n.sm.slice(0, meta.lastIndex)));
        const size = n.chunkSize;
        const chunks: Uint8Array[] = [];
        for (let k = 0; k < bytes.length; k += size) chunks.push(bytes.subarray(k, k + size));
        return (async function* () {
          for (const c of chunks) yield c;
        })();
      },
      receive(meta: SnapshotMeta): SnapshotSink {
        const parts: Uint8Array[] = [];
        return {
          write: async (chunk) => {
            parts.push(chunk);
          },
          // Staged durably (the port's contract): a restart may finish the install.
          finish: () => {
            const state = JSON.parse(Buffer.concat(parts).toString('utf8')) as string[];
            return sim.write(n, gen, `stage snapshot ${meta.lastIndex}`, () =>
              n.disk.staged.set(meta.lastIndex, state),
            );
          },
          abort: async () => undefined,
        };
      },
      install: (meta: SnapshotMeta) => {
        if (gen !== n.generation) return new Promise<void>(() => undefined);
        if (n.disk.snap.lastIndex < meta.lastIndex)
          sim.violate(`${n.id}: state machine installs ${meta.lastIndex} before the log does`);
        const staged = n.disk.staged.get(meta.lastIndex);
        if (!staged) {
          sim.violate(`${n.id}: installs snapshot ${meta.lastIndex} it never received`);
          return new Promise<void>(() => undefined);
        }
        // Idempotent and crash-safe on its own: the log's install was the commit point.
        return sim.write(n, gen, `state machine takes snapshot ${meta.lastIndex}`, () => {
          n.disk.smState = staged.slice();
          n.sm = staged.slice();
          for (const k of [...n.disk.staged.keys()])
            if (k <= meta.lastIndex) n.disk.staged.delete(k);
          for (let i = 1; i <= n.sm.length; i++) sim.checkApplied(n, i, n.sm[i - 1]!);
          sim.stats.snapshotsInstalled++;
          sim.event(`${n.id} installs snapshot ${meta.lastIndex}`);
        });
      },
    };
  }

  private transport(n: SimNode, gen: number): Transport {
    return {
      send: (m) => {
        if (gen !== n.generation) return;
        this.checkDurable(n, m);
        this.stats.messages++;
        // Each link is a stream (as over TCP): in order, but it may lose messages. Raft
        // messages may also be duplicated (a reconnect resends); snapshot chunks not.
        const link = `${m.from}>${m.to}`;
        const copies =
          this.faults && m.type !== 'snapshotChunk' && this.rng.chance(this.dupRate) ? 2 : 1;
        for (let c = 0; c < copies; c++) {
          const at = Math.max(
            this.now + 1 + this.rng.int(this.maxNetDelay),
            this.linkClock.get(link) ?? 0,
          );
          this.linkClock.set(link, at);
          this.schedule(at - this.now, () => this.deliver(m));
        }
      },
      listen: (handler) => {
        n.handler = handler;
        return () => {
          if (n.handler === handler) n.handler = undefined;
        };
      },
    };
  }

  private deliver(m: WireMessage): void {
    const to = this.nodes.get(m.to);
    if (!to?.handler || !to.node) return;
    if (to.paused) {
      // A paused process reads its socket when it resumes.
      this.schedule(TICK_MS, () => this.deliver(m));
      return;
    }
    if (this.cuts.has(`${m.from}>${m.to}`)) return;
    if (this.faults && this.rng.chance(this.dropRate)) return;
    to.handler(m);
  }

  /** Nothing leaves a node before the state it depends on is on its disk. */
  private checkDurable(n: SimNode, m: WireMessage): void {
    const hard = n.disk.hard ?? { term: 0, vote: NONE, commit: 0 };
    const preVote = (m.type === 'vote' || m.type === 'voteResp') && m.pre;
    if (!preVote && m.term > hard.term) {
      this.violate(`${n.id} sends ${m.type} of term ${m.term} with term ${hard.term} on disk`);
    }
    // A vote in a term the disk has already left is safe unrecorded: after a restart the
    // node is past that term and votes in it no more (one Ready may hold a grant in
    // term t and the hard state of term t+1, when a later message raised the term).
    if (m.type === 'voteResp' && !m.pre && !m.reject && hard.term <= m.term) {
      if (hard.term !== m.term || hard.vote !== m.to)
        this.violate(`${n.id} grants ${m.to} term ${m.term} before its vote is on disk`);
    }
    if (
      m.type === 'vote' &&
      !m.pre &&
      hard.term <= m.term &&
      (hard.term !== m.term || hard.vote !== n.id)
    ) {
      this.violate(`${n.id} asks for votes in term ${m.term} before its own vote is on disk`);
    }
    // Likewise an ack in a term the disk has left: the same Ready truncated those
    // entries for a newer leader, exactly as a node that held them would have.
    if (m.type === 'appendResp' && !m.reject && m.term >= hard.term) {
      const last = n.disk.snap.lastIndex + n.disk.entries.length;
      if (m.index > last)
        this.violate(`${n.id} acknowledges ${m.index} with ${last} entries on disk`);
    }
  }

  // ---- state machine and checks ---------------------------------------------------

  private register(n: SimNode, e: Entry): void {
    const d = n.disk;
    const prevTerm =
      e.index - 1 === d.snap.lastIndex ? d.snap.lastTerm : d.entries[d.entries.length - 1]?.term;
    const id = `${e.index}:${e.term}`;
    const value = `${entryKey(e)}|${prevTerm ?? '?'}`;
    const seen = this.logRegistry.get(id);
    if (seen === undefined) this.logRegistry.set(id, value);
    else if (seen !== value && !seen.endsWith('|?') && !value.endsWith('|?'))
      this.violate(`log matching: ${n.id} holds ${id} as ${value}, another node as ${seen}`);
  }

  private apply(n: SimNode, gen: number, entries: readonly Entry[]): void {
    if (gen !== n.generation) return;
    for (const e of entries) {
      if (e.index !== n.sm.length + 1) {
        this.violate(`${n.id}: applies ${e.index} after ${n.sm.length}`);
        return;
      }
      const key = entryKey(e);
      n.sm.push(key);
      this.checkApplied(n, e.index, key);
    }
  }

  private checkApplied(n: SimNode, index: number, key: string): void {
    const seen = this.applied[index - 1];
    if (seen === undefined) {
      if (index !== this.applied.length + 1) {
        this.violate(`${n.id}: applied ${index} before anyone applied ${this.applied.length + 1}`);
        return;
      }
      this.applied.push(key);
    } else if (seen !== key) {
      this.violate(
        `state machine safety: ${n.id} applied ${key} at ${index}, another node ${seen}`,
      );
    }
  }

  // ---- the world ------------------------------------------------------------------

  private tickAll(): void {
    for (const n of this.nodes.values()) if (n.node && !n.paused) n.node.tick();
    this.checkLeaderLogs();
    this.schedule(TICK_MS, () => this.tickAll());
  }

  /**
   * At most one uncommitted configuration entry on a leader's disk. Uncommitted as the
   * cluster knows it: a leader that restarted with an older commit index (commit-only
   * saves are not synced) may hold committed entries above its own until its first
   * commit tells it.
   */
  private checkLeaderLogs(): void {
    let committed = this.applied.length;
    for (const n of this.nodes.values())
      committed = Math.max(committed, n.node?.status().commit ?? 0);
    for (const n of this.nodes.values()) {
      const s = n.node?.status();
      if (s?.role !== 'leader') continue;
      const pending = n.disk.entries.filter((e) => e.type === 'config' && e.index > committed);
      if (pending.length > 1)
        this.violate(`${n.id} holds ${pending.length} uncommitted configuration entries`);
    }
  }

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      const s = n.node?.status();
      if (s?.role === 'leader' && (!best || s.term > best.node!.status().term)) best = n;
    }
    return best;
  }

  private chaos(): void {
    if (!this.faults) return;
    this.schedule(1 + this.rng.int(5), () => this.chaos());
    const all = [...this.nodes.values()];
    const up = all.filter((n) => n.node);
    const down = all.filter((n) => !n.node && !n.starting);
    const r = this.rng.next();
    if (r < 0.01 && up.length > 0) this.crash(this.rng.pick(up));
    else if (r < 0.05 && down.length > 0) void this.start(this.rng.pick(down));
    else if (r < 0.055) {
      // A one-way cut: a no longer hears b.
      const a = this.rng.pick(all).id;
      const b = this.rng.pick(all).id;
      if (a !== b) {
        this.cuts.add(`${b}>${a}`);
        this.event(`cut ${b} -> ${a}`);
      }
    } else if (r < 0.06) {
      const side = new Map(all.map((n) => [n.id, this.rng.int(2)]));
      for (const a of all)
        for (const b of all)
          if (side.get(a.id) !== side.get(b.id)) this.cuts.add(`${a.id}>${b.id}`);
      this.event(`partition ${[...side].map(([id, s]) => `${id}:${s}`).join(' ')}`);
    } else if (r < 0.075) {
      this.cuts.clear();
      this.event('heal');
    } else if (r < 0.08 && up.length > 0) {
      const n = this.rng.pick(up);
      n.paused = !n.paused;
      this.event(`${n.id} ${n.paused ? 'pauses' : 'resumes'}`);
    } else if (r < 0.085) this.changeMembership();
    else if (r < 0.095 && up.length > 0) this.compact(this.rng.pick(up));
    else if (r < 0.4) this.propose();
    else if (r < 0.45) this.read();
  }

  private propose(): void {
    const l = this.leader();
    if (!l?.node) return;
    const p = this.nextPayload++;
    const data = payload(p);
    const key = `p${p}`;
    l.node.propose(data).then(
      (index) => {
        this.stats.acked++;
        const prev = this.acked.get(index);
        if (prev !== undefined && prev !== key) this.violate(`index ${index} acked twice`);
        this.acked.set(index, key);
        if (index > this.maxAcked) this.maxAcked = index;
        const applied = this.applied[index - 1];
        if (applied !== key)
          this.violate(`ack of ${key} at ${index}, but ${applied} applied there`);
      },
      () => undefined,
    );
  }

  private read(): void {
    const l = this.leader();
    if (!l?.node) return;
    const floor = this.maxAcked;
    l.node.readIndex().then(
      (index) => {
        this.stats.reads++;
        if (index < floor)
          this.violate(`linearizability: read at ${index} misses acknowledged write ${floor}`);
      },
      () => undefined,
    );
  }

  private compact(n: SimNode): void {
    const node = n.node!;
    const upTo = n.sm.length - this.rng.int(4);
    // The durable state never moves back (an earlier compaction may still be in flight).
    if (upTo <= n.disk.snap.lastIndex || upTo <= n.disk.smState.length) return;
    // The caller makes its state durable up to upTo before the log may drop it.
    n.disk.smState = n.sm.slice(0, upTo);
    const meta = node.compact(upTo);
    if (meta) this.event(`${n.id} compacts to ${meta.lastIndex}`);
  }

  private changeMembership(): void {
    const l = this.leader();
    if (!l?.node) return;
    const conf = l.node.status().config;
    const r = this.rng.next();
    let p: Promise<number>;
    if (conf.learners.length > 0 && r < 0.5) {
      p = l.node.promote(this.rng.pick(conf.learners));
    } else if (r < 0.75 && this.nodes.size < MAX_NODES) {
      const id = `n${this.nextNode++}`;
      this.addNode(id);
      p = l.node.addLearner(id, `${id}.sim:8400`);
      void this.start(this.nodes.get(id)!);
    } else if (conf.voters.length > 2) {
      p = l.node.removeNode(this.rng.pick(conf.voters));
    } else return;
    this.stats.confChanges++;
    p.then(
      (index) => this.event(`conf change committed at ${index}`),
      () => undefined,
    );
  }

  private async checkLiveness(boundMs: number): Promise<void> {
    const end = this.now + boundMs;
    let key: string | undefined;
    let proposedAt = -Infinity;
    const done = (): boolean => {
      const l = this.leader();
      if (!l?.node) return false;
      if (key === undefined || this.now - proposedAt > 500) {
        const p = this.nextPayload++;
        key = `p${p}`;
        proposedAt = this.now;
        l.node.propose(payload(p)).catch(() => undefined);
        return false;
      }
      const s = l.node.status();
      const members = [...s.config.voters, ...s.config.learners];
      return (
        this.applied.includes(key) &&
        members.every((id) => this.nodes.get(id)?.node?.status().applied === s.commit) &&
        s.commit === s.lastIndex
      );
    };
    if (!(await this.runUntil(end, done))) {
      const roles = [...this.nodes.values()].map((n) => {
        const s = n.node?.status();
        return s
          ? `${n.id}:${s.role}@${s.term} c${s.commit}/a${s.applied}/l${s.lastIndex}${s.closed ? ' closed' : ''}${n.inFlight ? ' writing' : ''}${n.handler ? '' : ' deaf'}`
          : `${n.id}:down`;
      });
      throw new DriverSimViolation(
        `liveness: no leader and commit within ${boundMs} ms (${roles.join(' ')})`,
      );
    }
    // Every acknowledged write is applied at its index on every member.
    const s = this.leader()!.node!.status();
    for (const id of [...s.config.voters, ...s.config.learners]) {
      const n = this.nodes.get(id)!;
      for (const [index, k] of this.acked) {
        if (n.sm[index - 1] !== k)
          throw new DriverSimViolation(
            `acknowledged write lost: ${id} has ${n.sm[index - 1]} at ${index}, acked ${k}`,
          );
      }
    }
  }
}

function payload(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function entryKey(e: Entry): string {
  if (e.type === 'normal' && e.data.byteLength === 4) {
    return `p${new DataView(e.data.buffer, e.data.byteOffset, 4).getUint32(0)}`;
  }
  let h = 2166136261;
  for (const b of e.data) h = Math.imul(h ^ b, 16777619);
  return `${e.type}@${e.term}:${(h >>> 0).toString(16)}`;
}
