// GET /v1/status: who is in the cluster, who leads, how far behind each replica is and
// how fast records arrive, as one JSON document for the web console and for scripts.
// Throughput and latency come from this node's own metrics, sampled once a second.
import type { Metrics } from '../telemetry/index.js';
import type { ClusterView, MemberState, ServerEntry } from './ports.js';

/** A replica this many Raft entries behind the leader is shown as lagging. */
export const LAG_WARN_ENTRIES = 1000;
/** Samples kept: five minutes at one a second. */
export const SAMPLES_KEPT = 300;
export const SAMPLE_INTERVAL_MS = 1000;

/** gRPC methods and HTTP routes whose latency is "produce latency" (unary: one answer each). */
const PRODUCE_RPC_METHODS = new Set(['log.v1.Log/Produce', 'log.v1.Log/ProduceBatch']);
const PRODUCE_HTTP_ROUTES = new Set(['/v1/records', '/']);

/** One second of traffic on this node. Latencies in seconds; null without produces. */
export interface ThroughputSample {
  /** End of the interval, ms since the epoch. */
  t: number;
  producedPerSec: number;
  consumedPerSec: number;
  p50: number | null;
  p99: number | null;
}

/** Cumulative counts per upper bound (`Infinity` last), summed over label sets. */
export type CumulativeBuckets = Map<number, number>;

/**
 * The q-quantile of the observations between two readings of a cumulative histogram,
 * interpolated inside its bucket as Prometheus' histogram_quantile does (an answer in
 * the +Inf bucket is the highest finite bound). Null when nothing was observed.
 */
export function quantileBetween(
  before: CumulativeBuckets,
  after: CumulativeBuckets,
  q: number,
): number | null {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    const upper = bounds[i] as number;
    const count = counts[i] as number;
    if (count >= rank && count > 0) {
      if (upper === Infinity) return lower;
      const inBucket = count - below;
      return inBucket <= 0 ? upper : lower + ((upper - lower) * (rank - below)) / inBucket;
    }
    lower = upper;
    below = count;
  }
  return lower;
}

interface Reading {
  t: number;
  produced: number;
  consumed: number;
  latency: CumulativeBuckets;
}

interface MetricValue {
  metricName?: string;
  labels: Record<string, string | number | undefined>;
  value: number;
}

async function valuesOf(metrics: Metrics, name: string): Promise<MetricValue[]> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return [];
  const got = (await metric.get()) as { values: MetricValue[] };
  return got.values;
}

async function total(metrics: Metrics, name: string): Promise<number> {
  return (await valuesOf(metrics, name)).reduce((sum, v) => sum + v.value, 0);
}

async function produceLatency(metrics: Metrics): Promise<CumulativeBuckets> {
  const buckets: CumulativeBuckets = new Map();
  const add = (values: MetricValue[], keep: (labels: MetricValue['labels']) => boolean) => {
    for (const v of values) {
      if (!v.metricName?.endsWith('_bucket') || !keep(v.labels)) continue;
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    }
  };
  add(await valuesOf(metrics, 'commitlog_rpc_duration_seconds'), (l) =>
    PRODUCE_RPC_METHODS.has(String(l.method)),
  );
  add(
    await valuesOf(metrics, 'commitlog_http_request_duration_seconds'),
    (l) => l.method === 'POST' && PRODUCE_HTTP_ROUTES.has(String(l.route)),
  );
  return buckets;
}

/**
 * Reads the node's counters once a second and keeps the last five minutes of rates
 * and produce latencies (the first reading is a tick after construction). Runs until
 * `signal` aborts; the timer does not keep the process alive.
 */
export class ThroughputSampler {
  private readonly samples: ThroughputSample[] = [];
  private last: Reading | undefined;
  private readonly timer: ReturnType<typeof setInterval>;
  private busy = false;

  constructor(
    private readonly metrics: Metrics,
    signal: AbortSignal,
    o: { intervalMs?: number; onError?: (err: unknown) => void } = {},
  ) {
    const onError = o.onError ?? ((): void => undefined);
    this.timer = setInterval(
      () => void this.sample().catch(onError),
      o.intervalMs ?? SAMPLE_INTERVAL_MS,
    );
    this.timer.unref();
    signal.addEventListener('abort', () => clearInterval(this.timer), { once: true });
  }

  /** Takes one reading and, from the second on, records the interval since the last. */
  async sample(now = Date.now()): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const reading: Reading = {
        t: now,
        produced: await total(this.metrics, 'commitlog_produced_records_total'),
        consumed: await total(this.metrics, 'commitlog_consumed_records_total'),
        latency: await produceLatency(this.metrics),
      };
      const prev = this.last;
      this.last = reading;
      if (prev === undefined || reading.t <= prev.t) return;
      const seconds = (reading.t - prev.t) / 1000;
      this.samples.push({
        t: reading.t,
        producedPerSec: Math.max(0, reading.produced - prev.produced) / seconds,
        consumedPerSec: Math.max(0, reading.consumed - prev.consumed) / seconds,
        p50: quantileBetween(prev.latency, reading.latency, 0.5),
        p99: quantileBetween(prev.latency, reading.latency, 0.99),
      });
      if (this.samples.length > SAMPLES_KEPT) this.samples.shift();
    } finally {
      this.busy = false;
    }
  }

  recent(): readonly ThroughputSample[] {
    return this.samples;
  }
}

/** One member as GET /v1/status reports it. */
export interface StatusServer extends ServerEntry {
  /** Gossip state, when this node runs the gossip. */
  state?: MemberState;
  /** More than LAG_WARN_ENTRIES behind the leader, or not in contact. */
  lagging: boolean;
}

/** The GET /v1/status document (offsets as decimal strings: they may exceed 2^53). */
export interface StatusDocument {
  node: string | null;
  time: string;
  leader: { id: string; addr: string } | null;
  raft: {
    role: string;
    term: number;
    commitIndex: number;
    appliedIndex: number;
    lastIndex: number;
  } | null;
  offsets: { start: string; end: string } | null;
  servers: StatusServer[];
  quorum: { voters: number; needed: number; reachable: number; ok: boolean };
  throughput: { intervalMs: number; samples: readonly ThroughputSample[] } | null;
}

/** Assembles the status document from the cluster view and the sampler. */
export async function statusDocument(
  cluster: ClusterView,
  sampler: ThroughputSampler | undefined,
  now = new Date(),
): Promise<StatusDocument> {
  const [servers, status] = await Promise.all([cluster.servers(), cluster.status?.()]);
  const states = new Map(status?.members.map((m) => [m.id, m.state]));
  const leader = cluster.leader();
  const rows: StatusServer[] = servers.map((s) => {
    const state = states.get(s.id);
    const down = state === 'dead' || state === 'left';
    return {
      ...s,
      ...(state !== undefined ? { state } : {}),
      lagging: !s.isLeader && (down || (s.lag ?? 0) > LAG_WARN_ENTRIES),
    };
  });
  const voters = rows.filter((s) => s.suffrage !== 'learner');
  const needed = Math.floor(voters.length / 2) + 1;
  // A suspect has missed probes but is not declared dead: it still counts, as the gossip's
  // live members do. Without gossip states every voter counts; a known leader settles it.
  const reachable = voters.filter(
    (s) => s.state === undefined || s.state === 'alive' || s.state === 'suspect',
  ).length;
  return {
    node: status?.self.id ?? null,
    time: now.toISOString(),
    leader: leader ? { id: leader.id, addr: leader.addr } : null,
    raft: status
      ? {
          role: status.role,
          term: status.term,
          commitIndex: status.commitIndex,
          appliedIndex: status.appliedIndex,
          lastIndex: status.lastIndex,
        }
      : null,
    offsets: status
      ? { start: status.startOffset.toString(), end: status.endOffset.toString() }
      : null,
    servers: rows,
    quorum: {
      voters: voters.length,
      needed,
      reachable,
      ok: leader !== undefined && reachable >= needed,
    },
    throughput: sampler ? { intervalMs: SAMPLE_INTERVAL_MS, samples: sampler.recent() } : null,
  };
}
