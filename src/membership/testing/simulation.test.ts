import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bounds, falseFailureViolations, presetConfig, runScenario } from './simulation.js';

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

  it('fails a run whose false failures after the partition exceed the budget', () => {
    // Seed 16 reports two live members failed just after its heal (two cut off).
    const within = runScenario(16);
    assert.equal(within.falseFailuresAfterPartition.length, 2);
    assert.deepEqual(within.violations, []);
    const tight = runScenario(16, { limits: { falseFailuresPerCutMember: 0 } });
    assert.match(tight.violations.map((v) => v.text).join('\n'), /false failed events after/);
    const early = runScenario(16, { limits: { staleVerdictMs: 10 } });
    assert.match(early.violations.map((v) => v.text).join('\n'), /after the heal \(budget 10 ms\)/);
  });

  it('fails a run whose detection time exceeds its bound', () => {
    const r = runScenario(3, { members: 8, limits: { failureMs: 1000 } });
    assert.match(r.violations.map((v) => v.text).join('\n'), /failure detection not seen/);
  });

  it('judges each false failure after a partition by side, time and count', () => {
    const limits = { ...bounds(presetConfig('lan'), 10), falseFailuresPerCutMember: 1 };
    const f = (acrossCut: boolean, sinceHeal: number | undefined) => ({
      observer: 'm1',
      subject: 'm2',
      at: 0,
      acrossCut,
      sinceHeal,
    });
    assert.deepEqual(falseFailureViolations([f(true, 100)], 1, limits), []);
    assert.deepEqual(falseFailureViolations([f(false, undefined)], 1, limits), []);
    assert.equal(
      falseFailureViolations([f(false, undefined), f(false, 5)], 2, limits).length,
      1,
      'one same-side miss is in the budget, two are not',
    );
    assert.equal(falseFailureViolations([f(true, limits.staleVerdictMs + 1)], 1, limits).length, 1);
    assert.equal(falseFailureViolations([f(true, 1), f(true, 2)], 1, limits).length, 1);
  });
});
