// Public surface of the telemetry library: logs (pino), metrics (prom-client) and
// traces (OpenTelemetry). Everything is an instance handed around by constructors;
// nothing is registered globally.
export { InvalidTelemetryOptionError, TraceFileError } from './errors.js';
export {
  createLogger,
  parseLogFormat,
  parseLogLevel,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  type Logger,
  type LoggerOptions,
} from './logger.js';
export { Metrics, METRIC_PREFIX, type LogStatsSource, type MetricsOptions } from './metrics.js';
export { logObserver, type LogObserver } from './log-observer.js';
export {
  Tracing,
  parseSampleRatio,
  type SpanOptions,
  type TraceCarrier,
  type TracingOptions,
} from './tracing.js';
export { JsonLinesSpanExporter, type SpanLine } from './jsonl-exporter.js';
export {
  RequestScope,
  RequestTelemetry,
  requestLogLevel,
  type HttpStart,
  type RequestLogger,
  type RequestLogLevel,
  type Outcome,
  type RequestResult,
  type RequestTelemetryDeps,
  type RpcStart,
} from './request.js';
export { parseExposition, sampleValue, type Sample } from './exposition.js';
