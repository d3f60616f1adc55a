// The replicated log: one Raft group whose log IS the storage engine (raft-storage.ts).
// Producers propose records; a produce resolves once its entry is committed by a quorum
// (durable on each member by the fsync policy). Readers, on every member, see committed
// records only, at dense consumer offsets identical on every replica.
//
// The group is an object a node could hold several of (one per named log, later): it
// owns its directory, its Raft node and its commit watermark, and nothing global.
import {
  NotLeaderError,
  RaftNode,
  type ConfChange,
  type ConfState,
  type Entry,
  type LeaderChange,
  type NodeId,
  type RaftConfig,
  type Transport,
} from '../raft/index.js';
import {
  Watermark,
  type FsyncPolicy,
  type LogObserver,
  type RecoveryReport,
} from '../log/index.js';

import { encodeProposal, entryValue, decodeHeader } from './entry-codec.js';
import {
  AmbiguousMemberError,
  NoLeaderError,
  RecordOutOfRangeError,
  ReplicatedLogClosedError,
  UnknownMemberError,
} from './errors.js';
import { nodeNameOf } from './identity.js';
import { reconcile, type ClusterMember, type ReconcileOptions } from './membership-sync.js';
import { RaftStorage } from './raft-storage.js';

export interface ReplicatedLogOptions {
  /** The group's directory (e.g. <data-dir>/groups/default). */
  readonly dir: string;
  readonly id: NodeId;
  /** This member's RPC address (clients and peers dial it). */
  readonly rpcAddr: string;
  readonly transport: Transport;
  readonly fsync: FsyncPolicy;
  readonly maxRecordBytes: number;
  readonly maxStoreBytes?: number;
  /** Start a new cluster with this member as its only voter (ignored when state exists). */
  readonly bootstrap?: boolean;
  readonly tickMs?: number;
  readonly raft?: Omit<RaftConfig, 'id'>;
  /** How long a produce waits for a leader to be elected before failing (default 5 s). */
  readonly leaderWaitMs?: number;
  readonly observer?: LogObserver;
  /** Current RPC addresses of other members (e.g. from gossip), ahead of the configuration's. */
  readonly addressOf?: (id: NodeId) => string | undefined;
}

/** One committed record as the server sends it. */
export interface CommittedRecord {
  readonly offset: bigint;
  readonly term: bigint;
  readonly value: Buffer;
  /** The stored bytes: a `Record` without its offset field. */
  readonly wire: Buffer;
}

export interface LeaderHint {
  readonly id: NodeId;
  readonly addr: string | undefined;
}

export interface ServerInfo {
  readonly id: NodeId;
  readonly rpcAddr: string;
  readonly isLeader: boolean;
  readonly voter: boolean;
  /** Leader's view; undefined on followers. */
  readonly matchIndex?: number;
  readonly lag?: number;
}

export interface ReadOptions {
  readonly maxRecords?: number;
  readonly maxBytes?: number;
  readonly signal?: AbortSignal;
}

const CHECKPOINT_EVERY = 50_000;

export class ReplicatedLog implements AsyncDisposable {
  private closed = false;
  /** The commit index as an exclusive end: readers stop below it. */
  private readonly commit: Watermark;
  private readonly leaderListeners = new Set<(hint: LeaderHint | undefined) => void>();
  private lastCheckpoint = 0;
  /** A leader is known and listeners were told (see leaderChanged). */
  private announced = false;
  private readonly node: RaftNode;

  private constructor(
    private readonly opts: ReplicatedLogOptions,
    private readonly storage: RaftStorage,
    node: RaftNode | undefined,
  ) {
    this.commit = new Watermark(0n);
    this.node = node as RaftNode; // set right after construction in open()
  }

  static async open(opts: ReplicatedLogOptions): Promise<ReplicatedLog> {
    const storage = await RaftStorage.open({
      dir: opts.dir,
      fsync: opts.fsync,
      maxRecordBytes: opts.maxRecordBytes,
      ...(opts.maxStoreBytes !== undefined ? { maxStoreBytes: opts.maxStoreBytes } : {}),
      ...(opts.observer ? { observer: opts.observer } : {}),
    });
    const fresh = !storage.initialized;
    const base = storage.base.meta.lastIndex;
    const applied = Math.max(
      base,
      Math.min(storage.hardState?.commit ?? 0, storage.translator.lastIndex),
    );
    // Raft may apply entries during start-up, before this object exists: they wait here.
    const holder: { log?: ReplicatedLog } = {};
    // Raft records a bootstrap configuration itself (a snapshot at index 0, crash-safe).
    const bootstrap: ConfState | undefined =
      fresh && opts.bootstrap
        ? { voters: [opts.id], learners: [], addresses: { [opts.id]: opts.rpcAddr } }
        : undefined;
    const pending: Entry[][] = [];
    const node = await RaftNode.start({
      id: opts.id,
      logStorage: storage,
      hardStateStorage: storage.hardStates,
      snapshots: storage,
      transport: opts.transport,
      // The leader sends its appends before its own fsync and counts itself at its
      // durable index only (etcd's approach): its fsync overlaps the followers'.
      leaderSendsBeforeSync: true,
      applied,
      ...(bootstrap ? { bootstrap } : {}),
      ...(opts.tickMs !== undefined ? { tickMs: opts.tickMs } : {}),
      ...(opts.raft ? { raft: opts.raft } : {}),
      apply: (entries) => {
        if (holder.log) holder.log.applied(entries);
        else pending.push([...entries]);
      },
    });
    const log = new ReplicatedLog(opts, storage, node);
    log.commit.advance(BigInt(applied + 1));
    holder.log = log;
    for (const es of pending) log.applied(es);
    node.onLeaderChange((change) => log.leaderChanged(change));
    // A sole voter need not wait out an election timeout to lead (a fresh bootstrap, or
    // a single node restarting).
    const conf = node.status().config;
    if (conf.voters.length === 1 && conf.voters[0] === opts.id) node.campaign();
    return log;
  }

  get id(): NodeId {
    return this.opts.id;
  }

  /** The Raft node, for status and configuration changes. */
  get raft(): RaftNode {
    return this.node;
  }

  /** LogStatsSource (metrics): the committed consumer offsets and the storage's size. */
  get lowestOffset(): bigint {
    return this.startOffset;
  }

  get highestOffset(): bigint {
    return this.endOffset - 1n;
  }

  stats(): { segments: number; bytes: number } {
    return this.storage.log.stats();
  }

  /** What opening the storage repaired (a torn tail cut, indexes rebuilt). */
  get recovery(): RecoveryReport {
    return this.storage.log.recovery;
  }

  /** The consumer offset of the next record to be committed. */
  get endOffset(): bigint {
    return this.storage.translator.endOffset(Number(this.commit.value) - 1);
  }

  get startOffset(): bigint {
    return this.storage.translator.baseOffset;
  }

  /**
   * Where member `id` serves RPC now: our own address, then what the layers above know
   * (gossip, which is current after a member restarted on another port), then the
   * address the configuration recorded when the member was added.
   */
  addressOf(id: NodeId): string | undefined {
    if (id === this.opts.id) return this.opts.rpcAddr;
    return this.opts.addressOf?.(id) ?? this.node.status().config.addresses[id];
  }

  leader(): LeaderHint | undefined {
    const st = this.node.status();
    if (!st.leader) return undefined;
    return { id: st.leader, addr: this.addressOf(st.leader) };
  }

  /** Resolves once a leader is known, or after `ms` (whichever first); true if known. */
  async ready(ms: number): Promise<boolean> {
    try {
      await this.awaitLeaderFor(ms, undefined);
      return true;
    } catch {
      return false; // no leader yet: the caller goes on, calls will wait for one
    }
  }

  /**
   * The first leader other than `previous` (which seems to be gone), waiting up to `ms`
   * for an election; undefined when none came in time.
   */
  nextLeader(previous: NodeId, ms: number, signal?: AbortSignal): Promise<LeaderHint | undefined> {
    const now = this.leader();
    if (now && now.id !== previous) return Promise.resolve(now);
    return new Promise((resolve) => {
      const done = (hint: LeaderHint | undefined): void => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener('abort', onAbort);
        resolve(hint);
      };
      const onAbort = (): void => done(undefined);
      const timer = setTimeout(() => done(undefined), ms);
      const off = this.onLeaderChange((hint) => {
        if (hint && hint.id !== previous) done(hint);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  isLeader(): boolean {
    return this.node.status().role === 'leader';
  }

  /**
   * Called once if Raft stops after a storage failure (a full disk, an I/O error). The
   * log then refuses appends for good; the host should restart (the durable state is
   * intact).
   */
  onFailure(listener: (err: Error) => void): () => void {
    return this.node.onFailure(listener);
  }

  /** Called with the new leader (or undefined) whenever it changes; returns an unsubscribe. */
  onLeaderChange(listener: (hint: LeaderHint | undefined) => void): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  /**
   * Appends records; resolves with the first one's offset once all are committed (the
   * others follow densely). A follower rejects with raft's NotLeaderError (with the
   * leader's id and address) before anything is appended; with no leader known, waits
   * up to leaderWaitMs for an election first.
   */
  async append(values: readonly Uint8Array[], o: { signal?: AbortSignal } = {}): Promise<bigint> {
    if (this.closed) throw new ReplicatedLogClosedError();
    if (values.length === 0) throw new RangeError('append needs at least one record');
    await this.awaitLeader(o.signal);
    o.signal?.throwIfAborted();
    // Proposed in one synchronous run, so the entries take consecutive indexes. The
    // signal is watched once for the whole batch, not once per record: a thousand
    // listeners on one signal cost time and trip Node's listener-leak warning. An abort
    // after this point leaves the outcome unknown, as it does for one record.
    const proposals = values.map((v) => this.node.propose(encodeProposal(v)));
    const settled = await untilAborted(Promise.allSettled(proposals), o.signal);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed?.status === 'rejected') throw failed.reason;
    const first = (settled[0] as PromiseFulfilledResult<number>).value;
    return this.storage.translator.offsetOf(first);
  }

  private awaitLeader(signal: AbortSignal | undefined): Promise<void> {
    return this.awaitLeaderFor(this.opts.leaderWaitMs ?? 5000, signal);
  }

  private async awaitLeaderFor(waitMs: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.node.status().leader && this.announced) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => done(signal?.reason as Error);
      const timer = setTimeout(() => done(new NoLeaderError(waitMs)), waitMs);
      const unsubscribe = this.onLeaderChange((hint) => {
        if (hint) done();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.node.status().leader && this.announced) done();
    });
  }

  /** A committed record. `linearizable` confirms leadership with a quorum first. */
  async read(
    offset: bigint,
    o: { consistency?: 'local' | 'linearizable'; signal?: AbortSignal } = {},
  ): Promise<CommittedRecord> {
    if (this.closed) throw new ReplicatedLogClosedError();
    if (o.consistency === 'linearizable') {
      if (!this.isLeader()) {
        const hint = this.leader();
        throw new NotLeaderError(hint?.id, hint?.addr);
      }
      await this.node.readIndex(o.signal ? { signal: o.signal } : {});
    }
    this.checkRange(offset);
    const [rec] = await this.readCommitted(offset, { maxRecords: 1 });
    if (!rec) throw this.outOfRange(offset);
    return rec;
  }

  private outOfRange(offset: bigint): RecordOutOfRangeError {
    return new RecordOutOfRangeError(offset, this.startOffset, this.endOffset);
  }

  private checkRange(offset: bigint): void {
    if (offset < this.startOffset || offset >= this.endOffset) throw this.outOfRange(offset);
  }

  /** Committed records from `offset` on, as many as fit the limits (at least one). */
  private async readCommitted(offset: bigint, o: ReadOptions): Promise<CommittedRecord[]> {
    const t = this.storage.translator;
    const commitEnd = this.commit.value;
    let index = BigInt(t.indexOf(offset));
    const out: CommittedRecord[] = [];
    const max = o.maxRecords ?? 1000;
    while (out.length === 0 && index < commitEnd) {
      const batch = await this.storage.log.readBatch(index, {
        maxRecords: Math.min(max, Number(commitEnd - index)),
        ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}),
      });
      for (const rec of batch) {
        const i = Number(rec.offset);
        const h = decodeHeader(rec.value, i);
        if (h.type !== 'normal') continue;
        out.push({
          offset: t.offsetOf(i),
          term: BigInt(h.term),
          value: entryValue(rec.value, h.bodyStart, i),
          wire: rec.value,
        });
      }
      index += BigInt(batch.length);
    }
    return out;
  }

  /**
   * Batches of committed records from `from` on; when caught up, waits for the commit
   * index to move. Ends when the signal aborts or the log closes. Throws
   * RecordOutOfRangeError when `from` is below the log's start (retention or snapshot).
   */
  async *readBatchesFrom(
    from: bigint,
    o: ReadOptions = {},
  ): AsyncGenerator<CommittedRecord[], void, undefined> {
    let next = from;
    for (;;) {
      if (this.closed || o.signal?.aborted) return;
      if (next < this.startOffset) throw this.outOfRange(next);
      if (next < this.endOffset) {
        const batch = await this.readCommitted(next, o);
        if (batch.length > 0) {
          next = batch[batch.length - 1]!.offset + 1n;
          yield batch;
        }
        continue;
      }
      const index = BigInt(this.storage.translator.indexOf(next));
      try {
        await this.commit.waitFor(index + 1n, o.signal ? { signal: o.signal } : {});
      } catch (err) {
        if (o.signal?.aborted || this.closed) return;
        throw err;
      }
    }
  }

  async *readFrom(from: bigint, o: ReadOptions = {}): AsyncGenerator<CommittedRecord> {
    for await (const batch of this.readBatchesFrom(from, o)) yield* batch;
  }

  /**
   * Retention: lets the log drop records below `beforeOffset` (whole segments only, so
   * some may stay). Only committed and applied records go; a member that later needs
   * them gets a snapshot instead. Resolves with the new start offset.
   */
  async compact(beforeOffset: bigint): Promise<bigint> {
    if (this.closed) throw new ReplicatedLogClosedError();
    const end = this.endOffset;
    const upTo = beforeOffset > end ? end : beforeOffset;
    if (upTo <= this.startOffset) return this.startOffset;
    // The index of the last entry below `upTo` (the one before the data entry at upTo).
    const applied = Number(this.commit.value) - 1;
    const last = upTo >= end ? applied : this.storage.translator.indexOf(upTo) - 1;
    const meta = this.node.compact(Math.min(last, applied));
    if (meta) await this.storage.compacted(meta.lastIndex);
    return this.startOffset;
  }

  /** Every member of the configuration with its address, role and (on the leader) lag. */
  servers(): ServerInfo[] {
    const st = this.node.status();
    const peers = new Map(st.peers.map((p) => [p.id, p]));
    const ids = [...st.config.voters, ...st.config.learners];
    return ids.map((id) => {
      const p = peers.get(id);
      return {
        id,
        rpcAddr: this.addressOf(id) ?? '',
        isLeader: id === st.leader,
        voter: st.config.voters.includes(id),
        ...(p ? { matchIndex: p.match, lag: Math.max(0, st.lastIndex - p.match) } : {}),
      };
    });
  }

  /**
   * Removes a member from the configuration (an operator's decision); `id` is a Raft id
   * or a node name only one member has. Resolves with the Raft id once the change is
   * committed. A follower rejects with raft's NotLeaderError.
   */
  async removeServer(id: string): Promise<string> {
    if (this.closed) throw new ReplicatedLogClosedError();
    const conf = this.node.status().config;
    const members = [...conf.voters, ...conf.learners];
    let raftId = members.find((m) => m === id);
    if (raftId === undefined) {
      const named = members.filter((m) => nodeNameOf(m) === id);
      if (named.length > 1) throw new AmbiguousMemberError(id, named);
      raftId = named[0];
    }
    if (raftId === undefined) throw new UnknownMemberError(id);
    await this.node.removeNode(raftId);
    return raftId;
  }

  /** The next configuration change towards `members`, made if this node leads. */
  async reconcile(
    members: readonly ClusterMember[],
    o: Omit<ReconcileOptions, 'now'> & { now?: number },
  ): Promise<ConfChange | undefined> {
    if (this.closed || !this.isLeader()) return undefined;
    const st = this.node.status();
    const change = reconcile(
      members,
      {
        self: this.opts.id,
        conf: st.config,
        lastIndex: st.lastIndex,
        match: new Map(st.peers.map((p) => [p.id, p.match])),
      },
      { ...o, now: o.now ?? Date.now() },
    );
    if (!change) return undefined;
    switch (change.type) {
      case 'addLearner':
        await this.node.addLearner(change.id, change.address);
        break;
      case 'promote':
        await this.node.promote(change.id);
        break;
      case 'remove':
        await this.node.removeNode(change.id);
        break;
    }
    return change;
  }

  private applied(entries: readonly Entry[]): void {
    const last = entries[entries.length - 1];
    if (!last) return;
    this.commit.advance(BigInt(last.index + 1));
    if (
      last.index - this.lastCheckpoint >= CHECKPOINT_EVERY ||
      entries.some((e) => e.type !== 'normal')
    ) {
      this.lastCheckpoint = last.index;
      this.storage.checkpoint(last.index).catch(() => undefined); // a cache: a failed write is rebuilt at start-up
    }
  }

  private leaderChanged(change: LeaderChange): void {
    // A snapshot install replaced the log: readers restart from the new base.
    const base = BigInt(this.storage.base.meta.lastIndex + 1);
    this.commit.advance(base);
    const hint = change.leader
      ? { id: change.leader, addr: this.addressOf(change.leader) }
      : undefined;
    this.announced = hint !== undefined;
    for (const l of this.leaderListeners) l(hint);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.commit.close(new ReplicatedLogClosedError());
    await this.node.close();
    const applied = Number(this.commit.value) - 1;
    if (applied > 0) await this.storage.checkpoint(applied).catch(() => undefined);
    await this.storage.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** `work`, or a rejection with the signal's reason if it aborts first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
