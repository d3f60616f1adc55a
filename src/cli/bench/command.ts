// `commitlog bench produce|consume`: load one or more nodes and report records/s,
// MB/s, latency percentiles and CPU, as text or JSON.
import { type Command, Option } from 'commander';

import { ConfigError } from '../../agent/index.js';
import {
  channelCredentials,
  type CommitLog,
  connect,
  raw,
  tlsFromFiles,
  toClientError,
  type TlsFiles,
} from '../../client/index.js';
import {
  type CpuSource,
  type CpuUsage,
  format,
  Latencies,
  type LatencySummary,
  metricsCpu,
  procCpu,
  Progress,
  startCpu,
} from './measure.js';
import {
  consume,
  type ConsumeMode,
  endOfLog,
  type Moved,
  produceBatch,
  type ProduceMode,
  produceSdk,
  produceStream,
  produceUnary,
  type RunLimits,
} from './workloads.js';

interface Flags extends TlsFiles {
  addr: string;
  size?: string;
  count?: string;
  duration?: string;
  mode?: string;
  inflight?: string;
  batch: string;
  clients: string;
  from?: string;
  runs: string;
  json?: boolean;
  serverPid?: string;
  metricsUrl?: string;
  linger?: string;
}

export interface BenchSettings {
  command: 'produce' | 'consume';
  mode: ProduceMode | ConsumeMode;
  addresses: string[];
  size: number;
  count: number | null;
  durationSeconds: number | null;
  inflight: number;
  batch: number;
  clients: number;
  from: number;
  runs: number;
  /** sdk mode: the producer's lingerMs. */
  lingerMs: number;
}

export interface RunResult {
  records: number;
  seconds: number;
  recordsPerSecond: number;
  megabytesPerSecond: number;
  cpu: CpuUsage;
}

/** What `--json` prints. Rates are medians over the runs; latency is over all runs. */
export interface BenchReport {
  settings: BenchSettings;
  recordsPerSecond: number;
  megabytesPerSecond: number;
  /** Microseconds: per call for unary and batch, per acknowledgement for stream. */
  latencyMicros: LatencySummary | null;
  cpuCores: { client: number; server: number | null; other: number | null };
  serverCpuSource: string | null;
  runs: RunResult[];
}

const DEFAULT_COUNT = 100_000;

function positiveInt(text: string, key: string, min = 1): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < min || !Number.isSafeInteger(Number(text))) {
    throw new ConfigError(key, `must be an integer of at least ${min}, got ${text}`);
  }
  return Number(text);
}

/** "10", "10s", "500ms", "2m" → seconds. */
export function parseDuration(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)?$/.exec(text);
  if (!m?.[1]) throw new ConfigError('duration', `must look like 10s, 500ms or 2m, got ${text}`);
  const n = Number(m[1]);
  const seconds = m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
  if (seconds <= 0) throw new ConfigError('duration', `must be positive, got ${text}`);
  return seconds;
}

export function settingsFrom(command: 'produce' | 'consume', flags: Flags): BenchSettings {
  const modes = command === 'produce' ? ['unary', 'stream', 'batch', 'sdk'] : ['stream', 'batch'];
  const mode = flags.mode ?? (command === 'produce' ? 'unary' : 'batch');
  if (!modes.includes(mode)) {
    throw new ConfigError('mode', `must be one of ${modes.join(', ')} for ${command}, got ${mode}`);
  }
  // commitlog://a,b is the SDK's spelling of a member list; raw modes dial each address.
  const addresses = flags.addr
    .replace(/^commitlog:\/\/\/?/, '')
    .split(',')
    .map((a) => a.trim());
  if (addresses.some((a) => a === '')) {
    throw new ConfigError('addr', `must be host:port[,host:port…], got ${flags.addr}`);
  }
  const defaultInflight = mode === 'stream' && command === 'produce' ? '1000' : '1';
  return {
    command,
    mode: mode as ProduceMode | ConsumeMode,
    addresses,
    size: positiveInt(flags.size ?? '100', 'size', 0),
    count: flags.count === undefined ? null : positiveInt(flags.count, 'count'),
    durationSeconds: flags.duration === undefined ? null : parseDuration(flags.duration),
    inflight: positiveInt(flags.inflight ?? defaultInflight, 'inflight'),
    batch: positiveInt(flags.batch, 'batch'),
    clients: positiveInt(flags.clients, 'clients'),
    from: positiveInt(flags.from ?? '0', 'from', 0),
    runs: positiveInt(flags.runs, 'runs'),
    lingerMs: positiveInt(flags.linger ?? '1', 'linger', 0),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function medianOrNull(xs: (number | null)[]): number | null {
  const known = xs.filter((x): x is number => x !== null);
  return known.length === 0 ? null : median(known);
}

async function oneRun(
  s: BenchSettings,
  clients: raw.RawClient[],
  logs: CommitLog[],
  value: Buffer,
  server: CpuSource | undefined,
  latencies: Latencies,
  progressOn: boolean,
  label: string,
): Promise<RunResult> {
  let count = s.count ?? (s.durationSeconds === null ? DEFAULT_COUNT : Infinity);
  if (s.command === 'consume') {
    const end = await endOfLog(clients[0] as raw.RawClient, s.from);
    if (end <= s.from) {
      throw new ConfigError(
        'from',
        `nothing to read at offset ${s.from} (the log ends at ${end}); produce records first`,
      );
    }
    count = Math.min(count, end - s.from);
  }
  const stopCpu = await startCpu(server);
  const started = performance.now();
  const limits: RunLimits = {
    count,
    deadline: s.durationSeconds === null ? Infinity : started + s.durationSeconds * 1000,
  };
  const moved: Moved = { records: 0, bytes: 0 };
  const progress = progressOn
    ? new Progress(label, count, limits.deadline, () => moved.records).start()
    : undefined;
  let records: number;
  try {
    if (s.command === 'consume') {
      records = await consume(clients, s.mode as ConsumeMode, s.from, s.batch, limits, moved);
    } else if (s.mode === 'unary') {
      records = await produceUnary(clients, value, s.inflight, limits, latencies, moved);
    } else if (s.mode === 'sdk') {
      records = await produceSdk(logs, value, s.batch, s.inflight, s.lingerMs, limits, moved);
    } else if (s.mode === 'stream') {
      records = await produceStream(clients, value, s.inflight, limits, latencies, moved);
    } else {
      records = await produceBatch(clients, value, s.batch, s.inflight, limits, latencies, moved);
    }
  } finally {
    progress?.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = await stopCpu();
  return {
    records,
    seconds,
    recordsPerSecond: records / seconds,
    megabytesPerSecond: (s.command === 'consume' ? moved.bytes : records * s.size) / 1e6 / seconds,
    cpu,
  };
}

interface Connections {
  clients: raw.RawClient[];
  logs: CommitLog[];
  close(): void;
}

/** Raw clients (one per --clients) or, for sdk mode, connected SDK clients. */
async function open(s: BenchSettings, tls: TlsFiles): Promise<Connections> {
  const credentials = await channelCredentials(tls);
  const sdk = s.mode === 'sdk';
  const clients = sdk
    ? []
    : Array.from(
        { length: s.clients },
        (_, i) => new raw.RawClient(s.addresses[i % s.addresses.length] as string, credentials),
      );
  const logs: CommitLog[] = [];
  const close = () => {
    for (const c of clients) c.close();
    for (const l of logs) l.close();
  };
  try {
    await Promise.all(clients.map((c) => c.ready(10_000)));
    const tlsOptions = tlsFromFiles(tls);
    for (let i = 0; sdk && i < s.clients; i++) {
      logs.push(
        await connect(s.addresses.join(','), tlsOptions === undefined ? {} : { tls: tlsOptions }),
      );
    }
  } catch (err) {
    close();
    throw err;
  }
  return { clients, logs, close };
}

function summarize(
  s: BenchSettings,
  runs: RunResult[],
  latencies: Latencies,
  server: CpuSource | undefined,
): BenchReport {
  return {
    settings: s,
    recordsPerSecond: median(runs.map((r) => r.recordsPerSecond)),
    megabytesPerSecond: median(runs.map((r) => r.megabytesPerSecond)),
    latencyMicros: latencies.summary(),
    cpuCores: {
      client: median(runs.map((r) => r.cpu.client)),
      server: medianOrNull(runs.map((r) => r.cpu.server)),
      other: medianOrNull(runs.map((r) => r.cpu.other)),
    },
    serverCpuSource: server?.describe ?? null,
    runs,
  };
}

/** Runs the benchmark `s.runs` times and summarizes. */
export async function runBench(
  s: BenchSettings,
  tls: TlsFiles,
  server: CpuSource | undefined,
  progress: boolean,
): Promise<BenchReport> {
  const [report] = await runModes([s], tls, server, progress);
  return report as BenchReport;
}

/**
 * Runs several settings (modes) in turns, run 1 of each, then run 2 of each in reverse
 * order, …, so that a disturbance of the machine hits them alike; one report per
 * settings.
 */
export async function runModes(
  list: BenchSettings[],
  tls: TlsFiles,
  server: CpuSource | undefined,
  progress: boolean,
): Promise<BenchReport[]> {
  const value = Buffer.alloc(list[0]?.size ?? 0, 'x');
  const connections: Connections[] = [];
  try {
    for (const s of list) connections.push(await open(s, tls));
    const latencies = list.map(() => new Latencies());
    const runs = list.map((): RunResult[] => []);
    const rounds = Math.max(...list.map((s) => s.runs));
    for (let i = 0; i < rounds; i++) {
      // Every other round in reverse (ABBA…): a run right after another one pays for
      // the node's work left over from it (log flushes, replication), which would
      // always fall on the same mode.
      const order = [...list.entries()];
      if (i % 2 === 1) order.reverse();
      for (const [k, s] of order) {
        if (i >= s.runs) continue;
        const c = connections[k] as Connections;
        const label = `${s.command} ${s.mode}${s.runs > 1 ? ` ${i + 1}/${s.runs}` : ''}`;
        const run = await oneRun(
          s,
          c.clients,
          c.logs,
          value,
          server,
          latencies[k] as Latencies,
          progress,
          label,
        );
        (runs[k] as RunResult[]).push(run);
      }
    }
    return list.map((s, k) =>
      summarize(s, runs[k] as RunResult[], latencies[k] as Latencies, server),
    );
  } finally {
    for (const c of connections) c.close();
  }
}

function cores(x: number | null): string {
  return x === null ? 'n/a' : x.toFixed(2);
}

export function formatReport(r: BenchReport): string {
  const s = r.settings;
  const shape =
    s.command === 'consume'
      ? `from ${s.from}${s.mode === 'batch' ? `, up to ${s.batch} records per message` : ''}`
      : s.mode === 'batch'
        ? `${s.batch} records per call, ${s.inflight} in flight`
        : s.mode === 'sdk'
          ? `producer batches of up to ${s.batch} records, ${s.inflight} in flight, linger ${s.lingerMs} ms`
          : s.mode === 'stream'
            ? `window ${s.inflight}`
            : `${s.inflight} in flight`;
  const lines = [
    `${s.command} ${s.mode}: ${s.command === 'produce' ? `${s.size} B records, ` : ''}${shape}, ${s.clients} client(s) → ${s.addresses.join(', ')}`,
    `  ${format(r.recordsPerSecond)} records/s  ${r.megabytesPerSecond.toFixed(1)} MB/s  (median of ${r.runs.length}: ${r.runs.map((x) => format(x.recordsPerSecond)).join(', ')})`,
  ];
  const l = r.latencyMicros;
  if (l !== null) {
    const what = s.mode === 'stream' ? 'per acknowledgement' : 'per call';
    lines.push(
      `  latency ${what} (µs): p50 ${format(l.p50)}  p90 ${format(l.p90)}  p99 ${format(l.p99)}  p99.9 ${format(l.p999)}  max ${format(l.max)}`,
    );
  }
  lines.push(
    `  CPU (cores): client ${cores(r.cpuCores.client)}  server ${cores(r.cpuCores.server)}${r.serverCpuSource ? ` (${r.serverCpuSource})` : ''}  rest of machine ${cores(r.cpuCores.other)}`,
  );
  return lines.join('\n');
}

/** What --help adds after the options: for produce or consume, no other command's options. */
function helpAfter(name: 'produce' | 'consume'): string {
  const own =
    name === 'produce'
      ? `
Produced records all carry the same value of --size bytes. --inflight and --clients
multiply: 2 clients with --inflight 64 keep 128 calls outstanding.`
      : `
Clients read consecutive parts of the log from --from on, --mode and --batch deciding
how the node sends them.`;
  return `${own}
--count and --duration both bound a run (whichever comes first). Rates are medians of
--runs; latency percentiles (HDR histogram, microseconds) cover every call of every
run${name === 'produce' ? ': per call for unary and batch, per acknowledgement for stream' : ''}.
CPU is in cores (CPU seconds per second): the client's own, the node's with
--server-pid or --metrics-url, and the rest of the machine (Linux), which tells a
disturbed run. Requests are encoded once and responses are scanned rather than
decoded, so the client's CPU goes to gRPC; the node decodes and encodes every message
in full.`;
}

function benchCommand(parent: Command, name: 'produce' | 'consume', description: string): void {
  const command = parent
    .command(name)
    .description(description)
    .addOption(
      new Option('--addr <host:port,...>', 'RPC address of one or more nodes (clients take turns)')
        .env('COMMITLOG_ADDR')
        .default('127.0.0.1:8400'),
    )
    .option('--count <n>', `records per run (default ${DEFAULT_COUNT} without --duration)`)
    .option('--duration <time>', 'stop each run after this long (10s, 500ms, 2m)')
    .option('--clients <n>', 'connections (each its own HTTP/2 connection)', '1')
    .option('--runs <n>', 'repeat and report the median', '1')
    .option('--json', 'print one JSON object (settings, medians, latency, CPU, every run)')
    .option('--server-pid <pid>', "read the node's CPU time from /proc/<pid>/stat (same machine)")
    .option(
      '--metrics-url <url>',
      "read the node's CPU time from its Prometheus endpoint (process_cpu_seconds_total)",
    )
    .option('--ca-file <file>', 'CA certificate to verify the server (enables TLS)')
    .option('--cert-file <file>', 'client certificate (mutual TLS)')
    .option('--key-file <file>', 'client private key (mutual TLS)');
  if (name === 'produce') {
    command
      .option(
        '--mode <mode>',
        "unary (Produce) | stream (ProduceStream) | batch (ProduceBatch) | sdk (the SDK's batching producer, batches of --batch); a list such as batch,sdk runs each in turn",
      )
      .option('--linger <ms>', 'sdk mode: how long the producer waits to fill a batch', '1')
      .option('--size <bytes>', 'record value size', '100')
      .option(
        '--inflight <n>',
        'per client: outstanding calls (unary, batch; default 1) or unacknowledged records (stream; default 1000)',
      )
      .option('--batch <n>', 'records per ProduceBatch call', '1000');
  } else {
    command
      .option('--mode <mode>', 'stream (ConsumeStream) | batch (ConsumeBatchStream, default)')
      .option('--from <offset>', 'first offset; clients read consecutive parts from here', '0')
      .option(
        '--batch <n>',
        'max_records per ConsumeBatchStream message (the node caps it)',
        '1000',
      );
  }
  command.addHelpText('after', helpAfter(name)).action(async (flags: Flags) => {
    const list = (flags.mode ?? '')
      .split(',')
      .map((m) => m.trim())
      .map((mode) => settingsFrom(name, mode === '' ? flags : { ...flags, mode }));
    if (flags.serverPid !== undefined && flags.metricsUrl !== undefined) {
      throw new ConfigError('server-pid', 'give --server-pid or --metrics-url, not both');
    }
    const server =
      flags.serverPid !== undefined
        ? procCpu(positiveInt(flags.serverPid, 'server-pid'))
        : flags.metricsUrl !== undefined
          ? metricsCpu(flags.metricsUrl)
          : undefined;
    let reports: BenchReport[];
    try {
      reports = await runModes(list, flags, server, !flags.json);
    } catch (err) {
      throw toClientError(err);
    }
    const ratio = sdkVsBatch(reports);
    const perRound = sdkVsBatchPerRound(reports);
    if (flags.json) {
      console.log(
        JSON.stringify(
          reports.length === 1
            ? reports[0]
            : { reports, sdkVsBatch: ratio, sdkVsBatchPerRound: perRound },
        ),
      );
      return;
    }
    console.log(reports.map(formatReport).join('\n'));
    if (ratio !== null && perRound !== null) {
      console.log(
        `sdk / batch: ${ratio.toFixed(2)}× (median records/s), ` +
          `${perRound.toFixed(2)}× (median of the per-round ratios)`,
      );
    }
  });
}

/** records/s of sdk mode over batch mode when both ran, else null. */
export function sdkVsBatch(reports: BenchReport[]): number | null {
  const sdk = reports.find((r) => r.settings.mode === 'sdk');
  const batch = reports.find((r) => r.settings.mode === 'batch');
  return sdk && batch ? sdk.recordsPerSecond / batch.recordsPerSecond : null;
}

/**
 * The median over rounds of sdk records/s over batch records/s of the same round: on a
 * machine whose load drifts, runs next to each other compare better than medians of
 * runs far apart.
 */
export function sdkVsBatchPerRound(reports: BenchReport[]): number | null {
  const sdk = reports.find((r) => r.settings.mode === 'sdk');
  const batch = reports.find((r) => r.settings.mode === 'batch');
  if (!sdk || !batch) return null;
  const n = Math.min(sdk.runs.length, batch.runs.length);
  const ratios = Array.from(
    { length: n },
    (_, i) => sdk.runs[i]!.recordsPerSecond / batch.runs[i]!.recordsPerSecond,
  );
  return median(ratios);
}

/** Adds `bench produce|consume` to the program. */
export function addBenchCommand(program: Command): void {
  const bench = program
    .command('bench')
    .description('measure a node: records/s, MB/s, latency percentiles, CPU');
  benchCommand(bench, 'produce', 'append records as fast as the settings allow');
  benchCommand(
    bench,
    'consume',
    'read the records that are there, from --from to the end (or --count)',
  );
}
