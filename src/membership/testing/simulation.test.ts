import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runScenario } from './simulation.js';

// The bounded simulation of npm test; `npm run sim:membership -- --seeds N` runs more.
describe('membership simulation', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: converges, detects, leaves and heals within bounds`, () => {
      const r = runScenario(seed, { members: 5 + ((seed * 7) % 16) });
      assert.deepEqual(r.violations, []);
      assert.equal(r.falsePositives, 0);
    });
  }

  it('50 members at 5% loss', () => {
    const r = runScenario(11, { members: 50, loss: 0.05 });
    assert.deepEqual(r.violations, []);
    assert.equal(r.falsePositives, 0);
  });

  it('replays a seed exactly', () => {
    const a = runScenario(3, { members: 8 });
    const b = runScenario(3, { members: 8 });
    assert.deepEqual(a, b);
  });
});
