// The timed part of a run: produce (unary, stream or batch calls) or consume (the
// streaming or batched call), over one or more connections, until `count` records or
// the deadline. Each returns how many records it moved; latencies go to `latencies`.
import * as grpc from '@grpc/grpc-js';

import { type CommitLog, raw } from '../../client/index.js';
import type { Latencies } from './measure.js';

type RawClient = raw.RawClient;
const {
  consumeBatchRequest,
  consumeRequest,
  MalformedResponseError,
  produceBatchRequest,
  producedCount,
  produceRequest,
  scanRecords,
} = raw;

export type ProduceMode = 'unary' | 'stream' | 'batch' | 'sdk';
export type ConsumeMode = 'stream' | 'batch';

export interface RunLimits {
  /** Records to move in total (over all clients). */
  count: number;
  /** performance.now() after which no new request is sent. */
  deadline: number;
}

/** Live counter read by the progress display. */
export interface Moved {
  records: number;
  /** Value bytes (consume counts what it received; produce leaves this to the caller). */
  bytes: number;
}

/** Splits `total` into `parts` shares that differ by at most one. */
function shares(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0),
  );
}

function expired(limits: RunLimits): boolean {
  return performance.now() >= limits.deadline;
}

/** Unary Produce: `inflight` outstanding calls per client, latency per call. */
export async function produceUnary(
  clients: RawClient[],
  value: Buffer,
  inflight: number,
  limits: RunLimits,
  latencies: Latencies,
  moved: Moved,
): Promise<number> {
  const request = produceRequest(value);
  let issued = 0;
  const worker = async (client: RawClient) => {
    while (issued < limits.count && !expired(limits)) {
      issued++;
      const started = performance.now();
      await client.unary('produce', request);
      latencies.recordSince(started);
      moved.records++;
    }
  };
  await Promise.all(clients.flatMap((c) => Array.from({ length: inflight }, () => worker(c))));
  return moved.records;
}

/** ProduceBatch of `batch` records: `inflight` outstanding calls per client, latency per call. */
export async function produceBatch(
  clients: RawClient[],
  value: Buffer,
  batch: number,
  inflight: number,
  limits: RunLimits,
  latencies: Latencies,
  moved: Moved,
): Promise<number> {
  const full = produceBatchRequest(value, batch);
  let issued = 0;
  const worker = async (client: RawClient) => {
    while (issued < limits.count && !expired(limits)) {
      const records = Math.min(batch, limits.count - issued);
      issued += records;
      const request = records === batch ? full : produceBatchRequest(value, records);
      const started = performance.now();
      const res = await client.unary('produceBatch', request);
      latencies.recordSince(started);
      const count = producedCount(res);
      if (count !== records) {
        throw new MalformedResponseError(`sent ${records} records, the node appended ${count}`);
      }
      moved.records += records;
    }
  };
  await Promise.all(clients.flatMap((c) => Array.from({ length: inflight }, () => worker(c))));
  return moved.records;
}

/**
 * The SDK's batching producer (connect() + producer().sendAll): records are handed over
 * one by one and the producer forms batches of up to `batch` records, with `inflight`
 * batches outstanding; latency per batch is not visible here, so none is recorded.
 */
export async function produceSdk(
  logs: CommitLog[],
  value: Buffer,
  batch: number,
  inflight: number,
  lingerMs: number,
  limits: RunLimits,
  moved: Moved,
): Promise<number> {
  const one = async (log: CommitLog, share: number) => {
    const producer = log.producer({
      lingerMs,
      maxBatchRecords: batch,
      maxBatchBytes: batch * Math.max(value.length, 1),
      maxInflight: inflight,
      // Room for the batches in flight and one being filled: what pipelining needs.
      maxBufferedBytes: (inflight + 1) * batch * Math.max(value.length, 1),
    });
    function* values() {
      for (let i = 0; i < share && !expired(limits); i++) yield value;
    }
    let acked = 0;
    for await (const offset of producer.sendAll(values())) {
      void offset;
      acked++;
      moved.records++;
    }
    await producer.close();
    return acked;
  };
  const counts = await Promise.all(
    shares(limits.count === Infinity ? Number.MAX_SAFE_INTEGER : limits.count, logs.length).map(
      (share, i) => one(logs[i] as CommitLog, share),
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * One ProduceStream per client with at most `window` unacknowledged records; latency
 * per acknowledgement (from the write of its request).
 */
export async function produceStream(
  clients: RawClient[],
  value: Buffer,
  window: number,
  limits: RunLimits,
  latencies: Latencies,
  moved: Moved,
): Promise<number> {
  const request = produceRequest(value);
  const one = (client: RawClient, share: number) =>
    new Promise<number>((resolve, reject) => {
      const call = client.produceStream();
      const sentAt = new Float64Array(window);
      let sent = 0;
      let acked = 0;
      const send = () => {
        sentAt[sent % window] = performance.now();
        sent++;
        call.write(request);
      };
      const finish = () => {
        call.end();
        resolve(acked);
      };
      call.on('data', () => {
        latencies.recordSince(sentAt[acked % window] as number);
        acked++;
        moved.records++;
        if (sent < share && !expired(limits)) send();
        else if (acked === sent) finish();
      });
      call.on('error', reject);
      call.on('end', () => {
        if (acked < sent) reject(new MalformedResponseError(`stream ended after ${acked} acks`));
      });
      while (sent < Math.min(window, share)) send();
      if (share === 0) finish();
    });
  const counts = await Promise.all(
    shares(limits.count, clients.length).map((share, i) => one(clients[i] as RawClient, share)),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * Reads [from, from + count) with ConsumeStream or ConsumeBatchStream; with several
 * clients each reads its own consecutive part. Offsets are checked to be dense.
 */
export async function consume(
  clients: RawClient[],
  mode: ConsumeMode,
  from: number,
  maxRecords: number,
  limits: RunLimits,
  moved: Moved,
): Promise<number> {
  const one = (client: RawClient, start: number, share: number) =>
    new Promise<number>((resolve, reject) => {
      if (share === 0) {
        resolve(0);
        return;
      }
      const call =
        mode === 'stream'
          ? client.serverStream('consumeStream', consumeRequest(start))
          : client.serverStream('consumeBatchStream', consumeBatchRequest(start, maxRecords));
      const field = mode === 'stream' ? 2 : 1;
      let received = 0;
      let done = false;
      call.on('data', (message: Buffer) => {
        if (done) return;
        let n: { records: number; bytes: number };
        try {
          n = scanRecords(message, field, start + received);
        } catch (err) {
          done = true;
          call.cancel();
          reject(err instanceof Error ? err : new MalformedResponseError(String(err)));
          return;
        }
        received += n.records;
        moved.records += n.records;
        moved.bytes += n.bytes;
        if (received >= share || expired(limits)) {
          done = true;
          call.cancel();
          resolve(Math.min(received, share));
        }
      });
      call.on('error', (err: grpc.ServiceError) => {
        if (done && err.code === grpc.status.CANCELLED) return;
        done = true;
        reject(err);
      });
      call.on('end', () => {
        if (!done) reject(new MalformedResponseError(`stream ended after ${received} records`));
      });
    });
  let start = from;
  const parts = shares(limits.count, clients.length).map((share, i) => {
    const part = one(clients[i] as RawClient, start, share);
    start += share;
    return part;
  });
  const counts = await Promise.all(parts);
  return counts.reduce((a, b) => a + b, 0);
}

/** Whether a record exists at `offset` (unary Consume; OUT_OF_RANGE means no). */
async function exists(client: RawClient, offset: number): Promise<boolean> {
  try {
    await client.unary('consume', consumeRequest(offset));
    return true;
  } catch (err) {
    if ((err as grpc.ServiceError).code === grpc.status.OUT_OF_RANGE) return false;
    throw err;
  }
}

/** The offset after the last record (found by probing with unary Consume). */
export async function endOfLog(client: RawClient, from: number): Promise<number> {
  if (!(await exists(client, from))) return from;
  let lo = from; // exists
  let step = 1;
  while (await exists(client, lo + step)) {
    lo += step;
    step *= 2;
  }
  let hi = lo + step; // does not exist
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (await exists(client, mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}
