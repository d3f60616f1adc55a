// The SDK against fake clusters (in-process grpc-js servers): routing to the leader and
// to followers, leader changes, member lists that change, members that vanish,
// NOT_LEADER and UNAVAILABLE answers; no produce is ever appended twice, and consume
// streams resume with no gap and no duplicate.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import {
  type CommitLog,
  CommitLogClient,
  connect,
  type ConnectOptions,
  OffsetOutOfRangeError,
  ProduceOutcomeUnknownError,
  UnavailableError,
} from '../src/client/index.js';
import { FakeCluster, until } from './client-fakes.js';

const FAST: ConnectOptions = {
  connectTimeoutMs: 5000,
  callTimeoutMs: 5000,
  retryDelayMs: 10,
  resolveRetryMs: 20,
};

let cluster: FakeCluster | undefined;
let log: CommitLog | undefined;

async function setUp(
  n: number,
  seeds?: (c: FakeCluster) => string,
  o: ConnectOptions = {},
): Promise<{ c: FakeCluster; log: CommitLog }> {
  const c = await FakeCluster.start(n);
  cluster = c;
  log = await connect(seeds ? seeds(c) : c.nodes.map((x) => x.addr).join(','), { ...FAST, ...o });
  return { c, log };
}

afterEach(() => {
  log?.close();
  log = undefined;
  cluster?.stop();
  cluster = undefined;
});

const v = (s: string) => Buffer.from(s);

describe('client SDK against a fake cluster', () => {
  it('finds the leader from one follower seed and sends produces there, reads to followers', async () => {
    const { c, log } = await setUp(3, (c) => `commitlog://${c.node(2).addr}`);
    assert.equal(await log.produce(v('a')), 0n);
    assert.deepEqual(await log.produceBatch([v('b'), v('c')]), [1n, 2n]);
    assert.equal(c.node(0).calls.produce + c.node(0).calls.produceBatch, 2);
    assert.equal(c.node(1).calls.produce + c.node(2).calls.produce, 0);
    for (let i = 0; i < 6; i++)
      assert.equal((await log.read(BigInt(i % 3))).value.toString(), 'abc'[i % 3]);
    assert.equal(
      c.node(0).calls.consume,
      0,
      'the leader serves no local reads while followers are up',
    );
    assert.ok(
      c.node(1).calls.consume > 0 && c.node(2).calls.consume > 0,
      'reads are spread over followers',
    );
    assert.equal((await log.read(0n, { consistency: 'linearizable' })).value.toString(), 'a');
    assert.equal(c.node(0).calls.consume, 1, 'a linearizable read goes to the leader');
    const servers = await log.servers();
    assert.deepEqual(
      servers.map((s) => [s.id, s.isLeader]),
      [
        ['node-0', true],
        ['node-1', false],
        ['node-2', false],
      ],
    );
    await assert.rejects(log.read(99n), OffsetOutOfRangeError);
  });

  it('follows a leader change through the NOT_LEADER hint; each record is appended once', async () => {
    const { c, log } = await setUp(3);
    await log.produce(v('x0'));
    c.leader = c.node(1);
    assert.equal(await log.produce(v('x1')), 1n);
    assert.equal(c.received.get('x1'), 2, 'refused by the old leader, then sent to the new one');
    assert.equal(c.node(1).calls.produce, 1);
    assert.equal(await log.produce(v('x2')), 2n);
    assert.equal(c.node(0).calls.produce, 2, 'after the hint, produces skip the old leader');
    assert.deepEqual(c.duplicates(), []);
  });

  it('finds a new leader without a hint by refreshing the member list', async () => {
    const { c, log } = await setUp(3);
    for (const n of c.nodes) n.hintLeader = false;
    await log.produce(v('y0'));
    c.leader = c.node(2);
    assert.equal(await log.produce(v('y1')), 1n);
    assert.equal(c.appended.get('y1'), 1);
    assert.ok(c.node(2).calls.produce >= 1);
    assert.deepEqual(c.duplicates(), []);
  });

  it('queues produces while no leader is known and sends them once one is', async () => {
    const c = await FakeCluster.start(3);
    cluster = c;
    c.leader = undefined;
    log = await connect(c.node(1).addr, FAST);
    const before = c.total('getServers');
    const pending = log.produce(v('q'));
    await until(
      () => c.total('getServers') >= before + 3,
      5000,
      'the resolver to poll for a leader',
    );
    assert.equal(c.received.get('q'), undefined, 'nothing was sent while no leader was known');
    c.leader = c.node(1);
    assert.equal(await pending, 0n);
    assert.equal(c.received.get('q'), 1);
    assert.equal(c.node(1).calls.produce, 1);
  });

  it('adopts a changed member list: a new node that leads, a member that is no longer listed', async () => {
    const { c, log } = await setUp(3, (c) => c.node(0).addr, { refreshIntervalMs: 50 });
    const fresh = await c.add();
    c.leader = fresh;
    c.listed = [c.node(0), c.node(1), fresh];
    for (const n of c.nodes) n.hintLeader = false;
    assert.equal(await log.produce(v('n0')), 0n);
    assert.equal(fresh.calls.produce, 1);
    // node-2 left the list: reads must stop going there.
    await until(() => c.total('getServers') > 6, 5000, 'refreshes');
    const before = c.node(2).calls.consume;
    for (let i = 0; i < 10; i++) await log.read(0n);
    assert.equal(c.node(2).calls.consume, before);
    assert.ok(c.node(0).calls.consume + c.node(1).calls.consume >= 10);
  });

  it('survives members that vanish: reads go on, produces reach the next leader', async () => {
    const { c, log } = await setUp(3);
    await log.produceBatch([v('m0'), v('m1')]);
    c.node(1).kill();
    for (let i = 0; i < 10; i++) assert.equal((await log.read(1n)).value.toString(), 'm1');
    c.node(0).kill();
    c.leader = c.node(2);
    assert.equal(await log.produce(v('m2')), 2n);
    assert.deepEqual(c.duplicates(), []);
  });

  it('keeps going when its only seed dies: the members it learned answer GetServers', async () => {
    const { c, log } = await setUp(3, (c) => `commitlog://${c.node(0).addr}`);
    await log.produce(v('d0'));
    c.node(0).kill();
    c.leader = c.node(1);
    assert.equal(await log.produce(v('d1')), 1n);
    assert.equal(c.node(1).calls.produce, 1);
    assert.ok(c.node(1).calls.getServers + c.node(2).calls.getServers > 0);
    assert.deepEqual(c.duplicates(), []);
  });

  it('retries reads through UNAVAILABLE bursts, never a produce whose outcome is unknown', async () => {
    const { c, log } = await setUp(3);
    await log.produce(v('u0'));
    c.node(1).unavailable = 3;
    c.node(2).unavailable = 3;
    for (let i = 0; i < 4; i++) assert.equal((await log.read(0n)).value.toString(), 'u0');
    c.node(0).unavailable = 1;
    const err = await log.produce(v('u1')).then(
      () => assert.fail('the produce should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProduceOutcomeUnknownError, String(err));
    assert.equal(c.received.get('u1'), 1, 'sent once, not retried');
  });

  it('removes a member at the leader; an unknown outcome is said as a removal, not a produce', async () => {
    const { c, log } = await setUp(3, (c) => c.node(2).addr);
    assert.equal(await log.removeServer('n9'), 'n9');
    c.node(0).unavailable = 1;
    const err = await log.removeServer('n8').then(
      () => assert.fail('the removal should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof UnavailableError, String(err));
    assert.ok(!(err instanceof ProduceOutcomeUnknownError), String(err));
    assert.match(err.message, /the removal of n8 may or may not have taken effect/);
    assert.deepEqual(c.removed, ['n9'], 'sent to the leader once each, not retried');
  });

  it('consume resumes on another member when the serving one dies: no gap, no duplicate', async () => {
    const { c, log } = await setUp(3);
    await log.produceBatch(Array.from({ length: 10 }, (_, i) => v(`c${i}`)));
    const ac = new AbortController();
    const seen: bigint[] = [];
    let killed: string | undefined;
    for await (const r of log.consume({ from: 3n, signal: ac.signal, maxRecords: 2 })) {
      assert.equal(r.value.toString(), `c${r.offset}`);
      seen.push(r.offset);
      if (seen.length === 4) {
        const serving = c.nodes.find((n) => n.streams > 0);
        assert.ok(serving, 'a node serves the stream');
        killed = serving.id;
        if (serving === c.leader) c.leader = c.nodes.find((n) => n !== serving);
        serving.kill();
        c.append(Array.from({ length: 10 }, (_, i) => v(`c${10 + i}`)));
      }
      if (r.offset === 19n) ac.abort();
    }
    assert.ok(killed);
    assert.deepEqual(
      seen,
      Array.from({ length: 17 }, (_, i) => BigInt(3 + i)),
    );
    assert.ok(c.streamOffsets.length >= 2, 'the stream was opened again');
    const resumedAt = c.streamOffsets[1] as bigint;
    assert.ok(
      resumedAt > 6n && resumedAt <= 10n,
      `resumed after what was delivered, at ${resumedAt}`,
    );
  });

  it('consume resumes when the node answers UNAVAILABLE and ends quietly on abort', async () => {
    const { c, log } = await setUp(2);
    await log.produceBatch([v('s0'), v('s1')]);
    c.node(1).unavailable = 2;
    c.node(0).unavailable = 2;
    const ac = new AbortController();
    const seen: string[] = [];
    for await (const r of log.consume({ from: 0n, signal: ac.signal })) {
      seen.push(r.value.toString());
      if (seen.length === 2) ac.abort();
    }
    assert.deepEqual(seen, ['s0', 's1']);
  });

  it('CommitLogClient takes a member list and routes produces to the leader', async () => {
    const c = await FakeCluster.start(3);
    cluster = c;
    const client = new CommitLogClient(`${c.node(1).addr},${c.node(2).addr}`);
    try {
      assert.equal(await client.produce(v('k0')), 0n);
      assert.equal(c.node(0).calls.produce, 1, 'to the leader, found through GetServers');
      assert.equal((await client.consume(0n)).value.toString(), 'k0');
      assert.equal(c.node(0).calls.consume, 0, 'reads to a follower');
    } finally {
      client.close();
    }
  });
});
