// The driver: owns the tick timer and runs the Ready loop around a pure RaftCore.
// For each Ready: install a received snapshot, persist entries and hard state, THEN
// send messages, then apply committed entries, serve reads, compact, and advance.
import {
  NONE,
  RaftCore,
  bootstrapState,
  type ConfChange,
  type ConfState,
  type CoreStatus,
  type Entry,
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
} from './errors.js';
import type { SnapshotChunk, WireMessage } from './messages.js';
import type {
  HardStateStorage,
  LogStorage,
  SnapshotPort,
  SnapshotSink,
  Transport,
} from './ports.js';

export interface RaftNodeOptions {
  readonly id: NodeId;
  readonly logStorage: LogStorage;
  readonly hardStateStorage: HardStateStorage;
  readonly snapshots: SnapshotPort;
  readonly transport: Transport;
  /**
   * Applies committed entries in order, each exactly once per process lifetime
   * (noop and config entries included, so that indexes stay dense).
   */
  readonly apply: (entries: readonly Entry[]) => void | Promise<void>;
  /** The last index the caller's state machine has applied (after a restart). */
  readonly applied?: number;
  /** The initial configuration of a brand-new cluster (ignored when storage has state). */
  readonly bootstrap?: ConfState;
  /** Milliseconds per tick (default 100); 0 disables the timer (call tick() yourself). */
  readonly tickMs?: number;
  readonly raft?: Omit<RaftConfig, 'id'>;
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

interface IncomingSnapshot {
  readonly from: NodeId;
  readonly meta: SnapshotMeta;
  readonly sink: SnapshotSink;
  offset: number;
  /** Chunk writes, one after another. */
  chain: Promise<void>;
  failed: boolean;
}

export class RaftNode implements AsyncDisposable {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly opts: RaftNodeOptions;
  private closed = false;
  private failure: Error | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly unlisten: () => void;
  private wake: (() => void) | undefined;
  private readonly loopDone: Promise<void>;
  private storageLast: number;
  private appliedIndex: number;
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
  private lastLeader: NodeId = NONE;
  private transfer: { target: NodeId; ticksLeft: number; deferred: Deferred<void> } | undefined;
  private incoming: IncomingSnapshot | undefined;

  private constructor(opts: RaftNodeOptions, core: RaftCore, storageLast: number) {
    this.id = opts.id;
    this.opts = opts;
    this.core = core;
    this.storageLast = storageLast;
    this.appliedIndex = core.log.applied;
    this.unlisten = opts.transport.listen((m) => this.receive(m));
    const tickMs = opts.tickMs ?? 100;
    if (tickMs > 0) this.timer = setInterval(() => this.tick(), tickMs);
    this.loopDone = this.loop();
  }

  /** Loads the stored state and starts the node. */
  static async start(opts: RaftNodeOptions): Promise<RaftNode> {
    const hard = await opts.hardStateStorage.load();
    const stored = await opts.logStorage.load();
    const fresh = hard === undefined && stored.lastIndex === 0 && stored.snapshot.lastIndex === 0;
    let state: RestoreState;
    if (fresh) {
      state = bootstrapState(opts.bootstrap ?? { voters: [], learners: [], addresses: {} });
    } else {
      const applied = Math.max(
        opts.applied ?? stored.snapshot.lastIndex,
        stored.snapshot.lastIndex,
      );
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
        entries: await opts.logStorage.entries(applied + 1, stored.lastIndex + 1),
        applied,
      };
    }
    const core = new RaftCore({ ...opts.raft, id: opts.id }, state);
    return new RaftNode(opts, core, stored.lastIndex);
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

  removeNode(id: NodeId): Promise<number> {
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

  tick(): void {
    if (this.closed) return;
    this.core.tick();
    if (this.transfer && --this.transfer.ticksLeft <= 0) {
      const t = this.transfer;
      this.transfer = undefined;
      t.deferred.reject(new LeadershipTransferFailedError(`${t.target} did not take over in time`));
    }
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

  async close(): Promise<void> {
    if (!this.closed) this.shutdown(new ShutdownError());
    await this.loopDone;
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
    if (this.closed || m.to !== this.id) return;
    if (m.type === 'snapshotChunk') {
      this.receiveChunk(m);
      return;
    }
    this.core.step(m);
    this.notify();
  }

  private receiveChunk(c: SnapshotChunk): void {
    let inc = this.incoming;
    if (c.offset === 0) {
      if (inc) this.dropIncoming(inc, new Error('superseded by a newer snapshot'));
      inc = {
        from: c.from,
        meta: c.meta,
        sink: this.opts.snapshots.receive(c.meta),
        offset: 0,
        chain: Promise.resolve(),
        failed: false,
      };
      this.incoming = inc;
    }
    if (!inc || inc.failed || inc.from !== c.from || inc.meta.lastIndex !== c.meta.lastIndex)
      return;
    if (c.offset !== inc.offset) {
      this.dropIncoming(inc, new Error(`snapshot chunk at ${c.offset}, expected ${inc.offset}`));
      return;
    }
    inc.offset += c.data.byteLength;
    const current = inc;
    inc.chain = inc.chain.then(async () => {
      if (current.failed) return;
      await current.sink.write(c.data);
      if (!c.done) return;
      await current.sink.finish();
      if (this.incoming === current) this.incoming = undefined;
      if (this.closed) return;
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
    inc.chain.catch((err: unknown) => this.dropIncoming(current, asError(err)));
  }

  private dropIncoming(inc: IncomingSnapshot, reason: Error): void {
    if (inc.failed) return;
    inc.failed = true;
    if (this.incoming === inc) this.incoming = undefined;
    // The leader notices through its snapshot timeout and sends a fresh one.
    inc.sink.abort(reason).catch((err: unknown) => this.fail(asError(err)));
  }

  private async loop(): Promise<void> {
    let turns = 0;
    while (!this.closed) {
      if (!this.core.hasReady()) {
        turns = 0;
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      if (++turns % 64 === 0) {
        // Under constant load every await resolves at once: let timers and I/O run.
        await new Promise<void>((resolve) => setImmediate(resolve));
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
      this.core.advance(rd);
    }
  }

  private async handle(rd: Ready): Promise<void> {
    const { logStorage, hardStateStorage, snapshots } = this.opts;
    if (rd.snapshot) {
      await snapshots.install(rd.snapshot);
      await logStorage.installSnapshot(rd.snapshot);
      this.storageLast = rd.snapshot.lastIndex;
      this.appliedIndex = rd.snapshot.lastIndex;
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      if (first <= this.storageLast) await logStorage.truncateSuffix(first);
      await logStorage.append(rd.entries);
      this.storageLast = rd.entries[rd.entries.length - 1]!.index;
    }
    if (rd.hardState) await hardStateStorage.save(rd.hardState);
    if (this.closed) return;
    for (const m of rd.messages) this.send(m);
    if (rd.committed.length > 0) {
      await this.opts.apply(rd.committed);
      this.appliedIndex = rd.committed[rd.committed.length - 1]!.index;
      this.settleApplied(rd.committed);
    }
    for (const rs of rd.readStates) {
      const d = this.reads.get(rs.context);
      if (!d) continue;
      this.reads.delete(rs.context);
      this.readsAwaitingApply.push({ index: rs.index, deferred: d });
    }
    if (this.readsAwaitingApply.length > 0) {
      const ready = this.readsAwaitingApply.filter((r) => r.index <= this.appliedIndex);
      this.readsAwaitingApply = this.readsAwaitingApply.filter((r) => r.index > this.appliedIndex);
      for (const r of ready) r.deferred.resolve(r.index);
    }
    if (rd.compacted) await logStorage.compactPrefix(rd.compacted);
    if (rd.softState) this.roleChanged(rd.softState.role, rd.softState.leader, rd.softState.term);
  }

  private send(m: Message): void {
    if (m.type === 'snapshot') {
      this.streamSnapshot(m).then(
        () => this.core.reportSnapshot(m.to, true),
        () => this.core.reportSnapshot(m.to, false),
      );
      return;
    }
    this.opts.transport.send(m);
  }

  private async streamSnapshot(m: SnapshotMessage): Promise<void> {
    const chunks = this.opts.snapshots.read(m.meta);
    let offset = 0;
    let prev: Uint8Array | undefined;
    const emit = (data: Uint8Array, done: boolean): void => {
      this.opts.transport.send({
        type: 'snapshotChunk',
        from: this.id,
        to: m.to,
        term: m.term,
        meta: m.meta,
        offset,
        data,
        done,
      });
      offset += data.byteLength;
    };
    // Hold one chunk back so that the last one can carry `done`.
    for await (const chunk of chunks) {
      if (this.closed || this.core.term !== m.term)
        throw new LeadershipLostError('snapshot stream abandoned');
      if (prev) emit(prev, false);
      prev = chunk;
    }
    emit(prev ?? new Uint8Array(0), true);
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
      // Our proposals and reads may still commit under the next leader, or not.
      this.rejectPending(() => new LeadershipLostError());
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

  private rejectPending(error: () => Error): void {
    for (let k = this.pendingHead; k < this.pending.length; k++)
      this.settle(this.pending[k]!, error());
    this.pending = [];
    this.pendingHead = 0;
    for (const d of this.reads.values()) d.reject(error());
    this.reads.clear();
    for (const r of this.readsAwaitingApply) r.deferred.reject(error());
    this.readsAwaitingApply = [];
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.failure = new RaftStorageError('a storage port failed; the node stopped', { cause: err });
    this.shutdown(
      new ShutdownError('the raft node stopped after a storage failure', { cause: this.failure }),
    );
  }

  private shutdown(reason: ShutdownError): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.unlisten();
    this.rejectPending(() => reason);
    for (const p of this.batch) p.deferred.reject(reason);
    this.batch = [];
    if (this.transfer) this.transfer.deferred.reject(reason);
    this.transfer = undefined;
    if (this.incoming) this.dropIncoming(this.incoming, reason);
    this.notify();
  }
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
