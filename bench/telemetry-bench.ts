// Cost of telemetry on produce throughput: the same workloads against a node with the
// defaults (metrics on, traces off), a node with both off (--no-metrics), and, with
// --traces, a node tracing every call into a file. The nodes run side by side as
// separate processes; rounds alternate between them so that drift on a shared machine
// hits each alike. Reports the median records/s of --runs rounds and the ratio, and the
// node's CPU time per record (from /proc, Linux), which contention on a shared machine
// disturbs much less than throughput.
//   npm run bench:telemetry [-- --runs 7 --seconds 2 --fsync never --size 100 --traces]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { CommitLogClient } from '../src/client/index.js';
import { spawnAgent, type AgentProcess } from '../test/support/agent-process.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    seconds: { type: 'string', default: '2' },
    fsync: { type: 'string', default: 'never' },
    size: { type: 'string', default: '100' },
    inflight: { type: 'string', default: '64' },
    traces: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const runs = Number(args.runs);
const seconds = Number(args.seconds);
const inflight = Number(args.inflight);
const value = Buffer.alloc(Number(args.size), 120);

interface Node {
  name: string;
  client: CommitLogClient;
  agent: AgentProcess;
  dir: string;
}

async function startNode(name: string, flags: string[]): Promise<Node> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-telemetry-bench-'));
  const agent = await spawnAgent(
    ['--data-dir', join(dir, 'data'), '--rpc-port', '0', '--http-port', '0']
      .concat(['--fsync', args.fsync, '--log-format', 'json'])
      .concat(flags.map((f) => f.replace('$DIR', dir))),
    // The node's log lines are part of what is measured; they are read and dropped.
    { echoStderr: true, stdout: 'ignore' },
  );
  return { name, client: new CommitLogClient(agent.rpcAddr), agent, dir };
}

async function stopNode(node: Node): Promise<void> {
  node.client.close();
  await node.agent.stop();
  await rm(node.dir, { recursive: true, force: true });
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** User + system CPU seconds a process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

interface Sample {
  recordsPerSec: number;
  /** The node's CPU microseconds per record. */
  cpuUs: number;
}

type Workload = (c: CommitLogClient) => (deadline: number) => Promise<number>;

/** Runs `work` until the deadline after a short warm-up; measures rate and node CPU. */
async function measure(node: Node, work: Workload): Promise<Sample> {
  await work(node.client)(performance.now() + 200);
  const cpu = cpuSeconds(node.agent.pid);
  const started = performance.now();
  const records = await work(node.client)(started + seconds * 1000);
  const elapsed = (performance.now() - started) / 1000;
  const cpuUs = ((cpuSeconds(node.agent.pid) - cpu) * 1e6) / records;
  return { recordsPerSec: records / elapsed, cpuUs };
}

const workloads: Record<string, Workload> = {
  [`Produce, ${inflight} in flight`]: (c) => async (deadline) => {
    let n = 0;
    await Promise.all(
      Array.from({ length: inflight }, async () => {
        while (performance.now() < deadline) {
          await c.produce(value);
          n++;
        }
      }),
    );
    return n;
  },
  'ProduceStream, 1 stream': (c) => async (deadline) => {
    let n = 0;
    function* values() {
      while (performance.now() < deadline) yield value;
    }
    for await (const _offset of c.produceStream(values())) n++;
    return n;
  },
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

const configs: [string, string[]][] = [
  ['default (metrics on, traces off)', []],
  ['both off (--no-metrics)', ['--no-metrics']],
];
if (args.traces) {
  configs.push(['traces on (file, ratio 1)', ['--trace-file', '$DIR/trace.jsonl']]);
}

const nodes: Node[] = [];
try {
  for (const [name, flags] of configs) nodes.push(await startNode(name, flags));
  const results: {
    workload: string;
    config: string;
    runs: number[];
    median: number;
    pairedRatio: number;
    cpuUs: number;
    cpuRatio: number;
  }[] = [];
  for (const [workload, work] of Object.entries(workloads)) {
    const samples = new Map<string, Sample[]>(nodes.map((n) => [n.name, []]));
    for (let r = 0; r < runs; r++) {
      // Alternate the order so that neither config always runs first after a pause.
      const order = r % 2 === 0 ? nodes : [...nodes].reverse();
      for (const node of order) samples.get(node.name)?.push(await measure(node, work));
    }
    const baseline = samples.get(configs[1]?.[0] ?? '') ?? [];
    for (const [config, xs] of samples) {
      // Paired per round: each round's ratio against the baseline measured beside it.
      const ratio = (pick: (x: Sample) => number) =>
        median(xs.map((x, i) => pick(x) / pick(baseline[i] ?? { recordsPerSec: NaN, cpuUs: NaN })));
      results.push({
        workload,
        config,
        runs: xs.map((x) => Math.round(x.recordsPerSec)),
        median: Math.round(median(xs.map((x) => x.recordsPerSec))),
        pairedRatio: ratio((x) => x.recordsPerSec),
        cpuUs: median(xs.map((x) => x.cpuUs)),
        cpuRatio: ratio((x) => x.cpuUs),
      });
    }
  }
  if (args.json) {
    console.log(JSON.stringify({ args, results }, null, 2));
  } else {
    console.log(
      `${runs} rounds of ${seconds} s, ${args.size}-byte records, fsync ${args.fsync}, client and nodes on one machine`,
    );
    for (const workload of Object.keys(workloads)) {
      console.log(`\n${workload}   (medians; ratios are medians of per-round ratios to both off)`);
      for (const row of results.filter((r) => r.workload === workload)) {
        console.log(
          `  ${row.config.padEnd(34)} ${String(row.median).padStart(8)} rec/s x${row.pairedRatio.toFixed(3)}` +
            `  node CPU ${row.cpuUs.toFixed(1).padStart(6)} µs/rec x${row.cpuRatio.toFixed(3)}` +
            `  (rec/s runs: ${row.runs.join(', ')})`,
        );
      }
    }
  }
} finally {
  await Promise.all(nodes.map(stopNode));
}
