// Scripted interaction tests for the cases that break naive Raft implementations.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoreNetwork } from '../testing/index.js';

const ids3 = ['n1', 'n2', 'n3'];

describe('pre-vote and check-quorum', () => {
  it('a partitioned node rejoining does not depose a healthy leader (pre-vote)', () => {
    const net = new CoreNetwork(ids3);
    net.campaign('n1');
    net.isolate('n3');
    net.tick(100, ['n3']); // it times out again and again
    assert.equal(net.core('n3').term, 1, 'pre-votes never raise its term');
    assert.equal(net.core('n3').role, 'preCandidate');
    net.heal();
    net.tick(3);
    assert.equal(net.core('n1').role, 'leader');
    assert.equal(net.core('n1').term, 1);
    assert.equal(net.core('n3').leader, 'n1');
  });

  it('without pre-vote the same rejoin disrupts the leader (the problem pre-vote solves)', () => {
    const net = new CoreNetwork(ids3, { preVote: false, checkQuorum: false });
    net.campaign('n1');
    net.isolate('n3');
    net.tick(100, ['n3']);
    assert.ok(net.core('n3').term > 1);
    net.heal();
    net.tick(3);
    assert.ok(net.core('n1').term > 1, 'the leader was forced into a new term');
  });

  it('a leader that cannot reach a majority steps down (check-quorum)', () => {
    const net = new CoreNetwork(ids3, { electionTicks: 10 });
    net.campaign('n1');
    net.isolate('n1');
    net.tick(21, ['n1']);
    assert.equal(net.core('n1').role, 'follower');
  });

  it('a pre-vote is refused while the voters hear from a leader (lease)', () => {
    const net = new CoreNetwork(ids3);
    net.campaign('n1');
    // n3 misses heartbeats (one-way cut) and times out, but n2 still hears n1.
    net.dropIf = (m) => m.from === 'n1' && m.to === 'n3';
    net.tick(30, ['n3']);
    net.tick(1);
    assert.equal(net.core('n1').role, 'leader');
    assert.equal(net.core('n1').term, 1);
    assert.equal(net.core('n2').term, 1);
    assert.notEqual(net.core('n3').role, 'leader');
  });

  it('a removed node that keeps campaigning does not disturb the cluster', () => {
    const net = new CoreNetwork(ids3);
    net.campaign('n1');
    net.isolate('n3'); // n3 never learns that it was removed
    const r = net.core('n1').proposeConfChange({ type: 'remove', id: 'n3' });
    assert.ok(r.ok);
    net.stabilize();
    assert.deepEqual(net.core('n2').conf.voters, ['n1', 'n2']);
    net.heal();
    net.dropIf = (m) => m.from === 'n1' && m.to === 'n3'; // the leader no longer talks to it
    for (let k = 0; k < 10; k++) {
      net.tick(10);
      net.propose('n1', `w${k}`);
    }
    assert.equal(net.core('n1').role, 'leader');
    assert.equal(net.core('n1').term, 1);
    assert.equal(net.data('n2').length, 10);
  });
});

describe('an old leader with an uncommitted tail', () => {
  it('loses its tail to the new leader and applies only committed entries', () => {
    const net = new CoreNetwork(['n1', 'n2', 'n3', 'n4', 'n5']);
    net.campaign('n1');
    net.propose('n1', 'committed');
    net.cutLink('n1', 'n3');
    net.cutLink('n1', 'n4');
    net.cutLink('n1', 'n5');
    net.propose('n1', 'tail1', 'tail2'); // n1 and n2 only: uncommitted
    net.isolate('n1');
    net.isolate('n2');
    net.tick(40, ['n3', 'n4', 'n5']);
    const leader = net.leader()!;
    assert.ok(['n3', 'n4', 'n5'].includes(leader.id));
    net.propose(leader.id, 'new');
    net.heal();
    net.tick(3);
    for (const id of net.cores.keys()) assert.deepEqual(net.data(id), ['committed', 'new'], id);
  });
});

describe('leadership transfer', () => {
  it('hands leadership to a caught-up voter in the next term', () => {
    const net = new CoreNetwork(ids3);
    net.campaign('n1');
    net.propose('n1', 'a');
    assert.ok(net.core('n1').transferLeadership('n2').ok);
    net.stabilize();
    assert.equal(net.core('n2').role, 'leader');
    assert.equal(net.core('n2').term, 2);
    assert.equal(net.core('n1').leader, 'n2');
  });

  it('catches the target up first and refuses proposals meanwhile', () => {
    const net = new CoreNetwork(ids3);
    net.campaign('n1');
    net.isolate('n3');
    net.propose('n1', 'a', 'b');
    net.heal();
    assert.ok(net.core('n1').transferLeadership('n3').ok);
    assert.deepEqual(net.core('n1').propose([new Uint8Array(1)]), {
      ok: false,
      reason: 'transferring',
      leader: 'n1',
    });
    net.stabilize();
    assert.equal(net.core('n3').role, 'leader');
    assert.deepEqual(net.data('n3'), ['a', 'b']);
  });
});

describe('ReadIndex', () => {
  it('serves a read at the commit index after a quorum heartbeat round', () => {
    const net = new CoreNetwork(ids3);
    net.campaign('n1');
    net.propose('n1', 'a');
    const n1 = net.core('n1');
    assert.ok(n1.readIndex(7).ok);
    const seen: number[] = [];
    const rd0 = n1.ready();
    assert.equal(rd0.readStates.length, 0, 'not before the heartbeat round');
    n1.advance(rd0);
    for (const m of rd0.messages) net.core(m.to).step(m);
    for (const id of ['n2', 'n3']) {
      const rd = net.core(id).ready();
      for (const m of rd.messages) n1.step(m);
      net.core(id).advance(rd);
    }
    const rd1 = n1.ready();
    for (const rs of rd1.readStates) seen.push(rs.context, rs.index);
    n1.advance(rd1);
    assert.deepEqual(seen, [7, 2]);
  });

  it('a partitioned leader never serves a read', () => {
    const net = new CoreNetwork(ids3);
    net.campaign('n1');
    net.isolate('n1');
    assert.ok(net.core('n1').readIndex(1).ok);
    let served = 0;
    for (let k = 0; k < 30; k++) {
      net.core('n1').tick();
      const rd = net.core('n1').ready();
      served += rd.readStates.length;
      net.core('n1').advance(rd);
    }
    assert.equal(served, 0);
    assert.equal(net.core('n1').role, 'follower');
  });

  it('a new leader defers reads until it commits an entry of its term', () => {
    const net = new CoreNetwork(ids3);
    net.campaign('n1');
    net.dropIf = (m) => m.type === 'appendResp';
    net.isolate('n1');
    net.tick(40, ['n2', 'n3']);
    const leader = net.leader()!;
    assert.notEqual(leader.id, 'n1');
    assert.notEqual(leader.log.term(leader.log.committed), leader.term);
    assert.ok(leader.readIndex(3).ok);
    assert.deepEqual(net.reads.get(leader.id), []);
    net.dropIf = undefined;
    net.tick(2, ['n2', 'n3']);
    assert.equal(leader.log.term(leader.log.committed), leader.term);
    const served = net.reads.get(leader.id)!;
    assert.equal(served.length, 1);
    assert.equal(served[0]!.context, 3);
    assert.equal(
      leader.log.term(served[0]!.index),
      leader.term,
      "read at the new term's commit index",
    );
  });
});
