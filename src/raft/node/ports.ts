// What the driver needs from the world. A rejected write makes the node stop (it
// cannot know what reached the disk). "Durable" means: survives a crash of the
// process and of the machine (written and fsynced).
import type { ConfState, Entry, HardState, SnapshotMeta } from '../core/index.js';
import type { WireMessage } from './messages.js';

/** The stored log as found at start-up. */
export interface StoredLog {
  /** Entries up to snapshot.lastIndex are gone (lastIndex 0: nothing compacted). */
  readonly snapshot: SnapshotMeta;
  readonly lastIndex: number;
  /** [first index, term] of each run of equal terms after the snapshot, ascending. */
  readonly termRuns: readonly (readonly [number, number])[];
  /** The configuration entries after the snapshot, ascending. */
  readonly configs: readonly { readonly index: number; readonly config: ConfState }[];
  /** The blob stored with the last installSnapshot(meta, data), if the storage keeps it. */
  readonly snapshotData?: Uint8Array;
}

/** Write options: `sync` false means the write need not be durable when it resolves. */
export interface WriteOptions {
  readonly sync: boolean;
}

export interface LogStorage {
  load(): Promise<StoredLog>;
  /**
   * Entries [lo, hi), in order, all above the compaction point and at most the last
   * index. With `maxBytes`, stop once the entries' data exceeds it (but return at
   * least one entry): the prefix is enough. Called at start-up (the tail after
   * applied) and at run time, concurrently with writes, to feed a follower that is
   * behind the leader's in-memory window. A range that compaction removed meanwhile
   * is an error (rejected promise); the core then falls back to a snapshot.
   */
  entries(lo: number, hi: number, options?: { readonly maxBytes?: number }): Promise<Entry[]>;
  /**
   * Appends entries continuing the log at lastIndex + 1. Durable when it resolves if
   * options.sync (always set when entries are written today); callers that pass no
   * options expect a durable write.
   */
  append(entries: readonly Entry[], options?: WriteOptions): Promise<void>;
  /**
   * Drops entries from `from` on (a follower's conflicting, uncommitted suffix). Need
   * not be durable by itself: the append that follows it is.
   */
  truncateSuffix(from: number): Promise<void>;
  /**
   * The state is stable up to meta.lastIndex: entries up to there may go. Storage may
   * keep more (it drops whole segments); what it keeps is reported by load().
   */
  compactPrefix(meta: SnapshotMeta): Promise<void>;
  /**
   * A snapshot replaced the state: ONE crash-safe step. Afterwards (and after any
   * crash that happened once it resolved) the log is empty, load() reports
   * snapshot = meta and lastIndex = meta.lastIndex, and the log continues after
   * meta.lastIndex. A crash before it resolved leaves the old log whole. `data` is the
   * opaque blob of a metadata snapshot (MetaSnapshotPort), stored atomically with meta.
   */
  installSnapshot(meta: SnapshotMeta, data?: Uint8Array): Promise<void>;
}

export interface HardStateStorage {
  load(): Promise<HardState | undefined>;
  /**
   * Atomic: term, vote and commit together. Durable when it resolves if options.sync;
   * with sync false only the commit index changed and it may be lost in a crash
   * (the leader tells it again). No options: durable.
   */
  save(state: HardState, options?: WriteOptions): Promise<void>;
}

/** Receives a snapshot's chunks until it is complete. */
export interface SnapshotSink {
  write(chunk: Uint8Array): Promise<void>;
  /** All chunks arrived; keep them staged (durably) until install(). */
  finish(): Promise<void>;
  abort(reason: Error): Promise<void>;
}

/**
 * A generic state machine's snapshots, streamed. Install order: the staged data is
 * durable (finish), then LogStorage.installSnapshot(meta) (the commit point), then
 * install(meta). A crash between the last two is finished at the next start: the log
 * reports a snapshot beyond the caller's applied index, and the driver calls
 * install(meta) again, so install must be idempotent and the staged data must
 * survive until it succeeded.
 */
export interface SnapshotPort {
  /**
   * The state as of meta.lastIndex, in chunks. Called, and its iterator's first
   * next() called, in the apply stage while the state machine has applied exactly
   * meta.lastIndex entries: capture the state then (later entries are applied while
   * the chunks stream).
   */
  read(meta: SnapshotMeta): AsyncIterable<Uint8Array>;
  receive(meta: SnapshotMeta): SnapshotSink;
  /** Makes the staged snapshot the state machine's state (idempotent). */
  install(meta: SnapshotMeta): Promise<void>;
}

/**
 * Snapshots as metadata, for a state machine that IS the log (the replicated commit
 * log): a snapshot is "the log starts after index N, term T, configuration C" plus a
 * small opaque blob the caller owns (for example an offset translator's state at N).
 * It is sent only to a follower that needs entries below the leader's compaction
 * point, in one message, and installed with the single crash-safe
 * LogStorage.installSnapshot(meta, blob); the caller's applied index jumps to N.
 */
export interface MetaSnapshotPort {
  readonly kind: 'metadata';
  /** The blob for the compaction point meta.lastIndex (small: it travels in one chunk). */
  blob(meta: SnapshotMeta): Uint8Array | Promise<Uint8Array>;
}

/**
 * Best-effort delivery: messages may be lost, delayed, duplicated or reordered. The
 * transport authenticates its peers and drops a message whose `from` is not the
 * peer it came from; the driver tells it nothing else. Transports should call
 * RaftNode.reportUnreachable(id) when a peer cannot be reached.
 */
export interface Transport {
  send(message: WireMessage): void;
  /** Delivers messages addressed to this node until the returned function is called. */
  listen(handler: (message: WireMessage) => void): () => void;
}
