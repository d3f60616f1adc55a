import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Suspicion, timeoutAfter } from './suspicion.js';
import { Awareness } from './awareness.js';
import { retransmitLimit, suspicionTimeout, pushPullScale } from './config.js';

describe('Suspicion', () => {
  it('starts at max and reaches min after k confirmations', () => {
    const s = new Suspicion('accuser', 3, 1000, 6000, 0);
    assert.equal(s.deadline, 6000);
    assert.equal(s.confirm('accuser'), false, 'the accuser is counted up front');
    assert.equal(s.confirm('b'), true);
    assert.equal(s.deadline, Math.floor(6000 - (Math.log(2) / Math.log(4)) * 5000));
    assert.equal(s.confirm('b'), false, 'one confirmation per member');
    s.confirm('c');
    s.confirm('d');
    assert.equal(s.deadline, 1000);
    assert.equal(s.confirm('e'), false, 'no more once at the minimum');
    assert.equal(s.confirmationCount(), 3);
  });

  it('uses the minimum when nobody can confirm', () => {
    assert.equal(new Suspicion('a', 0, 700, 4200, 100).deadline, 800);
    assert.equal(timeoutAfter(0, 0, 700, 4200), 700);
  });

  it('follows memberlist formulas for timeouts and limits', () => {
    assert.equal(suspicionTimeout(4, 1, 1000), 4000);
    assert.equal(suspicionTimeout(4, 100, 1000), 8000);
    assert.equal(suspicionTimeout(4, 50, 1000), 6795);
    assert.equal(retransmitLimit(4, 9), 4);
    assert.equal(retransmitLimit(4, 10), 8);
    assert.equal(pushPullScale(30_000, 32), 30_000);
    assert.equal(pushPullScale(30_000, 64), 60_000);
    assert.equal(pushPullScale(30_000, 65), 90_000);
  });
});

describe('Awareness', () => {
  it('stays within [0, max-1] and scales timeouts by score+1', () => {
    const a = new Awareness(8);
    a.applyDelta(-1);
    assert.equal(a.getScore(), 0);
    assert.equal(a.scaleTimeout(500), 500);
    a.applyDelta(20);
    assert.equal(a.getScore(), 7);
    assert.equal(a.scaleTimeout(500), 4000);
  });
});
