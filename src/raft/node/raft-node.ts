// The driver: owns the tick timer and runs the Ready loop around a pure RaftCore.
// Stages, each in order:
//   persist  install a received snapshot, write entries and hard state (fsync only
//            when Ready.mustSync; a commit-only hard state is written without it),
//   send     messages (a leader may send its appends before its own fsync, see
//            leaderSendsBeforeSync),
//   apply    committed entries, in its own stage: the next Ready is persisted while
//            the state machine applies, in order and exactly once,
//   fetch    storage reads for lagging followers, concurrent with everything else.
import {
  NONE,
  RaftCore,
  bootstrapState,
  validateConfState,
  validateRaftConfig,
  type ConfChange,
  type ConfState,
  type CoreStatus,
  type Entry,
  type FetchRequest,
  type HardState,
  type Message,
  type NodeId,
  type ProposeResult,
  type RaftConfig,
  type Ready,
  type RestoreState,
  type Role,
  type SnapshotMeta,
  type SnapshotMessage,
} from '../core/index.js';
import {
  ConfChangeInProgressError,
  InvalidConfChangeError,
  LeadershipLostError,
  LeadershipTransferFailedError,
  LeadershipTransferInProgressError,
  NotLeaderError,
  RaftStorageError,
  ShutdownError,
  SnapshotTransferError,
} from './errors.js';
import type { SnapshotAck, SnapshotChunk, WireMessage } from './messages.js';
import type {
  HardStateStorage,
  LogStorage,
  MetaSnapshotPort,
  SnapshotPort,
  SnapshotSink,
  Transport,
} from './ports.js';
export interface RaftNodeOptions {
  readonly id: NodeId;
  readonly logStorage: LogStorage;
  readonly hardStateStorage: HardStateStorage;
  /**
   * How snapshots travel: a streamed SnapshotPort (a generic state machine), or a
   * MetaSnapshotPort (the log is the state: a snapshot is the compaction point plus a
   * small blob). Default: metadata snapshots with an empty blob.
   */
  readonly snapshots?: SnapshotPort | MetaSnapshotPort;
  readonly transport: Transport;
  /**
   * Applies committed entries in order, each exactly once per process lifetime
   * (noop and config entries included, so that indexes stay dense). Runs in its own
   * stage: the node keeps persisting and replicating while it runs.
   */
  readonly apply: (entries: readonly Entry[]) => void | Promise<void>;
  /** The last index the caller's state machine has applied (after a restart). */
  readonly applied?: number;
  /**
   * The initial configuration of a brand-new cluster. The first start on empty storage
   * persists it (LogStorage.installSnapshot at index 0); ignored when storage has state.
   */
  readonly bootstrap?: ConfState;
  /** Milliseconds per tick (default 100); 0 disables the timer (call tick() yourself). */
  readonly tickMs?: number;
  /**
   * Core settings. fetchFromStorage defaults to true here (a lagging follower is fed
   * from LogStorage.entries); snapshotAtCompaction follows the snapshot port's kind.
   */
  readonly raft?: Omit<RaftConfig, 'id'>;
  /**
   * A leader sends its appends before its own entries are durable and counts itself
   * in the quorum at its durable index only (etcd's asynchronous storage writes).
   * Default false: persist, then send.
   */
  readonly leaderSendsBeforeSync?: boolean;
  /** Snapshot chunks sent and not yet acknowledged, per follower (default 4). */
  readonly snapshotWindow?: number;
  /** Ticks without an acknowledgement before unacknowledged chunks are resent (default 3). */
  readonly snapshotResendTicks?: number;
}

export interface LeaderChange {
  readonly leader: NodeId | undefined;
  readonly term: number;
  readonly role: Role;
}

export interface NodeStatus extends CoreStatus {
  readonly closed: boolean;
}

interface Deferred<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

interface PendingProposal extends Deferred<number> {
  readonly index: number;
  readonly term: number;
  settled: boolean;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** The two snapshot kinds behind one face. */
interface SnapshotMode {
  readonly metadata: boolean;
  read(meta: SnapshotMeta): AsyncIterable<Uint8Array>;
  receive(meta: SnapshotMeta): SnapshotSink;
  /** Installs a staged snapshot: crash-safe as a whole (see the ports). */
  install(meta: SnapshotMeta): Promise<void>;
}

interface IncomingSnapshot {
  readonly from: NodeId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly sink: SnapshotSink;
  /** Bytes accepted (queued for the sink). */
  offset: number;
  /** Bytes written to the sink: what acks report. */
  written: number;
  done: boolean;
  /** Chunk writes, one after another. */
  chain: Promise<void>;
  failed: boolean;
}

interface OutgoingSnapshot {
  readonly to: NodeId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  /** Sent, not acknowledged, in order. */
  unacked: { offset: number; data: Uint8Array; done: boolean }[];
  acked: number;
  idleTicks: number;
  resends: number;
  /** The follower reported a gap at this offset; the window from there was resent. */
  gapAt: number | undefined;
  /** Wakes the sender when an ack frees room in the window. */
  wake: (() => void) | undefined;
  finished: Deferred<void>;
  over: boolean;
}

const MAX_SNAPSHOT_RESENDS = 10;

export class RaftNode implements AsyncDisposable {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly opts: RaftNodeOptions;
  private readonly snaps: SnapshotMode;
  private closed = false;
  private failure: Error | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly unlisten: () => void;
  private wake: (() => void) | undefined;
  private readonly loopDone: Promise<void>;
  private storageLast: number;
  /** Applied by the state machine. */
  private appliedIndex: number;
  /** Handed to the apply stage. */
  private handedOff: number;
  private applyChain: Promise<void> = Promise.resolve();
  private applyQueuedBytes = 0;
  private readonly maxApplyQueueBytes: number;
  private savedHard: HardState | undefined;
  /** Proposals by ascending index, from head on. */
  private pending: PendingProposal[] = [];
  private pendingHead = 0;
  private batch: { data: Uint8Array; deferred: Deferred<number>; signal?: AbortSignal }[] = [];
  private flushScheduled = false;
  private readSeq = 0;
  private readonly reads = new Map<number, Deferred<number>>();
  /** Reads confirmed by the leader, waiting for the state machine to reach their index. */
  private readsAwaitingApply: { index: number; deferred: Deferred<number> }[] = [];
  private readonly leaderListeners = new Set<(change: LeaderChange) => void>();
  private readonly confListeners = new Set<(conf: ConfState) => void>();
  private readonly failureListeners = new Set<(err: RaftStorageError) => void>();
  private lastLeader: NodeId = NONE;
  private lastConf: ConfState;
  private transfer: { target: NodeId; ticksLeft: number; deferred: Deferred<void> } | undefined;
  private incoming: IncomingSnapshot | undefined;
  private readonly outgoing = new Map<NodeId, OutgoingSnapshot>();

  private constructor(
    opts: RaftNodeOptions,
    core: RaftCore,
    snaps: SnapshotMode,
    storageLast: number,
    hard: HardState | undefined,
  ) {
    this.id = opts.id;
    this.opts = opts;
    this.core = core;
    this.snaps = snaps;
    this.storageLast = storageLast;
    this.savedHard = hard;
    this.appliedIndex = core.log.applied;
    this.handedOff = core.log.applied;
    this.lastConf = core.conf;
    this.maxApplyQueueBytes = opts.raft?.maxApplyBytes ?? 64 * 1024 * 1024;
    this.unlisten = opts.transport.listen((m) => this.receive(m));
    const tickMs = opts.tickMs ?? 100;
    if (tickMs > 0) this.timer = setInterval(() => this.tick(), tickMs);
    this.loopDone = this.loop();
  }

  /** Loads the stored state and starts the node. */
  static async start(opts: RaftNodeOptions): Promise<RaftNode> {
    const port: SnapshotPort | MetaSnapshotPort = opts.snapshots ?? {
      kind: 'metadata',
      blob: () => new Uint8Array(0),
    };
    const metadata = isMetaPort(port);
    const config: RaftConfig = {
      ...opts.raft,
      id: opts.id,
      fetchFromStorage: opts.raft?.fetchFromStorage ?? true,
      snapshotAtCompaction: metadata,
    };
    validateRaftConfig(config);
    if (opts.bootstrap) validateConfState(opts.bootstrap);
    const snaps = isMetaPort(port)
      ? metaMode(port, opts.logStorage)
      : streamMode(port, opts.logStorage);
    const hard = await opts.hardStateStorage.load();
    let stored = await opts.logStorage.load();
    const empty =
      hard === undefined &&
      stored.lastIndex === 0 &&
      stored.snapshot.lastIndex === 0 &&
      stored.snapshot.config.voters.length === 0 &&
      stored.snapshot.config.learners.length === 0;
    if (empty && opts.bootstrap && opts.bootstrap.voters.length > 0) {
      // The founding configuration is the log's starting point (index 0), written in one
      // crash-safe step before anything else: a founding member that restarts, with or
      // without the bootstrap option, finds it in storage. A crash before it completes
      // leaves the storage empty, and the next start writes it again.
      await opts.logStorage.installSnapshot({ lastIndex: 0, lastTerm: 0, config: opts.bootstrap });
      stored = await opts.logStorage.load();
    }
    let state: RestoreState;
    if (empty && stored.snapshot.config.voters.length === 0) {
      state = bootstrapState({ voters: [], learners: [], addresses: {} });
    } else {
      const snapIndex = stored.snapshot.lastIndex;
      let applied = opts.applied ?? snapIndex;
      if (applied < snapIndex) {
        // The log is compacted past what the state machine holds: an install that a
        // crash cut short after its commit point (the log's install). Finish it.
        if (!isMetaPort(port)) await port.install(stored.snapshot);
        applied = snapIndex;
      }
      if (applied > stored.lastIndex) {
        throw new RaftStorageError(
          `the caller applied ${applied} but the log ends at ${stored.lastIndex}`,
        );
      }
      state = {
        hardState: hard ?? { term: 0, vote: NONE, commit: 0 },
        snapshot: stored.snapshot,
        lastIndex: stored.lastIndex,
        termRuns: stored.termRuns,
        configs: stored.configs,
        // With storage reads the core reads what it needs (to apply, to replicate) in
        // bounded batches; otherwise the whole unapplied tail is loaded now.
        entries: config.fetchFromStorage
          ? []
          : await opts.logStorage.entries(applied + 1, stored.lastIndex + 1),
        applied,
      };
    }
    const core = new RaftCore(config, state);
    return new RaftNode(opts, core, snaps, stored.lastIndex, hard);
  }

  // ---- public API ---------------------------------------------------------------

  /** Resolves with the entry's index once it is committed and applied here. */
  propose(data: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<number> {
    const refusal = this.refuseEarly(options.signal);
    if (refusal) return Promise.reject(refusal);
    return new Promise<number>((resolve, reject) => {
      this.batch.push({ data, deferred: { resolve, reject }, signal: options.signal });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  /**
   * Confirms leadership with a quorum and resolves with a commit index once the local
   * state machine has applied it: reads of local state are then linearizable.
   */
  readIndex(options: { signal?: AbortSignal } = {}): Promise<number> {
    const refusal = this.refuseEarly(options.signal);
    if (refusal) return Promise.reject(refusal);
    const context = ++this.readSeq;
    const res = this.core.readIndex(context);
    if (!res.ok) return Promise.reject(this.refusalError(res));
    this.notify();
    return new Promise<number>((resolve, reject) => {
      const deferred = withAbort({ resolve, reject }, options.signal, () =>
        this.reads.delete(context),
      );
      this.reads.set(context, deferred);
    });
  }

  addLearner(id: NodeId, address?: string): Promise<number> {
    return this.changeConf({ type: 'addLearner', id, address });
  }

  promote(id: NodeId): Promise<number> {
    return this.changeConf({ type: 'promote', id });
  }

  /**
   * Removes a member. A leader asked to remove itself first hands leadership to the
   * most up-to-date other voter and then rejects with NotLeaderError naming it: the
   * new leader performs the removal (so the cluster is never left without a leader
   * that knows it must step down).
   */
  async removeNode(id: NodeId): Promise<number> {
    if (id === this.id && this.core.role === 'leader' && !this.closed) {
      const heir = this.core
        .status()
        .peers.filter((p) => p.id !== this.id && !p.learner)
        .sort((a, b) => b.match - a.match)[0];
      if (heir) {
        await this.transferLeadership(heir.id);
        throw this.notLeader();
      }
    }
    return this.changeConf({ type: 'remove', id });
  }

  /** Resolves once `target` leads; rejects when it did not take over in time. */
  transferLeadership(target: NodeId): Promise<void> {
    const refusal = this.refuseEarly(undefined);
    if (refusal) return Promise.reject(refusal);
    if (this.transfer) return Promise.reject(new LeadershipTransferInProgressError());
    const res = this.core.transferLeadership(target);
    if (!res.ok) {
      return Promise.reject(
        res.reason === 'invalidConf'
          ? new InvalidConfChangeError(`${target} is not a voter`)
          : this.refusalError(res),
      );
    }
    if (target === this.id) return Promise.resolve();
    this.notify();
    return new Promise<void>((resolve, reject) => {
      const ticks = 2 * (this.opts.raft?.electionTicks ?? 10);
      this.transfer = { target, ticksLeft: ticks, deferred: { resolve, reject } };
    });
  }

  /** The state machine is stable up to `index`: the log may drop entries up to there. */
  compact(index: number): SnapshotMeta | undefined {
    if (this.closed) return undefined;
    const meta = this.core.compact(index);
    if (meta) this.notify();
    return meta;
  }

  /** Starts an election now (e.g. a single node that should not wait a timeout). */
  campaign(): void {
    if (this.closed) return;
    this.core.campaign();
    this.notify();
  }

  /** For transports: `id` could not be reached; stop streaming appends to it and probe. */
  reportUnreachable(id: NodeId): void {
    if (this.closed) return;
    this.core.reportUnreachable(id);
    this.notify();
  }

  /**
   * For transports that move snapshots themselves: the snapshot to `id` was delivered
   * (ok) or lost. The driver's own chunked streams report this by themselves.
   */
  reportSnapshot(id: NodeId, ok: boolean): void {
    if (this.closed) return;
    this.core.reportSnapshot(id, ok);
    this.notify();
  }

  tick(): void {
    if (this.closed) return;
    this.core.tick();
    if (this.transfer && --this.transfer.ticksLeft <= 0) {
      const t = this.transfer;
      this.transfer = undefined;
      t.deferred.reject(new LeadershipTransferFailedError(`${t.target} did not take over in time`));
    }
    for (const out of this.outgoing.values()) this.tickStream(out);
    this.notify();
  }

  status(): NodeStatus {
    return { ...this.core.status(), applied: this.appliedIndex, closed: this.closed };
  }

  /** Calls `listener` whenever the known leader (or this node's role) changes. */
  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  /**
   * Calls `listener` with the configuration in force (voters, learners, addresses)
   * whenever it changes. A configuration takes effect when its entry is appended, so
   * it may still be rolled back (the listener then hears the previous one again).
   */
  onConfChange(listener: (conf: ConfState) => void): () => void {
    this.confListeners.add(listener);
    return () => this.confListeners.delete(listener);
  }

  /**
   * Calls `listener` once if the node stops after a storage failure (fail-stop: its
   * durable state is intact, a restart resumes from it). The process hosting the node
   * should then stop too, or it lingers as a member that never votes again.
   */
  onFailure(listener: (err: RaftStorageError) => void): () => void {
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (!this.closed) this.shutdown(new ShutdownError());
    await this.loopDone;
    await this.applyChain.catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- internals ----------------------------------------------------------------

  private refuseEarly(signal: AbortSignal | undefined): Error | undefined {
    if (this.closed) return new ShutdownError(undefined, { cause: this.failure });
    if (signal?.aborted) return abortReason(signal);
    if (this.core.role !== 'leader') return this.notLeader();
    return undefined;
  }

  private notLeader(): NotLeaderError {
    const leader = this.core.leader;
    return new NotLeaderError(
      leader || undefined,
      leader ? this.core.conf.addresses[leader] : undefined,
    );
  }

  private refusalError(res: Extract<ProposeResult, { ok: false }>): Error {
    switch (res.reason) {
      case 'notLeader':
        return this.notLeader();
      case 'transferring':
        return new LeadershipTransferInProgressError();
      case 'confPending':
        return new ConfChangeInProgressError();
      case 'invalidConf':
        return new InvalidConfChangeError(
          'the configuration change is not valid for the current configuration',
        );
    }
  }

  private changeConf(change: ConfChange): Promise<number> {
    const refusal = this.refuseEarly(undefined);
    if (refusal) return Promise.reject(refusal);
    if (change.id === NONE)
      return Promise.reject(new InvalidConfChangeError('a node id must not be empty'));
    const res = this.core.proposeConfChange(change);
    if (!res.ok) return Promise.reject(this.refusalError(res));
    this.notify();
    return new Promise<number>((resolve, reject) => {
      this.track(res.index, res.term, { resolve, reject }, undefined);
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0) return;
    if (this.closed) {
      for (const p of batch)
        p.deferred.reject(new ShutdownError(undefined, { cause: this.failure }));
      return;
    }
    const live = batch.filter((p) => {
      if (!p.signal?.aborted) return true;
      p.deferred.reject(abortReason(p.signal));
      return false;
    });
    if (live.length === 0) return;
    const res = this.core.propose(live.map((p) => p.data));
    if (!res.ok) {
      const err = this.refusalError(res);
      for (const p of live) p.deferred.reject(err);
      return;
    }
    for (let k = 0; k < live.length; k++)
      this.track(res.index + k, res.term, live[k]!.deferred, live[k]!.signal);
    this.notify();
  }

  private track(
    index: number,
    term: number,
    deferred: Deferred<number>,
    signal: AbortSignal | undefined,
  ): void {
    const p: PendingProposal = {
      index,
      term,
      settled: false,
      resolve: deferred.resolve,
      reject: deferred.reject,
    };
    if (signal) {
      p.signal = signal;
      p.onAbort = () => {
        if (p.settled) return;
        p.settled = true;
        p.reject(abortReason(signal));
      };
      signal.addEventListener('abort', p.onAbort, { once: true });
    }
    this.pending.push(p);
  }

  private settle(p: PendingProposal, err: Error | undefined): void {
    if (p.settled) return;
    p.settled = true;
    if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
    if (err) p.reject(err);
    else p.resolve(p.index);
  }

  private notify(): void {
    const w = this.wake;
    if (w) {
      this.wake = undefined;
      w();
    }
  }

  private receive(m: WireMessage): void {
    if (this.closed || m.to !== this.id || m.from === NONE) return;
    if (m.type === 'snapshotChunk') {
      this.receiveChunk(m);
      return;
    }
    if (m.type === 'snapshotAck') {
      this.receiveAck(m);
      return;
    }
    try {
      this.core.step(m);
    } catch (err) {
      this.fail(asError(err));
      return;
    }
    this.notify();
  }

  // ---- snapshots: receiving -------------------------------------------------------

  private receiveChunk(c: SnapshotChunk): void {
    let inc = this.incoming;
    const same =
      inc !== undefined &&
      inc.from === c.from &&
      inc.term === c.term &&
      inc.meta.lastIndex === c.meta.lastIndex;
    if (!same) {
      // Only the start of a stream opens a transfer; anything else is from one we dropped.
      if (c.offset !== 0 || c.term < this.core.term) return;
      if (inc) this.dropIncoming(inc, new SnapshotTransferError('superseded by a newer snapshot'));
      inc = {
        from: c.from,
        term: c.term,
        meta: c.meta,
        sink: this.snaps.receive(c.meta),
        offset: 0,
        written: 0,
        done: false,
        chain: Promise.resolve(),
        failed: false,
      };
      this.incoming = inc;
    }
    const cur = inc!;
    if (cur.failed) return;
    let data = c.data;
    if (c.offset < cur.offset && c.offset + data.byteLength > cur.offset && !cur.done) {
      // A restarted stream whose chunk straddles what we kept: take the new part.
      data = data.subarray(cur.offset - c.offset);
    } else if (c.offset < cur.offset || cur.done) {
      // A duplicate: the leader missed our acks (or restarted the same transfer). Say
      // what is written, so that it moves on.
      this.sendAck(cur, cur.written);
      return;
    } else if (c.offset > cur.offset) {
      // A gap: a chunk was lost. Say what comes next; the leader resends from there.
      this.sendAck(cur, cur.offset);
      return;
    }
    cur.offset += data.byteLength;
    if (c.done) cur.done = true;
    cur.chain = cur.chain.then(async () => {
      if (cur.failed) return;
      await cur.sink.write(data);
      cur.written += data.byteLength;
      if (c.done) await cur.sink.finish();
      if (cur.failed || this.closed) return;
      this.sendAck(cur, cur.written);
      if (!c.done) return;
      if (this.incoming === cur) this.incoming = undefined;
      const msg: SnapshotMessage = {
        type: 'snapshot',
        from: c.from,
        to: c.to,
        term: c.term,
        meta: c.meta,
      };
      this.core.step(msg);
      this.notify();
    });
    cur.chain.catch((err: unknown) => this.dropIncoming(cur, asError(err)));
  }

  /** Acknowledges [0, offset): written to the sink, or (a gap) accepted and queued. */
  private sendAck(inc: IncomingSnapshot, offset: number): void {
    const done = inc.done && inc.written === inc.offset;
    this.opts.transport.send({
      type: 'snapshotAck',
      from: this.id,
      to: inc.from,
      term: inc.term,
      lastIndex: inc.meta.lastIndex,
      offset,
      done,
    });
  }

  private dropIncoming(inc: IncomingSnapshot, reason: Error): void {
    if (inc.failed) return;
    inc.failed = true;
    if (this.incoming === inc) this.incoming = undefined;
    // The leader notices (no acks) and sends a fresh one.
    inc.sink.abort(reason).catch((err: unknown) => this.fail(asError(err)));
  }

  // ---- snapshots: sending ---------------------------------------------------------

  private startStream(m: SnapshotMessage): void {
    const old = this.outgoing.get(m.to);
    if (old) this.endStream(old, new SnapshotTransferError('superseded by a newer snapshot'));
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const finished = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const out: OutgoingSnapshot = {
      to: m.to,
      term: m.term,
      meta: m.meta,
      unacked: [],
      acked: 0,
      idleTicks: 0,
      resends: 0,
      gapAt: undefined,
      wake: undefined,
      finished: { resolve, reject },
      over: false,
    };
    this.outgoing.set(m.to, out);
    finished.then(
      () => this.snapshotOutcome(out, true),
      () => this.snapshotOutcome(out, false),
    );
    // The snapshot stands for the state after meta.lastIndex, which is what the apply
    // stage has handed over when this message is sent: start reading in that stage,
    // after those entries and before any later ones (the first next() captures it).
    const started = new Promise<{
      it: AsyncIterator<Uint8Array>;
      first: Promise<IteratorResult<Uint8Array>>;
    }>((resolve, reject) => {
      this.applyChain = this.applyChain.then(() => {
        try {
          const it = this.snaps.read(m.meta)[Symbol.asyncIterator]();
          resolve({ it, first: it.next() });
        } catch (err) {
          reject(asError(err));
        }
      });
    });
    started
      .then(({ it, first }) => this.pump(out, it, first))
      .catch((err: unknown) => this.endStream(out, asError(err)));
  }

  private snapshotOutcome(out: OutgoingSnapshot, ok: boolean): void {
    if (this.closed || this.core.term !== out.term) return;
    // A stream superseded by a newer one to the same peer: the core waits on that one.
    if (this.outgoing.has(out.to)) return;
    this.core.reportSnapshot(out.to, ok);
    this.notify();
  }

  /** Reads chunks and sends them while the window has room. */
  private async pump(
    out: OutgoingSnapshot,
    it: AsyncIterator<Uint8Array>,
    first: Promise<IteratorResult<Uint8Array>>,
  ): Promise<void> {
    const window = this.opts.snapshotWindow ?? 4;
    let offset = 0;
    let prev: Uint8Array | undefined;
    const emit = async (data: Uint8Array, done: boolean): Promise<void> => {
      if (!done && offset + data.byteLength <= out.acked) {
        // The follower kept this part of an earlier stream of the same snapshot.
        offset += data.byteLength;
        return;
      }
      while (!out.over && out.unacked.length >= window) {
        await new Promise<void>((resolve) => (out.wake = resolve));
      }
      if (out.over) return;
      const chunk = { offset, data, done };
      out.unacked.push(chunk);
      this.sendChunk(out, chunk);
      offset += data.byteLength;
    };
    // Hold one chunk back so that the last one can carry `done`.
    try {
      for (let r = await first; !r.done; r = await it.next()) {
        if (out.over) return;
        if (this.closed || this.core.term !== out.term) {
          this.endStream(out, new LeadershipLostError('snapshot stream abandoned'));
          return;
        }
        if (prev) await emit(prev, false);
        prev = r.value;
      }
    } finally {
      if (out.over) await it.return?.();
    }
    await emit(prev ?? new Uint8Array(0), true);
  }

  private sendChunk(
    out: OutgoingSnapshot,
    c: { offset: number; data: Uint8Array; done: boolean },
  ): void {
    this.opts.transport.send({
      type: 'snapshotChunk',
      from: this.id,
      to: out.to,
      term: out.term,
      meta: out.meta,
      offset: c.offset,
      data: c.data,
      done: c.done,
    });
  }

  private receiveAck(a: SnapshotAck): void {
    const out = this.outgoing.get(a.from);
    if (!out || out.term !== a.term || out.meta.lastIndex !== a.lastIndex) return;
    if (a.done) {
      this.endStream(out, undefined);
      return;
    }
    if (a.offset < out.acked) return;
    if (a.offset > out.acked) {
      out.acked = a.offset;
      out.idleTicks = 0;
      out.resends = 0;
      this.core.reportSnapshotProgress(out.to);
    }
    // Chunks wholly below the ack are done with, whether this ack is new or repeats
    // one (a follower that kept part of an earlier stream of this snapshot answers
    // every chunk below its offset with that offset; the pump skips the rest).
    let freed = false;
    while (out.unacked.length > 0) {
      const c = out.unacked[0]!;
      if (c.offset + c.data.byteLength > a.offset) break;
      out.unacked.shift();
      freed = true;
    }
    if (freed) {
      const w = out.wake;
      out.wake = undefined;
      w?.();
    } else if (
      out.unacked.length > 0 &&
      out.unacked[0]!.offset <= a.offset &&
      out.gapAt !== a.offset
    ) {
      // The follower is waiting at a.offset: that chunk was lost, and the follower
      // dropped the ones after it. Resend the window from there, once per gap (each
      // later chunk of the window repeats the same answer).
      out.gapAt = a.offset;
      for (const c of out.unacked) this.sendChunk(out, c);
    }
  }

  private resend(out: OutgoingSnapshot): void {
    out.resends++;
    out.idleTicks = 0;
    out.gapAt = undefined;
    for (const c of out.unacked) this.sendChunk(out, c);
  }

  private tickStream(out: OutgoingSnapshot): void {
    if (this.core.term !== out.term || this.core.role !== 'leader') {
      this.endStream(out, new LeadershipLostError('snapshot stream abandoned'));
      return;
    }
    if (out.unacked.length === 0) return;
    if (++out.idleTicks < (this.opts.snapshotResendTicks ?? 3)) return;
    if (out.resends >= MAX_SNAPSHOT_RESENDS) {
      this.endStream(
        out,
        new SnapshotTransferError(`${out.to} stopped acknowledging snapshot chunks`),
      );
      return;
    }
    this.resend(out);
  }

  private endStream(out: OutgoingSnapshot, err: Error | undefined): void {
    if (out.over) return;
    out.over = true;
    if (this.outgoing.get(out.to) === out) this.outgoing.delete(out.to);
    const w = out.wake;
    out.wake = undefined;
    w?.();
    if (err) out.finished.reject(err);
    else out.finished.resolve();
  }

  // ---- the Ready loop -------------------------------------------------------------

  private async loop(): Promise<void> {
    let turns = 0;
    let lastYield = performance.now();
    while (!this.closed) {
      if (!this.core.hasReady()) {
        turns = 0;
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      // With in-memory ports every await resolves at once, and nodes wake each other
      // in microtasks: let timers and I/O run every 64 turns and every 10 ms.
      if (++turns % 64 === 0 || performance.now() - lastYield > 10) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
        if (this.closed) return;
      }
      if (this.applyQueuedBytes > this.maxApplyQueueBytes) {
        // Backpressure: the state machine is behind by more than maxApplyBytes.
        await this.applyChain.catch(() => undefined);
        if (this.closed) return;
      }
      const rd = this.core.ready();
      try {
        await this.handle(rd);
      } catch (err) {
        this.fail(asError(err));
        return;
      }
      if (this.closed) return;
      try {
        this.core.advance(rd);
      } catch (err) {
        this.fail(asError(err));
        return;
      }
      this.announceConf();
    }
  }

  private async handle(rd: Ready): Promise<void> {
    const { logStorage, hardStateStorage } = this.opts;
    for (const f of rd.fetch) this.startFetch(f);
    const prev = this.savedHard;
    const termOrVote =
      rd.hardState !== undefined &&
      (prev === undefined || rd.hardState.term !== prev.term || rd.hardState.vote !== prev.vote);
    // A leader's appends and heartbeats depend on no state of this Ready except its
    // entries, which the leader counts only once durable: they may go first.
    const early =
      this.opts.leaderSendsBeforeSync === true &&
      this.core.role === 'leader' &&
      !termOrVote &&
      rd.snapshot === undefined;
    if (early) this.sendAll(rd.messages);
    if (rd.snapshot) {
      // Entries before the snapshot finish applying first: the order holds.
      await this.applyChain;
      await this.snaps.install(rd.snapshot);
      this.storageLast = rd.snapshot.lastIndex;
      this.appliedIndex = rd.snapshot.lastIndex;
      this.handedOff = rd.snapshot.lastIndex;
      this.releaseReads();
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      if (first <= this.storageLast) await logStorage.truncateSuffix(first);
      await logStorage.append(rd.entries, { sync: rd.mustSync });
      this.storageLast = rd.entries[rd.entries.length - 1]!.index;
    }
    if (rd.hardState) {
      await hardStateStorage.save(rd.hardState, { sync: termOrVote });
      this.savedHard = rd.hardState;
    }
    if (this.closed) return;
    if (!early) this.sendAll(rd.messages);
    if (rd.committed.length > 0) this.enqueueApply(rd.committed);
    for (const rs of rd.readStates) {
      const d = this.reads.get(rs.context);
      if (!d) continue;
      this.reads.delete(rs.context);
      this.readsAwaitingApply.push({ index: rs.index, deferred: d });
    }
    this.releaseReads();
    if (rd.compacted) await logStorage.compactPrefix(rd.compacted);
    if (rd.softState) this.roleChanged(rd.softState.role, rd.softState.leader, rd.softState.term);
  }

  private sendAll(messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.type === 'snapshot') this.startStream(m);
      else this.opts.transport.send(m);
    }
  }

  private startFetch(req: FetchRequest): void {
    this.opts.logStorage.entries(req.lo, req.hi, { maxBytes: req.maxBytes }).then(
      (entries) => {
        if (this.closed) return;
        try {
          this.core.entriesLoaded(req, entries);
        } catch (err) {
          this.fail(asError(err));
          return;
        }
        this.notify();
      },
      (err: unknown) => {
        // Compacted meanwhile, or a read error: the core retries, or sends a snapshot
        // (a failed read of our own committed entries stops the node).
        if (this.closed) return;
        try {
          this.core.fetchFailed(req);
        } catch (invariant) {
          this.fail(new RaftStorageError(asError(invariant).message, { cause: err }));
          return;
        }
        this.notify();
      },
    );
  }

  // ---- the apply stage ------------------------------------------------------------

  private enqueueApply(entries: readonly Entry[]): void {
    let bytes = 0;
    for (const e of entries) bytes += e.data.byteLength;
    this.applyQueuedBytes += bytes;
    this.handedOff = entries[entries.length - 1]!.index;
    this.applyChain = this.applyChain.then(async () => {
      if (this.closed) return;
      try {
        await this.opts.apply(entries);
      } catch (err) {
        this.fail(asError(err));
        throw err;
      } finally {
        this.applyQueuedBytes -= bytes;
      }
      this.appliedIndex = entries[entries.length - 1]!.index;
      this.settleApplied(entries);
      this.releaseReads();
    });
    // Failures stop the node (above); keep the chain usable for close().
    this.applyChain = this.applyChain.catch(() => undefined);
  }

  private releaseReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const ready = this.readsAwaitingApply.filter((r) => r.index <= this.appliedIndex);
    if (ready.length === 0) return;
    this.readsAwaitingApply = this.readsAwaitingApply.filter((r) => r.index > this.appliedIndex);
    for (const r of ready) r.deferred.resolve(r.index);
  }

  private settleApplied(entries: readonly Entry[]): void {
    const last = entries[entries.length - 1]!.index;
    const first = entries[0]!.index;
    while (this.pendingHead < this.pending.length) {
      const p = this.pending[this.pendingHead]!;
      if (p.index > last) break;
      if (p.index >= first) {
        const e = entries[p.index - first]!;
        this.settle(p, e.term === p.term ? undefined : new LeadershipLostError());
      } else {
        this.settle(p, new LeadershipLostError());
      }
      this.pendingHead++;
    }
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
  }

  private roleChanged(role: Role, leader: NodeId, term: number): void {
    if (role !== 'leader') {
      // Our proposals and reads may still commit under the next leader, or not. Those
      // already handed to the apply stage are settled there, by their term.
      this.rejectPending(() => new LeadershipLostError(), this.handedOff);
    }
    if (this.transfer && leader === this.transfer.target) {
      this.transfer.deferred.resolve();
      this.transfer = undefined;
    }
    if (leader !== this.lastLeader || role === 'leader') {
      this.lastLeader = leader;
      const change: LeaderChange = { leader: leader || undefined, term, role };
      for (const l of this.leaderListeners) l(change);
    }
  }

  private announceConf(): void {
    const conf = this.core.conf;
    if (conf === this.lastConf) return;
    this.lastConf = conf;
    for (const l of this.confListeners) l(conf);
  }

  /** Rejects proposals above `keepUpTo` (they are not in the apply stage) and unconfirmed reads. */
  private rejectPending(error: () => Error, keepUpTo: number): void {
    const kept: PendingProposal[] = [];
    for (let k = this.pendingHead; k < this.pending.length; k++) {
      const p = this.pending[k]!;
      if (p.index <= keepUpTo && !p.settled) kept.push(p);
      else this.settle(p, error());
    }
    this.pending = kept;
    this.pendingHead = 0;
    for (const d of this.reads.values()) d.reject(error());
    this.reads.clear();
  }

  private fail(err: Error): void {
    if (this.closed) return;
    const failure = new RaftStorageError('a storage port failed; the node stopped', { cause: err });
    this.failure = failure;
    this.shutdown(
      new ShutdownError('the raft node stopped after a storage failure', { cause: failure }),
    );
    for (const l of this.failureListeners) l(failure);
  }

  private shutdown(reason: ShutdownError): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.unlisten();
    this.rejectPending(() => reason, -1);
    for (const r of this.readsAwaitingApply) r.deferred.reject(reason);
    this.readsAwaitingApply = [];
    for (const p of this.batch) p.deferred.reject(reason);
    this.batch = [];
    if (this.transfer) this.transfer.deferred.reject(reason);
    this.transfer = undefined;
    if (this.incoming) this.dropIncoming(this.incoming, reason);
    for (const out of [...this.outgoing.values()]) this.endStream(out, reason);
    this.notify();
  }
}

function isMetaPort(port: SnapshotPort | MetaSnapshotPort): port is MetaSnapshotPort {
  return 'kind' in port && port.kind === 'metadata';
}

/** A streamed snapshot: the log's install is the commit point, the state machine's follows. */
function streamMode(port: SnapshotPort, log: LogStorage): SnapshotMode {
  return {
    metadata: false,
    read: (meta) => port.read(meta),
    receive: (meta) => port.receive(meta),
    install: async (meta) => {
      await log.installSnapshot(meta);
      await port.install(meta);
    },
  };
}

/** A metadata snapshot: one chunk holding the blob, installed by one storage call. */
function metaMode(port: MetaSnapshotPort, log: LogStorage): SnapshotMode {
  const staged = new Map<number, Uint8Array>();
  return {
    metadata: true,
    read: async function* (meta) {
      yield await port.blob(meta);
    },
    receive: (meta) => {
      const parts: Uint8Array[] = [];
      return {
        write: async (chunk) => {
          parts.push(chunk.slice());
        },
        finish: async () => {
          staged.clear();
          staged.set(meta.lastIndex, concat(parts));
        },
        abort: async () => {
          parts.length = 0;
        },
      };
    },
    install: async (meta) => {
      const blob = staged.get(meta.lastIndex);
      if (!blob) throw new SnapshotTransferError(`no staged snapshot at ${meta.lastIndex}`);
      staged.clear();
      await log.installSnapshot(meta, blob);
    },
  };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let size = 0;
  for (const p of parts) size += p.byteLength;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error
    ? signal.reason
    : new DOMException('The operation was aborted', 'AbortError');
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function withAbort<T>(
  d: Deferred<T>,
  signal: AbortSignal | undefined,
  onAbort: () => void,
): Deferred<T> {
  if (!signal) return d;
  const listener = (): void => {
    onAbort();
    d.reject(abortReason(signal));
  };
  signal.addEventListener('abort', listener, { once: true });
  return {
    resolve: (v) => {
      signal.removeEventListener('abort', listener);
      d.resolve(v);
    },
    reject: (e) => {
      signal.removeEventListener('abort', listener);
      d.reject(e);
    },
  };
}
