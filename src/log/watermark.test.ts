import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Watermark } from './index.js';

describe('Watermark', () => {
  it('only moves forward', () => {
    const w = new Watermark(5n);
    assert.equal(w.value, 5n);
    w.advance(3n);
    assert.equal(w.value, 5n);
    w.advance(9n);
    assert.equal(w.value, 9n);
    assert.equal(new Watermark().value, 0n);
  });

  it('wakes waiters once the value is reached, in any order of waiting', async () => {
    const w = new Watermark();
    const woken: bigint[] = [];
    const waits = [3n, 1n, 2n].map((v) => w.waitFor(v).then(() => woken.push(v)));
    await w.waitFor(0n); // already reached: resolves at once
    w.advance(1n);
    await waits[1];
    assert.deepEqual(woken, [1n]);
    w.advance(3n);
    await Promise.all(waits);
    assert.deepEqual(woken.slice(1).sort(), [2n, 3n]);
  });

  it('rejects a wait with the signal reason on abort, and a wait already aborted', async () => {
    const w = new Watermark();
    const ac = new AbortController();
    const waiting = w.waitFor(1n, { signal: ac.signal });
    const reason = new Error('gave up');
    ac.abort(reason);
    await assert.rejects(waiting, (err) => err === reason);
    await assert.rejects(w.waitFor(1n, { signal: ac.signal }), (err) => err === reason);
    // An aborted signal does not matter once the value is reached.
    w.advance(1n);
    await w.waitFor(1n, { signal: ac.signal });
  });

  it('rejects pending and later unmet waits with the close reason', async () => {
    const w = new Watermark(2n);
    const pending = w.waitFor(5n);
    const reason = new Error('closed');
    w.close(reason);
    await assert.rejects(pending, (err) => err === reason);
    await assert.rejects(w.waitFor(3n), (err) => err === reason);
    await w.waitFor(2n);
  });
});
