// The membership simulation from the command line:
//   npm run sim:membership -- --seeds 20          seeds 1..20, cluster size drawn per seed
//   npm run sim:membership -- --seed 7            replay seed 7 and print its timeline
//   npm run sim:membership -- --figures           the figures of docs/membership.md
// Ends with `membership-sim: <seeds> seeds, <violations> violations`; exit code 1 on any.
import { parseArgs } from 'node:util';
import { runScenario, type ScenarioOptions, type ScenarioResult } from './simulation.js';

const HELP = `usage: sim-main [--seeds N | --seed S | --figures] [--members M] [--loss P]
                [--preset lan|local] [--quiet-ms MS]

  --seeds N     run seeds 1..N (default 20)
  --seed S      replay one seed and print its measurements and violations
  --figures     measure join/failure/leave times and traffic for 5 and 50 members
                (median of --seeds runs, default 5) and false failures at 5% loss
  --members M   cluster size (default: drawn from 5..50 by each seed)
  --loss P      packet loss, 0..1 (default: drawn from 0, 0.01, 0.05 by each seed)
  --preset      timing preset, lan (default) or local
  --quiet-ms    length of the quiet stretch that measures traffic (default 60000)
`;

function main(): number {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      figures: { type: 'boolean', default: false },
      members: { type: 'string' },
      loss: { type: 'string' },
      preset: { type: 'string', default: 'lan' },
      'quiet-ms': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const preset = values.preset === 'local' ? 'local' : 'lan';
  const options: ScenarioOptions = {
    preset,
    ...(values.members !== undefined ? { members: Number(values.members) } : {}),
    ...(values.loss !== undefined ? { loss: Number(values.loss) } : {}),
    ...(values['quiet-ms'] !== undefined ? { quietMs: Number(values['quiet-ms']) } : {}),
  };
  if (values.figures) return figures(Number(values.seeds ?? 5), options);
  const seeds =
    values.seed !== undefined
      ? [Number(values.seed)]
      : Array.from({ length: Number(values.seeds ?? 20) }, (_, i) => i + 1);
  let violations = 0;
  for (const seed of seeds) {
    const started = performance.now();
    const r = runScenario(seed, options);
    violations += r.violations.length;
    const wall = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`seed ${seed}: ${describe(r)} (${wall} s wall)`);
    const shown = values.seed !== undefined ? r.violations : r.violations.slice(0, 3);
    for (const v of shown) console.log(`  violation at ${(v.at / 1000).toFixed(3)} s: ${v.text}`);
  }
  console.log(`membership-sim: ${seeds.length} seeds, ${violations} violations`);
  return violations === 0 ? 0 : 1;
}

function describe(r: ScenarioResult): string {
  const s = (ms: number | undefined): string =>
    ms === undefined ? 'missed' : `${(ms / 1000).toFixed(2)}s`;
  return (
    `n=${r.members} loss=${r.loss * 100}% join ${s(r.joinMs)} update ${s(r.updateMs)} ` +
    `failure ${s(r.failureMs)} restart ${s(r.restartMs)} leave ${s(r.leaveMs)} partition ${s(r.partitionFailMs)} ` +
    `heal ${s(r.healMs)} gossip ${r.packetBytesPerSecond.toFixed(0)} B/s + push-pull ` +
    `${r.streamBytesPerSecond.toFixed(0)} B/s per member, ${r.falsePositives} false positives ` +
    `(${r.falsePositivesAfterPartition} after the partition), ` +
    `${r.violations.length} violations, ${(r.simulatedMs / 1000).toFixed(0)} s simulated`
  );
}

function median(xs: (number | undefined)[]): string {
  const v = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (v.length === 0) return 'n/a';
  const m = v[Math.floor(v.length / 2)] as number;
  const max = v[v.length - 1] as number;
  return `${(m / 1000).toFixed(2)} s (max ${(max / 1000).toFixed(2)} s)`;
}

function figures(runs: number, base: ScenarioOptions): number {
  let violations = 0;
  let total = 0;
  for (const members of [5, 50]) {
    const results: ScenarioResult[] = [];
    for (let seed = 1; seed <= runs; seed++) {
      results.push(runScenario(seed, { ...base, members, loss: base.loss ?? 0 }));
    }
    total += results.length;
    violations += results.reduce((n, r) => n + r.violations.length, 0);
    console.log(`${members} members, ${base.preset} timings, ${runs} seeds, median (max):`);
    console.log(`  join seen by all     ${median(results.map((r) => r.joinMs))}`);
    console.log(`  tag update seen      ${median(results.map((r) => r.updateMs))}`);
    console.log(`  failure seen by all  ${median(results.map((r) => r.failureMs))}`);
    console.log(`  restart seen by all  ${median(results.map((r) => r.restartMs))}`);
    console.log(`  leave seen by all    ${median(results.map((r) => r.leaveMs))}`);
    console.log(`  partition failed    ${median(results.map((r) => r.partitionFailMs))}`);
    console.log(`  healed               ${median(results.map((r) => r.healMs))}`);
    const bps = (xs: number[]): string =>
      (xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0).toFixed(0);
    console.log(
      `  gossip bytes/s/member UDP ${bps(results.map((r) => r.packetBytesPerSecond))}, ` +
        `TCP push-pull ${bps(results.map((r) => r.streamBytesPerSecond))}`,
    );
  }
  // The long run at 5% loss: no partition, a ten-minute quiet stretch, 50 members.
  const lossy: ScenarioResult[] = [];
  for (let seed = 1; seed <= runs; seed++) {
    lossy.push(
      runScenario(seed, {
        ...base,
        members: 50,
        loss: 0.05,
        quietMs: 600_000,
        skipPartition: true,
      }),
    );
  }
  total += lossy.length;
  violations += lossy.reduce((n, r) => n + r.violations.length, 0);
  const fp = lossy.reduce((n, r) => n + r.falsePositives, 0);
  const simulated = lossy.reduce((n, r) => n + r.simulatedMs, 0) / 60_000;
  console.log(
    `50 members at 5% loss, ${runs} seeds, ${simulated.toFixed(0)} simulated minutes: ${fp} false failure verdicts`,
  );
  console.log(`membership-sim: ${total} seeds, ${violations} violations`);
  return violations === 0 ? 0 : 1;
}

process.exitCode = main();
