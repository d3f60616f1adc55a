// The bounded simulation run by `npm test`: 200 seeds (longer runs: npm run sim:raft:long).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSimulation } from './sim.js';

const SEEDS = 200;
const STEPS = 1500;

describe('raft simulation', () => {
  it(`keeps every safety invariant and recovers liveness over ${SEEDS} seeds`, () => {
    const failures: string[] = [];
    let acked = 0;
    let snapshots = 0;
    let confChanges = 0;
    let crashes = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = runSimulation({ seed, steps: STEPS });
      acked += r.stats.acked;
      snapshots += r.stats.snapshotsInstalled;
      confChanges += r.stats.confChanges;
      crashes += r.stats.crashes;
      if (r.violation) failures.push(`seed ${seed}: ${r.violation}\n  ${r.trace.join('\n  ')}`);
    }
    assert.deepEqual(failures, []);
    // The faults really happened (a simulation that tests nothing would pass too).
    assert.ok(acked > SEEDS * 50, `acked ${acked}`);
    assert.ok(snapshots > SEEDS, `snapshots ${snapshots}`);
    assert.ok(confChanges > SEEDS, `conf changes ${confChanges}`);
    assert.ok(crashes > SEEDS, `crashes ${crashes}`);
  });

  it('is deterministic: a seed replays identically', () => {
    const a = runSimulation({ seed: 42, steps: 800 });
    const b = runSimulation({ seed: 42, steps: 800 });
    assert.deepEqual(a.stats, b.stats);
  });

  it('reports a violation when one node applies a corrupted entry (the checker can fail)', () => {
    const r = runSimulation({ seed: 7, steps: 400, tamper: true });
    assert.match(r.violation ?? '', /state machine safety|log matching/);
  });
});
