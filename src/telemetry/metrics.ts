import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RequestInstruments } from './request-metrics.js';

/** Every commitlog metric name starts with this; Node's process metrics keep their standard names. */
export const METRIC_PREFIX = 'commitlog_';

/**
 * What the log gauges read at scrape time. The storage engine's `Log` has this shape;
 * the replicated log of a cluster will too.
 */
export interface LogStatsSource {
  readonly lowestOffset: bigint;
  /** `lowestOffset - 1n` when the log is empty. */
  readonly highestOffset: bigint;
  stats(): { segments: number; bytes: number };
}

export interface MetricsOptions {
  /** Node process metrics (CPU, memory, event loop lag, GC, handles). Default true. */
  processMetrics?: boolean;
  /** Labels on every series, e.g. `{ node: 'node-1' }`. */
  defaultLabels?: Record<string, string>;
}

const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
const FSYNC_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
/** 1, 2, 4, … 8192 records per write. */
const BATCH_RECORD_BUCKETS = Array.from({ length: 14 }, (_, i) => 2 ** i);
/** 64 B, 256 B, … 16 MiB per write. */
const BATCH_BYTE_BUCKETS = Array.from({ length: 10 }, (_, i) => 64 * 4 ** i);

/**
 * The node's Prometheus registry and the instruments of the API and storage layers.
 * Each node (and each test) owns one instance; nothing is registered globally. Later
 * layers add their instruments to the same `registry`:
 *
 *     new Gauge({ name: `${METRIC_PREFIX}raft_term`, help: '…', registers: [metrics.registry] })
 */
export class Metrics {
  readonly registry = new Registry();

  private readonly rpc = new RequestInstruments(this.registry, {
    counter: {
      name: `${METRIC_PREFIX}rpc_requests_total`,
      help: 'gRPC calls handled, by full method name and status code',
    },
    histogram: {
      name: `${METRIC_PREFIX}rpc_duration_seconds`,
      help: 'Time from receiving a gRPC call to sending its status (whole stream for streaming calls)',
    },
    buckets: LATENCY_BUCKETS,
  });
  private readonly http = new RequestInstruments(this.registry, {
    counter: {
      name: `${METRIC_PREFIX}http_requests_total`,
      help: 'HTTP requests handled, by method, route template and status code',
    },
    histogram: {
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: 'Time from receiving an HTTP request to finishing its response',
    },
    buckets: LATENCY_BUCKETS,
  });
  readonly producedRecords = new Counter({
    name: `${METRIC_PREFIX}produced_records_total`,
    help: 'Records appended through the APIs and acknowledged to the client',
    registers: [this.registry],
  });
  readonly producedBytes = new Counter({
    name: `${METRIC_PREFIX}produced_bytes_total`,
    help: 'Bytes of record values appended through the APIs and acknowledged',
    registers: [this.registry],
  });
  readonly consumedRecords = new Counter({
    name: `${METRIC_PREFIX}consumed_records_total`,
    help: 'Records sent to consumers (unary reads and streams)',
    registers: [this.registry],
  });
  readonly consumedBytes = new Counter({
    name: `${METRIC_PREFIX}consumed_bytes_total`,
    help: 'Bytes of record values sent to consumers',
    registers: [this.registry],
  });
  readonly appendBatchRecords = new Histogram({
    name: `${METRIC_PREFIX}log_append_batch_records`,
    help: 'Records per storage write (group commit joins concurrent appends into one write)',
    buckets: BATCH_RECORD_BUCKETS,
    registers: [this.registry],
  });
  readonly appendBatchBytes = new Histogram({
    name: `${METRIC_PREFIX}log_append_batch_bytes`,
    help: 'Bytes per storage write, framing included',
    buckets: BATCH_BYTE_BUCKETS,
    registers: [this.registry],
  });
  readonly fsyncDuration = new Histogram({
    name: `${METRIC_PREFIX}log_fsync_duration_seconds`,
    help: 'Time of each fsync of the active segment',
    buckets: FSYNC_BUCKETS,
    registers: [this.registry],
  });
  readonly consumeStreams = new Gauge({
    name: `${METRIC_PREFIX}consume_streams_open`,
    help: 'Consume streams currently open (gRPC streams and HTTP live tails)',
    registers: [this.registry],
  });

  private logSource: LogStatsSource | undefined;

  constructor(options: MetricsOptions = {}) {
    if (options.defaultLabels) this.registry.setDefaultLabels(options.defaultLabels);
    this.logGauge(
      'log_size_bytes',
      "Bytes in the store files of the log's segments (records with their framing)",
      (log) => log.stats().bytes,
    );
    this.logGauge('log_segments', 'Segments in the log', (log) => log.stats().segments);
    this.logGauge('log_lowest_offset', 'Lowest readable offset', (log) => Number(log.lowestOffset));
    this.logGauge(
      'log_highest_offset',
      'Highest readable offset (lowest offset - 1 when the log is empty)',
      (log) => Number(log.highestOffset),
    );
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The log gauges are read from the log when scraped, never set on the append path. */
  private logGauge(name: string, help: string, value: (log: LogStatsSource) => number): void {
    const current = () => this.logSource;
    new Gauge({
      name: `${METRIC_PREFIX}${name}`,
      help,
      registers: [this.registry],
      collect() {
        const log = current();
        if (log === undefined) this.reset();
        else this.set(value(log));
      },
    });
  }

  /**
   * Points the log gauges at a log; `undefined` detaches them (e.g. while closing).
   * Returns the undo: it detaches them, unless another log was watched since.
   */
  watchLog(log: LogStatsSource | undefined): () => void {
    this.logSource = log;
    return () => {
      if (this.logSource === log) this.logSource = undefined;
    };
  }

  /** One finished gRPC call. `method` is `log.v1.Log/Produce`, `code` the status name (`OK`). */
  rpcHandled(method: string, code: string, seconds: number): void {
    this.rpc.record(method, code, seconds, () => ({ method, code }));
  }

  /** One finished HTTP request. `route` is the template (`/v1/records/{offset}`), never the raw path. */
  httpHandled(method: string, route: string, code: number | string, seconds: number): void {
    this.http.record(`${method} ${route}`, String(code), seconds, () => ({
      method,
      route,
      code: String(code),
    }));
  }

  produced(records: number, bytes: number): void {
    this.producedRecords.inc(records);
    this.producedBytes.inc(bytes);
  }

  consumed(records: number, bytes: number): void {
    this.consumedRecords.inc(records);
    this.consumedBytes.inc(bytes);
  }

  /** One group-committed storage write. */
  appendBatch(records: number, bytes: number): void {
    this.appendBatchRecords.observe(records);
    this.appendBatchBytes.observe(bytes);
  }

  /** One fsync of a segment file. */
  fsynced(seconds: number): void {
    this.fsyncDuration.observe(seconds);
  }

  consumeStreamOpened(): void {
    this.consumeStreams.inc();
  }

  consumeStreamClosed(): void {
    this.consumeStreams.dec();
  }

  /** The Prometheus text exposition, for `GET /metrics`. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
