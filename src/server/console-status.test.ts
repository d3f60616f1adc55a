import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Metrics } from '../telemetry/index.js';
import {
  LAG_WARN_ENTRIES,
  quantileBetween,
  statusDocument,
  ThroughputSampler,
  type CumulativeBuckets,
} from './console-status.js';
import type { ClusterStatus, ClusterView, ServerEntry } from './ports.js';

const buckets = (pairs: [number, number][]): CumulativeBuckets => new Map(pairs);

describe('console status: quantiles between two histogram readings', () => {
  it('interpolates inside the bucket, as histogram_quantile does', () => {
    const before = buckets([
      [0.001, 0],
      [0.01, 0],
      [0.1, 0],
      [Infinity, 0],
    ]);
    // 10 in (0, 1 ms], 80 in (1, 10 ms], 10 in (10, 100 ms].
    const after = buckets([
      [0.001, 10],
      [0.01, 90],
      [0.1, 100],
      [Infinity, 100],
    ]);
    assert.equal(quantileBetween(before, after, 0.05), 0.0005);
    assert.ok(Math.abs((quantileBetween(before, after, 0.5) as number) - 0.0055) < 1e-12);
    assert.ok(Math.abs((quantileBetween(before, after, 0.99) as number) - 0.091) < 1e-12);
  });

  it('counts only the observations between the readings', () => {
    const before = buckets([
      [0.001, 1000],
      [0.01, 1000],
      [Infinity, 1000],
    ]);
    const after = buckets([
      [0.001, 1000],
      [0.01, 1004],
      [Infinity, 1004],
    ]);
    const p50 = quantileBetween(before, after, 0.5) as number;
    assert.ok(p50 > 0.001 && p50 <= 0.01, `p50 ${p50}`);
  });

  it('is null without observations, and the top finite bound past it', () => {
    const same = buckets([
      [0.1, 5],
      [Infinity, 5],
    ]);
    assert.equal(quantileBetween(same, same, 0.5), null);
    const over = buckets([
      [0.1, 0],
      [Infinity, 3],
    ]);
    assert.equal(quantileBetween(new Map(), over, 0.99), 0.1);
  });
});

describe('console status: the throughput sampler', () => {
  it('turns counters into rates and produce latencies per interval', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const stop = new AbortController();
    // A long interval: the test takes the samples itself, at chosen times.
    const sampler = new ThroughputSampler(metrics, stop.signal, { intervalMs: 3_600_000 });
    try {
      await sampler.sample(10_000);
      metrics.produced(30, 300);
      metrics.consumed(60, 600);
      for (let i = 0; i < 10; i++) metrics.rpcHandled('log.v1.Log/Produce', 'OK', 0.002);
      metrics.httpHandled('POST', '/v1/records', 200, 0.002);
      // Not produce latency: a stream's whole life, and reads.
      metrics.rpcHandled('log.v1.Log/ProduceStream', 'OK', 9);
      metrics.rpcHandled('log.v1.Log/Consume', 'OK', 5);
      metrics.httpHandled('GET', '/v1/records', 200, 5);
      await sampler.sample(12_000);
      await sampler.sample(13_000);
      const [busy, idle] = sampler.recent();
      assert.ok(busy && idle);
      assert.equal(busy.t, 12_000);
      assert.equal(busy.producedPerSec, 15);
      assert.equal(busy.consumedPerSec, 30);
      assert.ok(busy.p50 !== null && busy.p50 > 0.001 && busy.p50 <= 0.0025, `p50 ${busy.p50}`);
      assert.ok(busy.p99 !== null && busy.p99 <= 0.0025, `p99 ${busy.p99}`);
      assert.deepEqual(idle, {
        t: 13_000,
        producedPerSec: 0,
        consumedPerSec: 0,
        p50: null,
        p99: null,
      });
    } finally {
      stop.abort();
    }
  });
});

function view(servers: ServerEntry[], status?: Partial<ClusterStatus>): ClusterView {
  const leader = servers.find((s) => s.isLeader);
  return {
    servers: async () => servers,
    leader: () => (leader ? { id: leader.id, addr: leader.rpcAddr } : undefined),
    ...(status
      ? {
          status: async (): Promise<ClusterStatus> => ({
            self: { id: 'a', raftId: 'a.1' },
            role: 'leader',
            term: 3,
            commitIndex: 10,
            appliedIndex: 9,
            lastIndex: 11,
            startOffset: 0n,
            endOffset: 2n ** 60n,
            members: [],
            ...status,
          }),
        }
      : {}),
  };
}

const member = (id: string, more: Partial<ServerEntry> = {}): ServerEntry => ({
  id,
  rpcAddr: `${id}:8400`,
  isLeader: false,
  suffrage: 'voter',
  ...more,
});

describe('console status: the document', () => {
  it('reports the leader, Raft state, exact offsets and a healthy quorum', async () => {
    const doc = await statusDocument(
      view([member('a', { isLeader: true, lag: 0 }), member('b', { lag: 3 }), member('c')], {
        members: [
          { id: 'a', state: 'alive' },
          { id: 'b', state: 'alive' },
          { id: 'c', state: 'suspect' },
        ],
      }),
      undefined,
      new Date(0),
    );
    assert.equal(doc.node, 'a');
    assert.equal(doc.time, '1970-01-01T00:00:00.000Z');
    assert.deepEqual(doc.leader, { id: 'a', addr: 'a:8400' });
    assert.deepEqual(doc.raft, {
      role: 'leader',
      term: 3,
      commitIndex: 10,
      appliedIndex: 9,
      lastIndex: 11,
    });
    assert.deepEqual(doc.offsets, { start: '0', end: '1152921504606846976' });
    assert.deepEqual(
      doc.servers.map((s) => [s.id, s.state, s.lagging]),
      [
        ['a', 'alive', false],
        ['b', 'alive', false],
        ['c', 'suspect', false],
      ],
    );
    assert.deepEqual(doc.quorum, { voters: 3, needed: 2, reachable: 3, ok: true });
    assert.equal(doc.throughput, null);
  });

  it('flags a lagging replica, dead members and a lost quorum', async () => {
    const doc = await statusDocument(
      view(
        [
          member('a', { isLeader: true }),
          member('b', { lag: LAG_WARN_ENTRIES + 1 }),
          member('c'),
          member('d'),
          member('e', { suffrage: 'learner' }),
        ],
        {
          members: [
            { id: 'a', state: 'alive' },
            { id: 'b', state: 'alive' },
            { id: 'c', state: 'dead' },
            { id: 'd', state: 'left' },
            { id: 'e', state: 'alive' },
          ],
        },
      ),
      undefined,
    );
    assert.deepEqual(
      doc.servers.map((s) => [s.id, s.lagging]),
      [
        ['a', false],
        ['b', true],
        ['c', true],
        ['d', true],
        ['e', false],
      ],
    );
    // Learners do not count: 4 voters need 3, and only a and b are alive.
    assert.deepEqual(doc.quorum, { voters: 4, needed: 3, reachable: 2, ok: false });
  });

  it('without a leader there is no quorum, and without status() only the servers', async () => {
    const doc = await statusDocument(view([member('a'), member('b'), member('c')]), undefined);
    assert.equal(doc.leader, null);
    assert.equal(doc.raft, null);
    assert.equal(doc.offsets, null);
    assert.equal(doc.node, null);
    assert.deepEqual(doc.quorum, { voters: 3, needed: 2, reachable: 3, ok: false });
  });
});
