import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  RPC_SYSTEM_NAME_VALUE_GRPC,
} from '@opentelemetry/semantic-conventions';
import type { Metrics } from './metrics.js';
import { NOOP_SPAN, type TraceCarrier, type Tracing } from './tracing.js';

/** Incubating in semantic-conventions, so not imported from its stable entry point. */
const ATTR_ENDUSER_ID = 'enduser.id';

/**
 * How a request ended, as the server classifies its status code. Telemetry knows no
 * status codes; this decides the log level and whether the span is an error.
 */
export type Outcome = 'ok' | 'client_error' | 'server_error';

export interface RpcStart {
  /** Full method name without the leading slash: `log.v1.Log/Produce`. */
  method: string;
  /** `ip:port` of the caller. */
  peer?: string;
  /** Incoming metadata as a map, for `traceparent`. */
  metadata?: TraceCarrier;
  /** A streaming call: its end is logged at info even when it succeeds. */
  streaming?: boolean;
}

export interface HttpStart {
  method: string;
  /** The matched route template (`/v1/records/{offset}`), or `other` when none matched. */
  route: string;
  peer?: string;
  headers?: TraceCarrier;
  streaming?: boolean;
}

export interface RequestResult {
  /** gRPC status name (`OK`, `OUT_OF_RANGE`) or HTTP status (200). */
  code: string | number;
  outcome: Outcome;
  /** The authenticated caller (certificate CN), or how to find it when it is written. */
  subject?: string | (() => string | undefined);
  /** The failure: logged with its stack for a server error, as its message otherwise. */
  error?: unknown;
  /** Overrides `requestLogLevel` (e.g. `warn` for calls cut by a shutdown). */
  level?: RequestLogLevel;
}

export type RequestLogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * The request log level policy: a busy node logs successful unary calls at `debug`
 * only; stream ends and client errors at `info`; server errors at `error`.
 */
export function requestLogLevel(outcome: Outcome, streaming: boolean): RequestLogLevel {
  if (outcome === 'server_error') return 'error';
  if (outcome === 'client_error' || streaming) return 'info';
  return 'debug';
}

/** The part of a logger that request lines need; a pino `Logger` is one. */
export interface RequestLogger {
  /** Lets the line be skipped before it is built; absent means every level is enabled. */
  isLevelEnabled?(level: string): boolean;
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface RequestTelemetryDeps {
  /** Request lines go to this logger (give it `{ component: 'server' }` or similar). */
  logger: RequestLogger;
  /** Absent when metrics are off. */
  metrics?: Metrics;
  /** Absent or disabled when tracing is off. */
  tracing?: Tracing;
}

/**
 * One handle per request that ends it in the three signals at once: a log line, the
 * request counters and histograms, and the server span (parented on the caller's
 * `traceparent`). Child spans for work inside the request go through `trace`.
 */
export class RequestScope {
  /** Context holding the server span: the parent for child spans and outgoing calls. */
  readonly context: Context;
  readonly span: Span;
  private readonly started = performance.now();
  private ended = false;

  private readonly kind: 'grpc' | 'http';
  private readonly method: string;
  private readonly route: string | undefined;
  private readonly peer: string | undefined;
  private readonly streaming: boolean;

  /** Built by `RequestTelemetry`. */
  constructor(
    private readonly deps: RequestTelemetryDeps,
    kind: 'grpc' | 'http',
    start: RpcStart | HttpStart,
  ) {
    this.kind = kind;
    this.method = start.method;
    this.route = 'route' in start ? start.route : undefined;
    this.peer = start.peer;
    this.streaming = start.streaming ?? false;
    const tracing = deps.tracing;
    if (tracing === undefined || !tracing.enabled) {
      this.span = NOOP_SPAN;
      this.context = ROOT_CONTEXT;
      return;
    }
    const carrier = 'route' in start ? start.headers : start.metadata;
    const parent = carrier ? tracing.extract(carrier) : ROOT_CONTEXT;
    const attributes: Attributes =
      'route' in start
        ? { [ATTR_HTTP_REQUEST_METHOD]: start.method, [ATTR_HTTP_ROUTE]: start.route }
        : { [ATTR_RPC_SYSTEM_NAME]: RPC_SYSTEM_NAME_VALUE_GRPC, [ATTR_RPC_METHOD]: start.method };
    if (start.peer !== undefined) attributes[ATTR_NETWORK_PEER_ADDRESS] = start.peer;
    const name = 'route' in start ? `${start.method} ${start.route}` : start.method;
    this.span = tracing.startSpan(name, { parent, kind: SpanKind.SERVER, attributes });
    this.context = tracing.withSpan(parent, this.span);
  }

  /** Whether spans are recorded: check before computing costly attributes. */
  get tracing(): boolean {
    return this.deps.tracing?.enabled === true;
  }

  /**
   * Runs `work` inside a child span of this request (e.g. `commitlog.log.append`).
   * With tracing off it just runs `work`.
   */
  trace<T>(
    name: string,
    attributes: Record<string, string | number | boolean>,
    work: (span: Span) => Promise<T>,
  ): Promise<T> {
    const tracing = this.deps.tracing;
    if (tracing === undefined || !tracing.enabled) return work(this.span);
    const span = tracing.startSpan(name, { parent: this.context, attributes });
    return work(span).then(
      (value) => {
        span.end();
        return value;
      },
      (err: unknown) => {
        span.recordException(err instanceof Error ? err : (errorMessage(err) ?? 'undefined'));
        span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(err) });
        span.end();
        throw err;
      },
    );
  }

  /** Ends the request once; later calls are ignored (a stream can end from several paths). */
  end(result: RequestResult): void {
    if (this.ended) return;
    this.ended = true;
    const seconds = (performance.now() - this.started) / 1000;
    const { metrics, logger } = this.deps;
    if (metrics !== undefined) {
      if (this.kind === 'grpc') metrics.rpcHandled(this.method, String(result.code), seconds);
      else metrics.httpHandled(this.method, this.route ?? '', result.code, seconds);
    }
    const level = result.level ?? requestLogLevel(result.outcome, this.streaming);
    const logged = logger.isLevelEnabled?.(level) !== false;
    if (!logged && !this.tracing) return;
    // Reading the caller's certificate is not free: only when the subject is written.
    const subject = typeof result.subject === 'function' ? result.subject() : result.subject;
    if (this.tracing) this.endSpan(result, subject);
    if (!logged) return;
    const line: Record<string, unknown> = {
      protocol: this.kind,
      method: this.method,
      code: result.code,
      durationMs: Math.round(seconds * 1e6) / 1e3,
    };
    if (this.route !== undefined) line.route = this.route;
    if (this.peer !== undefined) line.peer = this.peer;
    if (subject !== undefined) line.subject = subject;
    if (this.streaming) line.streaming = true;
    if (result.error !== undefined) {
      // A client's mistake needs its reason, not a stack trace.
      if (result.outcome === 'server_error') line.err = result.error;
      else line.error = errorMessage(result.error);
    }
    if (this.tracing) line.traceId = this.span.spanContext().traceId;
    const what = this.kind === 'grpc' ? this.method : `${this.method} ${this.route ?? ''}`;
    logger[level](line, `${what} ${result.code}`);
  }

  private endSpan(result: RequestResult, subject: string | undefined): void {
    if (this.kind === 'grpc') this.span.setAttribute(ATTR_RPC_STATUS_CODE, String(result.code));
    else this.span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, Number(result.code));
    if (subject !== undefined) this.span.setAttribute(ATTR_ENDUSER_ID, subject);
    if (result.outcome === 'server_error') {
      this.span.setAttribute(ATTR_ERROR_TYPE, String(result.code));
      if (result.error instanceof Error) this.span.recordException(result.error);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(result.error) });
    }
    this.span.end();
  }
}

function errorMessage(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : inspect(err);
}

/** Starts request scopes for the gRPC service and the HTTP gateway. */
export class RequestTelemetry {
  constructor(private readonly deps: RequestTelemetryDeps) {}

  /** Whether spans are recorded: skip building trace carriers when not. */
  get tracing(): boolean {
    return this.deps.tracing?.enabled === true;
  }

  rpc(start: RpcStart): RequestScope {
    return new RequestScope(this.deps, 'grpc', start);
  }

  http(start: HttpStart): RequestScope {
    return new RequestScope(this.deps, 'http', start);
  }
}
