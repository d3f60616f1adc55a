// A batching producer: send() queues a record and resolves with its offset once the
// batch that carried it is acknowledged. Records wait at most `lingerMs` for company,
// a batch holds at most `maxBatchBytes`, and at most `maxInflight` batches are
// outstanding. Memory is bounded by `maxBufferedBytes`: ready() (and sendAll, which
// uses it) waits while that much is queued or in flight.

/** Sends one batch; resolves with one offset per value. */
export type SendBatch = (values: Uint8Array[]) => Promise<bigint[]>;

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

interface Pending {
  value: Uint8Array;
  resolve: (offset: bigint) => void;
  reject: (err: unknown) => void;
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
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private inflight = 0;
  private inflightBytes = 0;
  private lingerDue = false;
  private flushing = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private roomWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly sendBatch: SendBatch,
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
    return this.queuedBytes + this.inflightBytes;
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
    return new Promise<bigint>((resolve, reject) => {
      this.queue.push({ value, resolve, reject });
      this.queuedBytes += value.byteLength;
      if (this.queue.length === 1 && this.timer === undefined) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.lingerDue = true;
          this.pump();
        }, this.lingerMs);
      }
      this.pump();
    });
  }

  /**
   * Sends every value, waiting for room as it goes, and yields their offsets in order.
   * Stops at the first failure (records already queued are still sent).
   */
  async *sendAll(values: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<bigint> {
    const acks: Promise<bigint>[] = [];
    const track = (p: Promise<bigint>) => {
      // Awaited in order below; this only keeps an early failure from being "unhandled".
      p.catch(() => undefined);
      acks.push(p);
    };
    for await (const value of values) {
      while (this.full && acks.length > 0) yield await (acks.shift() as Promise<bigint>);
      await this.ready();
      track(this.send(value));
    }
    this.lingerDue = true;
    this.pump();
    while (acks.length > 0) yield await (acks.shift() as Promise<bigint>);
  }

  /** Sends what is queued without waiting for lingerMs; resolves when all is acknowledged. */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      this.pump();
      while (this.queue.length > 0 || this.inflight > 0) {
        await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      }
    } finally {
      this.flushing--;
    }
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
    while (this.queue.length > 0 && this.inflight < this.maxInflight) {
      const fullBatch =
        this.queuedBytes >= this.maxBatchBytes || this.queue.length >= this.maxBatchRecords;
      if (!fullBatch && !this.lingerDue && this.flushing === 0) return;
      this.sendNext();
    }
  }

  private sendNext(): void {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.maxBatchRecords) {
      const size = (this.queue[n] as Pending).value.byteLength;
      if (n > 0 && bytes + size > this.maxBatchBytes) break;
      bytes += size;
      n++;
    }
    const batch = this.queue.splice(0, n);
    this.queuedBytes -= bytes;
    this.inflight++;
    this.inflightBytes += bytes;
    if (this.queue.length === 0) {
      this.lingerDue = false;
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
    }
    const done = () => {
      this.inflight--;
      this.inflightBytes -= bytes;
      if (!this.full) for (const w of this.roomWaiters.splice(0)) w();
      this.pump();
      if (this.queue.length === 0 && this.inflight === 0) {
        for (const w of this.idleWaiters.splice(0)) w();
      }
    };
    this.sendBatch(batch.map((p) => p.value)).then(
      (offsets) => {
        done();
        batch.forEach((p, i) => p.resolve(offsets[i] as bigint));
      },
      (err: unknown) => {
        done();
        for (const p of batch) p.reject(err);
      },
    );
  }
}
