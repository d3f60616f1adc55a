import { closeSync, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { SpanKind, SpanStatusCode, type HrTime } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { TraceFileError } from './errors.js';

/** One line of a trace file. */
export interface SpanLine {
  name: string;
  kind: 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
  traceId: string;
  spanId: string;
  /** `null` for a root span. */
  parentSpanId: string | null;
  /** ISO 8601, millisecond precision. */
  start: string;
  end: string;
  /** Nanoseconds since the Unix epoch, as a decimal string (exact). */
  startUnixNano: string;
  endUnixNano: string;
  durationMs: number;
  status: { code: 'UNSET' | 'OK' | 'ERROR'; message?: string };
  attributes: Record<string, unknown>;
  events: { name: string; time: string; attributes: Record<string, unknown> }[];
}

const KINDS: Record<SpanKind, SpanLine['kind']> = {
  [SpanKind.INTERNAL]: 'INTERNAL',
  [SpanKind.SERVER]: 'SERVER',
  [SpanKind.CLIENT]: 'CLIENT',
  [SpanKind.PRODUCER]: 'PRODUCER',
  [SpanKind.CONSUMER]: 'CONSUMER',
};
const STATUSES: Record<SpanStatusCode, SpanLine['status']['code']> = {
  [SpanStatusCode.UNSET]: 'UNSET',
  [SpanStatusCode.OK]: 'OK',
  [SpanStatusCode.ERROR]: 'ERROR',
};

function nanos(time: HrTime): bigint {
  return BigInt(time[0]) * 1_000_000_000n + BigInt(time[1]);
}

function iso(time: HrTime): string {
  return new Date(time[0] * 1000 + Math.floor(time[1] / 1_000_000)).toISOString();
}

export function spanLine(span: ReadableSpan): SpanLine {
  const context = span.spanContext();
  const line: SpanLine = {
    name: span.name,
    kind: KINDS[span.kind],
    traceId: context.traceId,
    spanId: context.spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    start: iso(span.startTime),
    end: iso(span.endTime),
    startUnixNano: nanos(span.startTime).toString(),
    endUnixNano: nanos(span.endTime).toString(),
    durationMs: span.duration[0] * 1e3 + span.duration[1] / 1e6,
    status: { code: STATUSES[span.status.code] },
    attributes: { ...span.attributes },
    events: span.events.map((e) => ({
      name: e.name,
      time: iso(e.time),
      attributes: { ...e.attributes },
    })),
  };
  if (span.status.message) line.status.message = span.status.message;
  return line;
}

/**
 * Appends finished spans to a file, one JSON object per line (`--trace-file`). The file
 * is opened when the exporter is built, so a bad path fails at start-up.
 */
export class JsonLinesSpanExporter implements SpanExporter {
  private readonly stream: WriteStream;
  private failure: Error | undefined;
  private pending = Promise.resolve();

  constructor(readonly path: string) {
    let fd: number;
    try {
      fd = openSync(path, 'a');
    } catch (err) {
      throw new TraceFileError(path, { cause: err });
    }
    try {
      this.stream = createWriteStream('', { fd });
    } catch (err) {
      closeSync(fd);
      throw new TraceFileError(path, { cause: err });
    }
    this.stream.on('error', (err) => {
      this.failure = new TraceFileError(path, { cause: err });
    });
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.failure) {
      resultCallback({ code: ExportResultCode.FAILED, error: this.failure });
      return;
    }
    const text = spans.map((s) => `${JSON.stringify(spanLine(s))}\n`).join('');
    this.pending = new Promise<void>((resolve) => {
      this.stream.write(text, (err) => {
        if (err) resultCallback({ code: ExportResultCode.FAILED, error: err });
        else resultCallback({ code: ExportResultCode.SUCCESS });
        resolve();
      });
    });
  }

  /** Resolves when every line handed to `export` is written. */
  async forceFlush(): Promise<void> {
    await this.pending;
  }

  async shutdown(): Promise<void> {
    await this.pending;
    if (this.stream.closed) return;
    await new Promise<void>((resolve) => this.stream.end(resolve));
  }
}
