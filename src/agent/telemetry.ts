// A node's telemetry, built once from its configuration and handed to each part:
// the process logger (and a child per component), the metrics registry, the tracer,
// and the request telemetry the server ends every call in.
import type { Writable } from 'node:stream';

import {
  createLogger,
  type LogFormat,
  type Logger,
  type LogLevel,
  logObserver,
  type LogObserver,
  Metrics,
  RequestTelemetry,
  Tracing,
} from '../telemetry/index.js';

export interface NodeTelemetryOptions {
  nodeName: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Prometheus metrics (default on). */
  metrics: boolean;
  otlpEndpoint?: string;
  traceFile?: string;
  traceSampleRatio: number;
  version?: string;
  /** Where log lines go (default stdout); tests capture them. */
  logDestination?: Writable | { write(line: string): void };
}

export class NodeTelemetry {
  private constructor(
    readonly logger: Logger,
    readonly metrics: Metrics | undefined,
    readonly tracing: Tracing,
    /** Ends each RPC and HTTP request in a log line, the request metrics and a span. */
    readonly requests: RequestTelemetry,
  ) {}

  /** Throws `InvalidTelemetryOptionError` or `TraceFileError` for a bad endpoint or trace file. */
  static create(options: NodeTelemetryOptions): NodeTelemetry {
    const logger = createLogger({
      level: options.logLevel,
      format: options.logFormat,
      destination: options.logDestination,
      base: { node: options.nodeName },
    });
    const metrics = options.metrics ? new Metrics() : undefined;
    const tracing = Tracing.create({
      otlpEndpoint: options.otlpEndpoint,
      traceFile: options.traceFile,
      sampleRatio: options.traceSampleRatio,
      serviceVersion: options.version,
      instanceId: options.nodeName,
    });
    const requests = new RequestTelemetry({
      logger: logger.child({ component: 'server' }),
      metrics,
      tracing,
    });
    return new NodeTelemetry(logger, metrics, tracing, requests);
  }

  /** The storage engine's write hooks, when metrics are on. */
  logObserver(): LogObserver | undefined {
    return this.metrics ? logObserver(this.metrics) : undefined;
  }

  /** Exports the spans still buffered and writes out the log lines still queued. */
  async shutdown(): Promise<void> {
    await this.tracing.shutdown();
    await new Promise<void>((resolve, reject) =>
      this.logger.flush((err) => (err ? reject(err) : resolve())),
    );
  }
}
