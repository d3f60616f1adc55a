// The log: ordered segments, the last one taking appends. Every mutation (appends,
// truncations, rolls, close) runs through one queue, so no `await` between choosing
// an offset and writing it can interleave with another writer. Consecutive appends in
// the queue are written as one group: one write call and, with fsync `always`, one
// fsync for the whole group (group commit). Records become readable once durable by
// the policy, so a reader never sees a record whose append has not resolved.

import {
  LogClosedError,
  LogFailedError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
  SnapshotConflictError,
} from './errors.js';
import { frameSize, writeFrame } from './frame.js';
import { syncDirectory } from './fs-util.js';
import {
  INDEX_ENTRY_BYTES,
  MiB,
  resolveOptions,
  type LogOptions,
  type ResolvedLogOptions,
} from './options.js';
import { openSegments, type RecoveryReport } from './recovery.js';
import { Segment, type StoredRecord } from './segment.js';

export interface ReadLimits {
  /** At most this many records (default 1,000). */
  maxRecords?: number;
  /** At most this many stored bytes, but always at least one record (default 1 MiB). */
  maxBytes?: number;
}

const DEFAULT_READ_RECORDS = 1000;
const DEFAULT_READ_BYTES = MiB;
/** Appends queued beyond this many bytes wait for the next group (bounds memory per write). */
const MAX_GROUP_BYTES = 8 * MiB;

interface AppendOp {
  kind: 'append';
  values: readonly Uint8Array[];
  bytes: number;
  resolve(first: bigint): void;
  reject(err: unknown): void;
}

interface ControlOp {
  kind: 'control';
  run(): Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

type Op = AppendOp | ControlOp;

export class Log implements AsyncDisposable {
  /** What opening the directory found and repaired. */
  readonly recovery: RecoveryReport;
  private readonly options: ResolvedLogOptions;
  private readonly maxIndexEntries: number;
  /** invariant: contiguous (segments[i].nextOffset === segments[i+1].baseOffset), never empty */
  private segments: Segment[];
  /** Exclusive upper bound of what readers may see: everything below is durable by the policy. */
  private readableNext: bigint;
  private ops: Op[] = [];
  private draining = false;
  private dirty = false;
  private failure: unknown;
  private closing: Promise<void> | undefined;
  private growth = deferred();
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
    this.readableNext = this.active.nextOffset;
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
  /** The last readable offset; `lowestOffset - 1n` when the log is empty. */
  get highestOffset(): bigint {
    return this.readableNext - 1n;
  }
  /** The offset the next appended record will get (once earlier queued appends land). */
  get nextOffset(): bigint {
    return this.readableNext;
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
  append(value: Uint8Array): Promise<bigint> {
    return this.appendBatch([value]);
  }

  /** Appends records with dense offsets; resolves with the first offset. */
  appendBatch(values: readonly Uint8Array[]): Promise<bigint> {
    let bytes = 0;
    for (const v of values) {
      if (v.length > this.options.maxRecordBytes) {
        return Promise.reject(new RecordTooLargeError(v.length, this.options.maxRecordBytes));
      }
      bytes += frameSize(v.length);
    }
    return new Promise<bigint>((resolve, reject) => {
      this.enqueue({ kind: 'append', values, bytes, resolve, reject });
    });
  }

  /** The value stored at `offset` (a view of the read buffer, not a copy). */
  async read(offset: bigint): Promise<Buffer> {
    const [record] = await this.readBatch(offset, { maxRecords: 1 });
    return (record as StoredRecord).value;
  }

  /** Records from `from` on, as many as fit the limits (at least one). */
  async readBatch(from: bigint, limits: ReadLimits = {}): Promise<StoredRecord[]> {
    if (this.closed) throw new LogClosedError();
    return readSegments(this.segments, from, this.readableNext, limits);
  }

  /** Resolves once `offset` is readable; rejects with the signal's reason on abort. */
  async waitFor(offset: bigint, signal?: AbortSignal): Promise<void> {
    while (this.readableNext <= offset) {
      if (this.closed) throw new LogClosedError();
      signal?.throwIfAborted();
      await abortable(this.growth.promise, signal);
    }
  }

  /**
   * Batches of records from `from` on; when caught up, waits (no polling) for new ones.
   * Ends quietly when the signal aborts or the log closes. Throws OffsetOutOfRangeError
   * if retention drops records before they are read.
   */
  async *readBatchesFrom(
    from: bigint,
    options: ReadLimits & { signal?: AbortSignal } = {},
  ): AsyncGenerator<StoredRecord[], void, undefined> {
    const { signal } = options;
    let next = from;
    for (;;) {
      if (signal?.aborted === true || this.closed) return;
      if (next < this.readableNext) {
        const batch = await readSegments(this.segments, next, this.readableNext, options);
        next += BigInt(batch.length);
        yield batch;
        continue;
      }
      try {
        await abortable(this.growth.promise, signal);
      } catch (err) {
        if (isAborted(signal)) return;
        throw err;
      }
    }
  }

  /** Every record from `from` on, waiting for new ones; see readBatchesFrom. */
  async *readFrom(
    from: bigint,
    options: ReadLimits & { signal?: AbortSignal } = {},
  ): AsyncGenerator<StoredRecord, void, undefined> {
    for await (const batch of this.readBatchesFrom(from, options)) yield* batch;
  }

  /** Retention: drops whole segments that hold only offsets below `upTo`. */
  truncatePrefix(upTo: bigint): Promise<void> {
    return this.control(async () => {
      let drop = 0;
      while (
        drop < this.segments.length - 1 &&
        (this.segments[drop + 1] as Segment).baseOffset <= upTo
      ) {
        drop++;
      }
      if (drop === 0) return;
      const removed = this.segments.splice(0, drop);
      // Lowest first: a crash part-way leaves a contiguous suffix of the log.
      for (const s of removed) await s.unlinkFiles();
      await syncDirectory(this.dir);
      await Promise.all(removed.map((s) => s.release()));
    });
  }

  /** Drops every record at or after `from` (Raft discarding a conflicting tail). */
  truncateSuffix(from: bigint): Promise<void> {
    return this.control(async () => {
      if (from >= this.active.nextOffset) return;
      if (from < this.lowestOffset) {
        throw new OffsetOutOfRangeError(from, this.lowestOffset, this.highestOffset);
      }
      for (const snap of this.snapshots) {
        if (snap.highestOffset >= from) throw new SnapshotConflictError(from, snap.highestOffset);
      }
      this.readableNext = from; // readers stop seeing the tail before it goes
      // Highest first: a crash part-way leaves a contiguous prefix of the log.
      while (this.segments.length > 1 && this.active.baseOffset >= from) {
        const last = this.segments.pop() as Segment;
        await last.unlinkFiles();
        await last.release();
      }
      const active = this.active;
      await active.removeIndex(); // it may have been sealed; its index is rewritten when sealed again
      await active.truncateFrom(Number(from - active.baseOffset));
      await syncDirectory(this.dir);
    });
  }

  /** A consistent view of the records readable now; call release() when done. */
  snapshot(): LogSnapshot {
    if (this.closed) throw new LogClosedError();
    const snap = new LogSnapshot(this.segments.slice(), this.readableNext, (s) =>
      this.snapshots.delete(s),
    );
    this.snapshots.add(snap);
    return snap;
  }

  /** Flushes queued appends, syncs, writes the active index and closes files. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.syncTimer !== undefined) clearInterval(this.syncTimer);
      await new Promise<unknown>((resolve, reject) => {
        this.ops.push({ kind: 'control', run: () => this.closeFiles(), resolve, reject });
        this.kick();
      });
      this.growth.resolve(); // wake readers so they see the log is closed
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
    this.ops.push(op);
    this.kick();
  }

  private control<T>(run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.enqueue({ kind: 'control', run, resolve: resolve, reject });
    });
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    void this.drain();
  }

  /** The single writer: runs queued operations in order, grouping consecutive appends. */
  private async drain(): Promise<void> {
    // `draining` is cleared in the same synchronous step as the final emptiness check:
    // a caller resumed by the last resolve() then always finds the writer idle.
    for (;;) {
      const head = this.ops[0];
      if (head === undefined) {
        this.draining = false;
        return;
      }
      if (head.kind === 'control') {
        this.ops.shift();
        try {
          head.resolve(await head.run());
        } catch (err) {
          head.reject(err);
        }
        continue;
      }
      let n = 0;
      let bytes = 0;
      for (const op of this.ops) {
        if (op.kind !== 'append' || (n > 0 && bytes + op.bytes > MAX_GROUP_BYTES)) break;
        bytes += op.bytes;
        n++;
      }
      await this.writeGroup(this.ops.splice(0, n) as AppendOp[]);
    }
  }

  private async writeGroup(group: AppendOp[]): Promise<void> {
    if (this.failure !== undefined) {
      for (const op of group) op.reject(new LogFailedError({ cause: this.failure }));
      return;
    }
    // Offsets are chosen here, inside the single writer, so nothing can race them.
    const values: Uint8Array[] = [];
    const firsts: bigint[] = [];
    let next = this.active.nextOffset;
    for (const op of group) {
      firsts.push(next);
      for (const v of op.values) values.push(v);
      next += BigInt(op.values.length);
    }
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
      await this.undoGroup(rolled, start, startCount, err);
      for (const op of group) op.reject(err);
      return;
    }
    this.readableNext = this.active.nextOffset;
    this.grown();
    for (const [i, op] of group.entries()) op.resolve(firsts[i] as bigint);
  }

  /** After a failed write: cut the partial group off, or stop the log if that is not possible. */
  private async undoGroup(
    rolled: boolean,
    start: Segment,
    startCount: number,
    cause: unknown,
  ): Promise<void> {
    if (rolled) {
      this.failure = cause;
      return;
    }
    try {
      await start.truncateFrom(startCount);
    } catch {
      this.failure = cause;
    }
  }

  /** Seals the active segment (sync, index) and starts a new one after it. */
  private async roll(): Promise<void> {
    const sealed = this.active;
    if (this.options.fsync !== 'never') await sealed.sync();
    await sealed.writeIndex();
    this.segments.push(await Segment.create(this.dir, sealed.nextOffset));
    await syncDirectory(this.dir);
  }

  private async syncActive(): Promise<void> {
    const started = performance.now();
    await this.active.sync();
    this.dirty = false;
    this.options.observer.synced?.((performance.now() - started) / 1000);
  }

  private syncInBackground(): void {
    if (!this.dirty || this.closed) return;
    this.control(() => this.syncActive()).catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  private grown(): void {
    const previous = this.growth;
    this.growth = deferred();
    previous.resolve();
  }

  private async closeFiles(): Promise<void> {
    const active = this.active;
    if (this.failure === undefined) {
      await active.sync();
      await active.writeIndex();
      await syncDirectory(this.dir);
    }
    await Promise.all(this.segments.map((s) => s.release()));
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

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Waits for a never-rejecting promise, or rejects with the signal's reason on abort. */
function abortable(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return promise;
  signal.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
