// A batching producer: send() queues a record and resolves with its offset once the
// batch that carried it is acknowledged. Records wait at most `lingerMs` for company,
// a batch holds at most `maxBatchBytes`, and at most `maxInflight` batches are
// outstanding. Memory is bounded by `maxBufferedBytes`: ready() (and sendAll, which
// uses it) waits while that much is queued or in flight.

/**
 * Prepares one batch (e.g. encodes it) when it is formed, possibly while others are in
 * flight, and returns what sends it: a promise of the offset of its first value (the
 * rest follow densely). Preparing ahead keeps encoding off the path between one
 * acknowledgement and the next send.
 */
export type PrepareBatch = (values: Uint8Array[]) => () => Promise<bigint>;

interface Formed {
  batch: Pending[];
  bytes: number;
  send: () => Promise<bigint>;
  /** The sequence number of its first record. */
  first: number;
}

export interface ProducerOptions {
  /** How long a record may wait for others before its batch is sent (default 5 ms). */
  lingerMs?: number;
  /** A batch is sent as soon as it holds this many value bytes (default 1 MiB). */
  maxBatchBytes?: number;
  /** ...or this many records (default 10 000). */
  maxBatchRecords?: number;
  /**
   * Batches outstanding at once (default 1). Above 1, a batch retried after NOT_LEADER
   * can land after a later one: records keep their order only with 1.
   */
  maxInflight?: number;
  /** ready() waits while this many value bytes are queued or in flight (default 16 MiB). */
  maxBufferedBytes?: number;
}

/** Told the outcome of each record it was queued with. */
interface Ack {
  ok(offset: bigint): void;
  fail(err: unknown): void;
}

interface Pending {
  value: Uint8Array;
  ack: Ack;
  /** Position in the order of send() calls (flush waits for those before its call). */
  seq: number;
}

/** sendAll's one Ack for all its records (no allocation per record). */
class Sink implements Ack {
  readonly offsets = new Fifo<bigint>();
  error: unknown;
  failed = false;
  private wake: (() => void) | undefined;

  ok(offset: bigint): void {
    this.offsets.push(offset);
    this.notify();
  }

  fail(err: unknown): void {
    if (!this.failed) {
      this.failed = true;
      this.error = err;
    }
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Resolves at the next ok or fail. */
  changed(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }
}

/** The producer was closed; nothing more can be sent. */
export class ProducerClosedError extends Error {
  override readonly name = 'ProducerClosedError';
  constructor(options?: ErrorOptions) {
    super('the producer is closed', options);
  }
}

export class Producer implements AsyncDisposable {
  private readonly lingerMs: number;
  private readonly maxBatchBytes: number;
  private readonly maxBatchRecords: number;
  private readonly maxInflight: number;
  private readonly maxBufferedBytes: number;
  private readonly queue = new Fifo<Pending>();
  private queuedBytes = 0;
  private inflight = 0;
  private inflightBytes = 0;
  /** The next batch, formed and prepared, waiting for an in-flight slot. */
  private formed: Formed | undefined;
  private formedBytes = 0;
  private lingerDue = false;
  private flushing = 0;
  /** Records queued so far (the next record's seq). */
  private seq = 0;
  /** The first seq of each batch in flight. */
  private readonly inflightFirst = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private roomWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly prepare: PrepareBatch,
    o: ProducerOptions = {},
    private readonly onClose: () => void = () => undefined,
  ) {
    this.lingerMs = o.lingerMs ?? 5;
    this.maxBatchBytes = o.maxBatchBytes ?? 1 << 20;
    this.maxBatchRecords = o.maxBatchRecords ?? 10_000;
    this.maxInflight = o.maxInflight ?? 1;
    this.maxBufferedBytes = o.maxBufferedBytes ?? 16 << 20;
  }

  /** Value bytes queued or in flight. */
  get bufferedBytes(): number {
    return this.queuedBytes + this.formedBytes + this.inflightBytes;
  }

  /** Whether ready() would wait. */
  get full(): boolean {
    return this.bufferedBytes >= this.maxBufferedBytes;
  }

  /** Resolves when there is room for more (bufferedBytes below maxBufferedBytes). */
  ready(): Promise<void> {
    if (!this.full || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /**
   * Queues `value`; resolves with its offset once acknowledged, rejects with the
   * batch's error (ProduceOutcomeUnknownError when it may have been appended). Does not
   * wait for room: call ready() first to bound memory, or use sendAll.
   */
  send(value: Uint8Array): Promise<bigint> {
    if (this.closed) return Promise.reject(new ProducerClosedError());
    return new Promise<bigint>((resolve, reject) =>
      this.enqueue(value, { ok: resolve, fail: reject }),
    );
  }

  private enqueue(value: Uint8Array, ack: Ack): void {
    this.queue.push({ value, ack, seq: this.seq++ });
    this.queuedBytes += value.byteLength;
    if (this.queue.size === 1 && this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.lingerDue = true;
        this.pump();
      }, this.lingerMs);
    }
    this.pump();
  }

  /**
   * Sends every value, waiting for room as it goes, and yields their offsets in order.
   * Throws the first failure (records already queued are still sent).
   */
  async *sendAll(values: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<bigint> {
    if (this.closed) throw new ProducerClosedError();
    const sink = new Sink();
    let queued = 0;
    let yielded = 0;
    const add = (value: Uint8Array) => {
      this.enqueue(value, sink);
      queued++;
    };
    // A synchronous source is read without an await per value.
    const it: Iterator<Uint8Array> | AsyncIterator<Uint8Array> =
      Symbol.iterator in values ? values[Symbol.iterator]() : values[Symbol.asyncIterator]();
    for (;;) {
      const next = it.next();
      const r = next instanceof Promise ? await next : next;
      if (r.done) break;
      while (sink.offsets.size > 0) {
        yielded++;
        yield sink.offsets.shift();
      }
      if (sink.failed) throw sink.error;
      if (this.full) await this.ready();
      add(r.value);
    }
    this.lingerDue = true;
    this.pump();
    while (yielded < queued) {
      if (sink.offsets.size === 0) {
        if (sink.failed) throw sink.error;
        await sink.changed();
        continue;
      }
      yielded++;
      yield sink.offsets.shift();
    }
  }

  /**
   * Sends what is queued without waiting for lingerMs; resolves when every record sent
   * before the call has its outcome. Records sent meanwhile go out at once too, but are
   * not waited for (else a steady stream of sends would keep flush() from ever ending).
   */
  async flush(): Promise<void> {
    const mark = this.seq;
    this.flushing++;
    try {
      this.pump();
      while (this.oldestUnsettled() < mark) {
        await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      }
    } finally {
      this.flushing--;
    }
  }

  /** The seq of the oldest record without an outcome (this.seq when there is none). */
  private oldestUnsettled(): number {
    let oldest = this.seq;
    for (const first of this.inflightFirst) oldest = Math.min(oldest, first);
    if (this.formed !== undefined) oldest = Math.min(oldest, this.formed.first);
    if (this.queue.size > 0) oldest = Math.min(oldest, this.queue.peek().seq);
    return oldest;
  }

  /** Flushes, then refuses further sends. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.roomWaiters.splice(0)) w();
    this.onClose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private pump(): void {
    for (;;) {
      if (this.formed === undefined && this.queue.size > 0) {
        const fullBatch =
          this.queuedBytes >= this.maxBatchBytes || this.queue.size >= this.maxBatchRecords;
        if (fullBatch || this.lingerDue || this.flushing > 0) this.formed = this.form();
      }
      if (this.formed === undefined || this.inflight >= this.maxInflight) return;
      const next = this.formed;
      this.formed = undefined;
      this.launch(next);
    }
  }

  private form(): Formed {
    let bytes = 0;
    const batch: Pending[] = [];
    while (this.queue.size > 0 && batch.length < this.maxBatchRecords) {
      const size = this.queue.peek().value.byteLength;
      if (batch.length > 0 && bytes + size > this.maxBatchBytes) break;
      bytes += size;
      batch.push(this.queue.shift());
    }
    this.queuedBytes -= bytes;
    this.formedBytes += bytes;
    if (this.queue.size === 0) {
      this.lingerDue = false;
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
    }
    const first = batch[0]!.seq;
    return { batch, bytes, first, send: this.prepare(batch.map((p) => p.value)) };
  }

  private launch({ batch, bytes, send, first }: Formed): void {
    this.formedBytes -= bytes;
    this.inflight++;
    this.inflightBytes += bytes;
    this.inflightFirst.add(first);
    const done = () => {
      this.inflight--;
      this.inflightBytes -= bytes;
      this.inflightFirst.delete(first);
      if (!this.full) for (const w of this.roomWaiters.splice(0)) w();
      this.pump();
    };
    // Flushes look again once this batch's records have their outcome.
    const settled = () => {
      for (const w of this.idleWaiters.splice(0)) w();
    };
    send().then(
      (offset) => {
        done();
        for (const p of batch) p.ack.ok(offset++);
        settled();
      },
      (err: unknown) => {
        done();
        for (const p of batch) p.ack.fail(err);
        settled();
      },
    );
  }
}

/** A first-in first-out queue with O(1) shift (Array.prototype.shift copies). */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T {
    if (this.size === 0) throw new RangeError('empty queue');
    return this.items[this.head] as T;
  }

  shift(): T {
    const item = this.peek();
    this.items[this.head] = undefined as T;
    this.head++;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
