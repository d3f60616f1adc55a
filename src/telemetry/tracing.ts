import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import {
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from '@opentelemetry/semantic-conventions';
import { InvalidTelemetryOptionError } from './errors.js';
import { JsonLinesSpanExporter } from './jsonl-exporter.js';

export interface TracingOptions {
  /** OTLP/HTTP collector, e.g. `http://localhost:4318` (`/v1/traces` is added when no path is given). */
  otlpEndpoint?: string;
  /** Append spans as JSON lines to this file. */
  traceFile?: string;
  /** Share of new traces recorded, 0..1 (default 1). A caller's sampling decision is kept. */
  sampleRatio?: number;
  /** More exporters (tests pass an in-memory one). */
  exporters?: SpanExporter[];
  serviceName?: string;
  serviceVersion?: string;
  /** The node's name (`service.instance.id`). */
  instanceId?: string;
}

/** Request headers or gRPC metadata as a plain map; only string values are read. */
export type TraceCarrier = Readonly<Record<string, unknown>>;

const carrierGetter: TextMapGetter<TraceCarrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    if (typeof value === 'string') return value;
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
    return undefined;
  },
};

export function parseSampleRatio(text: string): number {
  const ratio = Number(text);
  if (text.trim() === '' || !Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new InvalidTelemetryOptionError('trace-sample-ratio', text, 'a number from 0 to 1');
  }
  return ratio;
}

function otlpTracesUrl(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (err) {
    throw new InvalidTelemetryOptionError('otlp-endpoint', endpoint, 'an http(s) URL', {
      cause: err,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidTelemetryOptionError('otlp-endpoint', endpoint, 'an http(s) URL');
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/traces';
  return url.toString();
}

/** The span every call gets while tracing is off: all its methods do nothing. */
export const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

export interface SpanOptions {
  /** The context whose span becomes the parent; none makes a root span. */
  parent?: Context;
  kind?: SpanKind;
  attributes?: Attributes;
}

/**
 * The node's tracer. Nothing is registered globally: the provider lives here, and the
 * context (the parent span) is passed explicitly from the request to its child spans.
 * When neither an endpoint nor a file is configured, tracing is off: `enabled` is false,
 * `extract` returns the root context, and every span is a shared no-op span.
 */
export class Tracing {
  readonly enabled: boolean;
  private readonly provider: BasicTracerProvider | undefined;
  private readonly tracer: Tracer | undefined;
  private readonly propagator = new W3CTraceContextPropagator();

  private constructor(provider: BasicTracerProvider | undefined) {
    this.provider = provider;
    this.tracer = provider?.getTracer('commitlog');
    this.enabled = provider !== undefined;
  }

  static disabled(): Tracing {
    return new Tracing(undefined);
  }

  static create(options: TracingOptions = {}): Tracing {
    const ratio = options.sampleRatio ?? 1;
    if (!(ratio >= 0 && ratio <= 1)) {
      throw new InvalidTelemetryOptionError('trace-sample-ratio', ratio, 'a number from 0 to 1');
    }
    const exporters: SpanExporter[] = [...(options.exporters ?? [])];
    if (options.otlpEndpoint) {
      exporters.push(new OTLPTraceExporter({ url: otlpTracesUrl(options.otlpEndpoint) }));
    }
    if (options.traceFile) exporters.push(new JsonLinesSpanExporter(options.traceFile));
    if (exporters.length === 0) return Tracing.disabled();

    const resource = resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName ?? 'commitlog',
      ...(options.serviceVersion ? { [ATTR_SERVICE_VERSION]: options.serviceVersion } : {}),
      ...(options.instanceId ? { [ATTR_SERVICE_INSTANCE_ID]: options.instanceId } : {}),
    });
    const spanProcessors: SpanProcessor[] = exporters.map(
      (exporter) => new BatchSpanProcessor(exporter),
    );
    const provider = new BasicTracerProvider({
      resource,
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
      spanProcessors,
    });
    return new Tracing(provider);
  }

  /** The caller's trace context from `traceparent`/`tracestate` headers or metadata. */
  extract(carrier: TraceCarrier): Context {
    if (!this.enabled) return ROOT_CONTEXT;
    return this.propagator.extract(ROOT_CONTEXT, carrier, carrierGetter);
  }

  /** Writes `traceparent`/`tracestate` for `context` into `carrier` (for outgoing calls). */
  inject(context: Context, carrier: Record<string, string>): void {
    if (!this.enabled) return;
    this.propagator.inject(context, carrier, {
      set: (c: Record<string, string>, key: string, value: string) => {
        c[key] = value;
      },
    });
  }

  startSpan(name: string, options: SpanOptions = {}): Span {
    if (this.tracer === undefined) return NOOP_SPAN;
    return this.tracer.startSpan(
      name,
      { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes },
      options.parent ?? ROOT_CONTEXT,
    );
  }

  /** `parent` with `span` as its current span: pass it as the parent of child spans. */
  withSpan(parent: Context, span: Span): Context {
    if (!this.enabled) return parent;
    return trace.setSpan(parent, span);
  }

  /** Exports every finished span now (tests, shutdown). */
  async flush(): Promise<void> {
    await this.provider?.forceFlush();
  }

  /** Flushes and stops the exporters; spans started afterwards are not exported. */
  async shutdown(): Promise<void> {
    await this.provider?.shutdown();
  }
}
