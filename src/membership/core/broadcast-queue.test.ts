import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BroadcastQueue } from './broadcast-queue.js';

const msg = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (xs: Uint8Array[]): string[] => xs.map((x) => new TextDecoder().decode(x));

describe('BroadcastQueue', () => {
  it('replaces older news about the same member', () => {
    const q = new BroadcastQueue();
    const old = q.enqueue('a', msg('a1'));
    q.enqueue('b', msg('b1'));
    q.enqueue('a', msg('a2'));
    assert.equal(q.has(old), false);
    assert.deepEqual(text(q.take(0, 100, 3, 10)).sort(), ['a2', 'b1']);
  });

  it('sends each message `limit` times, least sent and newest first', () => {
    const q = new BroadcastQueue();
    q.enqueue('a', msg('a'));
    assert.deepEqual(text(q.take(0, 100, 2, 10)), ['a']);
    q.enqueue('b', msg('b'));
    assert.deepEqual(text(q.take(0, 1, 2, 10)), ['b'], 'fresh news first when room is short');
    assert.deepEqual(text(q.take(0, 100, 2, 10)), ['b', 'a'], 'equal counts: newer first');
    assert.equal(q.size(), 0);
  });

  it('fits messages into the byte budget, overhead included', () => {
    const q = new BroadcastQueue();
    q.enqueue('a', msg('aaaa'));
    q.enqueue('b', msg('bb'));
    assert.deepEqual(text(q.take(1, 4, 5, 10)), ['bb']);
    assert.deepEqual(text(q.take(0, 100, 5, 1)), ['aaaa'], 'message count is capped');
  });
});
