// An in-memory CommitLog for the server's unit tests (no disk): appends can be refused
// with a chosen error or held until their caller gives up, and records can carry stored
// wire bytes.
import type { CommitLog, CommittedRecord, ReadBatchOptions } from './ports.js';

/** The fake's "past either end" error; tests register a row for it. */
export class FakeOutOfRangeError extends Error {
  override readonly name = 'FakeOutOfRangeError';
  constructor(readonly offset: bigint) {
    super(`offset ${offset} is out of range`);
  }
}

export class MemoryCommitLog implements CommitLog {
  readonly records: CommittedRecord[] = [];
  /** When set, every append rejects with what this returns. */
  refuse: (() => Error) | undefined;
  /** When true, every append waits until its signal aborts, then rejects with the reason. */
  hold = false;
  /** Held appends that ended because their signal aborted. */
  abandoned = 0;
  /** Every append's values, in call order. */
  readonly appended: Uint8Array[][] = [];
  private waiters: (() => void)[] = [];

  constructor(private readonly term = 1n) {}

  async append(values: readonly Uint8Array[], o: { signal?: AbortSignal } = {}): Promise<bigint> {
    if (this.refuse) throw this.refuse();
    if (this.hold) {
      const { signal } = o;
      await new Promise<void>((resolve) => {
        if (signal?.aborted) resolve();
        else signal?.addEventListener('abort', () => resolve(), { once: true });
      });
      this.abandoned++;
      signal?.throwIfAborted();
    }
    this.appended.push([...values]);
    const first = BigInt(this.records.length);
    for (const v of values) this.push(Buffer.from(v));
    return first;
  }

  /** Adds a record directly (with `wire`, as a replicated log stores it). */
  push(value: Buffer, wire?: Buffer): void {
    this.records.push({ offset: BigInt(this.records.length), value, term: this.term, wire });
    for (const w of this.waiters.splice(0)) w();
  }

  get endOffset(): bigint {
    return BigInt(this.records.length);
  }

  async read(offset: bigint): Promise<CommittedRecord> {
    const r = this.records[Number(offset)];
    if (offset < 0n || r === undefined) throw new FakeOutOfRangeError(offset);
    return r;
  }

  async *readBatchesFrom(from: bigint, o: ReadBatchOptions = {}): AsyncIterable<CommittedRecord[]> {
    let next = Number(from);
    const max = o.maxRecords ?? 1000;
    for (;;) {
      if (o.signal?.aborted) return;
      if (next < this.records.length) {
        const batch = this.records.slice(next, next + max);
        next += batch.length;
        yield batch;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        o.signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }
}

/** Resolves once `pred` holds (asked every 10 ms), or rejects after `ms` naming `what`. */
export async function until(
  pred: () => boolean | Promise<boolean>,
  { ms = 5000, what }: { ms?: number; what: string },
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
