// The log: ordered segments, the last one taking appends. Every mutation (appends,
// truncations, rolls, resets, close) runs through one queue, so no `await` between
// choosing an offset and writing it can interleave with another writer. Consecutive
// appends in the queue are written as one group: one write call and, with fsync
// `always`, one fsync for the whole group (group commit).
//
// Two bounds: the durable end (everything below is written and durable by the policy;
// appends resolve once their records are below it) and the commit point readers stop
// at. By default the commit point follows the durable end, so a reader never sees a
// record whose append has not resolved; with `commitGated` its owner moves it
// (`commit(end)`), never above the durable end.
//
// Any failed write, fsync or file operation stops the log (LogFailedError): after a
// failed fsync the kernel may have dropped the unwritten pages, so nothing the writer
// believes about the files can be trusted until they are recovered by reopening.

import {
  CommitOutOfRangeError,
  CommittedRecordsError,
  DiskFullError,
  InvalidLogOptionError,
  LogClosedError,
  LogFailedError,
  OffsetConflictError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
  SnapshotConflictError,
} from './errors.js';
import { frameSize, writeFrame } from './frame.js';
import { syncDirectory } from './fs.js';
import {
  INDEX_ENTRY_BYTES,
  MiB,
  resolveOptions,
  type LogOptions,
  type ResolvedLogOptions,
} from './options.js';
import { completeReset, openSegments, writeResetMarker, type RecoveryReport } from './recovery.js';
import { Segment, type StoredRecord } from './segment.js';
import { Watermark } from './watermark.js';

export interface ReadLimits {
  /** At most this many records (default 1,000). */
  maxRecords?: number;
  /** At most this many stored bytes, but always at least one record (default 1 MiB). */
  maxBytes?: number;
}

export interface AppendOptions {
  /**
   * The offset the first record must get. If the log's next offset differs when the
   * single writer reaches this append, it is rejected with OffsetConflictError and
   * nothing is written (Raft appending at the index it decided on).
   */
  expectFirst?: bigint;
}

const DEFAULT_READ_RECORDS = 1000;
const DEFAULT_READ_BYTES = MiB;
/** Appends queued beyond this many bytes wait for the next group (bounds memory per write). */
const MAX_GROUP_BYTES = 8 * MiB;
const MAX_OFFSET = 2n ** 64n - 1n;

interface AppendOp {
  kind: 'append';
  values: readonly Uint8Array[];
  bytes: number;
  expectFirst: bigint | undefined;
  resolve(first: bigint): void;
  reject(err: unknown): void;
}

/** Anything else the writer runs alone: truncations, resets, background fsyncs, close. */
interface ExclusiveOp {
  kind: 'exclusive';
  run(): Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

type Op = AppendOp | ExclusiveOp;

/** The commit point; unlike a plain Watermark it follows the durable end down when the log is cut. */
class CommitPoint extends Watermark {
  moveTo(to: bigint): void {
    this.set(to);
  }
}

export class Log implements AsyncDisposable {
  /** What opening the directory found and repaired. */
  readonly recovery: RecoveryReport;
  private readonly options: ResolvedLogOptions;
  private readonly maxIndexEntries: number;
  /** invariant: contiguous (segments[i].nextOffset === segments[i+1].baseOffset), never empty */
  private segments: Segment[];
  /** Exclusive: everything below is written and durable by the fsync policy. */
  private durable: bigint;
  /** Exclusive upper bound of what readers see; invariant: committed.value <= durable. */
  private readonly committed: CommitPoint;
  private queue: Op[] = [];
  private writerRunning = false;
  private dirty = false;
  /** Set once, when a write fails; every later mutation is refused with it. */
  private failure: LogFailedError | undefined;
  private closing: Promise<void> | undefined;
  private readonly snapshots = new Set<LogSnapshot>();
  private readonly syncTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly dir: string,
    options: ResolvedLogOptions,
    segments: Segment[],
    recovery: RecoveryReport,
  ) {
    this.options = options;
    this.maxIndexEntries = Math.floor(options.maxIndexBytes / INDEX_ENTRY_BYTES);
    this.segments = segments;
    this.recovery = recovery;
    this.durable = this.active.nextOffset;
    // A reopened gated log knows nothing committed: its owner (Raft) commits again.
    this.committed = new CommitPoint(options.commitGated ? this.first.baseOffset : this.durable);
    const fsync = options.fsync;
    if (typeof fsync === 'object') {
      this.syncTimer = setInterval(() => this.syncInBackground(), fsync.intervalMs);
      this.syncTimer.unref();
    }
  }

  /** Opens (creating if needed) the log in `dir`, recovering from a crash if there was one. */
  static async open(dir: string, options?: LogOptions): Promise<Log> {
    const resolved = resolveOptions(options);
    const { segments, report } = await openSegments(dir, resolved);
    return new Log(dir, resolved, segments, report);
  }

  get lowestOffset(): bigint {
    return this.first.baseOffset;
  }
  /** The last readable (committed) offset; `lowestOffset - 1n` when none is. */
  get highestOffset(): bigint {
    return this.committed.value - 1n;
  }
  /**
   * The durable end: the offset the next appended record gets once the appends already
   * queued have landed. Equal to committedEnd unless the log is commit-gated.
   */
  get nextOffset(): bigint {
    return this.durable;
  }
  /** Exclusive: readers (read, readBatch, readFrom, waitFor, snapshot) stop here. */
  get committedEnd(): bigint {
    return this.committed.value;
  }
  get closed(): boolean {
    return this.closing !== undefined;
  }

  stats(): { segments: number; bytes: number } {
    let bytes = 0;
    for (const s of this.segments) bytes += s.size;
    return { segments: this.segments.length, bytes };
  }

  /** Appends one record; resolves with its offset once it is durable by the fsync policy. */
  append(value: Uint8Array, options?: AppendOptions): Promise<bigint> {
    return this.appendBatch([value], options);
  }

  /** Appends records with dense offsets; resolves with the first offset. */
  appendBatch(values: readonly Uint8Array[], options?: AppendOptions): Promise<bigint> {
    let bytes = 0;
    for (const v of values) {
      if (v.length > this.options.maxRecordBytes) {
        return Promise.reject(new RecordTooLargeError(v.length, this.options.maxRecordBytes));
      }
      bytes += frameSize(v.length);
    }
    const expectFirst = options?.expectFirst;
    return new Promise<bigint>((resolve, reject) => {
      this.enqueue({ kind: 'append', values, bytes, expectFirst, resolve, reject });
    });
  }

  /**
   * Moves the commit point up to `end` (exclusive) and wakes readers waiting below it.
   * Only for a log opened with `commitGated`. A lower `end` than the current one changes
   * nothing; one above the durable end throws CommitOutOfRangeError.
   */
  commit(end: bigint): void {
    if (!this.options.commitGated) {
      throw new InvalidLogOptionError(
        'commitGated',
        'commit() needs a log opened with commitGated: true (this one commits what is durable)',
      );
    }
    if (this.closed) throw new LogClosedError();
    if (end > this.durable) throw new CommitOutOfRangeError(end, this.durable);
    this.committed.advance(end);
  }

  /** The value stored at `offset` (a view of the read buffer, not a copy). */
  async read(offset: bigint): Promise<Buffer> {
    const [record] = await this.readBatch(offset, { maxRecords: 1 });
    return (record as StoredRecord).value;
  }

  /**
   * Records from `from` on, as many as fit the limits (at least one), below the commit
   * point; with `uncommitted`, below the durable end (a Raft leader sending entries it
   * has not committed yet).
   */
  async readBatch(
    from: bigint,
    options: ReadLimits & { uncommitted?: boolean } = {},
  ): Promise<StoredRecord[]> {
    if (this.closed) throw new LogClosedError();
    const end = options.uncommitted === true ? this.durable : this.committed.value;
    return readSegments(this.segments, from, end, options);
  }

  /** Resolves once `offset` is readable (committed); rejects with the signal's reason on abort. */
  async waitFor(offset: bigint, signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new LogClosedError();
    await this.committed.waitFor(offset + 1n, { signal });
  }

  /**
   * Batches of committed records from `from` on; when caught up, waits (no polling) for
   * new ones. Ends quietly when the signal aborts or the log closes. Throws
   * OffsetOutOfRangeError if retention (or a reset) drops records before they are read.
   */
  async *readBatchesFrom(
    from: bigint,
    options: ReadLimits & { signal?: AbortSignal } = {},
  ): AsyncGenerator<StoredRecord[], void, undefined> {
    const { signal } = options;
    let next = from;
    for (;;) {
      if (signal?.aborted === true || this.closed) return;
      const end = this.committed.value;
      if (next < end) {
        const batch = await readSegments(this.segments, next, end, options);
        next += BigInt(batch.length);
        yield batch;
        continue;
      }
      try {
        await this.committed.waitFor(next + 1n, { signal });
      } catch (err) {
        if (isAborted(signal) || err instanceof LogClosedError) return;
        throw err;
      }
    }
  }

  /** Every committed record from `from` on, waiting for new ones; see readBatchesFrom. */
  async *readFrom(
    from: bigint,
    options: ReadLimits & { signal?: AbortSignal } = {},
  ): AsyncGenerator<StoredRecord, void, undefined> {
    for await (const batch of this.readBatchesFrom(from, options)) yield* batch;
  }

  /**
   * Retention: drops whole segments that hold only offsets below `upTo` (and below the
   * commit point: uncommitted records are never dropped from the front).
   */
  truncatePrefix(upTo: bigint): Promise<void> {
    return this.runExclusive(async () => {
      this.throwIfFailed();
      const limit = upTo < this.committed.value ? upTo : this.committed.value;
      let drop = 0;
      while (
        drop < this.segments.length - 1 &&
        (this.segments[drop + 1] as Segment).baseOffset <= limit
      ) {
        drop++;
      }
      if (drop === 0) return;
      const removed = this.segments.splice(0, drop);
      await this.failOnError(async () => {
        // Lowest first: a crash part-way leaves a contiguous suffix of the log.
        for (const s of removed) await s.unlinkFiles();
        await syncDirectory(this.options.fs, this.dir);
      });
      await Promise.all(removed.map((s) => s.release()));
    });
  }

  /**
   * Drops every record at or after `from` (Raft discarding a conflicting tail). Refused
   * with CommittedRecordsError below the commit point of a gated log, and with
   * SnapshotConflictError when an open snapshot reads at or after `from`.
   */
  truncateSuffix(from: bigint): Promise<void> {
    return this.runExclusive(async () => {
      this.throwIfFailed();
      if (from >= this.active.nextOffset) return;
      if (from < this.lowestOffset) {
        throw new OffsetOutOfRangeError(from, this.lowestOffset, this.highestOffset);
      }
      if (this.options.commitGated && from < this.committed.value) {
        throw new CommittedRecordsError(from, this.committed.value);
      }
      for (const snap of this.snapshots) {
        if (snap.highestOffset >= from) throw new SnapshotConflictError(from, snap.highestOffset);
      }
      // Readers (and commit()) stop seeing the tail before it goes.
      this.durable = from;
      if (!this.options.commitGated) this.committed.moveTo(from);
      await this.failOnError(async () => {
        // Highest first: a crash part-way leaves a contiguous prefix of the log.
        while (this.segments.length > 1 && this.active.baseOffset >= from) {
          const last = this.segments.pop() as Segment;
          await last.unlinkFiles();
          await last.release();
        }
        const active = this.active;
        await active.removeIndex(); // it may have been sealed; its index is rewritten when sealed again
        await active.truncateFrom(Number(from - active.baseOffset));
        await syncDirectory(this.options.fs, this.dir);
      });
    });
  }

  /**
   * Replaces the log with an empty one whose next offset is `base` (a Raft follower
   * installing a snapshot). Crash-safe: the new base is persisted first (a marker file
   * renamed into place), so a crash at any point reopens either the old log or the new
   * empty one. Afterwards nextOffset = lowestOffset = committedEnd = base. Open
   * snapshots keep reading the old records. Refused below the commit point of a gated log.
   */
  resetTo(base: bigint): Promise<void> {
    return this.runExclusive(async () => {
      this.throwIfFailed();
      if (base < 0n || base > MAX_OFFSET) throw new OffsetOutOfRangeError(base, 0n, MAX_OFFSET);
      const gated = this.options.commitGated;
      if (gated && base < this.committed.value) {
        throw new CommittedRecordsError(base, this.committed.value);
      }
      // Nothing above the new base may be committed (or read) while the files change.
      if (this.durable > base) this.durable = base;
      if (!gated && this.committed.value > base) this.committed.moveTo(base);
      const fresh = await this.failOnError(async () => {
        await writeResetMarker(this.options.fs, this.dir, base);
        return completeReset(this.options.fs, this.dir, base);
      });
      const old = this.segments;
      this.segments = [fresh];
      // Open snapshots hold the old files, which no truncation of the new log can touch.
      this.snapshots.clear();
      this.durable = base;
      this.dirty = false;
      if (gated) this.committed.advance(base);
      else this.committed.moveTo(base);
      await Promise.all(old.map((s) => s.release()));
    });
  }

  /** A consistent view of the committed records now; call release() when done. */
  snapshot(): LogSnapshot {
    if (this.closed) throw new LogClosedError();
    const snap = new LogSnapshot(this.segments.slice(), this.committed.value, (s) =>
      this.snapshots.delete(s),
    );
    this.snapshots.add(snap);
    return snap;
  }

  /** Flushes queued appends, syncs, writes the active index and closes files. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.syncTimer !== undefined) clearInterval(this.syncTimer);
      try {
        await new Promise<unknown>((resolve, reject) => {
          this.queue.push({ kind: 'exclusive', run: () => this.closeFiles(), resolve, reject });
          this.startWriter();
        });
      } finally {
        this.committed.close(new LogClosedError()); // wake readers so they see the log is closed
      }
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1] as Segment;
  }
  private get first(): Segment {
    return this.segments[0] as Segment;
  }

  private enqueue(op: Op): void {
    if (this.closed) {
      op.reject(new LogClosedError());
      return;
    }
    this.queue.push(op);
    this.startWriter();
  }

  /** Runs `run` in the single writer, after everything queued before it. */
  private runExclusive<T>(run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.enqueue({ kind: 'exclusive', run, resolve, reject });
    });
  }

  private startWriter(): void {
    if (this.writerRunning) return;
    this.writerRunning = true;
    void this.writeLoop();
  }

  /** The single writer: runs queued operations in order, grouping consecutive appends. */
  private async writeLoop(): Promise<void> {
    // `writerRunning` is cleared in the same synchronous step as the final emptiness
    // check: a caller resumed by the last resolve() then always finds the writer idle.
    for (;;) {
      const head = this.queue[0];
      if (head === undefined) {
        this.writerRunning = false;
        return;
      }
      if (head.kind === 'exclusive') {
        this.queue.shift();
        try {
          head.resolve(await head.run());
        } catch (err) {
          head.reject(err);
        }
        continue;
      }
      let n = 0;
      let bytes = 0;
      for (const op of this.queue) {
        if (op.kind !== 'append' || (n > 0 && bytes + op.bytes > MAX_GROUP_BYTES)) break;
        bytes += op.bytes;
        n++;
      }
      await this.writeGroup(this.queue.splice(0, n) as AppendOp[]);
    }
  }

  private async writeGroup(group: AppendOp[]): Promise<void> {
    if (this.failure !== undefined) {
      for (const op of group) op.reject(this.failure);
      return;
    }
    // Offsets are chosen here, inside the single writer, so nothing can race them.
    const values: Uint8Array[] = [];
    const accepted: AppendOp[] = [];
    const firsts: bigint[] = [];
    let next = this.active.nextOffset;
    for (const op of group) {
      if (op.expectFirst !== undefined && op.expectFirst !== next) {
        op.reject(new OffsetConflictError(op.expectFirst, next));
        continue;
      }
      accepted.push(op);
      firsts.push(next);
      for (const v of op.values) values.push(v);
      next += BigInt(op.values.length);
    }
    if (accepted.length === 0) return;
    let rolled = false;
    const start = this.active;
    const startCount = start.records;
    try {
      let i = 0;
      while (i < values.length) {
        const segment = this.active;
        // How many of the next values fit in this segment?
        let end = i;
        let chunkBytes = 0;
        let records = segment.records;
        let size = segment.size;
        for (; end < values.length; end++) {
          const bytes = frameSize((values[end] as Uint8Array).length);
          const full =
            records > 0 &&
            (size + bytes > this.options.maxStoreBytes || records >= this.maxIndexEntries);
          if (full) break;
          chunkBytes += bytes;
          records++;
          size += bytes;
        }
        if (end === i) {
          await this.roll();
          rolled = true;
          continue;
        }
        const frames = Buffer.allocUnsafe(chunkBytes);
        const positions = new Array<number>(end - i);
        let at = 0;
        for (let j = i; j < end; j++) {
          positions[j - i] = at;
          at = writeFrame(frames, at, values[j] as Uint8Array);
        }
        await segment.write(frames, positions);
        this.options.observer.appended?.(end - i, chunkBytes);
        i = end;
      }
      if (this.options.fsync === 'always') await this.syncActive();
      else this.dirty = true;
    } catch (err) {
      const failure = isDiskFull(err)
        ? await this.dropUnwritten(firsts[0] as bigint, err)
        : await this.undoGroup(rolled, start, startCount, err);
      for (const op of accepted) op.reject(failure);
      return;
    }
    this.durable = this.active.nextOffset;
    if (!this.options.commitGated) this.committed.advance(this.durable);
    for (const [i, op] of accepted.entries()) op.resolve(firsts[i] as bigint);
  }

  /**
   * After a failed write: cut the partial group off (so a reopen does not bring back
   * records whose appends failed) and stop the log, keeping both errors if the cut fails.
   */
  private async undoGroup(
    rolled: boolean,
    start: Segment,
    startCount: number,
    cause: unknown,
  ): Promise<LogFailedError> {
    if (!rolled) {
      try {
        await start.truncateFrom(startCount);
      } catch (undoErr) {
        return this.fail(
          new AggregateError([cause, undoErr], 'a write failed, and so did cutting it back'),
        );
      }
    }
    return this.fail(cause);
  }

  /**
   * A write found the disk full: nothing of the group was acknowledged or readable, so
   * it is cut off (segments it rolled to go, as truncateSuffix does) and the log goes on
   * taking appends; they succeed again once there is space. Cutting needs no space; if
   * it fails anyway, the log stops as for any failed write.
   */
  private async dropUnwritten(from: bigint, cause: unknown): Promise<Error> {
    try {
      while (this.segments.length > 1 && this.active.baseOffset >= from) {
        const last = this.segments.pop() as Segment;
        await last.unlinkFiles();
        await last.release();
      }
      const active = this.active;
      await active.removeIndex(); // it may have been sealed by the roll
      await active.truncateFrom(Number(from - active.baseOffset));
      await syncDirectory(this.options.fs, this.dir);
    } catch (undoErr) {
      return this.fail(
        new AggregateError(
          [cause, undoErr],
          'the disk was full, and cutting the write back failed',
        ),
      );
    }
    return new DiskFullError(this.dir, { cause });
  }

  /** Seals the active segment (sync, index) and starts a new one after it. */
  private async roll(): Promise<void> {
    const sealed = this.active;
    // Under every policy, `never` included: recovery trusts every segment but the last
    // to be whole, so it must be on disk before its successor exists. Once per segment.
    await sealed.sync();
    await sealed.writeIndex();
    this.segments.push(await Segment.create(this.options.fs, this.dir, sealed.nextOffset));
    await syncDirectory(this.options.fs, this.dir);
  }

  private async syncActive(): Promise<void> {
    const started = performance.now();
    await this.active.sync();
    this.dirty = false;
    this.options.observer.synced?.((performance.now() - started) / 1000);
  }

  private syncInBackground(): void {
    if (!this.dirty || this.closed || this.failure !== undefined) return;
    this.runExclusive(async () => {
      if (this.dirty && this.failure === undefined) {
        await this.failOnError(() => this.syncActive());
      }
    }).catch(() => undefined); // reported through observer.failed and refused on the next write
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Runs file operations whose failure leaves memory and files disagreeing: it stops the log. */
  private async failOnError<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** Stops the log (once) and reports it; returns the error every later write gets. */
  private fail(cause: unknown): LogFailedError {
    if (this.failure === undefined) {
      this.failure = new LogFailedError({ cause });
      this.options.observer.failed?.(this.failure);
    }
    return this.failure;
  }

  private async closeFiles(): Promise<void> {
    try {
      if (this.failure === undefined) {
        await this.failOnError(async () => {
          await this.active.sync();
          await this.active.writeIndex();
          await syncDirectory(this.options.fs, this.dir);
        });
      }
    } finally {
      await Promise.all(this.segments.map((s) => s.release()));
    }
  }
}

/** A point-in-time view: the segments and bounds captured when it was taken. */
export class LogSnapshot implements Disposable {
  readonly lowestOffset: bigint;
  readonly highestOffset: bigint;
  private released = false;

  constructor(
    private readonly segments: readonly Segment[],
    private readonly end: bigint,
    private readonly onRelease: (s: LogSnapshot) => void,
  ) {
    for (const s of segments) s.acquire();
    this.lowestOffset = (segments[0] as Segment).baseOffset;
    this.highestOffset = end - 1n;
  }

  async read(offset: bigint): Promise<Buffer> {
    const [record] = await this.readBatch(offset, { maxRecords: 1 });
    return (record as StoredRecord).value;
  }

  readBatch(from: bigint, limits: ReadLimits = {}): Promise<StoredRecord[]> {
    if (this.released) return Promise.reject(new LogClosedError());
    return readSegments(this.segments, from, this.end, limits);
  }

  /** Every record of the snapshot from `from` to its end (no waiting). */
  async *records(
    from: bigint = this.lowestOffset,
    limits: ReadLimits = {},
  ): AsyncGenerator<StoredRecord> {
    for (let next = from; next < this.end;) {
      const batch = await this.readBatch(next, limits);
      next += BigInt(batch.length);
      yield* batch;
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease(this);
    for (const s of this.segments) {
      s.release().catch(() => undefined); // closing a read-only handle cannot lose data
    }
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

/** Reads records from `from` (below `end`) out of a contiguous segment list. */
async function readSegments(
  segments: readonly Segment[],
  from: bigint,
  end: bigint,
  limits: ReadLimits,
): Promise<StoredRecord[]> {
  const lowest = (segments[0] as Segment).baseOffset;
  if (from < lowest || from >= end) throw new OffsetOutOfRangeError(from, lowest, end - 1n);
  const segment = findSegment(segments, from);
  const relative = Number(from - segment.baseOffset);
  const available = Math.min(segment.records - relative, Number(end - from));
  const maxRecords = Math.min(limits.maxRecords ?? DEFAULT_READ_RECORDS, available);
  segment.acquire(); // a concurrent truncatePrefix must not close the file under this read
  try {
    return await segment.readRecords(relative, maxRecords, limits.maxBytes ?? DEFAULT_READ_BYTES);
  } finally {
    await segment.release();
  }
}

function findSegment(segments: readonly Segment[], offset: bigint): Segment {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((segments[mid] as Segment).baseOffset <= offset) lo = mid;
    else hi = mid - 1;
  }
  return segments[lo] as Segment;
}

/** Read through a function: TypeScript would keep `signal.aborted` narrowed across an await. */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/**
 * ENOSPC or EDQUOT from a write, an open or a rename: the data never reached the file,
 * so cutting it back leaves files and memory in agreement. From an fsync it is not
 * recoverable: the kernel may have dropped pages it had accepted.
 */
function isDiskFull(err: unknown): boolean {
  const { code, syscall } = (err ?? {}) as NodeJS.ErrnoException;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return false;
  return syscall === undefined || !/sync$/.test(syscall);
}
