// The leader counts itself in the quorum only at its durable index: its own entries
// count once the driver reports them persisted (advance), never before.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftCore, bootstrapState } from './raft.js';
import type { Message, Ready } from './types.js';

const ids = ['n1', 'n2', 'n3'];

function cores(): Map<string, RaftCore> {
  const conf = { voters: ids, learners: [], addresses: {} };
  return new Map(ids.map((id, k) => [id, new RaftCore({ id, seed: k + 1 }, bootstrapState(conf))]));
}

/** Runs every node's Readies and delivers messages until quiet, except `hold`'s Readies. */
function settle(cs: Map<string, RaftCore>, held: Ready[] = [], hold?: string): void {
  for (let round = 0; round < 1000; round++) {
    const out: Message[] = [];
    for (const [id, c] of cs) {
      if (id === hold) {
        if (c.hasReady() && held.length === 0) {
          const rd = c.ready();
          held.push(rd);
          // Messages may leave before the leader's own write is durable.
          out.push(...rd.messages);
        }
        continue;
      }
      while (c.hasReady()) {
        const rd = c.ready();
        out.push(...rd.messages);
        c.advance(rd);
      }
    }
    if (out.length === 0) return;
    for (const m of out) cs.get(m.to)?.step(m);
  }
  throw new Error('did not settle');
}

describe('durable index of the leader', () => {
  it('a single voter commits its entry only once it is persisted', () => {
    const c = new RaftCore(
      { id: 'a' },
      bootstrapState({ voters: ['a'], learners: [], addresses: {} }),
    );
    c.campaign();
    assert.equal(c.role, 'leader');
    const rd = c.ready();
    assert.equal(rd.entries.length, 1, 'the no-op');
    assert.equal(c.log.committed, 0, 'not before it is durable');
    c.advance(rd);
    assert.equal(c.log.committed, 1);
  });

  it('one follower ack does not commit while the leader has not persisted its entry', () => {
    const cs = cores();
    cs.get('n1')!.campaign();
    settle(cs);
    const leader = cs.get('n1')!;
    assert.equal(leader.role, 'leader');
    // Only n2 hears the append; n3 is down (its messages are dropped by not stepping it).
    cs.delete('n3');
    const res = leader.propose([new Uint8Array([1])]);
    assert.ok(res.ok);
    const held: Ready[] = [];
    settle(cs, held, 'n1');
    assert.equal(held.length, 1);
    assert.equal(held[0]!.entries[0]!.index, res.index);
    assert.ok(leader.log.committed < res.index, 'n2 alone is not a quorum');
    leader.advance(held[0]!);
    assert.equal(leader.log.committed, res.index, 'n2 and the durable leader are');
  });
});
