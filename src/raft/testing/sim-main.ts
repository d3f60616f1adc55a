// `npm run sim:raft -- --seeds N --steps M [--seed S] [--verbose]`: runs the Raft
// simulation over seeds S..S+N-1 and ends with one summary line.
import { parseArgs } from 'node:util';
import { runSimulation } from './sim.js';
import { runDriverSimulation } from './sim-driver.js';

const HELP = `usage: sim:raft [--seeds N] [--steps M] [--from F] [--seed S] [--verbose]
                [--driver [--ms T]]

Runs the deterministic Raft simulation: N seeds (default 200) starting at F
(default 1), M faulty steps each (default 1500), then a fault-free liveness phase.
--seed S replays the single seed S. --verbose prints each seed's statistics.
A failing seed prints its violation, a trace of its last events and the command
that replays it. The last line is
  raft-sim: <seeds> seeds, <steps> steps, <violations> violations
and the exit code is 1 when any seed failed.

--driver runs the real RaftNode driver instead of bare cores: storage writes that take
time and are lost or torn by a crash, crashes between storage calls, chunked snapshots,
one-way partitions and paused nodes (a crash may fall between the log's snapshot install
and the state machine's), T simulated milliseconds of faults per seed (default 5000).`;

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '200' },
    steps: { type: 'string', default: '1500' },
    seed: { type: 'string' },
    from: { type: 'string', default: '1' },
    verbose: { type: 'boolean', default: false },
    driver: { type: 'boolean', default: false },
    ms: { type: 'string', default: '5000' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const seeds = values.seed !== undefined ? 1 : Number(values.seeds);
const steps = Number(values.steps);
const first = Number(values.seed ?? values.from);
if (
  !Number.isSafeInteger(seeds) ||
  seeds < 1 ||
  !Number.isSafeInteger(steps) ||
  steps < 1 ||
  !Number.isSafeInteger(first)
) {
  console.error(HELP);
  process.exit(2);
}

if (values.driver) {
  const ms = Number(values.ms);
  let failed = 0;
  const t0 = Date.now();
  for (let seed = first; seed < first + seeds; seed++) {
    const r = await runDriverSimulation({ seed, durationMs: ms });
    if (values.verbose) console.log(`seed ${seed}: ${JSON.stringify(r.stats)}`);
    if (r.violation !== undefined) {
      failed++;
      console.log(`seed ${seed} FAILED: ${r.violation}`);
      for (const line of r.trace) console.log(`  ${line}`);
      console.log(`  replay: npm run sim:raft -- --driver --seed ${seed} --ms ${ms}`);
    }
  }
  console.log(`elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(
    `raft-sim (driver): ${seeds} seeds, ${seeds * ms} simulated ms, ${failed} violations`,
  );
  process.exit(failed > 0 ? 1 : 0);
}

let violations = 0;
let totalSteps = 0;
const started = Date.now();
for (let seed = first; seed < first + seeds; seed++) {
  const result = runSimulation({ seed, steps });
  totalSteps += steps;
  if (values.verbose) console.log(`seed ${seed}: ${JSON.stringify(result.stats)}`);
  if (result.violation !== undefined) {
    violations++;
    console.log(`seed ${seed} FAILED: ${result.violation}`);
    for (const line of result.trace) console.log(`  ${line}`);
    const at = result.failedAtStep ?? steps;
    // A safety violation at step k reproduces with --steps k: the run is the same prefix.
    const replaySteps = at <= steps ? at : steps;
    console.log(`  replay: npm run sim:raft -- --seed ${seed} --steps ${replaySteps}`);
  }
}
console.log(`elapsed ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`raft-sim: ${seeds} seeds, ${totalSteps} steps, ${violations} violations`);
process.exit(violations > 0 ? 1 : 0);
