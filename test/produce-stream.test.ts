// ProduceStream against a log whose appends complete only when the test says so: the
// server keeps a bounded number of appends in flight, and acknowledges in request order
// even when the appends complete in another order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { LogClient } from '../src/api/index.js';
import { ApiServer, type CommitLog } from '../src/server/index.js';
import { NO_CLUSTER } from './support/node.js';
import { settled, within } from './support/wait.js';

/** Appends wait in `pending` until the test settles them. */
class GatedLog implements CommitLog {
  pending: { value: Uint8Array; settle: (offset: bigint) => void; fail: (e: Error) => void }[] = [];
  /** The most appends ever waiting at once. */
  maxPending = 0;
  private waiters: (() => void)[] = [];

  append(values: readonly Uint8Array[]): Promise<bigint> {
    const value = values[0] as Uint8Array; // ProduceStream appends one record at a time
    return new Promise((resolve, reject) => {
      this.pending.push({ value, settle: resolve, fail: reject });
      this.maxPending = Math.max(this.maxPending, this.pending.length);
      for (const w of this.waiters.splice(0)) w();
    });
  }
  /** Resolves once `n` appends are waiting. */
  async waitForPending(n: number): Promise<void> {
    while (this.pending.length < n) await new Promise<void>((r) => this.waiters.push(r));
  }
  read(): Promise<never> {
    throw new Error('not used');
  }
  readBatchesFrom(): AsyncIterable<never> {
    throw new Error('not used');
  }
}

describe('ProduceStream pipelining', () => {
  const MAX_IN_FLIGHT = 64;
  let log: GatedLog;
  let server: ApiServer;
  let raw: LogClient;

  before(async () => {
    log = new GatedLog();
    server = new ApiServer({
      log,
      cluster: NO_CLUSTER,
      maxInFlight: MAX_IN_FLIGHT,
    });
    const port = (await server.listenGrpc('127.0.0.1', 0)).port;
    raw = new LogClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    raw?.close();
    await server?.close(1000);
  });

  it('bounds appends in flight and acks in request order whatever order they complete in', async () => {
    const total = 300;
    const stream = raw.produceStream();
    const acks: bigint[] = [];
    stream.on('data', (res: { offset: bigint }) => acks.push(res.offset));
    const ended = new Promise<void>((resolve) => stream.on('end', resolve));
    for (let i = 0; i < total; i++) {
      stream.write({ record: { value: Buffer.from(`v${i}`), offset: 0n, term: 0n, type: 0 } });
    }
    stream.end();

    // All of the first window starts at once: the server did not wait for any of them.
    await within(5000, `${MAX_IN_FLIGHT} appends in flight`, log.waitForPending(MAX_IN_FLIGHT));
    // Nothing completes, so nothing more may start: the count must stay at the window.
    const quiet = await within(
      5000,
      'appends stop starting',
      settled(() => log.pending.length, 200),
    );
    assert.equal(quiet, MAX_IN_FLIGHT);
    assert.deepEqual(
      log.pending.slice(0, 3).map((p) => Buffer.from(p.value).toString()),
      ['v0', 'v1', 'v2'],
    );

    // Complete each window in reverse order; acks must still come in request order.
    let next = 0n;
    let completed = 0;
    while (completed < total) {
      await within(5000, 'next window of appends', log.waitForPending(1));
      const window = log.pending.splice(0);
      const offsets = window.map((_, i) => next + BigInt(i));
      next += BigInt(window.length);
      for (let i = window.length - 1; i >= 0; i--) window[i]?.settle(offsets[i] ?? -1n);
      completed += window.length;
    }
    await within(5000, 'stream end', ended);
    assert.equal(log.maxPending, MAX_IN_FLIGHT, 'never more appends in flight than the window');
    assert.deepEqual(
      acks,
      Array.from({ length: total }, (_, i) => BigInt(i)),
    );
  });
});
