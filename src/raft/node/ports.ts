// What the driver needs from the world. Every write is async and must be durable when
// its promise resolves (or as durable as the caller chose); a rejected write makes the
// node stop (it cannot know what reached the disk).
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
}

export interface LogStorage {
  load(): Promise<StoredLog>;
  /** Entries [lo, hi); all must exist. Read at start-up only (the tail after applied). */
  entries(lo: number, hi: number): Promise<Entry[]>;
  /** Appends entries continuing the log at lastIndex + 1. */
  append(entries: readonly Entry[]): Promise<void>;
  /** Drops entries from `from` on (a follower's conflicting, uncommitted suffix). */
  truncateSuffix(from: number): Promise<void>;
  /**
   * The state is stable up to meta.lastIndex: entries up to there may go. Storage may
   * keep more (it drops whole segments); what it keeps is reported by load().
   */
  compactPrefix(meta: SnapshotMeta): Promise<void>;
  /** A snapshot replaced the state: drop every entry; the log continues after meta.lastIndex. */
  installSnapshot(meta: SnapshotMeta): Promise<void>;
}

export interface HardStateStorage {
  load(): Promise<HardState | undefined>;
  /** Atomic and durable: term, vote and commit together. */
  save(state: HardState): Promise<void>;
}

/** Receives a snapshot's chunks until it is complete. */
export interface SnapshotSink {
  write(chunk: Uint8Array): Promise<void>;
  /** All chunks arrived; keep them staged until install(). */
  finish(): Promise<void>;
  abort(reason: Error): Promise<void>;
}

/**
 * The caller's state machine, as snapshots see it. For a commit log a snapshot can be
 * "the records from offset X on", streamed from the log itself.
 */
export interface SnapshotPort {
  /**
   * The state as of meta.lastIndex, in chunks. Called synchronously when the snapshot
   * is sent, while the state machine has applied exactly meta.lastIndex entries.
   */
  read(meta: SnapshotMeta): AsyncIterable<Uint8Array>;
  receive(meta: SnapshotMeta): SnapshotSink;
  /** Makes the staged snapshot the state machine's state. */
  install(meta: SnapshotMeta): Promise<void>;
}

/** Best-effort delivery: messages may be lost, delayed, duplicated or reordered. */
export interface Transport {
  send(message: WireMessage): void;
  /** Delivers messages addressed to this node until the returned function is called. */
  listen(handler: (message: WireMessage) => void): () => void;
}
