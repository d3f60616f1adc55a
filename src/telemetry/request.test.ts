import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { parseExposition, sampleValue } from './exposition.js';
import { createLogger, type LogLevel } from './logger.js';
import { Metrics } from './metrics.js';
import { RequestTelemetry, requestLogLevel } from './request.js';
import { Tracing } from './tracing.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

function setup(options: { level?: LogLevel; tracing?: boolean; metrics?: boolean } = {}) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: options.level ?? 'debug',
    format: 'json',
    destination: {
      write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>),
    },
  });
  const memory = new InMemorySpanExporter();
  const tracing = options.tracing ? Tracing.create({ exporters: [memory] }) : Tracing.disabled();
  const metrics = options.metrics === false ? undefined : new Metrics({ processMetrics: false });
  const requests = new RequestTelemetry({ logger, metrics, tracing });
  return { lines, memory, tracing, metrics, requests };
}

describe('RequestTelemetry', () => {
  it('ends an RPC with one log line, its metrics and a server span parented on the caller', async () => {
    const { lines, memory, tracing, metrics, requests } = setup({ tracing: true });
    const scope = requests.rpc({
      method: 'log.v1.Log/Produce',
      peer: '127.0.0.1:5000',
      metadata: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` },
    });
    const offset = await scope.trace(
      'commitlog.log.append',
      { 'commitlog.records': 1 },
      async (span) => {
        span.setAttribute('commitlog.offset', 42);
        return 42n;
      },
    );
    assert.equal(offset, 42n);
    scope.end({ code: 'OK', outcome: 'ok', subject: 'root' });
    scope.end({ code: 'INTERNAL', outcome: 'server_error' }); // ignored: already ended

    assert.equal(lines.length, 1);
    const line = lines[0] ?? {};
    assert.equal(line.level, 'debug');
    assert.equal(line.msg, 'log.v1.Log/Produce OK');
    assert.equal(line.protocol, 'grpc');
    assert.equal(line.method, 'log.v1.Log/Produce');
    assert.equal(line.code, 'OK');
    assert.equal(line.peer, '127.0.0.1:5000');
    assert.equal(line.subject, 'root');
    assert.equal(line.traceId, TRACE_ID);
    assert.equal(typeof line.durationMs, 'number');

    const s = parseExposition((await metrics!.exposition()).body);
    const labels = { method: 'log.v1.Log/Produce', code: 'OK' };
    assert.equal(sampleValue(s, 'commitlog_rpc_requests_total', labels), 1);
    assert.equal(sampleValue(s, 'commitlog_rpc_requests_total', { code: 'INTERNAL' }), 0);
    assert.equal(sampleValue(s, 'commitlog_rpc_duration_seconds_count', labels), 1);

    await tracing.flush();
    const spans = memory.getFinishedSpans();
    const server = spans.find((x) => x.name === 'log.v1.Log/Produce');
    const append = spans.find((x) => x.name === 'commitlog.log.append');
    assert.ok(server && append);
    assert.equal(server.kind, SpanKind.SERVER);
    assert.equal(server.spanContext().traceId, TRACE_ID);
    assert.equal(server.parentSpanContext?.spanId, PARENT_ID);
    assert.equal(server.attributes['rpc.system.name'], 'grpc');
    assert.equal(server.attributes['rpc.method'], 'log.v1.Log/Produce');
    assert.equal(server.attributes['rpc.status_code'], 'OK');
    assert.equal(server.attributes['network.peer.address'], '127.0.0.1:5000');
    assert.equal(server.attributes['enduser.id'], 'root');
    assert.equal(server.status.code, SpanStatusCode.UNSET);
    assert.equal(append.parentSpanContext?.spanId, server.spanContext().spanId);
    assert.equal(append.attributes['commitlog.records'], 1);
    assert.equal(append.attributes['commitlog.offset'], 42);
    await tracing.shutdown();
  });

  it('marks a child span failed and rethrows', async () => {
    const { memory, tracing, requests } = setup({ tracing: true });
    const scope = requests.rpc({ method: 'log.v1.Log/Produce' });
    await assert.rejects(
      scope.trace('commitlog.log.append', {}, async () => {
        throw new Error('disk full');
      }),
      /disk full/,
    );
    scope.end({ code: 'INTERNAL', outcome: 'server_error', error: new Error('disk full') });
    await tracing.flush();
    for (const span of memory.getFinishedSpans()) {
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal(span.status.message, 'disk full');
      assert.equal(span.events[0]?.name, 'exception');
    }
    assert.equal(memory.getFinishedSpans().length, 2);
    await tracing.shutdown();
  });

  it('logs HTTP requests with route and status, and counts them', async () => {
    const { lines, metrics, requests } = setup();
    const scope = requests.http({ method: 'GET', route: '/v1/records/{offset}', peer: '::1' });
    scope.end({ code: 404, outcome: 'client_error' });
    const line = lines[0] ?? {};
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'GET /v1/records/{offset} 404');
    assert.equal(line.route, '/v1/records/{offset}');
    assert.equal(line.code, 404);
    assert.equal(line.traceId, undefined);
    const s = parseExposition((await metrics!.exposition()).body);
    assert.equal(
      sampleValue(s, 'commitlog_http_requests_total', {
        method: 'GET',
        route: '/v1/records/{offset}',
        code: '404',
      }),
      1,
    );
  });

  it('keeps successful unary calls out of the default info level', () => {
    const { lines, requests } = setup({ level: 'info' });
    let subjectReads = 0;
    const subject = () => {
      subjectReads++;
      return 'client-1';
    };
    requests.rpc({ method: 'log.v1.Log/Produce' }).end({ code: 'OK', outcome: 'ok', subject });
    assert.equal(lines.length, 0);
    assert.equal(subjectReads, 0, 'the subject is read only when written');
    requests
      .rpc({ method: 'log.v1.Log/ConsumeStream', streaming: true })
      .end({ code: 'CANCELLED', outcome: 'ok', subject });
    requests.rpc({ method: 'log.v1.Log/Consume' }).end({
      code: 'OUT_OF_RANGE',
      outcome: 'client_error',
      error: new RangeError("The requested offset is outside the log's range: 9"),
    });
    const failure = new Error('segment unreadable');
    requests
      .rpc({ method: 'log.v1.Log/Consume' })
      .end({ code: 'INTERNAL', outcome: 'server_error', error: failure });
    assert.deepEqual(
      lines.map((l) => [l.level, l.code]),
      [
        ['info', 'CANCELLED'],
        ['info', 'OUT_OF_RANGE'],
        ['error', 'INTERNAL'],
      ],
    );
    assert.equal(lines[0]?.streaming, true);
    assert.equal(lines[0]?.subject, 'client-1');
    assert.equal(subjectReads, 1);
    assert.equal(lines[1]?.error, "The requested offset is outside the log's range: 9");
    assert.equal(lines[1]?.err, undefined);
    assert.equal((lines[2]?.err as { message?: string }).message, 'segment unreadable');
    requests
      .rpc({ method: 'log.v1.Log/ConsumeStream', streaming: true })
      .end({ code: 'UNAVAILABLE', outcome: 'server_error', level: 'warn' });
    assert.equal(lines[3]?.level, 'warn');
  });

  it('states the level policy', () => {
    assert.equal(requestLogLevel('ok', false), 'debug');
    assert.equal(requestLogLevel('ok', true), 'info');
    assert.equal(requestLogLevel('client_error', false), 'info');
    assert.equal(requestLogLevel('server_error', true), 'error');
  });

  it('works with metrics and tracing both off', async () => {
    const { lines, requests } = setup({ metrics: false });
    const scope = requests.rpc({ method: 'log.v1.Log/Produce' });
    assert.equal(scope.tracing, false);
    assert.equal(scope.span.isRecording(), false);
    assert.equal(await scope.trace('x', {}, async () => 1), 1);
    scope.end({ code: 'OK', outcome: 'ok' });
    assert.equal(lines.length, 1);
  });
});
