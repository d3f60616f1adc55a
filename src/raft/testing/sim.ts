// Deterministic simulation of a Raft cluster: a seeded scheduler drives pure cores
// over a simulated network that drops, delays, duplicates and reorders messages,
// partitions and heals, crashes nodes (losing whatever was not persisted) and restarts
// them, changes membership, compacts logs and transfers leadership, while clients
// propose and read. Safety invariants are checked after every step; liveness once the
// faults stop.
import {
  EMPTY_CONF,
  RaftCore,
  bootstrapState,
  decodeConfState,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type RestoreState,
  type SnapshotMeta,
} from '../core/index.js';
import { Rng } from './rng.js';

export interface SimOptions {
  readonly seed: number;
  /** Steps with faults; then a fault-free phase checks liveness. */
  readonly steps: number;
  /** Bound on the steps of the liveness phase. */
  readonly livenessSteps?: number;
  /** Override the cores' settings (used by mutation checks and tests). */
  readonly raft?: Partial<RaftConfig>;
  /** Corrupt one applied entry halfway through (proves that the checker fires). */
  readonly tamper?: boolean;
}

export interface SimResult {
  readonly seed: number;
  readonly steps: number;
  readonly violation?: string;
  /**
   * The step at which the violation was found. A run with `steps` set to it is the same
   * run up to that step, so it reproduces a safety violation with the shortest trace.
   */
  readonly failedAtStep?: number;
  /** The last events before the violation, to replay and read. */
  readonly trace: readonly string[];
  readonly stats: SimStats;
}

export interface SimStats {
  proposed: number;
  acked: number;
  elections: number;
  crashes: number;
  snapshotsInstalled: number;
  confChanges: number;
  reads: number;
  messages: number;
}

export class SimViolation extends Error {
  override name = 'SimViolation';
}

interface Disk {
  hard: HardState;
  snap: SnapshotMeta;
  /** The state machine as of snap.lastIndex: key of entry i at [i - 1]. */
  snapState: string[];
  /** Entries snap.lastIndex+1 .. last. */
  entries: Entry[];
}

interface SimNode {
  readonly id: NodeId;
  core: RaftCore | undefined;
  disk: Disk;
  /** Applied state: key of entry i at [i - 1]. */
  sm: string[];
  staged: { meta: SnapshotMeta; state: string[] } | undefined;
  /** Client proposals made through this node, by index. */
  pending: Map<number, { term: number; key: string }>;
  /** Read contexts issued here: the highest acknowledged index when each was asked. */
  reads: Map<number, number>;
}

interface InFlight {
  readonly msg: Message;
  readonly at: number;
  readonly state: string[] | undefined;
}

const MAX_NODES = 7;

export function runSimulation(opts: SimOptions): SimResult {
  const sim = new Simulation(opts);
  const fail = (s: Simulation) => ({
    seed: opts.seed,
    steps: opts.steps,
    failedAtStep: s.stepNumber,
    trace: s.trace(),
    stats: s.stats,
  });
  try {
    sim.run();
    return { seed: opts.seed, steps: opts.steps, trace: [], stats: sim.stats };
  } catch (err) {
    // An exception from the core (an invariant it checks itself) is a violation too.
    const violation =
      err instanceof SimViolation
        ? err.message
        : err instanceof Error
          ? `${err.name}: ${err.message}`
          : String(err);
    return { ...fail(sim), violation };
  }
}

class Simulation {
  readonly stats: SimStats = {
    proposed: 0,
    acked: 0,
    elections: 0,
    crashes: 0,
    snapshotsInstalled: 0,
    confChanges: 0,
    reads: 0,
    messages: 0,
  };
  private readonly rng: Rng;
  private readonly nodes = new Map<NodeId, SimNode>();
  private network: InFlight[] = [];
  private now = 0;
  private nextNodeNumber: number;
  private nextPayload = 1;
  private nextReadContext = 1;
  private readonly raftConfig: Partial<RaftConfig>;
  /** Election safety: the leader of each term. */
  private readonly leaders = new Map<number, NodeId>();
  /** Log matching: "index:term" -> "entryKey|prevTerm". */
  private readonly logRegistry = new Map<string, string>();
  /** State machine safety: key applied at each index (index i at [i - 1]). */
  private readonly applied: string[] = [];
  private readonly appliedTerms: number[] = [];
  /** Acknowledged client writes, and the highest acknowledged index. */
  private readonly acked = new Map<number, string>();
  private readonly ackedKeys = new Set<string>();
  private maxAckedIndex = 0;
  private partition = new Map<NodeId, number>();
  private dropRate: number;
  private dupRate: number;
  private maxDelay: number;
  private faults = true;
  /** A new leader scheduled to crash soon (leader churn leaves old-term tails about). */
  private doomed: { id: NodeId; at: number } | undefined;
  private readonly churn: number;
  private readonly skew: boolean;
  private readonly tickRates = new Map<NodeId, number>();
  private tampered = false;
  private readonly intensity: number;
  private readonly events: string[] = [];

  constructor(private readonly opts: SimOptions) {
    this.rng = new Rng(opts.seed);
    this.raftConfig = {
      electionTicks: 10,
      heartbeatTicks: 1,
      maxInflightMsgs: 1 + this.rng.int(4),
      maxMsgBytes: 16 + this.rng.int(200),
      retainEntries: this.rng.int(8),
      snapshotTimeoutTicks: 30,
      ...opts.raft,
    };
    this.dropRate = this.rng.next() * 0.1;
    this.dupRate = this.rng.next() * 0.05;
    this.maxDelay = 1 + this.rng.int(4);
    this.intensity = 0.5 + this.rng.next() * 3;
    this.churn = this.rng.chance(0.5) ? 0 : this.rng.next() * 0.5;
    this.skew = this.rng.chance(0.5);
    const n = this.rng.chance(0.5) ? 3 : 5;
    const ids = Array.from({ length: n }, (_, k) => `n${k + 1}`);
    this.nextNodeNumber = n + 1;
    const conf: ConfState = { voters: ids, learners: [], addresses: {} };
    for (const id of ids) this.addNode(id, conf);
  }

  /** Each node's clock runs at its own rate (skew), fixed per seed and node. */
  private tickRate(id: NodeId): number {
    let rate = this.tickRates.get(id);
    if (rate === undefined) {
      rate = this.skew ? 0.15 + this.rng.next() * 0.3 : 0.3;
      this.tickRates.set(id, rate);
    }
    return rate;
  }

  get stepNumber(): number {
    return this.now;
  }

  trace(): string[] {
    return this.events.slice(-40);
  }

  run(): void {
    for (let step = 0; step < this.opts.steps; step++) this.step();
    this.faults = false;
    this.partition.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    for (const node of this.nodes.values()) if (!node.core) this.restart(node);
    this.event('faults stop');
    this.checkLiveness(this.opts.livenessSteps ?? 3000);
  }

  private step(): void {
    this.now++;
    this.deliver();
    for (const node of this.nodes.values()) {
      if (node.core && this.rng.chance(this.tickRate(node.id))) node.core.tick();
    }
    if (this.faults) this.injectFault();
    if (this.faults && this.doomed && this.now >= this.doomed.at) {
      const node = this.nodes.get(this.doomed.id)!;
      this.doomed = undefined;
      if (node.core) this.crash(node);
    }
    if (this.faults && this.rng.chance(0.3)) this.clientPropose();
    if (this.rng.chance(0.05)) this.clientRead();
    for (const node of this.nodes.values()) this.processReady(node);
  }

  // ---- faults -------------------------------------------------------------------

  private injectFault(): void {
    // Stormy seeds see several times more faults per step than calm ones.
    const r = this.rng.next() / this.intensity;
    const all = [...this.nodes.values()];
    const up = all.filter((n) => n.core);
    const down = all.filter((n) => !n.core);
    if (r < 0.006 && up.length > 0) {
      this.crash(this.rng.pick(up));
    } else if (r < 0.03 && down.length > 0) {
      this.restart(this.rng.pick(down));
    } else if (r < 0.035) {
      this.partition = new Map(all.map((n) => [n.id, this.rng.int(2)]));
      this.event(`partition ${[...this.partition].map(([id, g]) => `${id}:${g}`).join(' ')}`);
    } else if (r < 0.045 && this.partition.size > 0) {
      this.partition.clear();
      this.event('heal');
    } else if (r < 0.05) {
      this.changeMembership();
    } else if (r < 0.06 && up.length > 0) {
      const node = this.rng.pick(up);
      const core = node.core!;
      const upTo = core.log.applied - this.rng.int(4);
      if (core.compact(upTo)) this.event(`${node.id} compacts to ${upTo}`);
    } else if (r < 0.063) {
      const leader = this.leaderNode();
      if (leader) {
        const voters = leader.core!.conf.voters.filter((v) => v !== leader.id);
        if (voters.length > 0) {
          const target = this.rng.pick(voters);
          const res = leader.core!.transferLeadership(target);
          this.event(`${leader.id} transfers leadership to ${target}: ${res.ok}`);
        }
      }
    }
  }

  private crash(node: SimNode): void {
    node.core = undefined;
    node.pending.clear();
    node.reads.clear();
    node.staged = undefined;
    this.stats.crashes++;
    this.event(`${node.id} crashes`);
  }

  private restart(node: SimNode): void {
    const d = node.disk;
    const termRuns: [number, number][] = [];
    const configs: { index: number; config: ConfState }[] = [];
    for (const e of d.entries) {
      if (termRuns.length === 0 || termRuns[termRuns.length - 1]![1] !== e.term)
        termRuns.push([e.index, e.term]);
      if (e.type === 'config') configs.push({ index: e.index, config: decodeConf(e) });
    }
    const state: RestoreState = {
      hardState: d.hard,
      snapshot: d.snap,
      lastIndex: d.snap.lastIndex + d.entries.length,
      termRuns,
      configs,
      entries: d.entries.slice(),
      applied: d.snap.lastIndex,
    };
    node.sm = d.snapState.slice();
    node.core = new RaftCore(
      { ...this.raftConfig, id: node.id, seed: this.opts.seed + this.now },
      state,
    );
    this.event(
      `${node.id} restarts (term ${d.hard.term}, commit ${d.hard.commit}, last ${state.lastIndex})`,
    );
  }

  private changeMembership(): void {
    const leader = this.leaderNode();
    if (!leader) return;
    const core = leader.core!;
    const conf = core.conf;
    let res;
    const r = this.rng.next();
    if (conf.learners.length > 0 && r < 0.5) {
      res = core.proposeConfChange({ type: 'promote', id: this.rng.pick(conf.learners) });
    } else if (r < 0.75 && this.nodes.size < MAX_NODES) {
      const id = `n${this.nextNodeNumber}`;
      res = core.proposeConfChange({ type: 'addLearner', id, address: `${id}.sim:8400` });
      if (res.ok) {
        this.nextNodeNumber++;
        this.addNode(id, EMPTY_CONF);
      }
    } else if (conf.voters.length > 2) {
      res = core.proposeConfChange({ type: 'remove', id: this.rng.pick(conf.voters) });
    } else {
      return;
    }
    this.stats.confChanges++;
    this.event(`${leader.id} conf change -> ${res.ok ? `index ${res.index}` : res.reason}`);
  }

  private addNode(id: NodeId, conf: ConfState): void {
    const state = bootstrapState(conf);
    const node: SimNode = {
      id,
      core: new RaftCore({ ...this.raftConfig, id, seed: this.opts.seed }, state),
      disk: { hard: state.hardState, snap: state.snapshot, snapState: [], entries: [] },
      sm: [],
      staged: undefined,
      pending: new Map(),
      reads: new Map(),
    };
    this.nodes.set(id, node);
  }

  // ---- clients ------------------------------------------------------------------

  private leaderNode(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.core?.role === 'leader' && (!best || n.core.term > best.core!.term)) best = n;
    }
    return best;
  }

  private clientPropose(): void {
    const up = [...this.nodes.values()].filter((n) => n.core);
    if (up.length === 0) return;
    const node = this.rng.chance(0.8)
      ? (this.leaderNode() ?? this.rng.pick(up))
      : this.rng.pick(up);
    const count = 1 + this.rng.int(3);
    const data: Uint8Array[] = [];
    for (let k = 0; k < count; k++) data.push(payload(this.nextPayload++));
    const res = node.core!.propose(data);
    if (!res.ok) return;
    this.stats.proposed += count;
    for (let k = 0; k < count; k++) {
      node.pending.set(res.index + k, {
        term: res.term,
        key: entryKey({ index: 0, term: res.term, type: 'normal', data: data[k]! }),
      });
    }
  }

  private clientRead(): void {
    // Any node that believes it leads, stale ones included: they must not serve reads.
    const leaders = [...this.nodes.values()].filter((n) => n.core?.role === 'leader');
    if (leaders.length === 0) return;
    const leader = this.rng.pick(leaders);
    const ctx = this.nextReadContext++;
    if (leader.core!.readIndex(ctx).ok) leader.reads.set(ctx, this.maxAckedIndex);
  }

  // ---- the driver -----------------------------------------------------------------

  private processReady(node: SimNode): void {
    let rounds = 0;
    while (node.core?.hasReady()) {
      if (++rounds > 1000) throw new SimViolation(`${node.id}: ready loop does not settle`);
      const core = node.core;
      const rd = core.ready();
      this.persist(node, rd);
      if (this.faults && rd.messages.length > 0 && this.rng.chance(0.002)) {
        // Crash after persisting, before sending.
        this.crash(node);
        return;
      }
      for (const m of rd.messages) this.send(node, m);
      this.apply(node, rd);
      this.serveReads(node, rd);
      if (rd.compacted) this.compactDisk(node, rd.compacted);
      if (rd.softState) this.observeRole(node, rd);
      core.advance(rd);
      this.checkNode(node);
    }
  }

  private persist(node: SimNode, rd: Ready): void {
    const d = node.disk;
    if (rd.snapshot) {
      const staged = node.staged;
      if (!staged || staged.meta.lastIndex !== rd.snapshot.lastIndex) {
        throw new SimViolation(
          `${node.id}: snapshot ${rd.snapshot.lastIndex} to install was never received`,
        );
      }
      d.snap = rd.snapshot;
      d.snapState = staged.state.slice();
      d.entries = [];
      node.sm = staged.state.slice();
      node.staged = undefined;
      for (let i = 1; i <= node.sm.length; i++)
        this.checkApplied(node, i, node.sm[i - 1]!, undefined);
      this.stats.snapshotsInstalled++;
      this.event(`${node.id} installs snapshot at ${rd.snapshot.lastIndex}`);
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      const keep = first - d.snap.lastIndex - 1;
      if (keep < 0 || keep > d.entries.length) {
        throw new SimViolation(`${node.id}: entries at ${first} do not continue the stored log`);
      }
      if (keep < d.entries.length && first <= d.hard.commit) {
        throw new SimViolation(
          `${node.id} truncates from ${first}, below its commit index ${d.hard.commit}`,
        );
      }
      d.entries.length = keep;
      for (const e of rd.entries) {
        const prevTerm =
          e.index - 1 === d.snap.lastIndex
            ? d.snap.lastTerm
            : d.entries[d.entries.length - 1]!.term;
        const id = `${e.index}:${e.term}`;
        const value = `${entryKey(e)}|${prevTerm}`;
        const seen = this.logRegistry.get(id);
        if (seen === undefined) this.logRegistry.set(id, value);
        else if (seen !== value) {
          throw new SimViolation(
            `log matching: ${node.id} holds ${id} as ${value}, another node as ${seen}`,
          );
        }
        d.entries.push(e);
      }
    }
    if (rd.hardState) {
      if (rd.hardState.term < d.hard.term) throw new SimViolation(`${node.id}: term went back`);
      if (rd.hardState.commit < d.hard.commit)
        throw new SimViolation(`${node.id}: commit index went back`);
      d.hard = rd.hardState;
    }
  }

  private send(node: SimNode, m: Message): void {
    this.stats.messages++;
    let state: string[] | undefined;
    if (m.type === 'snapshot') {
      if (node.sm.length < m.meta.lastIndex) {
        throw new SimViolation(
          `${node.id}: snapshot at ${m.meta.lastIndex} beyond applied ${node.sm.length}`,
        );
      }
      state = node.sm.slice(0, m.meta.lastIndex);
    }
    const copies = this.rng.chance(this.dupRate) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      this.network.push({ msg: m, at: this.now + this.rng.int(this.maxDelay + 1), state });
    }
  }

  private deliver(): void {
    if (this.network.length === 0) return;
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.network) (f.at <= this.now ? due : later).push(f);
    this.network = later;
    for (const f of due) {
      const { msg } = f;
      const to = this.nodes.get(msg.to);
      const cut = (this.partition.get(msg.from) ?? 0) !== (this.partition.get(msg.to) ?? 0);
      if (!to?.core || cut || this.rng.chance(this.dropRate)) {
        // A dropped snapshot stream is noticed by its sender (the stream fails).
        if (msg.type === 'snapshot' && this.rng.chance(0.5))
          this.nodes.get(msg.from)?.core?.reportSnapshot(msg.to, false);
        continue;
      }
      if (msg.type === 'snapshot') to.staged = { meta: msg.meta, state: f.state! };
      to.core.step(msg);
    }
  }

  private apply(node: SimNode, rd: Ready): void {
    for (const e of rd.committed) {
      if (e.index !== node.sm.length + 1) {
        throw new SimViolation(
          `${node.id}: applies ${e.index} after ${node.sm.length} (order or duplicate)`,
        );
      }
      let key = entryKey(e);
      if (
        this.opts.tamper &&
        !this.tampered &&
        this.now > this.opts.steps / 2 &&
        e.type === 'normal'
      ) {
        key += '!';
        this.tampered = true;
      }
      node.sm.push(key);
      this.checkApplied(node, e.index, key, e.term);
      const p = node.pending.get(e.index);
      if (p) {
        node.pending.delete(e.index);
        if (p.term === e.term && p.key === key) {
          this.acked.set(e.index, key);
          this.ackedKeys.add(key);
          this.stats.acked++;
          if (e.index > this.maxAckedIndex) this.maxAckedIndex = e.index;
        }
      }
    }
  }

  private checkApplied(node: SimNode, index: number, key: string, term: number | undefined): void {
    const seen = this.applied[index - 1];
    if (seen === undefined) {
      if (index !== this.applied.length + 1) {
        throw new SimViolation(
          `${node.id}: applied ${index} before anyone applied ${this.applied.length + 1}`,
        );
      }
      this.applied.push(key);
      this.appliedTerms.push(term ?? -1);
    } else if (seen !== key) {
      throw new SimViolation(
        `state machine safety: ${node.id} applied ${key} at ${index}, another node ${seen}`,
      );
    } else if (term !== undefined && this.appliedTerms[index - 1] === -1) {
      this.appliedTerms[index - 1] = term;
    }
  }

  private serveReads(node: SimNode, rd: Ready): void {
    for (const rs of rd.readStates) {
      const floor = node.reads.get(rs.context);
      if (floor === undefined) continue;
      node.reads.delete(rs.context);
      this.stats.reads++;
      if (rs.index < floor) {
        throw new SimViolation(
          `linearizability: read ${rs.context} at ${rs.index} misses acknowledged write ${floor}`,
        );
      }
    }
  }

  private compactDisk(node: SimNode, meta: SnapshotMeta): void {
    const d = node.disk;
    const drop = meta.lastIndex - d.snap.lastIndex;
    if (drop <= 0) return;
    if (node.sm.length < meta.lastIndex)
      throw new SimViolation(`${node.id}: compaction beyond applied`);
    d.entries = d.entries.slice(drop);
    d.snap = meta;
    d.snapState = node.sm.slice(0, meta.lastIndex);
  }

  private observeRole(node: SimNode, rd: Ready): void {
    const ss = rd.softState!;
    this.event(`${node.id} is ${ss.role} in term ${ss.term} (leader ${ss.leader || '-'})`);
    if (ss.role !== 'leader') return;
    this.stats.elections++;
    const prev = this.leaders.get(ss.term);
    if (prev !== undefined && prev !== node.id) {
      throw new SimViolation(`election safety: ${prev} and ${node.id} both lead term ${ss.term}`);
    }
    this.leaders.set(ss.term, node.id);
    if (this.faults && !this.doomed && this.rng.chance(this.churn)) {
      this.doomed = { id: node.id, at: this.now + this.rng.int(8) };
    }
    // Leader completeness: every entry applied anywhere is in the new leader's log.
    const log = node.core!.log;
    for (let i = log.snapIndex + 1; i <= this.applied.length; i++) {
      const t = this.appliedTerms[i - 1]!;
      if (t !== -1 && log.term(i) !== t) {
        throw new SimViolation(
          `leader completeness: ${node.id} (term ${ss.term}) lacks committed entry ${i}@${t}`,
        );
      }
    }
  }

  private checkNode(node: SimNode): void {
    const log = node.core!.log;
    if (!(log.applied <= log.committed && log.committed <= log.lastIndex)) {
      throw new SimViolation(
        `${node.id}: applied ${log.applied} <= commit ${log.committed} <= last ${log.lastIndex} broken`,
      );
    }
    if (node.sm.length !== log.applied) {
      throw new SimViolation(
        `${node.id}: state machine at ${node.sm.length}, core applied ${log.applied}`,
      );
    }
  }

  // ---- liveness -----------------------------------------------------------------

  private checkLiveness(maxSteps: number): void {
    const keys = new Set<string>();
    let proposedAt = 0;
    for (let step = 0; step < maxSteps; step++) {
      this.step();
      const leader = this.leaderNode();
      if (!leader) continue;
      const core = leader.core!;
      const ackedCount = [...keys].filter((k) => this.ackedKeys.has(k)).length;
      // Proposals made to a leader that then lost its term are retried with new data.
      if (ackedCount < 3 && this.now - proposedAt > 5) {
        const data = payload(this.nextPayload++);
        const res = core.propose([data]);
        if (res.ok) {
          const key = entryKey({ index: 0, term: res.term, type: 'normal', data });
          keys.add(key);
          leader.pending.set(res.index, { term: res.term, key });
          proposedAt = this.now;
        }
      }
      const members = [...core.conf.voters, ...core.conf.learners];
      const caughtUp = members.every(
        (id) => this.nodes.get(id)?.core?.log.applied === core.log.committed,
      );
      if (ackedCount >= 3 && caughtUp && core.log.committed === core.log.lastIndex) {
        this.checkAcked();
        return;
      }
    }
    const roles = [...this.nodes.values()].map((n) =>
      n.core
        ? `${n.id}:${n.core.role}@${n.core.term} c${n.core.log.committed}/a${n.core.log.applied}/l${n.core.log.lastIndex} voters=${n.core.conf.voters.join(',')}`
        : `${n.id}:down`,
    );
    throw new SimViolation(
      `liveness: no progress within ${maxSteps} fault-free steps (${roles.join(' ')})`,
    );
  }

  /** Every acknowledged write is applied, at its index, on every member. */
  private checkAcked(): void {
    const leader = this.leaderNode()!;
    for (const id of [...leader.core!.conf.voters, ...leader.core!.conf.learners]) {
      const node = this.nodes.get(id)!;
      for (const [index, key] of this.acked) {
        if (node.sm[index - 1] !== key) {
          throw new SimViolation(
            `acknowledged write lost: ${node.id} has ${node.sm[index - 1]} at ${index}, acked ${key}`,
          );
        }
      }
    }
  }

  private event(text: string): void {
    this.events.push(`[${this.now}] ${text}`);
    if (this.events.length > 400) this.events.splice(0, 200);
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

function decodeConf(e: Entry): ConfState {
  return decodeConfState(e.data);
}

// The same kind of run with the real driver (RaftNode) inside: see sim-driver.ts.
export { runDriverSimulation, DriverSimViolation } from './sim-driver.js';
export type { DriverSimOptions, DriverSimResult, DriverSimStats } from './sim-driver.js';
