// What a run measures besides its records: latency (HDR histogram, microseconds) and
// CPU time — the client's own, the node's (from /proc on this machine or from its
// metrics endpoint), and the rest of the machine (to tell a disturbed run).
import { readFile } from 'node:fs/promises';

import hdr from 'hdr-histogram-js';

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  count: number;
}

/** Latencies in microseconds, 3 significant digits, up to an hour. */
export class Latencies {
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });

  /** Records the time since `startedMs` (a performance.now() reading). */
  recordSince(startedMs: number): void {
    this.record((performance.now() - startedMs) * 1000);
  }

  record(micros: number): void {
    this.histogram.recordValue(Math.max(1, Math.round(micros)));
  }

  summary(): LatencySummary | null {
    const h = this.histogram;
    if (h.totalCount === 0) return null;
    return {
      p50: h.getValueAtPercentile(50),
      p90: h.getValueAtPercentile(90),
      p99: h.getValueAtPercentile(99),
      p999: h.getValueAtPercentile(99.9),
      max: h.maxValue,
      count: h.totalCount,
    };
  }
}

/** The node's CPU time could not be read. */
export class ServerCpuError extends Error {
  override name = 'ServerCpuError';
}

/** Reads the node's CPU seconds so far (user + system). */
export type CpuSource = { describe: string; read(): Promise<number> };

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime of a local process, from /proc/<pid>/stat. */
export function procCpu(pid: number): CpuSource {
  return {
    describe: `/proc/${pid}/stat`,
    async read() {
      let stat: string;
      try {
        stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      } catch (err) {
        throw new ServerCpuError(`cannot read /proc/${pid}/stat`, { cause: err });
      }
      // Fields after the command name (which may contain spaces) start at state (3).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
    },
  };
}

const CPU_METRIC = /^process_cpu_seconds_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$/m;

/** `process_cpu_seconds_total` from a Prometheus text endpoint. */
export function metricsCpu(url: string): CpuSource {
  return {
    describe: url,
    async read() {
      let text: string;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        text = await res.text();
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new ServerCpuError(`cannot read metrics from ${url}: ${why}`, { cause: err });
      }
      const m = CPU_METRIC.exec(text);
      if (!m?.[1]) throw new ServerCpuError(`${url} has no process_cpu_seconds_total`);
      return Number(m[1]);
    },
  };
}

/** Busy CPU seconds of the whole machine (all cores), or undefined off Linux. */
async function machineBusySeconds(): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/stat', 'utf8');
  } catch {
    return undefined; // not Linux: the "other" column stays empty
  }
  const f = (text.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / CLOCK_TICKS_PER_SECOND;
}

/** CPU used during a run, in cores (CPU seconds per second of wall time). */
export interface CpuUsage {
  client: number;
  server: number | null;
  /** Everything else on the machine; more than ~0.2 means the run was disturbed. */
  other: number | null;
}

/** Starts measuring; the returned function stops and answers the usage since. */
export async function startCpu(server: CpuSource | undefined): Promise<() => Promise<CpuUsage>> {
  const server0 = await server?.read();
  const busy0 = await machineBusySeconds();
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  return async () => {
    const seconds = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(client0);
    const server1 = await server?.read();
    const busy1 = await machineBusySeconds();
    const client = (c.user + c.system) / 1e6 / seconds;
    const serverCores =
      server0 === undefined || server1 === undefined ? null : (server1 - server0) / seconds;
    const other =
      busy0 === undefined || busy1 === undefined
        ? null
        : Math.max(0, (busy1 - busy0) / seconds - client - (serverCores ?? 0));
    return { client, server: serverCores, other };
  };
}

/** A one-line progress display on a terminal (stderr), redrawn a few times a second. */
export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private readonly started = performance.now();
  private lastRecords = 0;
  private lastAt = this.started;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly deadlineMs: number,
    private readonly records: () => number,
  ) {}

  start(): this {
    if (!process.stderr.isTTY) return this;
    this.timer = setInterval(() => this.draw(), 250);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    process.stderr.write('\r\x1b[K');
  }

  private draw(): void {
    const now = performance.now();
    const records = this.records();
    const rate = ((records - this.lastRecords) * 1000) / Math.max(1, now - this.lastAt);
    this.lastRecords = records;
    this.lastAt = now;
    const byCount = records / this.total;
    const byTime = (now - this.started) / (this.deadlineMs - this.started);
    const done = Math.min(1, Math.max(byCount, Number.isFinite(byTime) ? byTime : 0));
    const width = 30;
    const filled = Math.round(done * width);
    const bar = '='.repeat(filled) + ' '.repeat(width - filled);
    process.stderr.write(
      `\r\x1b[K${this.label} [${bar}] ${(done * 100).toFixed(0).padStart(3)}%  ${format(records)} records  ${format(rate)} records/s`,
    );
  }
}

export function format(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
