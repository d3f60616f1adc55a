// `npm run chaos -- [run] --nodes 3 --minutes 10 --seed S --faults kill,pause,…`
// `npm run chaos -- cleanup [--all]`   remove what crashed runs left behind
// `npm run chaos -- fuzz --inputs 1000000 [--seed S]`   port-level fuzz of one node
import { parseArgs } from 'node:util';

import { FAULT_KINDS, type FaultKind } from './faults.js';
import { replayFuzz, runFuzz, type Port } from './fuzz.js';
import { cleanupLeftovers } from './hosts.js';
import { pause } from './rng.js';
import { formatTimeline, runChaos } from './run.js';

/** A command-line value that makes no sense. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const USAGE = `usage:
  chaos [run] --nodes N --minutes M [--seconds S] --seed S [--faults ${FAULT_KINDS.join(',')}]
              [--mode auto|netns|loopback] [--producers N] [--recovery-ms MS] [--no-cluster-flags]
  chaos fuzz [--inputs N] [--seed S] [--max-rss-mb MB] [--ports grpc,raft,http,gossip] [--keep]
  chaos fuzz --replay last-inputs.json [--repeat N]
  chaos cleanup [--all] [--run ID]`;

function faultsOf(text: string): FaultKind[] {
  const kinds = text.split(',').filter(Boolean);
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k))
      throw new UsageError(`unknown fault '${k}' (known: ${FAULT_KINDS.join(', ')})`);
  }
  return kinds as FaultKind[];
}

function portsOf(text: string): Port[] {
  const ports = text.split(',').filter(Boolean);
  for (const p of ports) {
    if (!['grpc', 'raft', 'http', 'gossip'].includes(p)) {
      throw new UsageError(`unknown port '${p}' (grpc, raft, http, gossip)`);
    }
  }
  return ports as Port[];
}

function int(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} wants a number, got '${text}'`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nodes: { type: 'string' },
      minutes: { type: 'string' },
      seconds: { type: 'string' },
      seed: { type: 'string' },
      faults: { type: 'string' },
      mode: { type: 'string' },
      producers: { type: 'string' },
      'recovery-ms': { type: 'string' },
      inputs: { type: 'string' },
      'max-rss-mb': { type: 'string' },
      all: { type: 'boolean' },
      ports: { type: 'string' },
      keep: { type: 'boolean' },
      replay: { type: 'string' },
      repeat: { type: 'string' },
      'no-cluster-flags': { type: 'boolean' },
      run: { type: 'string' },
      pid: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? 'run';
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (command === 'cleanup') {
    const removed = await cleanupLeftovers({ all: values.all, run: values.run });
    for (const r of removed) console.log(`removed ${r}`);
    console.log(`chaos cleanup: ${removed.length} leftovers removed`);
    return 0;
  }
  if (command === 'reap') {
    // Runs detached beside a harness; cleans up its run once the harness is gone.
    const pid = int('pid', values.pid, 0);
    for (;;) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await pause(500);
    }
    await cleanupLeftovers({ run: values.run, all: true });
    return 0;
  }
  const seed = int('seed', values.seed, Date.now() % 1_000_000);
  if (command === 'fuzz' && values.replay !== undefined) {
    const r = await replayFuzz({
      file: values.replay,
      repeat: int('repeat', values.repeat, 200),
      log: (l) => console.log(l),
    });
    console.log(r.summary);
    return r.culprit === undefined ? 0 : 1;
  }
  if (command === 'fuzz') {
    const r = await runFuzz({
      inputs: int('inputs', values.inputs, 1_000_000),
      seed,
      maxRssBytes: int('max-rss-mb', values['max-rss-mb'], 512) * 2 ** 20,
      ports: values.ports === undefined ? undefined : portsOf(values.ports),
      keep: values.keep,
      log: (l) => console.log(l),
    });
    console.log(r.summary);
    return r.ok ? 0 : 1;
  }
  if (command !== 'run') throw new UsageError(`unknown command '${command}'\n${USAGE}`);
  const mode = values.mode ?? 'auto';
  if (mode !== 'auto' && mode !== 'netns' && mode !== 'loopback')
    throw new UsageError(`--mode: auto, netns or loopback`);
  const durationMs =
    values.seconds !== undefined
      ? int('seconds', values.seconds, 60) * 1000
      : int('minutes', values.minutes, 1) * 60_000;
  const ctrlC = new AbortController();
  const onSignal = () => {
    if (ctrlC.signal.aborted) process.exit(130);
    console.log('chaos: interrupted; healing, checking and cleaning up (again to quit at once)');
    ctrlC.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const r = await runChaos({
    nodes: int('nodes', values.nodes, 3),
    durationMs,
    seed,
    faults: faultsOf(values.faults ?? 'kill,pause,partition,loss,slow,disk,clock'),
    mode,
    producers: values.producers === undefined ? undefined : int('producers', values.producers, 6),
    recoveryMs:
      values['recovery-ms'] === undefined
        ? undefined
        : int('recovery-ms', values['recovery-ms'], 30_000),
    clusterFlags: values['no-cluster-flags'] ? false : undefined,
    log: (l) => console.log(l),
    signal: ctrlC.signal,
  });
  if (r.violations > 0) console.log(`seed ${r.seed}\n${formatTimeline(r.timeline)}`);
  console.log(r.summary);
  return r.violations > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof UsageError ? err.message : err);
    process.exit(2);
  },
);
