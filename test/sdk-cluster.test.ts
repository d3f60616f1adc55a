// The SDK against a real three-node cluster (agent processes on 127.0.0.1): a batching
// producer and unary produces run while nodes are killed with SIGKILL (the leader twice,
// then the last node not yet killed, so every consume stream loses its node at least
// once). Two consume streams follow the log throughout: one on the leader
// (`linearizable`), one wherever the SDK puts it. Afterwards: each stream delivered
// 0, 1, 2, … with no gap and no duplicate, both delivered the same bytes, every
// acknowledged offset holds the value it was acknowledged for, and every record nobody
// acknowledged is a produce that failed with ProduceOutcomeUnknownError, stored once.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';

import {
  type CommitLog,
  connect,
  type Consistency,
  type ConsumedRecord,
  ProduceOutcomeUnknownError,
} from '../src/client/index.js';
import { type ClusterNode, ProcessCluster } from './support/cluster.js';
import { until } from './support/wait.js';

/** What the producers learned about each value they sent (keyed by the value's hex). */
interface Outcomes {
  acked: Map<bigint, Buffer>;
  unknown: Set<string>;
  /** Failures that are neither an acknowledgement nor ProduceOutcomeUnknownError. */
  unexpected: unknown[];
  /** Acknowledgements per producer, to wait for progress. */
  count: { batch: number; unary: number };
}

function value(prefix: string, k: number): Buffer {
  // Random bytes too, so a record is compared by content, not by a guessable name.
  return Buffer.concat([Buffer.from(`${prefix}-${k}-`), randomBytes(12)]);
}

function acknowledge(out: Outcomes, offset: bigint, v: Buffer): void {
  if (out.acked.has(offset)) out.unexpected.push(new Error(`offset ${offset} acknowledged twice`));
  out.acked.set(offset, v);
}

function failed(out: Outcomes, v: Buffer, err: unknown): void {
  if (err instanceof ProduceOutcomeUnknownError) out.unknown.add(v.toString('hex'));
  else out.unexpected.push(err);
}

/** Sends groups of 20 records through a batching producer until `stop.done`. */
async function batchLoop(log: CommitLog, out: Outcomes, stop: { done: boolean }): Promise<void> {
  await using producer = log.producer({ lingerMs: 2 });
  for (let k = 0; !stop.done;) {
    const group: Promise<void>[] = [];
    for (let i = 0; i < 20; i++, k++) {
      const v = value('batch', k);
      group.push(
        producer.send(v).then(
          (offset) => {
            acknowledge(out, offset, v);
            out.count.batch++;
          },
          (err: unknown) => failed(out, v, err),
        ),
      );
    }
    await Promise.all(group);
  }
}

/** One `produce` at a time until `stop.done`. */
async function unaryLoop(log: CommitLog, out: Outcomes, stop: { done: boolean }): Promise<void> {
  for (let k = 0; !stop.done; k++) {
    const v = value('unary', k);
    try {
      acknowledge(out, await log.produce(v), v);
      out.count.unary++;
    } catch (err) {
      failed(out, v, err);
    }
  }
}

/** A consume stream from 0 that records what it delivered and any gap or duplicate. */
class Follower {
  readonly records: ConsumedRecord[] = [];
  readonly problems: string[] = [];
  error: unknown;
  private readonly abort = new AbortController();
  readonly done: Promise<void>;

  constructor(log: CommitLog, consistency: Consistency) {
    this.done = (async () => {
      try {
        for await (const rec of log.consume({ from: 0n, consistency, signal: this.abort.signal })) {
          const expected = this.next;
          // The first few are enough to say what went wrong.
          if (rec.offset !== expected && this.problems.length < 5)
            this.problems.push(`delivered ${rec.offset} where ${expected} was due`);
          this.records.push(rec);
        }
      } catch (err) {
        this.error = err;
      }
    })();
  }

  /** The offset after the last one delivered. */
  get next(): bigint {
    const last = this.records.at(-1);
    return last === undefined ? 0n : last.offset + 1n;
  }

  /** Delivered up to `offset` (exclusive), or went wrong (then waiting is over). */
  reached(offset: bigint): boolean {
    return this.next >= offset || this.error !== undefined || this.problems.length > 0;
  }

  stop(): Promise<void> {
    this.abort.abort();
    return this.done;
  }
}

describe('the SDK against a three-node cluster', { timeout: 120_000 }, () => {
  test('produce and consume across SIGKILLed nodes: no gap, no duplicate, nothing lost', async (t) => {
    await using c = await ProcessCluster.start(3);
    t.after(() => {
      if (process.env.CLUSTER_TEST_LOGS) console.error(c.logTail(200));
    });
    // Two seeds of three: the SDK learns the third member from GetServers.
    const seeds = c.nodes.slice(0, 2).map((n) => c.rpcAddr(n));
    await using log = await connect(`commitlog://${seeds.join(',')}`, {
      retryDelayMs: 20,
      resolveRetryMs: 50,
    });

    const out: Outcomes = {
      acked: new Map(),
      unknown: new Set(),
      unexpected: [],
      count: { batch: 0, unary: 0 },
    };
    const stop = { done: false };
    const followers = [new Follower(log, 'linearizable'), new Follower(log, 'local')];
    const producers = [batchLoop(log, out, stop), unaryLoop(log, out, stop)];
    // Disposed first (before `log` and `c`), also when an assertion fails half-way.
    await using _loops = {
      async [Symbol.asyncDispose]() {
        stop.done = true;
        await Promise.allSettled([...producers, ...followers.map((f) => f.stop())]);
      },
    };

    /** Both producers acknowledged `n` more records, and both streams caught up with them. */
    const progress = async (what: string, n = 40) => {
      const from = { ...out.count };
      await until(() => out.count.batch >= from.batch + n && out.count.unary >= from.unary + n, {
        what: `${n} more acknowledgements per producer ${what}`,
        ms: 20_000,
      });
      const high = [...out.acked.keys()].reduce((a, b) => (a > b ? a : b), 0n);
      await until(() => followers.every((f) => f.reached(high + 1n)), {
        what: `both streams past offset ${high} ${what}`,
        ms: 20_000,
      });
      for (const f of followers) {
        assert.equal(f.error, undefined, `a stream failed ${what}`);
        assert.deepEqual(f.problems, [], `no gap, no duplicate ${what}`);
      }
    };

    await progress('before any fault');
    const killed = new Set<ClusterNode>();
    for (const round of ['leader', 'new leader', 'last node never killed']) {
      const victim =
        round === 'last node never killed'
          ? c.nodes.find((n) => !killed.has(n))!
          : await c.leader();
      killed.add(victim);
      await victim.proc!.kill(); // SIGKILL
      victim.proc = undefined;
      await progress(`after killing the ${round} (${victim.name})`);
      await c.startNode(victim);
      await c.leader(); // every node, the restarted one too, agrees on a leader
    }
    await progress('after the last restart');

    stop.done = true;
    await Promise.all(producers);
    const end = await log.endOffset(0n, { consistency: 'linearizable' });
    await until(() => followers.every((f) => f.reached(end)), {
      what: `both streams at the end of the log (${end})`,
      ms: 20_000,
    });
    await Promise.all(followers.map((f) => f.stop()));

    t.diagnostic(
      `${end} records; acknowledged ${out.acked.size} (batch ${out.count.batch}, unary ${out.count.unary}); ` +
        `outcome unknown ${out.unknown.size}`,
    );
    assert.deepEqual(out.unexpected, [], 'every failed produce is ProduceOutcomeUnknownError');
    for (const f of followers) {
      assert.equal(f.error, undefined, 'the stream ended without an error');
      assert.deepEqual(f.problems, [], 'no gap, no duplicate');
      assert.equal(f.next, end, 'the stream delivered the whole log, nothing past it');
    }
    const [a, b] = followers.map((f) => f.records) as [ConsumedRecord[], ConsumedRecord[]];
    for (let i = 0; i < a.length; i++)
      assert.deepEqual(a[i]!.value, b[i]!.value, `both streams agree on record ${i}`);
    for (const [offset, v] of out.acked)
      assert.deepEqual(a[Number(offset)]?.value, v, `acknowledged record at ${offset}`);
    // The rest were produces whose outcome the SDK reported as unknown; none stored twice.
    const stored = new Set<string>();
    a.forEach((r, i) => {
      const hex = Buffer.from(r.value).toString('hex');
      assert.ok(!stored.has(hex), `record ${i} stored twice`);
      stored.add(hex);
      if (!out.acked.has(BigInt(i)))
        assert.ok(out.unknown.has(hex), `record ${i} was neither acknowledged nor unknown`);
    });
  });
});
