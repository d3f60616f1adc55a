// The pure rules that turn gossip members into Raft configuration changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  reconcile,
  type ClusterMember,
  type LeaderView,
  type ReconcileOptions,
} from './membership-sync.js';

const OPTS: ReconcileOptions = { promoteWithin: 10, minVoters: 3, now: 100_000 };

function member(raftId: string, status: ClusterMember['status'], deadSince?: number) {
  return {
    raftId,
    rpcAddr: `${raftId}:8400`,
    status,
    ...(deadSince !== undefined ? { deadSince } : {}),
  };
}

function view(voters: string[], learners: string[] = [], match: Record<string, number> = {}) {
  const v: LeaderView = {
    self: 'a.1',
    conf: { voters, learners, addresses: {} },
    lastIndex: 100,
    match: new Map(Object.entries(match)),
  };
  return v;
}

describe('reconcile', () => {
  it('adds a new member as a learner, promotes it once caught up, removes one that left', () => {
    const three = [member('a.1', 'alive'), member('b.1', 'alive'), member('c.1', 'alive')];
    assert.deepEqual(reconcile(three, view(['a.1', 'b.1']), OPTS), {
      type: 'addLearner',
      id: 'c.1',
      address: 'c.1:8400',
    });
    assert.equal(reconcile(three, view(['a.1', 'b.1'], ['c.1'], { 'c.1': 50 }), OPTS), undefined);
    assert.deepEqual(reconcile(three, view(['a.1', 'b.1'], ['c.1'], { 'c.1': 95 }), OPTS), {
      type: 'promote',
      id: 'c.1',
    });
    const left = [member('a.1', 'alive'), member('b.1', 'alive'), member('c.1', 'left')];
    assert.deepEqual(reconcile(left, view(['a.1', 'b.1', 'c.1']), OPTS), {
      type: 'remove',
      id: 'c.1',
    });
  });

  it('keeps a failed voter unless the reap timeout passed and enough voters remain', () => {
    const four = ['a.1', 'b.1', 'c.1', 'd.1'];
    const dead = [
      member('a.1', 'alive'),
      member('b.1', 'alive'),
      member('c.1', 'alive'),
      member('d.1', 'dead', 10_000),
    ];
    assert.equal(reconcile(dead, view(four), OPTS), undefined, 'no reap timeout: kept');
    assert.equal(reconcile(dead, view(four), { ...OPTS, reapAfterMs: 95_000 }), undefined);
    assert.deepEqual(reconcile(dead, view(four), { ...OPTS, reapAfterMs: 60_000 }), {
      type: 'remove',
      id: 'd.1',
    });
    const three = dead.filter((m) => m.raftId !== 'd.1');
    three[2] = member('c.1', 'dead', 10_000);
    assert.equal(
      reconcile(three, view(['a.1', 'b.1', 'c.1']), { ...OPTS, reapAfterMs: 60_000 }),
      undefined,
      'never below minVoters',
    );
  });

  it('replaces an id its node superseded (wiped, back under the same name): join, promote, then remove the old id', () => {
    // Gossip knows members by name: c's entry now carries its new id; c.old has no member.
    const members = [member('a.1', 'alive'), member('b.1', 'alive'), member('c.new', 'alive')];
    const old = ['a.1', 'b.1', 'c.old'];
    assert.deepEqual(reconcile(members, view(old), OPTS), {
      type: 'addLearner',
      id: 'c.new',
      address: 'c.new:8400',
    });
    // Removing c.old now would leave two voters, below the minimum of three.
    assert.equal(reconcile(members, view(old, ['c.new'], { 'c.new': 10 }), OPTS), undefined);
    assert.deepEqual(reconcile(members, view(old, ['c.new'], { 'c.new': 99 }), OPTS), {
      type: 'promote',
      id: 'c.new',
    });
    assert.deepEqual(reconcile(members, view([...old, 'c.new']), OPTS), {
      type: 'remove',
      id: 'c.old',
    });
    // A superseded learner holds no quorum slot: it goes at once.
    assert.deepEqual(reconcile(members, view(['a.1', 'b.1'], ['c.old', 'c.new']), OPTS), {
      type: 'remove',
      id: 'c.old',
    });
  });

  it('keeps an id gossip has not reported yet, and one whose name has no live member', () => {
    // Right after a start, gossip may not know every voter: absence alone proves nothing.
    assert.equal(reconcile([member('a.1', 'alive')], view(['a.1', 'b.1', 'c.1']), OPTS), undefined);
    const deadNew = [member('a.1', 'alive'), member('b.1', 'alive'), member('c.new', 'dead', 1)];
    const conf = view(['a.1', 'b.1', 'c.old', 'c.new']);
    assert.equal(reconcile(deadNew, conf, OPTS), undefined);
  });
});
