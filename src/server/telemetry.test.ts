import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';

import {
  createLogger,
  Metrics,
  parseExposition,
  RequestTelemetry,
  sampleValue,
  Tracing,
} from '../telemetry/index.js';
import {
  grpcScope,
  httpRoute,
  httpScope,
  instrumentHttp,
  serveMetrics,
  telemetryInterceptor,
} from './telemetry.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';

const raw = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};
const definition = {
  echo: { path: '/test.v1.Echo/Echo', requestStream: false, responseStream: false, ...raw },
  fail: { path: '/test.v1.Echo/Fail', requestStream: false, responseStream: false, ...raw },
  watch: { path: '/test.v1.Echo/Watch', requestStream: false, responseStream: true, ...raw },
} satisfies grpc.ServiceDefinition;
type EchoClient = grpc.Client & {
  echo(
    req: Buffer,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res?: Buffer) => void,
  ): void;
  fail(
    req: Buffer,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res?: Buffer) => void,
  ): void;
  watch(req: Buffer): grpc.ClientReadableStream<Buffer>;
};

interface Harness {
  lines: Record<string, unknown>[];
  memory: InMemorySpanExporter;
  tracing: Tracing;
  metrics: Metrics;
  requests: RequestTelemetry;
}

function harness(): Harness {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    format: 'json',
    destination: {
      write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>),
    },
  });
  const memory = new InMemorySpanExporter();
  const tracing = Tracing.create({ exporters: [memory] });
  const metrics = new Metrics({ processMetrics: false });
  return {
    lines,
    memory,
    tracing,
    metrics,
    requests: new RequestTelemetry({ logger, metrics, tracing }),
  };
}

/** Waits until `predicate` holds, checking after each turn of the event loop. */
async function until(predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('telemetryInterceptor', () => {
  const h = harness();
  let server: grpc.Server;
  let client: EchoClient;
  let watchStarted: () => void = () => undefined;

  before(async () => {
    // A refusing interceptor placed after telemetry, as authentication will be.
    const refuse: grpc.ServerInterceptor = (_descriptor, call) =>
      new grpc.ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (metadata, nextMetadata) => {
              if (metadata.get('x-refuse').length > 0) {
                call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: 'no certificate' });
              } else nextMetadata(metadata);
            },
          }),
      });
    server = new grpc.Server({ interceptors: [telemetryInterceptor(h.requests), refuse] });
    server.addService(definition, {
      echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const scope = grpcScope(call.metadata);
        assert.ok(scope, 'the handler finds its scope');
        scope
          .trace('commitlog.log.append', { 'commitlog.records': 1 }, async (span) => {
            span.setAttribute('commitlog.offset', 0);
            return call.request;
          })
          .then(
            (res) => cb(null, res),
            (err: Error) => cb(err),
          );
      },
      fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const code =
          call.request.toString() === 'internal' ? grpc.status.INTERNAL : grpc.status.OUT_OF_RANGE;
        cb({ code, details: `failed: ${call.request.toString()}` });
      },
      watch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        call.write(Buffer.from('first'));
        watchStarted();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const Client = grpc.makeGenericClientConstructor(definition, 'Echo');
    client = new Client(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as EchoClient;
  });

  after(async () => {
    client.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await h.tracing.shutdown();
  });

  const unary = (name: 'echo' | 'fail', body: string, md = new grpc.Metadata()) =>
    new Promise<grpc.ServiceError | null>((resolve) =>
      client[name](Buffer.from(body), md, (err) => resolve(err)),
    );

  const rpcCount = async (method: string, code: string) =>
    sampleValue(
      parseExposition((await h.metrics.exposition()).body),
      'commitlog_rpc_requests_total',
      { method, code },
    );

  it('ends a call in a log line, its metrics and a server span under the caller, with a child', async () => {
    const md = new grpc.Metadata();
    md.set('traceparent', `00-${TRACE_ID}-${PARENT_ID}-01`);
    assert.equal(await unary('echo', 'hi', md), null);
    await until(() => h.lines.some((l) => l.method === 'test.v1.Echo/Echo'), 'the log line');

    const line = h.lines.find((l) => l.method === 'test.v1.Echo/Echo') ?? {};
    assert.equal(line.level, 'debug');
    assert.equal(line.code, 'OK');
    assert.equal(line.protocol, 'grpc');
    assert.match(String(line.peer), /^127\.0\.0\.1:\d+$/);
    assert.equal(typeof line.durationMs, 'number');
    assert.equal(line.traceId, TRACE_ID);
    assert.equal(await rpcCount('test.v1.Echo/Echo', 'OK'), 1);

    await h.tracing.flush();
    const spans = h.memory.getFinishedSpans();
    const serverSpan = spans.find((s) => s.name === 'test.v1.Echo/Echo');
    const child = spans.find((s) => s.name === 'commitlog.log.append');
    assert.ok(serverSpan && child);
    assert.equal(serverSpan.spanContext().traceId, TRACE_ID);
    assert.equal(serverSpan.parentSpanContext?.spanId, PARENT_ID);
    assert.equal(serverSpan.attributes['rpc.status_code'], 'OK');
    assert.equal(child.parentSpanContext?.spanId, serverSpan.spanContext().spanId);
  });

  it('classifies failures: client errors at info, node errors at error', async () => {
    assert.equal((await unary('fail', 'range'))?.code, grpc.status.OUT_OF_RANGE);
    assert.equal((await unary('fail', 'internal'))?.code, grpc.status.INTERNAL);
    await until(
      () => h.lines.filter((l) => l.method === 'test.v1.Echo/Fail').length === 2,
      'lines',
    );
    const [range, internal] = h.lines.filter((l) => l.method === 'test.v1.Echo/Fail');
    assert.deepEqual(
      [range?.level, range?.code, range?.error],
      ['info', 'OUT_OF_RANGE', 'failed: range'],
    );
    assert.deepEqual([internal?.level, internal?.code], ['error', 'INTERNAL']);
    assert.equal(await rpcCount('test.v1.Echo/Fail', 'OUT_OF_RANGE'), 1);
    assert.equal(await rpcCount('test.v1.Echo/Fail', 'INTERNAL'), 1);
  });

  it('counts calls refused by an earlier interceptor', async () => {
    const md = new grpc.Metadata();
    md.set('x-refuse', '1');
    assert.equal((await unary('echo', 'x', md))?.code, grpc.status.UNAUTHENTICATED);
    await until(() => h.lines.some((l) => l.code === 'UNAUTHENTICATED'), 'the refusal line');
    assert.equal(await rpcCount('test.v1.Echo/Echo', 'UNAUTHENTICATED'), 1);
  });

  it('ends a stream the client cancels as CANCELLED, logged at info', async () => {
    const started = new Promise<void>((resolve) => (watchStarted = resolve));
    const stream = client.watch(Buffer.from('go'));
    stream.on('error', () => undefined); // the cancellation itself
    await started;
    await once(stream, 'data');
    stream.cancel();
    await until(() => h.lines.some((l) => l.method === 'test.v1.Echo/Watch'), 'the stream line');
    const line = h.lines.find((l) => l.method === 'test.v1.Echo/Watch') ?? {};
    assert.deepEqual([line.level, line.code, line.streaming], ['info', 'CANCELLED', true]);
    assert.equal(await rpcCount('test.v1.Echo/Watch', 'CANCELLED'), 1);
  });
});

describe('instrumentHttp', () => {
  const h = harness();
  let http: HttpServer;
  let base = '';

  before(async () => {
    http = createServer(
      instrumentHttp(h.requests, (req, res) => {
        assert.ok(httpScope(req));
        const url = req.url ?? '/';
        if (url === '/metrics') {
          serveMetrics(h.metrics, res).catch((err: unknown) => res.destroy(err as Error));
        } else if (url.startsWith('/v1/records/')) {
          res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no"}');
        } else res.writeHead(200).end('ok');
      }),
    );
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });

  after(async () => {
    http.closeAllConnections();
    http.close();
    await h.tracing.shutdown();
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      request(`${base}${path}`, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type']),
            body: Buffer.concat(chunks).toString(),
          }),
        );
      })
        .on('error', reject)
        .end();
    });

  it('labels requests by route template and serves /metrics', async () => {
    assert.equal(
      (await get('/v1/records/41', { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` })).status,
      404,
    );
    assert.equal((await get('/v1/records/42')).status, 404);
    await until(() => h.lines.length === 2, 'two lines');
    const metrics = await get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.type, /^text\/plain; version=0\.0\.4/);
    const samples = parseExposition(metrics.body);
    assert.equal(
      sampleValue(samples, 'commitlog_http_requests_total', {
        method: 'GET',
        route: '/v1/records/{offset}',
        code: '404',
      }),
      2,
    );
    assert.deepEqual(
      h.lines.slice(0, 2).map((l) => [l.level, l.msg]),
      [
        ['info', 'GET /v1/records/{offset} 404'],
        ['info', 'GET /v1/records/{offset} 404'],
      ],
    );
    await h.tracing.flush();
    const span = h.memory.getFinishedSpans().find((s) => s.spanContext().traceId === TRACE_ID);
    assert.equal(span?.name, 'GET /v1/records/{offset}');
    assert.equal(span?.parentSpanContext?.spanId, PARENT_ID);
    assert.equal(span?.attributes['http.response.status_code'], 404);
  });

  it('maps paths to a bounded set of routes', () => {
    assert.equal(httpRoute('/'), '/');
    assert.equal(httpRoute('/v1/records'), '/v1/records');
    assert.equal(httpRoute('/v1/records/123'), '/v1/records/{offset}');
    assert.equal(httpRoute('/metrics'), '/metrics');
    assert.equal(httpRoute('/wp-admin/login.php'), 'other');
  });
});
