// A batching producer: send() queues a record and resolves with its offset once the
// batch that carried it is acknowledged. Records wait at most `lingerMs` for company,
// a batch holds at most `maxBatchBytes`, and at most `maxInflight` batches are
// outstanding. Memory is bounded by `maxBufferedBytes`: ready() (and sendAll, which
// uses it) waits while that much is queued or in flight.
//
// The queue holds chunks, not records: send() queues a chunk of one, sendAll whole
// batches' worth from a synchronous source. A chunk has one Ack told once per batch
// that carried part of it: per-record objects, promises and acknowledgements cost
// more CPU than the network call itself at high rates.

import { Fifo } from './fifo.js';

/**
 * Prepares one batch (e.g. encodes it) when it is formed, possibly while others are in
 * flight, and returns what sends it: a promise of the offset of its first value (the
 * rest follow densely). Preparing ahead keeps encoding off the path between one
 * acknowledgement and the next send.
 */
export type PrepareBatch = (values: Uint8Array[]) => () => Promise<bigint>;

interface Formed {
  values: Uint8Array[];
  /** Whose records these are, in order. */
  parts: Part[];
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

/** Told the outcome of the records of its chunk, a run of `count` at a time. */
interface Ack {
  ok(first: bigint, count: number): void;
  fail(err: unknown, count: number): void;
}

/** Records queued together with one Ack. */
interface Chunk {
  values: Uint8Array[];
  bytes: number;
  ack: Ack;
  /** Position of values[0] in the order of sends (flush waits for those before its call). */
  seq: number;
}

interface Part {
  ack: Ack;
  count: number;
}

/** sendAll's one Ack for all its records: runs of offsets. */
class Sink implements Ack {
  private readonly runs = new Fifo<{ first: bigint; count: number }>();
  private taken = 0;
  error: unknown;
  failed = false;
  private wake: (() => void) | undefined;

  ok(first: bigint, count: number): void {
    this.runs.push({ first, count });
    this.notify();
  }

  /** The next acknowledged offset not yet taken, if any. */
  take(): bigint | undefined {
    if (this.runs.size === 0) return undefined;
    const run = this.runs.peek();
    const offset = run.first + BigInt(this.taken++);
    if (this.taken === run.count) {
      this.runs.shift();
      this.taken = 0;
    }
    return offset;
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

/**
 * Records sendAll handles between two turns of the event loop. Handing over and
 * acknowledging a batch's records is a long run of microtasks; without a break, a
 * request in flight waits for it before its next bytes go out (a request larger than
 * the node's HTTP/2 window needs the window update read in between).
 */
const SLICE = 256;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Producer implements AsyncDisposable {
  private readonly lingerMs: number;
  private readonly maxBatchBytes: number;
  private readonly maxBatchRecords: number;
  private readonly maxInflight: number;
  private readonly maxBufferedBytes: number;
  private readonly queue = new Fifo<Chunk>();
  private queuedBytes = 0;
  private queuedRecords = 0;
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
      this.enqueue([value], value.byteLength, { ok: resolve, fail: reject }),
    );
  }

  private enqueue(values: Uint8Array[], bytes: number, ack: Ack): void {
    this.queue.push({ values, bytes, ack, seq: this.seq });
    this.seq += values.length;
    this.queuedBytes += bytes;
    this.queuedRecords += values.length;
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
    // Values gathered into a chunk of up to a batch, queued when it is full, before
    // waiting for room or for an asynchronous source, and at the end.
    let chunk: Uint8Array[] = [];
    let chunkBytes = 0;
    let steps = 0;
    const queueChunk = () => {
      if (chunk.length === 0) return;
      this.enqueue(chunk, chunkBytes, sink);
      queued += chunk.length;
      chunk = [];
      chunkBytes = 0;
    };
    // A synchronous source is read without an await per value.
    const it: Iterator<Uint8Array> | AsyncIterator<Uint8Array> =
      Symbol.iterator in values ? values[Symbol.iterator]() : values[Symbol.asyncIterator]();
    for (;;) {
      const next = it.next();
      let r: IteratorResult<Uint8Array>;
      if (next instanceof Promise) {
        queueChunk(); // the source may take a while: do not hold what it gave
        r = await next;
      } else r = next;
      if (r.done) break;
      for (let offset = sink.take(); offset !== undefined; offset = sink.take()) {
        yielded++;
        yield offset;
        if (++steps % SLICE === 0) await turn();
      }
      if (sink.failed) throw sink.error;
      if (this.bufferedBytes + chunkBytes >= this.maxBufferedBytes) {
        queueChunk();
        await this.ready();
      }
      if (++steps % SLICE === 0 && this.inflight > 0) await turn();
      chunk.push(r.value);
      chunkBytes += r.value.byteLength;
      if (chunk.length >= this.maxBatchRecords || chunkBytes >= this.maxBatchBytes) queueChunk();
    }
    queueChunk();
    this.lingerDue = true;
    this.pump();
    while (yielded < queued) {
      const offset = sink.take();
      if (offset === undefined) {
        if (sink.failed) throw sink.error;
        await sink.changed();
        continue;
      }
      yielded++;
      yield offset;
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
          this.queuedBytes >= this.maxBatchBytes || this.queuedRecords >= this.maxBatchRecords;
        if (fullBatch || this.lingerDue || this.flushing > 0) this.formed = this.form();
      }
      if (this.formed === undefined || this.inflight >= this.maxInflight) return;
      const next = this.formed;
      this.formed = undefined;
      this.launch(next);
    }
  }

  private form(): Formed {
    const first = this.queue.peek().seq;
    let values: Uint8Array[] = [];
    const parts: Part[] = [];
    let bytes = 0;
    while (this.queue.size > 0 && values.length < this.maxBatchRecords) {
      const c = this.queue.peek();
      // As many of the chunk's values as fit (at least one in an empty batch).
      let k = 0;
      let b = 0;
      while (k < c.values.length && values.length + k < this.maxBatchRecords) {
        const size = c.values[k]!.byteLength;
        if (values.length + k > 0 && bytes + b + size > this.maxBatchBytes) break;
        b += size;
        k++;
      }
      if (k === 0) break;
      if (k === c.values.length) {
        this.queue.shift();
        if (values.length === 0) values = c.values;
        else for (const v of c.values) values.push(v);
        parts.push({ ack: c.ack, count: k });
        bytes += b;
      } else {
        // The batch is full: the rest of the chunk stays queued.
        for (let i = 0; i < k; i++) values.push(c.values[i]!);
        c.values = c.values.slice(k);
        c.bytes -= b;
        c.seq += k;
        parts.push({ ack: c.ack, count: k });
        bytes += b;
        break;
      }
    }
    this.queuedBytes -= bytes;
    this.queuedRecords -= values.length;
    this.formedBytes += bytes;
    if (this.queue.size === 0) {
      this.lingerDue = false;
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
    }
    return { values, parts, bytes, first, send: this.prepare(values) };
  }

  private launch({ parts, bytes, send, first }: Formed): void {
    this.formedBytes -= bytes;
    this.inflight++;
    this.inflightBytes += bytes;
    this.inflightFirst.add(first);
    // On an outcome the next batch is launched at once; the rest (acknowledging this
    // one's records, waking senders, which then refill and encode the next batch)
    // waits for the next turn of the event loop. Done in the same turn, that work
    // would run before the new request's bytes reach the socket (and before the
    // flow-control window updates a large request needs are read): at one batch in
    // flight it sat on the critical path.
    const done = () => {
      this.inflight--;
      this.inflightBytes -= bytes;
      this.inflightFirst.delete(first);
      this.pump();
    };
    const later = (tell: (p: Part) => void) =>
      setImmediate(() => {
        for (const p of parts) tell(p);
        if (!this.full) for (const w of this.roomWaiters.splice(0)) w();
        // Flushes look again once this batch's records have their outcome.
        for (const w of this.idleWaiters.splice(0)) w();
      });
    send().then(
      (offset) => {
        done();
        later((p) => {
          p.ack.ok(offset, p.count);
          offset += BigInt(p.count);
        });
      },
      (err: unknown) => {
        done();
        later((p) => p.ack.fail(err, p.count));
      },
    );
  }
}
