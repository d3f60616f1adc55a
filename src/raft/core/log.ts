// The log as the core sees it. Recent entries live in memory (a window from memStart
// to lastIndex); older ones exist only in the caller's storage and are reached by a
// snapshot when a follower needs them. Terms of every retained index are answered from
// a run-length list, so consistency checks never wait on storage.
//
// invariants: snapIndex < memStart <= lastIndex + 1, applied <= committed <= lastIndex,
//             snapIndex <= stableIndex <= lastIndex, memStart <= stableIndex + 1,
//             memStart <= applied + 1 unless storage serves reads (fetchFromStorage):
//             then committed entries below memStart are read back to be applied.
import type { Entry, SnapshotMeta } from './types.js';

export class RaftInvariantError extends Error {
  override readonly name = 'RaftInvariantError';
}

/** Bytes an entry costs in a message (data plus its header). */
export function entryBytes(e: Entry): number {
  return e.data.byteLength + 16;
}

/**
 * Bytes an entry costs in memory: data plus an estimate of the objects around it
 * (the Entry, a Uint8Array and its buffer), measured at about 250 bytes in V8.
 * Without it a budget of small entries would be exceeded several times over.
 */
export function entryMemBytes(e: Entry): number {
  return e.data.byteLength + 256;
}

/** Stands in for entries released from memory until the dead prefix is cut off. */
const RELEASED: Entry = { index: 0, term: 0, type: 'noop', data: new Uint8Array(0) };

/** The log as callers outside the core may see it: read-only. */
export interface RaftLogView {
  /** Index and term of the last compacted entry (0, 0 when nothing was compacted). */
  readonly snapIndex: number;
  readonly snapTerm: number;
  readonly lastIndex: number;
  /** Entries up to here are persisted (the driver said so through advance). */
  readonly stableIndex: number;
  readonly committed: number;
  /** Handed to the driver for applying. */
  readonly applied: number;
  /** First index held in memory; older ones are read from storage. */
  readonly memStart: number;
  /** Bytes of applied entries still held in memory. */
  readonly retainedBytes: number;
  term(i: number): number | undefined;
}

export class RaftLog implements RaftLogView {
  /** Entries below memStart may be unapplied: the driver reads them back (Ready.fetch). */
  constructor(private readonly storageReads = false) {}

  /** Index and term of the last compacted entry (0, 0 when nothing was compacted). */
  snapIndex = 0;
  snapTerm = 0;
  lastIndex = 0;
  /** Entries up to here are persisted; later ones go out in the next Ready. */
  stableIndex = 0;
  committed = 0;
  applied = 0;
  /** First index held in memory; buf[head] holds it. */
  memStart = 1;
  /** Bytes of the entries memStart..applied (what retention bounds). */
  retainedBytes = 0;
  private buf: Entry[] = [];
  private head = 0;
  /** Run-length terms covering snapIndex+1..lastIndex: runStart[k] begins runTerm[k]. */
  private runStart: number[] = [];
  private runTerm: number[] = [];

  /** The term of entry i, or undefined when i is compacted or beyond the end. */
  term(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.lastIndex) return undefined;
    if (i >= this.memStart) return this.buf[this.head + i - this.memStart]!.term;
    return this.runTerm[this.runIndexOf(i)];
  }

  lastTerm(): number {
    return this.term(this.lastIndex)!;
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  /** Raft's "at least as up to date" comparison (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex);
  }

  /** The entry at i if it is in memory. */
  entry(i: number): Entry | undefined {
    if (i < this.memStart || i > this.lastIndex) return undefined;
    return this.buf[this.head + i - this.memStart];
  }

  /**
   * Entries [lo, hi) from memory, at most maxBytes of data (but at least one), or
   * undefined when lo is no longer in memory.
   */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | undefined {
    if (lo < this.memStart) return undefined;
    hi = Math.min(hi, this.lastIndex + 1);
    if (lo >= hi) return [];
    const from = this.head + lo - this.memStart;
    let to = from;
    const end = this.head + hi - this.memStart;
    let bytes = 0;
    while (to < end) {
      bytes += entryBytes(this.buf[to]!);
      if (bytes > maxBytes && to > from) break;
      to++;
    }
    return this.buf.slice(from, to);
  }

  /** Largest index <= index whose term is <= term (fast back-off, etcd's findConflictByTerm). */
  findConflictByTerm(index: number, term: number): number {
    index = Math.min(index, this.lastIndex);
    while (index > this.snapIndex) {
      const t = this.term(index)!;
      if (t <= term) return index;
      // Skip the whole run of term t.
      index = this.runStart[this.runIndexOf(index)]! - 1;
    }
    return index;
  }

  /**
   * Appends entries that continue the log at entries[0].index (<= lastIndex + 1),
   * dropping any suffix from there. Callers make sure no committed entry is dropped.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first <= this.committed) {
      throw new RaftInvariantError(
        `append at ${first} would overwrite committed ${this.committed}`,
      );
    }
    if (first > this.lastIndex + 1) {
      throw new RaftInvariantError(`append at ${first} leaves a gap after ${this.lastIndex}`);
    }
    if (first <= this.lastIndex) this.truncateFrom(first);
    let lastRunTerm = this.runTerm.length > 0 ? this.runTerm[this.runTerm.length - 1] : -1;
    for (const e of entries) {
      this.buf.push(e);
      if (e.term !== lastRunTerm) {
        this.runStart.push(e.index);
        this.runTerm.push(e.term);
        lastRunTerm = e.term;
      }
    }
    this.lastIndex = entries[entries.length - 1]!.index;
  }

  private truncateFrom(first: number): void {
    if (first < this.memStart) {
      if (!this.storageReads || first <= this.applied) {
        throw new RaftInvariantError(`truncation at ${first} below memory start ${this.memStart}`);
      }
      // Only stored, unapplied entries go: memory restarts at the cut.
      this.buf = [];
      this.head = 0;
      this.memStart = first;
    }
    this.buf.length = this.head + first - this.memStart;
    this.lastIndex = first - 1;
    this.stableIndex = Math.min(this.stableIndex, this.lastIndex);
    while (this.runStart.length > 0 && this.runStart[this.runStart.length - 1]! >= first) {
      this.runStart.pop();
      this.runTerm.pop();
    }
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex) {
      throw new RaftInvariantError(`commit ${index} beyond last index ${this.lastIndex}`);
    }
    this.committed = index;
    return true;
  }

  /** Entries the driver has not persisted yet. */
  unstable(): Entry[] {
    return this.stableIndex >= this.lastIndex
      ? []
      : this.slice(this.stableIndex + 1, this.lastIndex + 1, Infinity)!;
  }

  stableTo(index: number, term: number): void {
    if (index > this.stableIndex && this.term(index) === term) this.stableIndex = index;
  }

  /**
   * Committed entries not applied yet, bounded by maxBytes (at least one); undefined
   * when they must first be read from storage.
   */
  toApply(maxBytes: number): Entry[] | undefined {
    return this.committed > this.applied
      ? this.slice(this.applied + 1, this.committed + 1, maxBytes)
      : [];
  }

  /** Forgets in-memory entries up to index (they stay in storage). */
  releaseMemory(index: number): void {
    index = Math.min(index, this.applied);
    if (index < this.memStart) return;
    for (let k = this.head, end = this.head + index + 1 - this.memStart; k < end; k++) {
      this.retainedBytes -= entryMemBytes(this.buf[k]!);
      // Drop the reference now: the dead prefix is cut off only now and then.
      this.buf[k] = RELEASED;
    }
    this.head += index + 1 - this.memStart;
    this.memStart = index + 1;
    // Copy the live part only once the dead prefix dominates: amortized O(1).
    if (this.head > 1024 && this.head * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.head);
      this.head = 0;
    }
  }

  /** The driver took entries up to index for applying. */
  appliedTo(index: number): void {
    if (index <= this.applied) return;
    if (index > this.committed) {
      throw new RaftInvariantError(`applied ${index} beyond commit ${this.committed}`);
    }
    for (let i = Math.max(this.applied + 1, this.memStart); i <= index; i++)
      this.retainedBytes += entryMemBytes(this.entry(i)!);
    this.applied = index;
  }

  /**
   * Forgets the oldest applied entries while more than maxEntries of them or more than
   * maxBytes are held in memory (storage keeps them; a lagging follower is served
   * from there).
   */
  trim(maxBytes: number, maxEntries: number): void {
    let upTo = Math.max(this.memStart - 1, this.applied - maxEntries);
    let bytes = this.retainedBytes;
    for (let i = this.memStart; i <= upTo; i++) bytes -= entryMemBytes(this.entry(i)!);
    while (bytes > maxBytes && upTo < this.applied) {
      upTo++;
      bytes -= entryMemBytes(this.entry(upTo)!);
    }
    this.releaseMemory(upTo);
  }

  /** Drops everything up to index (index <= applied) from the core's view. */
  compact(index: number): void {
    if (index <= this.snapIndex) return;
    if (index > this.applied) {
      throw new RaftInvariantError(`compact ${index} beyond applied ${this.applied}`);
    }
    const term = this.term(index)!;
    this.releaseMemory(index);
    this.snapIndex = index;
    this.snapTerm = term;
    const k = this.runIndexOf(index + 1 <= this.lastIndex ? index + 1 : index);
    if (index + 1 <= this.lastIndex) {
      this.runStart.splice(0, k);
      this.runTerm.splice(0, k);
      this.runStart[0] = index + 1;
    } else {
      this.runStart = [];
      this.runTerm = [];
    }
  }

  /** Replaces the whole log by a snapshot (a follower too far behind). */
  restoreSnapshot(meta: SnapshotMeta): void {
    this.snapIndex = meta.lastIndex;
    this.snapTerm = meta.lastTerm;
    this.lastIndex = meta.lastIndex;
    this.stableIndex = meta.lastIndex;
    this.committed = meta.lastIndex;
    this.applied = meta.lastIndex;
    this.memStart = meta.lastIndex + 1;
    this.retainedBytes = 0;
    this.buf = [];
    this.head = 0;
    this.runStart = [];
    this.runTerm = [];
  }

  /** Start-up: the stored log, with its tail (from memStart) loaded in memory. */
  restore(
    snapIndex: number,
    snapTerm: number,
    lastIndex: number,
    termRuns: readonly (readonly [number, number])[],
    tail: readonly Entry[],
    committed: number,
    applied: number,
  ): void {
    this.snapIndex = snapIndex;
    this.snapTerm = snapTerm;
    this.lastIndex = lastIndex;
    this.stableIndex = lastIndex;
    this.runStart = termRuns.map((r) => r[0]);
    this.runTerm = termRuns.map((r) => r[1]);
    this.buf = tail.slice();
    this.head = 0;
    this.memStart = tail.length > 0 ? tail[0]!.index : lastIndex + 1;
    if (tail.length > 0 && tail[tail.length - 1]!.index !== lastIndex) {
      throw new RaftInvariantError('restored tail does not end at the last index');
    }
    this.applied = applied;
    this.retainedBytes = 0;
    for (const e of tail) if (e.index <= applied) this.retainedBytes += entryMemBytes(e);
    this.committed = Math.min(Math.max(committed, applied), lastIndex);
    if (this.memStart > applied + 1 && !this.storageReads) {
      throw new RaftInvariantError(`restored tail starts at ${this.memStart}, after applied+1`);
    }
  }

  private runIndexOf(i: number): number {
    let lo = 0;
    let hi = this.runStart.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.runStart[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
