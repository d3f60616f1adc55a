// In-memory stand-in with the storage engine's public API, replaced by the engine.
export type FsyncPolicy = 'always' | 'never' | { intervalMs: number };

export class InvalidLogOptionError extends Error {
  override name = 'InvalidLogOptionError';
  constructor(readonly option: string) {
    super(`invalid option ${option}`);
  }
}

export class OffsetOutOfRangeError extends Error {
  override name = 'OffsetOutOfRangeError';
  constructor(
    readonly offset: bigint,
    readonly lowest: bigint,
    readonly highest: bigint,
  ) {
    super(`The requested offset is outside the log's range: ${offset}`);
  }
}

export class RecordTooLargeError extends Error {
  override name = 'RecordTooLargeError';
  constructor(
    readonly size: number,
    readonly max: number,
  ) {
    super(`record of ${size} bytes exceeds ${max}`);
  }
}

export class LogClosedError extends Error {
  override name = 'LogClosedError';
  constructor() {
    super('log is closed');
  }
}

export function parseFsyncPolicy(text: string): FsyncPolicy {
  if (text === 'always' || text === 'never') return text;
  const m = /^interval:([0-9]+)$/.exec(text);
  if (m) return { intervalMs: Number(m[1]) };
  throw new InvalidLogOptionError('fsync');
}

export interface LogOptions {
  maxStoreBytes?: number;
  maxRecordBytes?: number;
  fsync?: FsyncPolicy;
}

export interface StoredRecord {
  offset: bigint;
  value: Buffer;
}

export class Log {
  readonly recovery = { truncatedBytes: 0, indexesRebuilt: [] as string[] };
  private readonly values: Buffer[] = [];
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(private readonly maxRecordBytes: number) {}

  static async open(_dir: string, options: LogOptions = {}): Promise<Log> {
    return new Log(options.maxRecordBytes ?? 1024 * 1024);
  }

  get nextOffset(): bigint {
    return BigInt(this.values.length);
  }

  async append(value: Uint8Array): Promise<bigint> {
    return this.appendBatch([value]);
  }

  async appendBatch(values: readonly Uint8Array[]): Promise<bigint> {
    if (this.closed) throw new LogClosedError();
    for (const v of values) {
      if (v.byteLength > this.maxRecordBytes)
        throw new RecordTooLargeError(v.byteLength, this.maxRecordBytes);
    }
    const first = this.nextOffset;
    for (const v of values) this.values.push(Buffer.from(v));
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
    return first;
  }

  async read(offset: bigint): Promise<Buffer> {
    const v = this.values[Number(offset)];
    if (v === undefined || offset > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new OffsetOutOfRangeError(offset, 0n, this.nextOffset - 1n);
    }
    return v;
  }

  private async wait(offset: bigint, signal?: AbortSignal): Promise<boolean> {
    while (offset >= this.nextOffset) {
      if (signal?.aborted || this.closed) return false;
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    return true;
  }

  async *readFrom(from: bigint, opts: { signal?: AbortSignal } = {}): AsyncIterable<StoredRecord> {
    for (let offset = from; ; offset++) {
      if (!(await this.wait(offset, opts.signal))) return;
      yield { offset, value: await this.read(offset) };
    }
  }

  async *readBatchesFrom(
    from: bigint,
    opts: { signal?: AbortSignal; maxRecords?: number; maxBytes?: number } = {},
  ): AsyncIterable<StoredRecord[]> {
    let offset = from;
    for (;;) {
      if (!(await this.wait(offset, opts.signal))) return;
      const batch: StoredRecord[] = [];
      let bytes = 0;
      while (offset < this.nextOffset && batch.length < (opts.maxRecords ?? 1000)) {
        const value = await this.read(offset);
        if (batch.length > 0 && bytes + value.byteLength > (opts.maxBytes ?? 1 << 20)) break;
        batch.push({ offset, value });
        bytes += value.byteLength;
        offset++;
      }
      yield batch;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters) w();
  }
}
