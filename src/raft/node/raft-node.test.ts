import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MemoryHardStateStorage,
  MemoryLogStorage,
  MemoryNetwork,
  MemoryStateMachine,
  TestCluster,
  addressOf,
} from '../testing/index.js';
import {
  ConfChangeInProgressError,
  LeadershipLostError,
  NotLeaderError,
  RaftStorageError,
  ShutdownError,
} from './errors.js';
import { RaftNode } from './raft-node.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function followerOf(cluster: TestCluster, leaderId: string) {
  return cluster.running().find((n) => n.id !== leaderId)!;
}

describe('RaftNode', () => {
  it('commits proposals on every node and resolves with their indexes', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const indexes = await Promise.all(['a', 'b', 'c'].map((s) => leader.propose(enc.encode(s))));
    assert.deepEqual(indexes, [indexes[0], indexes[0]! + 1, indexes[0]! + 2]);
    await cluster.waitForApplied(indexes[2]!);
    for (const m of cluster.members.values()) {
      const data = m.stateMachine.applied
        .slice(indexes[0]! - 1, indexes[2])
        .map((d) => dec.decode(d));
      assert.deepEqual(data, ['a', 'b', 'c'], m.id);
    }
  });

  it('rejects a proposal on a follower at once with the leader id and address', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const follower = followerOf(cluster, leader.id);
    await cluster.waitFor(
      () => (follower.status().leader === leader.id ? true : undefined),
      2000,
      'follower knows leader',
    );
    const err = await follower.propose(enc.encode('x')).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof NotLeaderError);
    assert.equal(err.leaderId, leader.id);
    assert.equal(err.leaderAddress, addressOf(leader.id));
    await assert.rejects(follower.readIndex(), NotLeaderError);
  });

  it('keeps 1,000 proposals in flight and resolves each once, in index order', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, k) => leader.propose(enc.encode(`p${k}`))),
    );
    for (let k = 1; k < results.length; k++) assert.equal(results[k], results[k - 1]! + 1);
    const status = leader.status();
    assert.ok(status.commit >= results[999]!);
    assert.equal(status.peers.length, 3);
  });

  it('honours an AbortSignal', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    await assert.rejects(leader.propose(enc.encode('x'), { signal: AbortSignal.abort() }), {
      name: 'AbortError',
    });
    const ctl = new AbortController();
    cluster.network.isolate(leader.id);
    const p = leader.propose(enc.encode('y'), { signal: ctl.signal });
    ctl.abort(new Error('client gave up'));
    await assert.rejects(p, /client gave up/);
  });

  it('rejects pending proposals with LeadershipLostError when the leader steps down', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    cluster.network.isolate(leader.id);
    const p = leader.propose(enc.encode('orphan'));
    await assert.rejects(p, LeadershipLostError);
    cluster.network.heal();
  });

  it('catches a restarted follower up and applies every entry exactly once', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const follower = followerOf(cluster, leader.id);
    await leader.propose(enc.encode('before'));
    await cluster.stop(follower.id);
    let last = 0;
    for (let k = 0; k < 20; k++) last = await leader.propose(enc.encode(`while-down-${k}`));
    await cluster.restart(follower.id);
    await cluster.waitForApplied(last);
    // MemoryStateMachine.apply throws on a gap or a repeat, which would stop the node.
    assert.equal(cluster.node(follower.id).status().closed, false);
    assert.equal(cluster.members.get(follower.id)!.stateMachine.appliedIndex, last);
  });

  it('resumes applying after what a durable state machine says it applied', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const follower = followerOf(cluster, leader.id);
    const first = await leader.propose(enc.encode('one'));
    await cluster.waitForApplied(first);
    await cluster.stop(follower.id);
    const second = await leader.propose(enc.encode('two'));
    const sm = cluster.members.get(follower.id)!.stateMachine;
    assert.equal(sm.appliedIndex, first);
    await cluster.restart(follower.id, { keepState: true });
    await cluster.waitForApplied(second);
    // apply() throws on a repeat, so reaching `second` proves nothing was re-applied.
    assert.equal(sm.appliedIndex, second);
    assert.equal(dec.decode(sm.applied[second - 1]), 'two');
    assert.equal(cluster.node(follower.id).status().closed, false);
  });

  it('sends a chunked snapshot to a learner that needs compacted entries, then promotes it', async () => {
    await using cluster = await TestCluster.create({ size: 3, raft: { retainEntries: 0 } });
    const leader = await cluster.waitForLeader();
    let last = 0;
    for (let k = 0; k < 100; k++) last = await leader.propose(new Uint8Array(1024).fill(k));
    assert.ok(leader.compact(last));
    await cluster.addMember('n4');
    const added = await leader.addLearner('n4', addressOf('n4'));
    await cluster.waitForApplied(added);
    const n4 = cluster.members.get('n4')!;
    // retainEntries 0 keeps nothing in memory, so each catch-up is a snapshot.
    assert.ok(n4.stateMachine.installs >= 1, 'restored from a snapshot');
    assert.ok(n4.log.snapshot.lastIndex >= last);
    assert.deepEqual(n4.stateMachine.applied[last - 1], new Uint8Array(1024).fill(99));
    await assert.rejects(leader.promote('n5'), /not valid/);
    const promoted = await leader.promote('n4');
    await cluster.waitForApplied(promoted);
    assert.deepEqual([...cluster.node('n4').status().config.voters].sort(), [
      'n1',
      'n2',
      'n3',
      'n4',
    ]);
    // Resolves once applied on the leader (the removed node may never hear of it).
    await leader.removeNode('n4');
    assert.deepEqual([...leader.status().config.voters].sort(), ['n1', 'n2', 'n3']);
  });

  it('allows one configuration change at a time', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    await leader.propose(enc.encode('x'));
    const first = leader.addLearner('n7');
    await assert.rejects(leader.addLearner('n8'), ConfChangeInProgressError);
    await first;
  });

  it('transfers leadership and reports the change', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const target = followerOf(cluster, leader.id);
    const changes: string[] = [];
    const off = leader.onLeaderChange((c) => changes.push(c.leader ?? '-'));
    await leader.transferLeadership(target.id);
    off();
    const next = await cluster.waitForLeader(2000, leader.id);
    assert.equal(next.id, target.id);
    assert.ok(changes.includes(target.id));
  });

  it('serves linearizable reads on the leader', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const written = await leader.propose(enc.encode('w'));
    const readAt = await leader.readIndex();
    assert.ok(readAt >= written);
    assert.ok(leader.status().applied >= readAt);
  });

  it('closes idempotently and rejects what is pending with ShutdownError', async () => {
    const cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    cluster.network.isolate(leader.id);
    const p = leader.propose(enc.encode('x'));
    await leader.close();
    await leader.close();
    await assert.rejects(p, ShutdownError);
    await assert.rejects(leader.propose(enc.encode('y')), ShutdownError);
    await cluster.close();
  });

  it('stops on a storage failure and says why', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    cluster.members.get(leader.id)!.log.failWrites = new Error('disk full');
    const err = await leader.propose(enc.encode('x')).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ShutdownError);
    assert.ok(err.cause instanceof RaftStorageError);
    assert.equal(leader.status().closed, true);
  });
});

describe('RaftNode persistence order', () => {
  it('persists term, vote and entries before sending any message that depends on them', async () => {
    const network = new MemoryNetwork();
    const ids = ['n1', 'n2', 'n3'];
    const stores = new Map(
      ids.map((id) => [id, { log: new MemoryLogStorage(), hard: new MemoryHardStateStorage() }]),
    );
    const violations: string[] = [];
    let checked = 0;
    const nodes = await Promise.all(
      ids.map((id) => {
        const inner = network.transport(id);
        const { log, hard } = stores.get(id)!;
        const sm = new MemoryStateMachine();
        return RaftNode.start({
          id,
          logStorage: log,
          hardStateStorage: hard,
          snapshots: sm,
          apply: sm.apply,
          bootstrap: { voters: ids, learners: [], addresses: {} },
          tickMs: 2,
          transport: {
            listen: (h) => inner.listen(h),
            send: (m) => {
              checked++;
              const hs = hard.state;
              const pre = (m.type === 'vote' || m.type === 'voteResp') && m.pre;
              if (!pre && (hs?.term ?? 0) < m.term)
                violations.push(`${m.type} of term ${m.term} before the term was saved`);
              if (m.type === 'voteResp' && !m.pre && !m.reject && hs?.vote !== m.to)
                violations.push('vote sent before it was saved');
              if (m.type === 'appendResp' && !m.reject && log.lastIndex < m.index)
                violations.push(`ack of ${m.index} before it was stored`);
              inner.send(m);
            },
          },
        });
      }),
    );
    try {
      const leader = await new Promise<RaftNode>((resolve) => {
        for (const n of nodes) n.onLeaderChange((c) => c.role === 'leader' && resolve(n));
      });
      await Promise.all(Array.from({ length: 200 }, (_, k) => leader.propose(enc.encode(`e${k}`))));
    } finally {
      for (const n of nodes) await n.close();
    }
    assert.deepEqual(violations, []);
    assert.ok(checked > 10);
  });
});
