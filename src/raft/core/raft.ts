// The Raft state machine: pure and deterministic. Time enters only through tick(),
// the network only through step(), and every effect leaves through ready().
import {
  checkIds,
  decodeConfState,
  encodeConfState,
  isMember,
  isVoter,
  majority,
  quorumIndex,
} from './conf.js';
import { RaftInvariantError, RaftLog, entryBytes, type RaftLogView } from './log.js';
import { Progress } from './progress.js';
import {
  NONE,
  type AppendMessage,
  type ConfChange,
  type ConfState,
  type Entry,
  type FetchRequest,
  type HardState,
  type HeartbeatMessage,
  type Message,
  type NodeId,
  type ProposeResult,
  type ReadState,
  type Ready,
  type RefusalReason,
  type RestoreState,
  type Role,
  type SnapshotMeta,
  type SnapshotMessage,
  type SoftState,
  type VoteMessage,
} from './types.js';

export interface RaftConfig {
  readonly id: NodeId;
  /** Followers campaign after a random timeout in [electionTicks, 2*electionTicks). */
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  /** Bound on the entry bytes of one append message (a larger single entry goes alone). Default 1 MiB. */
  readonly maxMsgBytes?: number;
  /** Secondary bound: appends in flight per follower in replicate state. Default 256. */
  readonly maxInflightMsgs?: number;
  /** Entry bytes in flight (sent, not acknowledged) per follower. Default 8 MiB. */
  readonly maxInflightBytes?: number;
  /** Bound on the entry bytes handed to the state machine per Ready. Default 64 MiB. */
  readonly maxApplyBytes?: number;
  /** Bytes of applied entries kept in memory for lagging followers. Default 16 MiB. */
  readonly retainBytes?: number;
  /** Secondary bound: applied entries kept in memory. Default 100,000. */
  readonly retainEntries?: number;
  /**
   * The driver serves Ready.fetch (reads entries from LogStorage): a follower behind
   * the in-memory window is fed from storage, and a snapshot is sent only below the
   * compaction point. When false (the core alone, simulators), such a follower gets a
   * snapshot at the applied index instead. RaftNode turns it on. Default false.
   */
  readonly fetchFromStorage?: boolean;
  /**
   * Snapshots are metadata for a log-as-state-machine: a snapshot stands for the
   * compaction point ("the log starts after index N"), not for the applied state.
   * Default false.
   */
  readonly snapshotAtCompaction?: boolean;
  /**
   * Ticks a follower may stay in snapshot state without progress (see
   * reportSnapshotProgress) before the leader gives up on it and retries.
   */
  readonly snapshotTimeoutTicks?: number;
  /** Seed of the election-timeout randomness. */
  readonly seed?: number;
}

type Defaults = Required<RaftConfig>;

/** A call that breaks the core's contract (a bug in the caller, not a refusal). */
export class RaftUsageError extends Error {
  override readonly name = 'RaftUsageError';
}

/** A RaftConfig (or a configuration handed to a node) is not usable. */
export class RaftConfigError extends Error {
  override readonly name = 'RaftConfigError';
}

/** Checks a configuration and fills in its defaults (etcd's Config.validate). */
export function validateRaftConfig(config: RaftConfig): Defaults {
  if (typeof config.id !== 'string' || config.id === NONE)
    throw new RaftConfigError('the node id must be a non-empty string');
  const electionTicks = config.electionTicks ?? 10;
  const c: Defaults = {
    id: config.id,
    electionTicks,
    heartbeatTicks: config.heartbeatTicks ?? 1,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    maxMsgBytes: config.maxMsgBytes ?? 1024 * 1024,
    maxInflightMsgs: config.maxInflightMsgs ?? 256,
    maxInflightBytes: config.maxInflightBytes ?? 8 * 1024 * 1024,
    maxApplyBytes: config.maxApplyBytes ?? 64 * 1024 * 1024,
    retainBytes: config.retainBytes ?? 16 * 1024 * 1024,
    retainEntries: config.retainEntries ?? 100_000,
    fetchFromStorage: config.fetchFromStorage ?? false,
    snapshotAtCompaction: config.snapshotAtCompaction ?? false,
    snapshotTimeoutTicks: config.snapshotTimeoutTicks ?? 10 * electionTicks,
    seed: config.seed ?? 1,
  };
  const positive: (keyof Defaults)[] = [
    'electionTicks',
    'heartbeatTicks',
    'maxMsgBytes',
    'maxInflightMsgs',
    'maxInflightBytes',
    'maxApplyBytes',
    'snapshotTimeoutTicks',
  ];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
      throw new RaftConfigError(`${k} must be a positive integer, not ${String(v)}`);
  }
  for (const k of ['retainBytes', 'retainEntries'] as const) {
    if (!Number.isSafeInteger(c[k]) || c[k] < 0)
      throw new RaftConfigError(`${k} must be a non-negative integer, not ${c[k]}`);
  }
  if (c.heartbeatTicks >= c.electionTicks)
    throw new RaftConfigError('heartbeatTicks must be smaller than electionTicks');
  if (c.snapshotAtCompaction && !c.fetchFromStorage)
    throw new RaftConfigError('snapshotAtCompaction needs fetchFromStorage');
  return c;
}

/** Checks a configuration's ids: non-empty, each in one role once (RaftConfigError). */
export function validateConfState(conf: ConfState): void {
  checkIds(conf, (msg) => new RaftConfigError(`invalid configuration: ${msg}`));
}

/** The state of a brand-new member of `conf` (term 0, empty log). */
export function bootstrapState(conf: ConfState): RestoreState {
  return {
    hardState: { term: 0, vote: NONE, commit: 0 },
    snapshot: { lastIndex: 0, lastTerm: 0, config: conf },
    lastIndex: 0,
    termRuns: [],
    configs: [],
    entries: [],
    applied: 0,
  };
}

export const EMPTY_CONF: ConfState = { voters: [], learners: [], addresses: {} };

export interface PeerStatus {
  readonly id: NodeId;
  readonly match: number;
  readonly next: number;
  readonly state: string;
  readonly learner: boolean;
}

export interface CoreStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly firstIndex: number;
  readonly config: ConfState;
  /** Leader only. */
  readonly peers: readonly PeerStatus[];
}

export class RaftCore {
  readonly id: NodeId;
  private readonly cfg: Defaults;
  private readonly rlog: RaftLog;
  private curTerm = 0;
  private votedFor: NodeId = NONE;
  private leaderId: NodeId = NONE;
  private curRole: Role = 'follower';
  private curConf: ConfState;
  /** Storage reads for the driver (Ready.fetch). */
  private fetches: FetchRequest[] = [];
  /** A read of committed entries below memStart, for applying (to is our own id). */
  private applyFetch: FetchRequest | undefined;
  private loadedForApply: readonly Entry[] | undefined;
  /** Configurations in force from their index on; the first is the snapshot's. */
  private confHistory: { index: number; conf: ConfState }[];
  private readonly prs = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  /** Leader: reads waiting for a quorum of heartbeat acks at or after their context. */
  private pendingReads: ReadState[] = [];
  /** Leader: reads waiting for the first commit of this term. */
  private readsBeforeCommit: number[] = [];
  private ackedContext = new Map<NodeId, number>();
  private latestReadContext = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private transferee: NodeId = NONE;
  private pendingSnapshot: SnapshotMeta | undefined;
  private pendingCompaction: SnapshotMeta | undefined;
  private prevHard: HardState;
  private prevSoft: SoftState;
  private rng: number;

  constructor(config: RaftConfig, state: RestoreState) {
    this.cfg = validateRaftConfig(config);
    this.rlog = new RaftLog(this.cfg.fetchFromStorage);
    this.id = config.id;
    validateConfState(state.snapshot.config);
    this.rng = (this.cfg.seed ^ hashId(config.id)) >>> 0 || 1;
    const snap = state.snapshot;
    this.rlog.restore(
      snap.lastIndex,
      snap.lastTerm,
      state.lastIndex,
      state.termRuns,
      state.entries,
      state.hardState.commit,
      Math.max(state.applied, snap.lastIndex),
    );
    this.confHistory = [
      { index: snap.lastIndex, conf: snap.config },
      ...state.configs.map((c) => ({ index: c.index, conf: c.config })),
    ];
    this.curConf = this.confHistory[this.confHistory.length - 1]!.conf;
    this.curTerm = state.hardState.term;
    this.votedFor = state.hardState.vote;
    this.prevHard = { term: this.curTerm, vote: this.votedFor, commit: this.rlog.committed };
    this.resetProgress();
    this.becomeFollower(this.curTerm, NONE);
    this.prevSoft = this.softState();
  }

  // ---- read-only state ------------------------------------------------------------

  get term(): number {
    return this.curTerm;
  }

  get vote(): NodeId {
    return this.votedFor;
  }

  get leader(): NodeId {
    return this.leaderId;
  }

  get role(): Role {
    return this.curRole;
  }

  /** The configuration in force (the last one appended, committed or not). */
  get conf(): ConfState {
    return this.curConf;
  }

  get log(): RaftLogView {
    return this.rlog;
  }

  // ---- inputs -------------------------------------------------------------------

  tick(): void {
    if (this.curRole === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /** Starts an election now (tests, or an operator's "campaign" command). */
  campaign(): void {
    if (this.curRole !== 'leader' && this.promotable()) this.hup(false);
  }

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.curTerm) {
      if (m.type === 'vote') {
        const inLease =
          this.cfg.checkQuorum &&
          this.leaderId !== NONE &&
          this.electionElapsed < this.cfg.electionTicks;
        // A node that hears from a leader ignores would-be leaders: this keeps a
        // partitioned or removed node from deposing a healthy leader.
        if (inLease && !m.force) return;
      }
      if (m.type === 'vote' && m.pre) {
        // A pre-vote never changes our term.
      } else if (m.type === 'voteResp' && m.pre && !m.reject) {
        // Granted pre-votes carry the term we would campaign in.
      } else {
        const lead =
          m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' ? m.from : NONE;
        this.becomeFollower(m.term, lead);
      }
    } else if (m.term < this.curTerm) {
      if (m.type === 'append' || m.type === 'heartbeat') {
        // Tell a deposed leader about the new term (it may be cut off from votes).
        this.send({
          type: 'appendResp',
          to: m.from,
          term: this.curTerm,
          index: 0,
          reject: true,
          hintIndex: 0,
          hintTerm: 0,
        });
      } else if (m.type === 'vote' && m.pre) {
        this.send({ type: 'voteResp', to: m.from, term: this.curTerm, pre: true, reject: true });
      }
      return;
    }

    if (m.type === 'vote') {
      this.handleVote(m);
      return;
    }
    switch (this.curRole) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  /** Appends client data (leader only); all of it or none. */
  propose(data: readonly Uint8Array[]): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal) return refusal;
    if (data.length === 0) throw new RaftUsageError('propose needs at least one entry');
    const first = this.rlog.lastIndex + 1;
    const entries: Entry[] = new Array<Entry>(data.length);
    for (let k = 0; k < data.length; k++) {
      entries[k] = { index: first + k, term: this.curTerm, type: 'normal', data: data[k]! };
    }
    this.appendAsLeader(entries);
    return { ok: true, index: first, term: this.curTerm };
  }

  proposeConfChange(change: ConfChange): ProposeResult {
    const refusal = this.refuseProposal();
    if (refusal) return refusal;
    const lastConfIndex = this.confHistory[this.confHistory.length - 1]!.index;
    if (
      lastConfIndex > this.rlog.committed ||
      this.rlog.term(this.rlog.committed) !== this.curTerm
    ) {
      return this.refuse('confPending');
    }
    const next = applyChange(this.curConf, change);
    if (!next) return this.refuse('invalidConf');
    const index = this.rlog.lastIndex + 1;
    this.appendAsLeader([
      { index, term: this.curTerm, type: 'config', data: encodeConfState(next) },
    ]);
    return { ok: true, index, term: this.curTerm };
  }

  /** Asks for a linearizable read; the answer arrives as a ReadState with this context. */
  readIndex(context: number): ProposeResult {
    if (this.curRole !== 'leader') return this.refuse('notLeader');
    if (this.rlog.term(this.rlog.committed) !== this.curTerm) {
      // Our commit index may lag the true one until an entry of this term commits.
      this.readsBeforeCommit.push(context);
      return { ok: true, index: 0, term: this.curTerm };
    }
    this.registerRead(context);
    return { ok: true, index: this.rlog.committed, term: this.curTerm };
  }

  transferLeadership(target: NodeId): ProposeResult {
    if (this.curRole !== 'leader') return this.refuse('notLeader');
    if (target === this.id) return { ok: true, index: this.rlog.lastIndex, term: this.curTerm };
    if (!isVoter(this.curConf, target)) return this.refuse('invalidConf');
    this.transferee = target;
    this.electionElapsed = 0;
    const pr = this.prs.get(target)!;
    if (pr.match === this.rlog.lastIndex)
      this.send({ type: 'timeoutNow', to: target, term: this.curTerm });
    else this.sendAppend(target, true);
    return { ok: true, index: this.rlog.lastIndex, term: this.curTerm };
  }

  /** The driver failed (or finished) streaming a snapshot to `to`. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.prs.get(to);
    if (this.curRole !== 'leader' || !pr || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the next heartbeat answer before probing.
    pr.probeSent = true;
  }

  /**
   * The snapshot to `to` is moving (the follower acknowledged more of it): restart its
   * timeout, so that a large snapshot on a slow link is not abandoned and resent.
   */
  reportSnapshotProgress(to: NodeId): void {
    const pr = this.prs.get(to);
    if (this.curRole === 'leader' && pr && pr.state === 'snapshot') pr.snapshotTicks = 0;
  }

  /** The driver could not deliver to `to` (connection refused): stop streaming. */
  reportUnreachable(to: NodeId): void {
    const pr = this.prs.get(to);
    if (this.curRole === 'leader' && pr && pr.state === 'replicate') pr.becomeProbe();
  }

  /**
   * The driver read the entries a FetchRequest asked for. Stale answers (another
   * term, the peer's progress moved elsewhere, a newer request, the entries compacted
   * meanwhile) are dropped or re-planned; fresh ones go out as appends.
   */
  entriesLoaded(req: FetchRequest, entries: readonly Entry[]): void {
    if (req.to === this.id) {
      this.loadedForApplying(req, entries);
      return;
    }
    const pr = this.prs.get(req.to);
    if (!pr || pr.fetching !== req) return;
    pr.fetching = undefined;
    if (this.curRole !== 'leader' || this.curTerm !== req.term || pr.state === 'snapshot') return;
    if (entries.length === 0) {
      this.fetchFailed(req);
      return;
    }
    const log = this.rlog;
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      const want = log.term(e.index);
      if (e.index !== req.lo + k || (want !== undefined && want !== e.term)) {
        throw new RaftInvariantError(
          `storage returned ${e.index}@${e.term} at position ${k} of [${req.lo}, ${req.hi}); the log holds ${req.lo + k}@${want}`,
        );
      }
    }
    const from = pr.next - req.lo;
    const prevTerm = log.term(pr.next - 1);
    if (from < 0 || from >= entries.length || prevTerm === undefined) {
      // The peer's progress moved outside what was read, or it was compacted: re-plan.
      this.sendAppend(req.to, true);
      return;
    }
    let at = from;
    while (at < entries.length && !pr.paused()) {
      let end = at;
      let bytes = 0;
      while (end < entries.length) {
        const b = entryBytes(entries[end]!);
        if (bytes + b > this.cfg.maxMsgBytes && end > at) break;
        bytes += b;
        end++;
      }
      const batch = entries.slice(at, end);
      this.sendEntries(req.to, pr, batch, bytes);
      at = end;
    }
    // Whatever was read but not sent (no room in flight) is dropped and read again.
    while (this.curRole === 'leader' && this.sendAppend(req.to, false)) {
      // keeps the pipe full: from memory, or by the next fetch
    }
  }

  /** The driver could not read a FetchRequest's entries: retry after the next heartbeat answer. */
  fetchFailed(req: FetchRequest): void {
    if (req.to === this.id) {
      // A read a snapshot made stale (the log was replaced meanwhile) may fail: fine.
      if (this.applyFetch !== req) return;
      // Reading our own committed entries must work: the driver stops on it.
      throw new RaftInvariantError(`could not read committed entries [${req.lo}, ${req.hi})`);
    }
    const pr = this.prs.get(req.to);
    if (!pr) return;
    if (pr.fetching === req) pr.fetching = undefined;
    if (this.curRole !== 'leader' || this.curTerm !== req.term) return;
    if (pr.state === 'replicate') pr.becomeProbe();
    if (pr.state === 'probe') pr.probeSent = true;
  }

  /**
   * The caller's state is stable up to `index` (<= applied): the log may drop entries
   * up to there. Returns the compaction point, or undefined when nothing changes.
   */
  compact(index: number): SnapshotMeta | undefined {
    index = Math.min(index, this.rlog.applied);
    if (index <= this.rlog.snapIndex) return undefined;
    const meta: SnapshotMeta = {
      lastIndex: index,
      lastTerm: this.rlog.term(index)!,
      config: this.confAt(index),
    };
    this.rlog.compact(index);
    let k = 0;
    while (k + 1 < this.confHistory.length && this.confHistory[k + 1]!.index <= index) k++;
    this.confHistory = [
      { index, conf: this.confHistory[k]!.conf },
      ...this.confHistory.slice(k + 1),
    ];
    this.pendingCompaction = meta;
    return meta;
  }

  private loadedForApplying(req: FetchRequest, entries: readonly Entry[]): void {
    if (this.applyFetch !== req) return;
    this.applyFetch = undefined;
    // A snapshot may have moved applied meanwhile: then these are old news.
    if (req.lo !== this.rlog.applied + 1) return;
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      if (
        e.index !== req.lo + k ||
        e.term !== this.rlog.term(e.index) ||
        e.index > this.rlog.committed
      ) {
        throw new RaftInvariantError(
          `storage returned ${e.index}@${e.term} for applying at ${req.lo + k}; the log holds ${this.rlog.term(req.lo + k)}`,
        );
      }
    }
    if (entries.length === 0) throw new RaftInvariantError(`no entries in [${req.lo}, ${req.hi})`);
    this.loadedForApply = entries;
  }

  /** Committed entries below memStart are read back from storage before they are applied. */
  private planApplyFetch(): void {
    const log = this.rlog;
    if (this.applyFetch || this.loadedForApply || log.committed <= log.applied) return;
    if (log.applied + 1 >= log.memStart) return;
    const req: FetchRequest = {
      to: this.id,
      lo: log.applied + 1,
      hi: Math.min(log.committed + 1, log.memStart),
      maxBytes: this.cfg.maxApplyBytes,
      term: this.curTerm,
    };
    this.applyFetch = req;
    this.fetches.push(req);
  }

  // ---- outputs ------------------------------------------------------------------

  hasReady(): boolean {
    this.planApplyFetch();
    return (
      this.msgs.length > 0 ||
      this.fetches.length > 0 ||
      this.rlog.lastIndex > this.rlog.stableIndex ||
      (this.rlog.committed > this.rlog.applied &&
        (this.loadedForApply !== undefined || this.rlog.applied + 1 >= this.rlog.memStart)) ||
      this.pendingSnapshot !== undefined ||
      this.pendingCompaction !== undefined ||
      this.readStates.length > 0 ||
      !sameHard(this.hardState(), this.prevHard) ||
      !sameSoft(this.softState(), this.prevSoft)
    );
  }

  /** Collects pending work. Call advance(ready) once it is done, before the next ready(). */
  ready(): Ready {
    this.planApplyFetch();
    const hs = this.hardState();
    const ss = this.softState();
    const entries = this.rlog.unstable();
    const hardChanged = !sameHard(hs, this.prevHard);
    const rd: Ready = {
      softState: sameSoft(ss, this.prevSoft) ? undefined : ss,
      hardState: hardChanged ? hs : undefined,
      snapshot: this.pendingSnapshot,
      entries,
      messages: this.msgs,
      committed: this.rlog.toApply(this.cfg.maxApplyBytes) ?? this.loadedForApply ?? [],
      readStates: this.readStates,
      fetch: this.fetches,
      compacted: this.pendingCompaction,
      mustSync:
        entries.length > 0 ||
        this.pendingSnapshot !== undefined ||
        (hardChanged && (hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote)),
    };
    this.msgs = [];
    this.readStates = [];
    this.fetches = [];
    this.prevSoft = ss;
    return rd;
  }

  advance(rd: Ready): void {
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.snapshot === this.pendingSnapshot) this.pendingSnapshot = undefined;
    if (rd.compacted === this.pendingCompaction) this.pendingCompaction = undefined;
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) {
      this.rlog.stableTo(lastEntry.index, lastEntry.term);
      // The leader counts itself in the quorum at its durable index only.
      if (this.curRole === 'leader' && this.maybeCommit()) this.broadcastAppend();
    }
    const lastApplied = rd.committed[rd.committed.length - 1];
    if (rd.committed === this.loadedForApply) this.loadedForApply = undefined;
    if (lastApplied) this.rlog.appliedTo(lastApplied.index);
    this.rlog.trim(this.cfg.retainBytes, this.cfg.retainEntries);
  }

  hardState(): HardState {
    return { term: this.curTerm, vote: this.votedFor, commit: this.rlog.committed };
  }

  softState(): SoftState {
    return { role: this.curRole, leader: this.leaderId, term: this.curTerm };
  }

  status(): CoreStatus {
    const peers: PeerStatus[] = [];
    if (this.curRole === 'leader') {
      for (const [id, pr] of this.prs) {
        peers.push({
          id,
          match: id === this.id ? this.rlog.stableIndex : pr.match,
          next: pr.next,
          state: pr.state,
          learner: pr.learner,
        });
      }
    }
    return {
      id: this.id,
      role: this.curRole,
      term: this.curTerm,
      leader: this.leaderId,
      commit: this.rlog.committed,
      applied: this.rlog.applied,
      lastIndex: this.rlog.lastIndex,
      firstIndex: this.rlog.snapIndex + 1,
      config: this.curConf,
      peers,
    };
  }

  /** The configuration in force at index (the last one appended at or before it). */
  confAt(index: number): ConfState {
    let conf = this.confHistory[0]!.conf;
    for (const c of this.confHistory) {
      if (c.index > index) break;
      conf = c.conf;
    }
    return conf;
  }

  // ---- roles --------------------------------------------------------------------

  private becomeFollower(term: number, leader: NodeId): void {
    this.reset(term);
    this.curRole = 'follower';
    this.leaderId = leader;
  }

  private becomePreCandidate(): void {
    // Term and vote stay as they are: a pre-vote that fails leaves no trace.
    this.votes = new Map();
    this.curRole = 'preCandidate';
    this.leaderId = NONE;
    this.dropLeaderState();
  }

  private becomeCandidate(): void {
    this.reset(this.curTerm + 1);
    this.votedFor = this.id;
    this.curRole = 'candidate';
  }

  private becomeLeader(): void {
    this.reset(this.curTerm);
    this.curRole = 'leader';
    this.leaderId = this.id;
    this.resetProgress();
    // A no-op of our own term lets us commit (and learn the commit index) at once.
    this.appendAsLeader([
      { index: this.rlog.lastIndex + 1, term: this.curTerm, type: 'noop', data: EMPTY },
    ]);
  }

  private reset(term: number): void {
    if (term !== this.curTerm) {
      this.curTerm = term;
      this.votedFor = NONE;
    }
    this.leaderId = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.random(this.cfg.electionTicks);
    this.votes = new Map();
    this.dropLeaderState();
  }

  private dropLeaderState(): void {
    this.transferee = NONE;
    this.pendingReads = [];
    this.readsBeforeCommit = [];
    this.ackedContext = new Map();
  }

  private resetProgress(): void {
    this.prs.clear();
    for (const id of [...this.curConf.voters, ...this.curConf.learners]) {
      const pr = new Progress(
        this.rlog.lastIndex + 1,
        this.cfg.maxInflightMsgs,
        this.cfg.maxInflightBytes,
        !isVoter(this.curConf, id),
      );
      if (id === this.id) pr.match = this.rlog.lastIndex;
      this.prs.set(id, pr);
    }
  }

  private promotable(): boolean {
    return isVoter(this.curConf, this.id);
  }

  // ---- elections ----------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private hup(force: boolean): void {
    if (this.rlog.committed > this.rlog.applied && this.hasUnappliedConf()) {
      // A configuration change we have not applied may remove us: wait for it.
      return;
    }
    if (this.cfg.preVote && !force) this.runElection(true, false);
    else this.runElection(false, force);
  }

  private hasUnappliedConf(): boolean {
    return this.confHistory.some(
      (c) => c.index > this.rlog.applied && c.index <= this.rlog.committed,
    );
  }

  private runElection(pre: boolean, force: boolean): void {
    if (pre) this.becomePreCandidate();
    else this.becomeCandidate();
    const voteTerm = pre ? this.curTerm + 1 : this.curTerm;
    if (this.poll(this.id, true) === 'won') {
      if (pre) this.runElection(false, force);
      else this.becomeLeader();
      return;
    }
    for (const id of this.curConf.voters) {
      if (id === this.id) continue;
      this.send({
        type: 'vote',
        to: id,
        term: voteTerm,
        pre,
        lastIndex: this.rlog.lastIndex,
        lastTerm: this.rlog.lastTerm(),
        force,
      });
    }
  }

  private poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.curConf.voters) {
      const g = this.votes.get(v);
      if (g === true) yes++;
      else if (g === false) no++;
    }
    const need = majority(this.curConf.voters.length);
    if (yes >= need) return 'won';
    if (no > this.curConf.voters.length - need) return 'lost';
    return 'pending';
  }

  private handleVote(m: VoteMessage): void {
    const canVote =
      this.votedFor === m.from ||
      (this.votedFor === NONE && this.leaderId === NONE) ||
      (m.pre && m.term > this.curTerm);
    if (canVote && this.rlog.isUpToDate(m.lastIndex, m.lastTerm)) {
      this.send({ type: 'voteResp', to: m.from, term: m.term, pre: m.pre, reject: false });
      if (!m.pre) {
        this.electionElapsed = 0;
        this.votedFor = m.from;
      }
    } else {
      this.send({ type: 'voteResp', to: m.from, term: this.curTerm, pre: m.pre, reject: true });
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        break;
      case 'voteResp': {
        if (m.pre !== (this.curRole === 'preCandidate')) return;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.curRole === 'preCandidate') this.runElection(false, false);
          else {
            this.becomeLeader();
          }
        } else if (result === 'lost') {
          this.becomeFollower(this.curTerm, NONE);
        }
        break;
      }
      default:
        break;
    }
  }

  // ---- follower -----------------------------------------------------------------

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleAppend(m);
        break;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleHeartbeat(m);
        break;
      case 'snapshot':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleSnapshot(m);
        break;
      case 'timeoutNow':
        if (this.promotable()) this.hup(true);
        break;
      default:
        break;
    }
  }

  private handleAppend(m: AppendMessage): void {
    const log = this.rlog;
    if (m.prevIndex < log.committed) {
      this.send({
        type: 'appendResp',
        to: m.from,
        term: this.curTerm,
        index: log.committed,
        reject: false,
        hintIndex: 0,
        hintTerm: 0,
      });
      return;
    }
    if (log.matchTerm(m.prevIndex, m.prevTerm)) {
      const lastNew = m.prevIndex + m.entries.length;
      // Skip entries we already hold; append from the first conflict on.
      let k = 0;
      while (k < m.entries.length) {
        const e = m.entries[k]!;
        if (e.index > log.lastIndex || log.term(e.index) !== e.term) break;
        k++;
      }
      if (k < m.entries.length) this.appendToLog(k === 0 ? m.entries : m.entries.slice(k));
      log.commitTo(Math.min(m.commit, lastNew));
      this.send({
        type: 'appendResp',
        to: m.from,
        term: this.curTerm,
        index: lastNew,
        reject: false,
        hintIndex: 0,
        hintTerm: 0,
      });
      return;
    }
    const hintIndex = log.findConflictByTerm(Math.min(m.prevIndex, log.lastIndex), m.prevTerm);
    this.send({
      type: 'appendResp',
      to: m.from,
      term: this.curTerm,
      index: m.prevIndex,
      reject: true,
      hintIndex,
      hintTerm: log.term(hintIndex) ?? 0,
    });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    this.rlog.commitTo(Math.min(m.commit, this.rlog.lastIndex));
    this.send({ type: 'heartbeatResp', to: m.from, term: this.curTerm, context: m.context });
  }

  private handleSnapshot(m: SnapshotMessage): void {
    const meta = m.meta;
    const log = this.rlog;
    if (meta.lastIndex <= log.committed) {
      // Old news.
    } else if (log.matchTerm(meta.lastIndex, meta.lastTerm)) {
      // We already hold the snapshot's entries: just learn that they are committed.
      log.commitTo(meta.lastIndex);
    } else {
      log.restoreSnapshot(meta);
      this.applyFetch = undefined;
      this.loadedForApply = undefined;
      this.confHistory = [{ index: meta.lastIndex, conf: meta.config }];
      this.applyConf(meta.config);
      this.pendingSnapshot = meta;
      this.pendingCompaction = undefined;
    }
    this.send({
      type: 'appendResp',
      to: m.from,
      term: this.curTerm,
      index: log.committed,
      reject: false,
      hintIndex: 0,
      hintTerm: 0,
    });
  }

  // ---- leader -------------------------------------------------------------------

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.curTerm, NONE);
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      this.transferee = NONE;
    }
    for (const [id, pr] of this.prs) {
      if (
        id !== this.id &&
        pr.state === 'snapshot' &&
        ++pr.snapshotTicks >= this.cfg.snapshotTimeoutTicks
      ) {
        this.reportSnapshot(id, false);
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.curConf.voters) {
      const pr = this.prs.get(id);
      if (id === this.id || pr?.recentActive) active++;
    }
    for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
    return active >= majority(this.curConf.voters.length);
  }

  private stepLeader(m: Message): void {
    const pr = this.prs.get(m.from);
    if (!pr || m.from === this.id) return;
    switch (m.type) {
      case 'appendResp':
        pr.recentActive = true;
        if (m.reject) {
          const hint =
            m.hintTerm > 0 ? this.rlog.findConflictByTerm(m.hintIndex, m.hintTerm) : m.hintIndex;
          if (pr.maybeDecrTo(m.index, hint)) {
            if (pr.state === 'replicate') pr.becomeProbe();
            this.sendAppend(m.from, true);
          }
          return;
        }
        {
          const wasPaused = pr.paused();
          if (!pr.maybeUpdate(m.index)) return;
          if (pr.state === 'probe') pr.becomeReplicate();
          else if (pr.state === 'snapshot') {
            if (pr.match >= pr.pendingSnapshot) pr.becomeReplicate();
          } else pr.inflights.freeLE(m.index);
          if (this.maybeCommit()) {
            this.broadcastAppend();
          } else if (wasPaused) {
            this.sendAppend(m.from, true);
          }
          // Keep the pipe full while there is something to send.
          while (this.curRole === 'leader' && this.sendAppend(m.from, false)) {
            // each call sends one more message
          }
          if (m.from === this.transferee && pr.match === this.rlog.lastIndex) {
            this.send({ type: 'timeoutNow', to: m.from, term: this.curTerm });
          }
        }
        return;
      case 'heartbeatResp':
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
        if (pr.match < this.rlog.lastIndex) this.sendAppend(m.from, true);
        if (m.context > 0 && m.context > (this.ackedContext.get(m.from) ?? 0)) {
          this.ackedContext.set(m.from, m.context);
          this.releaseReads();
        }
        return;
      default:
        return;
    }
  }

  private refuseProposal(): ProposeResult | undefined {
    if (this.curRole !== 'leader') return this.refuse('notLeader');
    if (this.transferee !== NONE) return this.refuse('transferring');
    return undefined;
  }

  private refuse(reason: RefusalReason): ProposeResult {
    return { ok: false, reason, leader: this.leaderId };
  }

  private appendAsLeader(entries: Entry[]): void {
    this.appendToLog(entries);
    const self = this.prs.get(this.id);
    if (self) self.maybeUpdate(this.rlog.lastIndex);
    this.maybeCommit();
    this.broadcastAppend();
  }

  /** Appends to the log; configuration entries take effect here, when appended. */
  private appendToLog(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    if (first <= this.rlog.lastIndex) {
      const before = this.confHistory.length;
      while (
        this.confHistory.length > 1 &&
        this.confHistory[this.confHistory.length - 1]!.index >= first
      ) {
        this.confHistory.pop();
      }
      if (this.confHistory.length !== before)
        this.applyConf(this.confHistory[this.confHistory.length - 1]!.conf);
    }
    this.rlog.append(entries);
    for (const e of entries) {
      if (e.type === 'config') {
        const conf = decodeConfState(e.data);
        this.confHistory.push({ index: e.index, conf });
        this.applyConf(conf);
      }
    }
  }

  private applyConf(conf: ConfState): void {
    this.curConf = conf;
    for (const id of [...this.prs.keys()]) if (!isMember(conf, id)) this.prs.delete(id);
    for (const id of [...conf.voters, ...conf.learners]) {
      const learner = !isVoter(conf, id);
      const pr = this.prs.get(id);
      if (pr) pr.learner = learner;
      else {
        const fresh = new Progress(
          this.rlog.lastIndex + 1,
          this.cfg.maxInflightMsgs,
          this.cfg.maxInflightBytes,
          learner,
        );
        if (id === this.id) fresh.match = this.rlog.lastIndex;
        this.prs.set(id, fresh);
      }
    }
    if (this.curRole === 'leader') {
      if (this.transferee !== NONE && !isVoter(conf, this.transferee)) this.transferee = NONE;
      // The quorum changed: both commit and pending reads may move.
      if (this.maybeCommit()) this.broadcastAppend();
      this.releaseReads();
    }
  }

  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.curConf.voters) {
      if (id === this.id) matches.push(this.rlog.stableIndex);
      else matches.push(this.prs.get(id)?.match ?? 0);
    }
    const index = quorumIndex(matches);
    // §5.4.2: only entries of the current term are committed by counting replicas.
    if (index <= this.rlog.committed || this.rlog.term(index) !== this.curTerm) return false;
    this.rlog.commitTo(index);
    this.afterCommit();
    return true;
  }

  private afterCommit(): void {
    if (this.readsBeforeCommit.length > 0) {
      const waiting = this.readsBeforeCommit;
      this.readsBeforeCommit = [];
      for (const ctx of waiting) this.registerRead(ctx);
    }
    const lastConfIndex = this.confHistory[this.confHistory.length - 1]!.index;
    if (!isVoter(this.curConf, this.id) && lastConfIndex <= this.rlog.committed) {
      // We removed (or demoted) ourselves and the change is committed: step down.
      // Followers learn the commit index from the appends this commit triggers.
      this.broadcastAppend();
      // Hand over at once to a voter that holds our whole log, instead of leaving
      // the cluster leaderless for an election timeout.
      const heir = this.curConf.voters.find(
        (id) => this.prs.get(id)?.match === this.rlog.lastIndex,
      );
      if (heir !== undefined) this.send({ type: 'timeoutNow', to: heir, term: this.curTerm });
      this.becomeFollower(this.curTerm, NONE);
    }
  }

  private registerRead(context: number): void {
    this.pendingReads.push({ context, index: this.rlog.committed });
    this.latestReadContext = Math.max(this.latestReadContext, context);
    this.ackedContext.set(this.id, this.latestReadContext);
    if (!this.releaseReads()) this.broadcastHeartbeat();
  }

  /** Serves reads whose context a quorum has acknowledged; true when none is left. */
  private releaseReads(): boolean {
    const voters = this.curConf.voters;
    while (this.pendingReads.length > 0) {
      const read = this.pendingReads[0]!;
      let acks = 0;
      for (const id of voters) if ((this.ackedContext.get(id) ?? 0) >= read.context) acks++;
      if (acks < majority(voters.length)) return false;
      this.readStates.push(read);
      this.pendingReads.shift();
    }
    return true;
  }

  private broadcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id, true);
  }

  private broadcastHeartbeat(): void {
    const context = this.pendingReads.length > 0 ? this.latestReadContext : 0;
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      this.send({
        type: 'heartbeat',
        to: id,
        term: this.curTerm,
        commit: Math.min(pr.match, this.rlog.committed),
        context,
      });
    }
  }

  /**
   * Sends the next append (or a snapshot) to `to`; false when nothing went out (also
   * when the entries must first be read from storage: a fetch is then requested).
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr || pr.paused()) return false;
    const log = this.rlog;
    const prevTerm = log.term(pr.next - 1);
    // Below the compaction point only a snapshot helps.
    if (prevTerm === undefined) return this.sendSnapshot(to, pr);
    if (pr.next < log.memStart) {
      if (!this.cfg.fetchFromStorage) return this.sendSnapshot(to, pr);
      this.requestFetch(to, pr);
      return false;
    }
    const entries = log.slice(pr.next, log.lastIndex + 1, this.cfg.maxMsgBytes)!;
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of entries) bytes += entryBytes(e);
    this.sendEntries(to, pr, entries, bytes);
    return true;
  }

  /** One append of `entries` (which continue the peer's log at pr.next). */
  private sendEntries(to: NodeId, pr: Progress, entries: readonly Entry[], bytes: number): void {
    const prevIndex = pr.next - 1;
    this.send({
      type: 'append',
      to,
      term: this.curTerm,
      prevIndex,
      prevTerm: this.rlog.term(prevIndex)!,
      entries,
      commit: this.rlog.committed,
    });
    if (entries.length > 0) pr.sentEntries(entries[entries.length - 1]!.index, bytes);
    else if (pr.state === 'probe') pr.probeSent = true;
  }

  /** Asks the driver for entries from pr.next that are no longer in memory. */
  private requestFetch(to: NodeId, pr: Progress): void {
    let maxBytes = this.cfg.maxMsgBytes;
    if (pr.state === 'replicate') {
      // Read as much as may be in flight at once, so one read feeds several appends.
      const room = Math.min(
        pr.inflights.freeBytes(),
        this.cfg.maxMsgBytes * pr.inflights.freeSlots(),
      );
      maxBytes = Math.max(maxBytes, room);
    }
    const req: FetchRequest = {
      to,
      lo: pr.next,
      hi: this.rlog.memStart,
      maxBytes,
      term: this.curTerm,
    };
    pr.fetching = req;
    this.fetches.push(req);
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    // A metadata snapshot stands for the compaction point: everything after it is in
    // storage. Otherwise it stands for the applied state: what follows is in memory
    // (or in storage, with fetchFromStorage).
    const index = this.cfg.snapshotAtCompaction ? this.rlog.snapIndex : this.rlog.applied;
    const term = this.rlog.term(index);
    if (term === undefined) throw new RaftInvariantError(`no term for snapshot index ${index}`);
    const meta: SnapshotMeta = { lastIndex: index, lastTerm: term, config: this.confAt(index) };
    pr.becomeSnapshot(index);
    this.send({ type: 'snapshot', to, term: this.curTerm, meta });
    return true;
  }

  // ---- helpers ------------------------------------------------------------------

  private send(m: DistributiveOmit<Message, 'from'>): void {
    (m as unknown as { from: NodeId }).from = this.id;
    this.msgs.push(m as Message);
  }

  /** xorshift32: deterministic per (seed, id). */
  private random(n: number): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return this.rng % n;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const EMPTY = new Uint8Array(0);

function hashId(id: string): number {
  let h = 2166136261;
  for (let k = 0; k < id.length; k++) h = Math.imul(h ^ id.charCodeAt(k), 16777619);
  return h >>> 0;
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader && a.term === b.term;
}

/** The configuration after a single-server change, or undefined when it is invalid. */
export function applyChange(conf: ConfState, change: ConfChange): ConfState | undefined {
  const voters = conf.voters.filter((v) => v !== change.id);
  const learners = conf.learners.filter((v) => v !== change.id);
  const addresses: Record<NodeId, string> = { ...conf.addresses };
  switch (change.type) {
    case 'addLearner':
      if (isMember(conf, change.id) || change.id === NONE) return undefined;
      learners.push(change.id);
      if (change.address !== undefined) addresses[change.id] = change.address;
      break;
    case 'promote':
      if (!conf.learners.includes(change.id)) return undefined;
      voters.push(change.id);
      break;
    case 'remove':
      if (!isMember(conf, change.id)) return undefined;
      if (voters.length === 0) return undefined;
      delete addresses[change.id];
      break;
  }
  return { voters, learners, addresses };
}
