// Maps consumer offsets (dense: 0, 1, 2, … over data records only) to Raft indexes and
// back. Raft's log also holds the leaders' no-ops and configuration entries; those take
// an index but no offset. The translator keeps the few indexes that are not data (a
// handful per term) and the runs of equal terms, so a lookup is a binary search.
//
// It is a cache, never a source of truth: its checkpoint covers committed entries only,
// and the entries after it are re-read from the log at start-up (see raft-log-store.ts).
//
// invariant: baseIndex <= lastIndex + 1; skips ascending, all in [baseIndex, lastIndex];
//            termRuns ascending by index, first run starts at baseIndex when lastIndex >= baseIndex.
import type { EntryType } from '../raft/index.js';

import { BodyReader, BodyWriter } from './state-file.js';

export interface TranslatorState {
  readonly baseIndex: number;
  readonly baseOffset: bigint;
  readonly lastIndex: number;
  readonly skips: readonly number[];
  readonly configs: readonly number[];
  readonly termRuns: readonly (readonly [number, number])[];
}

export class OffsetTranslator {
  /** The first index the log holds. */
  private _baseIndex: number;
  /** The consumer offset of the first data entry at or after baseIndex. */
  private _baseOffset: bigint;
  private _lastIndex: number;
  /** Indexes of non-data entries (no-ops and configurations), ascending. */
  private skips: number[];
  /** Indexes of configuration entries, ascending (a subset of skips). */
  private configs: number[];
  private termRuns: [number, number][];

  constructor(state: TranslatorState) {
    this._baseIndex = state.baseIndex;
    this._baseOffset = state.baseOffset;
    this._lastIndex = state.lastIndex;
    this.skips = [...state.skips];
    this.configs = [...state.configs];
    this.termRuns = state.termRuns.map(([i, t]) => [i, t]);
  }

  static empty(baseIndex: number, baseOffset: bigint): OffsetTranslator {
    return new OffsetTranslator({
      baseIndex,
      baseOffset,
      lastIndex: baseIndex - 1,
      skips: [],
      configs: [],
      termRuns: [],
    });
  }

  get baseIndex(): number {
    return this._baseIndex;
  }
  get baseOffset(): bigint {
    return this._baseOffset;
  }
  get lastIndex(): number {
    return this._lastIndex;
  }

  /** Records an entry appended at lastIndex + 1. */
  append(index: number, term: number, type: EntryType): void {
    if (index !== this._lastIndex + 1)
      throw new RangeError(`translator: append at ${index}, expected ${this._lastIndex + 1}`);
    this._lastIndex = index;
    if (type !== 'normal') this.skips.push(index);
    if (type === 'config') this.configs.push(index);
    const last = this.termRuns[this.termRuns.length - 1];
    if (last === undefined || last[1] !== term) this.termRuns.push([index, term]);
  }

  /** Forgets entries from `from` on (a conflicting suffix was cut). */
  truncate(from: number): void {
    if (from > this._lastIndex) return;
    const cut = Math.max(from, this._baseIndex);
    this._lastIndex = cut - 1;
    this.skips.length = lowerBound(this.skips, cut);
    this.configs.length = lowerBound(this.configs, cut);
    while (this.termRuns.length > 0 && this.termRuns[this.termRuns.length - 1]![0] >= cut)
      this.termRuns.pop();
  }

  /** The log now starts at `index` (retention dropped what was below). */
  compact(index: number): void {
    if (index <= this._baseIndex) return;
    const to = Math.min(index, this._lastIndex + 1);
    this._baseOffset = this.endOffset(to - 1);
    const keepFrom = lowerBound(this.skips, to);
    this.skips = this.skips.slice(keepFrom);
    this.configs = this.configs.slice(lowerBound(this.configs, to));
    // Keep the run that covers `to`, restarted at `to`.
    let r = 0;
    while (r + 1 < this.termRuns.length && this.termRuns[r + 1]![0] <= to) r++;
    const runs = this.termRuns.slice(r);
    if (runs.length > 0 && runs[0]![0] < to) runs[0] = [to, runs[0]![1]];
    this.termRuns = to <= this._lastIndex ? runs : [];
    this._baseIndex = to;
  }

  /** The consumer offset of the data entry at `index` (which must be data). */
  offsetOf(index: number): bigint {
    const before = lowerBound(this.skips, index);
    return this._baseOffset + BigInt(index - this._baseIndex - before);
  }

  /** One past the consumer offset of the last data entry at or below `index`. */
  endOffset(index: number): bigint {
    if (index < this._baseIndex) return this._baseOffset;
    const upTo = upperBound(this.skips, index);
    return this._baseOffset + BigInt(index + 1 - this._baseIndex - upTo);
  }

  /** The index of the data entry with consumer offset `offset` (not range-checked). */
  indexOf(offset: bigint): number {
    const k = Number(offset - this._baseOffset);
    // Skip p has (skips[p] - baseIndex - p) data entries before it, a non-decreasing
    // count: the skips before data entry k are those with a count <= k.
    let lo = 0;
    let hi = this.skips.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.skips[mid]! - this._baseIndex - mid <= k) lo = mid + 1;
      else hi = mid;
    }
    return this._baseIndex + k + lo;
  }

  isData(index: number): boolean {
    const p = lowerBound(this.skips, index);
    return this.skips[p] !== index;
  }

  termAt(index: number): number | undefined {
    if (index < this._baseIndex || index > this._lastIndex) return undefined;
    let lo = 0;
    let hi = this.termRuns.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.termRuns[mid]![0] <= index) lo = mid + 1;
      else hi = mid;
    }
    return this.termRuns[lo - 1]?.[1];
  }

  state(): TranslatorState {
    return {
      baseIndex: this._baseIndex,
      baseOffset: this._baseOffset,
      lastIndex: this._lastIndex,
      skips: this.skips.slice(),
      configs: this.configs.slice(),
      termRuns: this.termRuns.map(([i, t]) => [i, t] as const),
    };
  }

  /** Configuration entry indexes after `index`. */
  configsAfter(index: number): number[] {
    return this.configs.slice(upperBound(this.configs, index));
  }

  termRunsView(): readonly (readonly [number, number])[] {
    return this.termRuns;
  }

  /** The checkpoint body, covering entries up to `upTo` only (committed ones). */
  encode(upTo: number): Buffer {
    const copy = new OffsetTranslator(this.state());
    copy.truncate(upTo + 1);
    const w = new BodyWriter()
      .u64(copy._baseIndex)
      .u64(copy._baseOffset)
      .u64(copy._lastIndex)
      .u64(copy.skips.length);
    for (const s of copy.skips) w.u64(s);
    w.u64(copy.configs.length);
    for (const c of copy.configs) w.u64(c);
    w.u64(copy.termRuns.length);
    for (const [i, t] of copy.termRuns) w.u64(i).u64(t);
    return w.done();
  }

  static decode(body: Buffer, path: string): OffsetTranslator {
    const r = new BodyReader(body, path);
    const baseIndex = r.num();
    const baseOffset = r.u64();
    const lastIndex = r.num();
    const skips = Array.from({ length: r.num() }, () => r.num());
    const configs = Array.from({ length: r.num() }, () => r.num());
    const termRuns = Array.from({ length: r.num() }, () => [r.num(), r.num()] as const);
    r.end();
    return new OffsetTranslator({ baseIndex, baseOffset, lastIndex, skips, configs, termRuns });
  }
}

/** The first position whose value is >= x. */
function lowerBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first position whose value is > x. */
function upperBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
