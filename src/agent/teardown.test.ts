import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Teardown, TeardownClosedError, TeardownError } from './teardown.js';

describe('Teardown', () => {
  it('undoes in reverse order: functions, disposables and async disposables', async () => {
    const order: string[] = [];
    const t = new Teardown();
    t.defer(() => order.push('fn'));
    t.defer({ [Symbol.dispose]: () => order.push('disposable') });
    t.defer({ [Symbol.asyncDispose]: async () => void order.push('async') });
    t.defer(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      order.push('slow');
    });
    await t.close();
    assert.deepEqual(order, ['slow', 'async', 'disposable', 'fn']);
  });

  it('runs every undo even when some fail, and gathers their errors', async () => {
    const order: string[] = [];
    const t = new Teardown();
    t.defer(() => order.push('first'));
    t.defer(() => {
      throw new Error('a');
    });
    t.defer(() => order.push('middle'));
    t.defer(() => Promise.reject(new Error('b')));
    await assert.rejects(t.close(), (err: unknown) => {
      assert.ok(err instanceof TeardownError && err instanceof AggregateError);
      assert.deepEqual(
        err.errors.map((e: Error) => e.message),
        ['b', 'a'],
      );
      return true;
    });
    assert.deepEqual(order, ['middle', 'first']);
  });

  it('is idempotent and refuses to defer once closing', async () => {
    let runs = 0;
    const t = new Teardown();
    t.defer(() => runs++);
    const first = t.close();
    assert.equal(t.close(), first);
    await first;
    await t.close();
    assert.equal(runs, 1);
    assert.throws(() => t.defer(() => runs++), TeardownClosedError);
  });
});
