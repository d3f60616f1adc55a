// How far ahead of a consumer that stops reading the SDK's consume stream runs: the node
// counts the records its stream handlers read from the log
// (commitlog_consumed_records_total); once the consumer stops pulling, that count must
// stop well short of the log's end. The plateau is the read-ahead bound docs/client.md
// states (grpc-js buffers, HTTP/2 windows, socket buffers and the node's send buffer
// together). Then the consumer goes on and gets every record, in order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { type CommitLog, connect } from '../src/client/index.js';
import { startNode, type TestNode } from './support/node.js';

const TOTAL = 20_000;
const SIZE = 1000;

async function consumedCounter(httpAddr: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddr}/metrics`)).text();
  const m = /^commitlog_consumed_records_total(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(
    text,
  );
  return m ? Number(m[1]) : 0;
}

/** The counter once it has not moved for `quietMs` (deadline `ms`). */
async function plateau(read: () => Promise<number>, quietMs: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let last = await read();
  let since = Date.now();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = await read();
    if (now !== last) [last, since] = [now, Date.now()];
    else if (Date.now() - since >= quietMs) return now;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms: still at ${now}`);
  }
}

describe('SDK consume read-ahead', () => {
  let node: TestNode;
  let log: CommitLog;

  before(async () => {
    node = await startNode({ fsync: 'never' });
    log = await connect(node.agent.rpcAddr);
    const value = Buffer.alloc(SIZE, 7);
    await using producer = log.producer({ lingerMs: 1 });
    let n = 0;
    for await (const offset of producer.sendAll(Array.from({ length: TOTAL }, () => value))) {
      assert.equal(offset, BigInt(n++));
    }
  });
  after(async () => {
    log?.close();
    await node?.cleanup();
  });

  it('stops the node reading the log while the loop does not pull, then delivers the rest in order', async (t) => {
    const before = await consumedCounter(node.agent.httpAddr);
    const abort = new AbortController();
    const it = log.consume({ from: 0n, signal: abort.signal })[Symbol.asyncIterator]();
    try {
      const first = await it.next();
      assert.equal(first.done ? undefined : first.value.offset, 0n);
      // The loop stops pulling here.
      const ahead =
        (await plateau(() => consumedCounter(node.agent.httpAddr), 500, 15_000)) - before;
      t.diagnostic(
        `read-ahead of a stopped consumer: ${ahead} of ${TOTAL} records ` +
          `(${((ahead * SIZE) / 2 ** 20).toFixed(1)} MiB of ${SIZE} B values)`,
      );
      assert.ok(ahead < TOTAL / 2, `the node read ${ahead} of ${TOTAL} records ahead`);
      for (let next = 1n; next < BigInt(TOTAL); next++) {
        const r = await it.next();
        assert.equal(r.done ? undefined : r.value.offset, next);
      }
    } finally {
      abort.abort();
      await it.return?.(undefined);
    }
  });
});
