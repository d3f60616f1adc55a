// The clients of a chaos run. Producers append with all three produce calls (unary,
// ProduceStream, ProduceBatch) to any node; consumers follow the log with
// ConsumeStream on every node and resume from the next offset after any failure.
// Every call is recorded with its outcome and its interval on one monotonic clock;
// every value is unique (`<process>-<seq>-<padding>`) so the checker can trace it.
import { performance } from 'node:perf_hooks';

import * as grpc from '@grpc/grpc-js';

import { LogClient, type LogRecord, type ProduceResponse } from '../../src/api/index.js';
import type { ConsumeOp, Operation, Outcome, ProduceApi, ProduceOp } from './history.js';
import { pause, type Rng } from './rng.js';

export const now = (): number => performance.now();

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Reconnect quickly after a node restarts; the default backoff grows to 120 s.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.enable_retries': 0,
};

/**
 * Codes that say the produce was refused before it could take effect. RESOURCE_EXHAUSTED
 * is a limit (record size, streams) or a full disk; a full disk may also still be
 * answered INTERNAL naming it (DISK_FULL). If such a record shows up after all, the
 * checker reports a phantom: the node refused something it then kept.
 */
const DEFINITE_FAILURES = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNIMPLEMENTED,
  grpc.status.RESOURCE_EXHAUSTED,
]);
const DISK_FULL = /ENOSPC|no space left|disk (is )?full/i;

export function outcomeOfError(err: unknown): Outcome {
  if (err instanceof Error && 'code' in err && typeof err.code === 'number') {
    const name = grpc.status[err.code] ?? String(err.code);
    const error = `${name}: ${(err as grpc.ServiceError).details ?? err.message}`.slice(0, 160);
    // grpc-js fails a call this way before sending it: no transport was ever picked.
    const neverSent =
      err.code === (grpc.status.UNAVAILABLE as number) &&
      /^No connection established/.test((err as grpc.ServiceError).details ?? '');
    const diskFull =
      err.code === (grpc.status.INTERNAL as number) &&
      DISK_FULL.test((err as grpc.ServiceError).details ?? '');
    return DEFINITE_FAILURES.has(err.code) || neverSent || diskFull
      ? { type: 'failed', error }
      : { type: 'unknown', error };
  }
  return { type: 'unknown', error: err instanceof Error ? err.message : String(err) };
}

export interface Target {
  name: string;
  rpcAddr: string;
}

export interface WorkloadOptions {
  targets: () => readonly Target[];
  producers: number;
  consumersPerNode: number;
  rng: Rng;
  /** Per-call deadline. */
  callTimeoutMs: number;
  /** Pause between a producer's calls, chosen in [0, thinkMs]. */
  thinkMs: number;
  maxBatch: number;
}

function record(value: Uint8Array): LogRecord {
  return { value: Buffer.from(value), offset: 0n, term: 0n, type: 0 };
}

class Clients {
  private readonly byAddr = new Map<string, LogClient>();
  get(addr: string): LogClient {
    let c = this.byAddr.get(addr);
    if (!c) {
      c = new LogClient(addr, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
      this.byAddr.set(addr, c);
    }
    return c;
  }
  close(): void {
    for (const c of this.byAddr.values()) c.close();
    this.byAddr.clear();
  }
}

export class Workload {
  readonly operations: Operation[] = [];
  private readonly stopProducers = new AbortController();
  private readonly stopConsumers = new AbortController();
  private producing: Promise<void>[] = [];
  private consuming: Promise<void>[] = [];
  private readonly consumers: Consumer[] = [];
  private readonly clients = new Clients();

  constructor(private readonly opts: WorkloadOptions) {}

  start(): void {
    const apis: ProduceApi[] = ['unary', 'stream', 'batch'];
    for (let i = 0; i < this.opts.producers; i++) {
      const p = new Producer(
        `p${i}`,
        apis[i % apis.length]!,
        this.opts.rng.fork(),
        this.opts,
        this,
      );
      this.producing.push(p.run(this.stopProducers.signal));
    }
    for (const t of this.opts.targets()) {
      for (let j = 0; j < this.opts.consumersPerNode; j++) {
        const c = new Consumer(`c${t.name}.${j}`, t.name, this.opts, this);
        this.consumers.push(c);
        this.consuming.push(c.run(this.stopConsumers.signal));
      }
    }
  }

  client(addr: string): LogClient {
    return this.clients.get(addr);
  }

  get acknowledged(): number {
    return this.operations.filter((o) => o.kind === 'produce' && o.outcome.type === 'ok').length;
  }

  /** Stops producing; resolves when every call in flight has its outcome. */
  async stopProducing(): Promise<void> {
    this.stopProducers.abort();
    await Promise.all(this.producing);
  }

  /** Resolves once every consumer has delivered offset `last`, or rejects at the deadline. */
  async consumersReach(last: bigint, deadline: number): Promise<void> {
    while (now() < deadline) {
      const behind = this.consumers.filter((c) => c.next <= last);
      if (behind.length === 0) return;
      // A consumer stuck on a half-open connection is restarted from its next offset.
      for (const c of behind) if (now() - c.lastProgress > 5000) c.restart();
      await pause(100);
    }
    const behind = this.consumers
      .filter((c) => c.next <= last)
      .map((c) => `${c.process} at ${c.next}`);
    throw new Error(`consumers did not reach offset ${last}: ${behind.join(', ')}`);
  }

  async stopConsuming(): Promise<void> {
    this.stopConsumers.abort();
    await Promise.all(this.consuming);
    this.clients.close();
  }

  /** One produce with a deadline; used for the final fence record. */
  async produceOne(process: string, target: Target, value: Buffer): Promise<ProduceOp> {
    const invoke = now();
    let outcome: Outcome;
    try {
      const res = await new Promise<ProduceResponse>((resolve, reject) =>
        this.client(target.rpcAddr).produce(
          { record: record(value) },
          new grpc.Metadata(),
          { deadline: Date.now() + this.opts.callTimeoutMs },
          (err, r) => (err ? reject(err) : resolve(r)),
        ),
      );
      outcome = { type: 'ok', offset: res.offset };
    } catch (err) {
      outcome = outcomeOfError(err);
    }
    const op: ProduceOp = {
      kind: 'produce',
      process,
      api: 'unary',
      node: target.name,
      invoke,
      complete: now(),
      value,
      outcome,
    };
    this.operations.push(op);
    return op;
  }
}

class Producer {
  private seq = 0;
  constructor(
    readonly process: string,
    readonly api: ProduceApi,
    private readonly rng: Rng,
    private readonly opts: WorkloadOptions,
    private readonly w: Workload,
  ) {}

  private nextValue(): Buffer {
    const head = `${this.process}-${this.seq++}-`;
    const pad = this.rng.int(0, 96);
    let s = head;
    for (let i = 0; i < pad; i++) s += String.fromCharCode(97 + this.rng.int(0, 25));
    return Buffer.from(s);
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const targets = this.opts.targets();
      const target = this.rng.pick(targets);
      const client = this.w.client(target.rpcAddr);
      let failed: boolean;
      if (this.api === 'unary') failed = await this.unary(client, target);
      else if (this.api === 'batch') failed = await this.batch(client, target);
      else failed = await this.stream(client, target);
      await pause(failed ? this.rng.int(50, 250) : this.rng.int(0, this.opts.thinkMs), signal);
    }
  }

  private push(target: Target, invoke: number, value: Buffer, outcome: Outcome): void {
    this.w.operations.push({
      kind: 'produce',
      process: this.process,
      api: this.api,
      node: target.name,
      invoke,
      complete: now(),
      value,
      outcome,
    });
  }

  private deadline(): Date {
    return new Date(Date.now() + this.opts.callTimeoutMs);
  }

  private async unary(client: LogClient, target: Target): Promise<boolean> {
    const value = this.nextValue();
    const invoke = now();
    try {
      const res = await new Promise<ProduceResponse>((resolve, reject) =>
        client.produce(
          { record: record(value) },
          new grpc.Metadata(),
          { deadline: this.deadline() },
          (err, r) => (err ? reject(err) : resolve(r)),
        ),
      );
      this.push(target, invoke, value, { type: 'ok', offset: res.offset });
      return false;
    } catch (err) {
      this.push(target, invoke, value, outcomeOfError(err));
      return true;
    }
  }

  private async batch(client: LogClient, target: Target): Promise<boolean> {
    const values = Array.from({ length: this.rng.int(1, this.opts.maxBatch) }, () =>
      this.nextValue(),
    );
    const invoke = now();
    try {
      const res = await new Promise<{ firstOffset: bigint; count: number }>((resolve, reject) =>
        client.produceBatch(
          { records: values.map(record) },
          new grpc.Metadata(),
          { deadline: this.deadline() },
          (err, r) => (err ? reject(err) : resolve(r)),
        ),
      );
      if (res.count !== values.length) {
        // The server must take all or nothing; a short count is recorded as unknown for
        // the records it did not account for (the checker then finds any loss).
        values.forEach((v, i) =>
          this.push(
            target,
            invoke,
            v,
            i < res.count
              ? { type: 'ok', offset: res.firstOffset + BigInt(i) }
              : { type: 'unknown', error: `batch answered count ${res.count} of ${values.length}` },
          ),
        );
        return true;
      }
      values.forEach((v, i) =>
        this.push(target, invoke, v, { type: 'ok', offset: res.firstOffset + BigInt(i) }),
      );
      return false;
    } catch (err) {
      const outcome = outcomeOfError(err);
      for (const v of values) this.push(target, invoke, v, outcome);
      return true;
    }
  }

  /** One ProduceStream of a few records; offsets come back in order. */
  private async stream(client: LogClient, target: Target): Promise<boolean> {
    const values = Array.from({ length: this.rng.int(1, this.opts.maxBatch * 2) }, () =>
      this.nextValue(),
    );
    const invokes: number[] = [];
    const call = client.produceStream({
      deadline: new Date(Date.now() + this.opts.callTimeoutMs * 2),
    });
    let acked = 0;
    try {
      const answers = (async () => {
        for await (const res of call as AsyncIterable<ProduceResponse>) {
          const i = acked++;
          if (i >= values.length)
            throw new Error(`ProduceStream answered more offsets than records sent`);
          this.push(target, invokes[i] ?? now(), values[i]!, { type: 'ok', offset: res.offset });
        }
      })();
      for (const v of values) {
        invokes.push(now());
        if (!call.write({ record: record(v) })) {
          await new Promise<void>((resolve) => {
            call.once('drain', resolve);
            call.once('error', resolve);
            call.once('close', resolve);
          });
        }
      }
      call.end();
      await answers;
      if (acked < values.length)
        throw new Error(`ProduceStream ended after ${acked} of ${values.length} offsets`);
      return false;
    } catch (err) {
      call.cancel();
      const outcome = outcomeOfError(err);
      for (let i = acked; i < values.length; i++)
        this.push(target, invokes[i] ?? now(), values[i]!, outcome);
      return true;
    }
  }
}

class Consumer {
  next = 0n;
  lastProgress = now();
  private current?: grpc.ClientReadableStream<unknown>;
  constructor(
    readonly process: string,
    readonly nodeName: string,
    private readonly opts: WorkloadOptions,
    private readonly w: Workload,
  ) {}

  restart(): void {
    this.lastProgress = now();
    this.current?.cancel();
  }

  async run(signal: AbortSignal): Promise<void> {
    const onAbort = () => this.current?.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    while (!signal.aborted) {
      const target = this.opts.targets().find((t) => t.name === this.nodeName);
      if (!target) return;
      const from = this.next;
      const invoke = now();
      const call = this.w.client(target.rpcAddr).consumeStream({ offset: from });
      this.current = call;
      try {
        for await (const res of call as AsyncIterable<{ record?: LogRecord }>) {
          const r = res.record;
          if (!r) throw new Error('ConsumeStream answered without a record');
          const op: ConsumeOp = {
            kind: 'consume',
            process: this.process,
            node: this.nodeName,
            from,
            invoke,
            complete: now(),
            // A copy: the decoded value is a view into the whole message buffer.
            value: Buffer.from(r.value),
            outcome: { type: 'ok', offset: r.offset },
          };
          this.w.operations.push(op);
          this.next = r.offset + 1n;
          this.lastProgress = now();
        }
        if (!signal.aborted) throw new Error('ConsumeStream ended');
      } catch (err) {
        if (signal.aborted) break;
        this.w.operations.push({
          kind: 'consume',
          process: this.process,
          node: this.nodeName,
          from,
          invoke,
          complete: now(),
          value: new Uint8Array(),
          outcome: outcomeOfError(err),
        });
        await pause(200, signal);
      }
    }
    signal.removeEventListener('abort', onAbort);
  }
}

/** Reads what `target` serves from offset 0, through `last` and on until the end. */
export async function readAll(
  client: LogClient,
  last: bigint,
  timeoutMs: number,
): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  let next = 0n;
  while (next <= last) {
    if (Date.now() > deadline) throw new Error(`read stopped at offset ${next}, before ${last}`);
    const call = client.consumeBatchStream(
      { offset: next, maxRecords: 1000, maxBytes: 0 },
      { deadline: new Date(deadline) },
    );
    try {
      for await (const res of call as AsyncIterable<{ records: LogRecord[] }>) {
        for (const r of res.records) {
          out.push(r);
          next = r.offset + 1n;
        }
        if (next > last) break;
      }
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await pause(200);
    } finally {
      call.cancel();
    }
  }
  // Whatever sits past `last` (a produce whose outcome was unknown landing late).
  for (;;) {
    try {
      const res = await new Promise<{ record?: LogRecord }>((resolve, reject) =>
        client.consume(
          { offset: next },
          new grpc.Metadata(),
          { deadline: new Date(Date.now() + 5000) },
          (err, r) => (err ? reject(err) : resolve(r)),
        ),
      );
      if (!res.record) break;
      out.push(res.record);
      next = res.record.offset + 1n;
    } catch (err) {
      if (err instanceof Error && 'code' in err && err.code === grpc.status.OUT_OF_RANGE) break;
      throw err;
    }
  }
  return out;
}
