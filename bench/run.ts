// `npm run bench`: the standard matrix of issue 8 against a fresh node, beside a bare
// grpc-js baseline measured in the same run (and NATS JetStream with --vs-nats).
// Writes Markdown and JSON to bench/results/. See docs/bench.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, constants, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import type { BenchReport } from '../src/cli/index.js';
import { spawnAgent, type AgentProcess } from '../test/support/agent-process.js';

const HELP = `npm run bench [-- options]

Starts a fresh node (node bin/commitlog.js agent, own temp data dir, free ports,
--fsync always) and a bare grpc-js server (bench/baseline-server.ts), runs the
standard matrix with \`commitlog bench\` against both, --runs times (interleaved),
and writes a Markdown table and JSON to bench/results/.

  --runs <n>        runs per workload; the table shows medians (default 3)
  --quick           small counts (a smoke test of a minute or two)
  --only <rows>     comma-separated row ids: unary1,unary64,stream,batch,consume-stream,consume-batch
  --vs-nats         also run NATS JetStream R1 (needs nats-server on PATH and the
                    anchors' npm install) and print the ratios
  --anchors <dir>   where bench-nats.mjs lives (default ../shared/anchors)
  --out <dir>       results directory (default bench/results)
  --cpu-prof <dir>  run the node under node --cpu-prof, profiles written to <dir>
  -h, --help        this text`;

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'vs-nats': { type: 'boolean', default: false },
    anchors: { type: 'string' },
    out: { type: 'string' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'commitlog.js');
const BASELINE = fileURLToPath(new URL('./baseline-server.js', import.meta.url));
const OUT = resolve(args.out ?? join(ROOT, 'bench', 'results'));
const ANCHORS = resolve(args.anchors ?? join(ROOT, '..', 'shared', 'anchors'));
const RUNS = Number(args.runs);
const scale = args.quick ? 0.05 : 1;

interface Row {
  id: string;
  title: string;
  args: string[];
  count: number;
  /** What the issue asks of this row. */
  target: string;
  met(ours: Summary, baseline: Summary | undefined): boolean | null;
  /** The NATS JetStream workload closest to this row. */
  nats?: string;
}

const ROWS: Row[] = [
  {
    id: 'unary1',
    title: 'produce unary, 1 in flight',
    args: ['produce', '--mode', 'unary', '--inflight', '1'],
    count: 5_000,
    target: 'p50 < 500 µs',
    met: (o) => (o.p50 === null ? null : o.p50 < 500),
    nats: 'publish 1 in flight',
  },
  {
    id: 'unary64',
    title: 'produce unary, 64 in flight',
    args: ['produce', '--mode', 'unary', '--inflight', '64'],
    count: 50_000,
    target: '≥ 90% of bare grpc-js',
    met: (o, b) => (b === undefined ? null : o.rate >= 0.9 * b.rate),
    nats: 'publish 64 in flight',
  },
  {
    id: 'stream',
    title: 'produce stream, window 1,000',
    args: ['produce', '--mode', 'stream', '--inflight', '1000'],
    count: 300_000,
    target: '≥ 50,000 records/s',
    met: (o) => o.rate >= 50_000,
    nats: 'publish fully async',
  },
  {
    id: 'batch',
    title: 'produce batch of 1,000',
    args: ['produce', '--mode', 'batch', '--batch', '1000', '--inflight', '1'],
    count: 2_000_000,
    target: '≥ 500,000 records/s',
    met: (o) => o.rate >= 500_000,
  },
  {
    id: 'consume-stream',
    title: 'consume stream (ConsumeStream)',
    args: ['consume', '--mode', 'stream'],
    count: 500_000,
    target: '≥ 100,000 records/s',
    met: (o) => o.rate >= 100_000,
    nats: 'consume (ordered consumer)',
  },
  {
    id: 'consume-batch',
    title: 'consume batched (ConsumeBatchStream)',
    args: ['consume', '--mode', 'batch', '--batch', '1000'],
    count: 2_000_000,
    target: '≥ 1,000,000 records/s',
    met: (o) => o.rate >= 1_000_000,
    nats: 'consume (ordered consumer)',
  },
];

interface Summary {
  rate: number;
  runs: number[];
  mbps: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  serverCores: number | null;
  /** The node's CPU time per record (µs): steadier than rates on a shared machine. */
  serverMicrosPerRecord: number | null;
  clientCores: number;
  otherCores: number | null;
}

const children = new Set<ChildProcess>();
const agents: AgentProcess[] = [];
const tempDirs: string[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** Spawns a long-running child and resolves with its first stdout line matching `pattern`. */
async function startChild(
  command: string,
  argv: string[],
  pattern: RegExp,
  what: string,
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let deadline: NodeJS.Timeout | undefined;
  const match = await new Promise<RegExpExecArray>((resolve_, reject) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const m = pattern.exec(out);
      if (m) resolve_(m);
    });
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before starting`)));
    child.once('error', reject);
    deadline = setTimeout(
      () => reject(new Error(`${what} did not say where it listens within 30 s`)),
      30_000,
    );
  }).finally(() => clearTimeout(deadline));
  return { child, match };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Runs `commitlog bench … --json` and parses its report. */
async function bench(argv: string[]): Promise<BenchReport> {
  const child = spawn(process.execPath, [BIN, 'bench', ...argv, '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  children.delete(child);
  if (code !== 0) throw new Error(`commitlog bench ${argv.join(' ')} exited with ${code}`);
  return JSON.parse(out) as BenchReport;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function medianOf(xs: (number | null | undefined)[]): number | null {
  const known = xs.filter((x): x is number => typeof x === 'number');
  return known.length === 0 ? null : median(known);
}

function summarize(reports: BenchReport[]): Summary {
  return {
    rate: median(reports.map((r) => r.recordsPerSecond)),
    runs: reports.map((r) => r.recordsPerSecond),
    mbps: median(reports.map((r) => r.megabytesPerSecond)),
    p50: medianOf(reports.map((r) => r.latencyMicros?.p50)),
    p99: medianOf(reports.map((r) => r.latencyMicros?.p99)),
    p999: medianOf(reports.map((r) => r.latencyMicros?.p999)),
    max: medianOf(reports.map((r) => r.latencyMicros?.max)),
    serverCores: medianOf(reports.map((r) => r.cpuCores.server)),
    serverMicrosPerRecord: medianOf(
      reports.map((r) => {
        const run = r.runs[0];
        return run?.cpu.server == null ? null : (run.cpu.server / run.recordsPerSecond) * 1e6;
      }),
    ),
    clientCores: median(reports.map((r) => r.cpuCores.client)),
    otherCores: medianOf(reports.map((r) => r.cpuCores.other)),
  };
}

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const file = join(dir, name);
    try {
      await access(file, constants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

interface NatsFigure {
  workload: string;
  median: number;
  p50?: number;
}

/** NATS JetStream R1 via the anchors' bench-nats.mjs; a reason string when skipped. */
async function runNats(): Promise<NatsFigure[] | string> {
  const server = await onPath('nats-server');
  if (server === undefined) return 'skipped: nats-server is not on PATH';
  const script = join(ANCHORS, 'bench-nats.mjs');
  try {
    await access(script);
    await access(join(ANCHORS, 'node_modules', 'nats'));
  } catch {
    return `skipped: ${script} or its node_modules/nats is missing (npm --prefix ${ANCHORS} install)`;
  }
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-bench-nats-'));
  tempDirs.push(dir);
  const port = await freePort();
  const conf = join(dir, 'nats.conf');
  await writeFile(
    conf,
    `listen: 127.0.0.1:${port}\nwrite_deadline: "60s"\njetstream { store_dir: "${join(dir, 'store')}" }\n`,
  );
  const nats = spawn(server, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(nats);
  try {
    await new Promise<void>((resolve_, reject) => {
      let err = '';
      nats.stderr.on('data', (c: Buffer) => {
        err += c.toString();
        if (err.includes('Server is ready')) resolve_();
      });
      nats.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${err}`)));
    });
    const jsonl = join(dir, 'results.jsonl');
    const counts = args.quick
      ? ['--n1', '1000', '--n64', '10000', '--nasync', '20000']
      : ['--n1', '5000', '--n64', '50000', '--nasync', '200000'];
    const child = spawn(
      process.execPath,
      [
        script,
        '--mode',
        'r1',
        '--servers',
        `127.0.0.1:${port}`,
        '--server-pids',
        String(nats.pid),
        '--runs',
        String(RUNS),
        '--workloads',
        'a,b,c,d',
        ...counts,
        // This bench reports the rest of the machine's load itself; do not wait or retry.
        '--quiet-timeout',
        '0',
        '--quiet-max',
        '2',
        '--max-other',
        '2',
        '--retries',
        '0',
        '--out',
        jsonl,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'], cwd: ANCHORS },
    );
    children.add(child);
    const [code] = (await once(child, 'exit')) as [number | null];
    children.delete(child);
    if (code !== 0) return `failed: bench-nats.mjs exited with ${code}`;
    const figures = new Map<string, NatsFigure>();
    for (const line of (await readFile(jsonl, 'utf8')).split('\n').filter(Boolean)) {
      const r = JSON.parse(line) as { workload: string; metric: string; median: number };
      const f = figures.get(r.workload) ?? { workload: r.workload, median: NaN };
      if (r.metric === 'throughput') f.median = r.median;
      if (r.metric === 'p50 latency') f.p50 = r.median;
      figures.set(r.workload, f);
    }
    return [...figures.values()];
  } finally {
    await stopChild(nats);
    children.delete(nats);
  }
}

const fmt = (n: number | null | undefined, digits = 0): string =>
  n === null || n === undefined || Number.isNaN(n)
    ? '—'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const rows = args.only ? ROWS.filter((r) => args.only?.split(',').includes(r.id)) : ROWS;
  const started = new Date();
  const dataDir = await mkdtemp(join(tmpdir(), 'commitlog-bench-'));
  tempDirs.push(dataDir);
  const nodeArgs = args['cpu-prof']
    ? ['--cpu-prof', '--cpu-prof-dir', resolve(args['cpu-prof'])]
    : [];
  console.error(`starting a node (fsync always, data in ${dataDir}) and the baseline server`);
  const node = await spawnAgent(
    [
      '--data-dir',
      dataDir,
      '--rpc-port',
      '0',
      '--http-port',
      '0',
      '--bind-addr',
      `127.0.0.1:${await freePort()}`,
      '--fsync',
      'always',
      // warn: requests log at debug anyway; the start-up line is on stderr at any level.
      '--log-level',
      'warn',
      '--node-name',
      'bench',
    ],
    { nodeArgs, echoStderr: true, stdout: 'ignore', startTimeoutMs: 30_000 },
  );
  agents.push(node);
  const nodeAddr = node.rpcAddr;
  const base = await startChild(process.execPath, [BASELINE], /"port":(\d+)/, 'baseline server');
  const baseAddr = `127.0.0.1:${base.match[1]}`;
  const nodePid = String(node.pid);
  const basePid = String(base.child.pid);

  // Warm-up (untimed): JIT on both servers, and records for the consume rows to read.
  const fill = Math.max(...rows.filter((r) => r.args[0] === 'consume').map((r) => r.count), 0);
  console.error(`warming up; filling the log with ${fmt(fill * scale)} records`);
  await bench([
    'produce',
    '--addr',
    nodeAddr,
    '--mode',
    'batch',
    '--count',
    String(Math.max(100_000, fill * scale)),
  ]);
  await bench(['produce', '--addr', baseAddr, '--mode', 'batch', '--count', '100000']);
  await bench([
    'produce',
    '--addr',
    nodeAddr,
    '--mode',
    'unary',
    '--inflight',
    '64',
    '--count',
    '2000',
  ]);
  await bench([
    'produce',
    '--addr',
    baseAddr,
    '--mode',
    'unary',
    '--inflight',
    '64',
    '--count',
    '2000',
  ]);

  const ours = new Map<string, BenchReport[]>();
  const bare = new Map<string, BenchReport[]>();
  for (let run = 1; run <= RUNS; run++) {
    for (const row of rows) {
      const count = String(Math.max(1, Math.round(row.count * scale)));
      const common = [...row.args, '--count', count, '--duration', '30s'];
      console.error(`run ${run}/${RUNS}: ${row.title}`);
      const o = await bench([...common, '--addr', nodeAddr, '--server-pid', nodePid]);
      const b = await bench([...common, '--addr', baseAddr, '--server-pid', basePid]);
      (ours.get(row.id) ?? ours.set(row.id, []).get(row.id))?.push(o);
      (bare.get(row.id) ?? bare.set(row.id, []).get(row.id))?.push(b);
    }
  }
  await node.stop();
  await stopChild(base.child);

  const nats = args['vs-nats'] ? await runNats() : undefined;
  const natsByWorkload = new Map(
    Array.isArray(nats) ? nats.map((f) => [f.workload, f] as const) : [],
  );

  const table = [
    '| workload | records/s (median) | runs | MB/s | p50 µs | p99 µs | p99.9 µs | max µs | server CPU | client CPU | other CPU | bare grpc-js records/s | ratio | server CPU µs/record (ours / bare) | target | met |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  const results = rows.map((row) => {
    const o = summarize(ours.get(row.id) ?? []);
    const b = summarize(bare.get(row.id) ?? []);
    const met = row.met(o, b);
    const n = row.nats ? natsByWorkload.get(row.nats) : undefined;
    table.push(
      `| ${row.title} | ${fmt(o.rate)} | ${o.runs.map((x) => fmt(x)).join(', ')} | ${fmt(o.mbps, 1)} | ${fmt(o.p50)} | ${fmt(o.p99)} | ${fmt(o.p999)} | ${fmt(o.max)} | ${fmt(o.serverCores, 2)} | ${fmt(o.clientCores, 2)} | ${fmt(o.otherCores, 2)} | ${fmt(b.rate)} | ${fmt(o.rate / b.rate, 2)} | ${fmt(o.serverMicrosPerRecord, 1)} / ${fmt(b.serverMicrosPerRecord, 1)} | ${row.target} | ${met === null ? '?' : met ? 'yes' : 'no'} |`,
    );
    return { id: row.id, title: row.title, target: row.target, met, ours: o, baseline: b, nats: n };
  });
  const lines = [
    `# commitlog bench — ${started.toISOString()}`,
    '',
    `One node, fsync always, 100-byte records, plaintext, client and node on the same machine; ${RUNS} run(s) per workload${args.quick ? ' (--quick counts)' : ''}, medians. "bare grpc-js" is bench/baseline-server.ts (no storage) driven by the same client in the same run; ratio = ours / bare. CPU in cores; "other CPU" is the rest of the machine (above ~0.2 the run was disturbed). Server CPU per record (median over runs) is the steadiest figure when the machine is shared.`,
    '',
    ...table,
  ];
  if (nats !== undefined) {
    lines.push('', '## Beside NATS JetStream R1 (same run)', '');
    if (typeof nats === 'string') {
      lines.push(`NATS ${nats}`);
    } else {
      lines.push(
        'NATS acknowledges from the page cache (no fsync); ours fsyncs every acknowledged record.',
        '',
        '| workload | ours records/s | NATS workload | NATS records/s | ours / NATS |',
        '|---|---:|---|---:|---:|',
      );
      for (const r of results) {
        if (r.nats === undefined) continue;
        lines.push(
          `| ${r.title} | ${fmt(r.ours.rate)} | ${r.nats.workload} | ${fmt(r.nats.median)} | ${fmt(r.ours.rate / r.nats.median, 2)} |`,
        );
      }
    }
  }
  const markdown = lines.join('\n') + '\n';
  await mkdir(OUT, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  await writeFile(join(OUT, `bench-${stamp}.md`), markdown);
  await writeFile(
    join(OUT, `bench-${stamp}.json`),
    JSON.stringify(
      {
        started: started.toISOString(),
        node: process.version,
        runs: RUNS,
        quick: args.quick,
        results,
        nats: nats ?? null,
        raw: { ours: Object.fromEntries(ours), baseline: Object.fromEntries(bare) },
      },
      null,
      2,
    ),
  );
  console.log(markdown);
  console.error(`written: ${join(OUT, `bench-${stamp}.md`)} and .json`);
}

async function cleanup(): Promise<void> {
  await Promise.all([...children].map(stopChild));
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
}

process.once('SIGINT', () => {
  cleanup().then(
    () => process.exit(130),
    () => process.exit(130),
  );
});
try {
  await main();
} finally {
  await cleanup();
}
