// `npm run sim:raft -- --seeds N [--core | --driver] [--jobs J] …`: runs the Raft
// simulations (bare cores, then the real driver) over seeds and ends with summary lines.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { runSimulation } from './sim.js';
import { runDriverSimulation } from './sim-driver.js';

const HELP = `usage: sim:raft [--seeds N] [--steps M] [--from F] [--seed S] [--verbose]
                [--core | --driver] [--ms T] [--jobs J]

Runs the deterministic Raft simulations over N seeds (default 200) starting at F
(default 1); --seed S replays the single seed S. By default both run, one after the other:

  core    bare RaftCores on a lossy network: M faulty steps per seed (default 1500),
          then a fault-free liveness phase;
  driver  the real RaftNode driver: storage writes that take time and are lost or torn by
          a crash, crashes between storage calls, chunked snapshots, one-way partitions
          and paused nodes (a crash may fall between the log's snapshot install and the
          state machine's), T simulated milliseconds of faults per seed (default 5000).

--core or --driver runs only that one. --jobs J splits the driver's seeds over J child
processes (default: the cores, at most 4; each seed replays the same wherever it runs). --verbose prints each seed's
statistics. A failing seed prints its violation, a trace of its last events and the
command that replays it. Each simulation ends with its summary line
  raft-sim: <seeds> seeds, <steps> steps, <violations> violations
  raft-sim (driver): <seeds> seeds, <ms> simulated ms, <violations> violations
and, when both ran, a last line
  raft-sim (core + driver): <violations> violations
The exit code is 1 when any seed failed.`;

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '200' },
    steps: { type: 'string', default: '1500' },
    seed: { type: 'string' },
    from: { type: 'string', default: '1' },
    verbose: { type: 'boolean', default: false },
    driver: { type: 'boolean', default: false },
    core: { type: 'boolean', default: false },
    jobs: { type: 'string', default: `${Math.min(4, availableParallelism())}` },
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

const ms = Number(values.ms);
const jobs = Number(values.jobs);
if (!Number.isSafeInteger(ms) || ms < 1 || !Number.isSafeInteger(jobs) || jobs < 1) {
  console.error(HELP);
  process.exit(2);
}
const runCore = !values.driver;
const runDriver = !values.core;

let total = 0;
if (runCore) total += runCoreSeeds();
if (runDriver) total += jobs > 1 && seeds > 1 ? await runDriverJobs() : await runDriverSeeds();
if (runCore && runDriver) console.log(`raft-sim (core + driver): ${total} violations`);
process.exit(total > 0 ? 1 : 0);

function runCoreSeeds(): number {
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
      console.log(`  replay: npm run sim:raft -- --core --seed ${seed} --steps ${replaySteps}`);
    }
  }
  console.log(`elapsed ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`raft-sim: ${seeds} seeds, ${totalSteps} steps, ${violations} violations`);
  return violations;
}

async function runDriverSeeds(): Promise<number> {
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
  return failed;
}

/** The driver's seeds in J child processes, each a contiguous range; one summary line. */
async function runDriverJobs(): Promise<number> {
  const t0 = Date.now();
  const per = Math.ceil(seeds / jobs);
  const runs: Promise<number>[] = [];
  for (let from = first; from < first + seeds; from += per) {
    const n = Math.min(per, first + seeds - from);
    const args = [process.argv[1]!, '--driver', '--jobs', '1', '--from', `${from}`];
    args.push('--seeds', `${n}`);
    args.push('--ms', `${ms}`, ...(values.verbose ? ['--verbose'] : []));
    runs.push(
      new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (d: string) => (out += d));
        child.on('error', reject);
        child.on('close', () => {
          // Everything but the child's own summary lines goes through.
          const lines = out.split('\n').filter((l) => l !== '');
          const summary = lines.find((l) => l.startsWith('raft-sim (driver):'));
          for (const l of lines) if (l !== summary && !l.startsWith('elapsed ')) console.log(l);
          const m = summary ? /, (\d+) violations$/.exec(summary) : null;
          if (!m) reject(new Error(`seeds ${from}..${from + n - 1}: no summary line`));
          else resolve(Number(m[1]));
        });
      }),
    );
  }
  const failed = (await Promise.all(runs)).reduce((a, b) => a + b, 0);
  console.log(`elapsed ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(
    `raft-sim (driver): ${seeds} seeds, ${seeds * ms} simulated ms, ${failed} violations`,
  );
  return failed;
}
