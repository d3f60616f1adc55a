import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { InvalidTelemetryOptionError, TraceFileError } from './errors.js';
import type { SpanLine } from './jsonl-exporter.js';
import { Tracing, parseSampleRatio } from './tracing.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';
const traceparent = (flags: '01' | '00') => `00-${TRACE_ID}-${PARENT_ID}-${flags}`;

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'commitlog-tracing-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readLines(path: string): Promise<SpanLine[]> {
  const text = await readFile(path, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as SpanLine);
}

describe('Tracing with a trace file', () => {
  it('writes a span per line with the parent taken from traceparent', async () => {
    const path = join(dir, 'parent.jsonl');
    const tracing = Tracing.create({ traceFile: path, instanceId: 'node-1' });
    assert.equal(tracing.enabled, true);
    const parent = tracing.extract({ traceparent: traceparent('01'), other: Buffer.from('x') });
    const server = tracing.startSpan('log.v1.Log/Produce', {
      parent,
      kind: SpanKind.SERVER,
      attributes: { 'rpc.method': 'log.v1.Log/Produce', 'commitlog.records': 1 },
    });
    const child = tracing.startSpan('commitlog.log.append', {
      parent: tracing.withSpan(parent, server),
    });
    child.setAttribute('commitlog.offset', 7);
    child.end();
    server.setStatus({ code: SpanStatusCode.ERROR, message: 'disk full' });
    server.end();
    await tracing.shutdown();

    const lines = await readLines(path);
    assert.equal(lines.length, 2);
    const [append, produce] = lines;
    assert.ok(produce && append);
    assert.equal(produce.name, 'log.v1.Log/Produce');
    assert.equal(produce.kind, 'SERVER');
    assert.equal(produce.traceId, TRACE_ID);
    assert.equal(produce.parentSpanId, PARENT_ID);
    assert.match(produce.spanId, /^[0-9a-f]{16}$/);
    assert.deepEqual(produce.attributes, {
      'rpc.method': 'log.v1.Log/Produce',
      'commitlog.records': 1,
    });
    assert.deepEqual(produce.status, { code: 'ERROR', message: 'disk full' });
    assert.ok(BigInt(produce.endUnixNano) >= BigInt(produce.startUnixNano));
    assert.ok(produce.durationMs >= 0);
    assert.ok(!Number.isNaN(Date.parse(produce.start)));
    assert.equal(append.name, 'commitlog.log.append');
    assert.equal(append.traceId, TRACE_ID);
    assert.equal(append.parentSpanId, produce.spanId);
    assert.equal(append.attributes['commitlog.offset'], 7);
    assert.equal(append.status.code, 'UNSET');
  });

  it('starts a new trace when the caller sends none', async () => {
    const path = join(dir, 'root.jsonl');
    const tracing = Tracing.create({ traceFile: path });
    tracing.startSpan('root', { parent: tracing.extract({}) }).end();
    await tracing.flush();
    const [line] = await readLines(path);
    assert.equal(line?.parentSpanId, null);
    assert.match(line?.traceId ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(line?.traceId, TRACE_ID);
    await tracing.shutdown();
  });

  it('appends to an existing file', async () => {
    const path = join(dir, 'append.jsonl');
    for (const name of ['first', 'second']) {
      const tracing = Tracing.create({ traceFile: path });
      tracing.startSpan(name).end();
      await tracing.shutdown();
    }
    assert.deepEqual(
      (await readLines(path)).map((l) => l.name),
      ['first', 'second'],
    );
  });

  it('fails at creation when the file cannot be opened', () => {
    const path = join(dir, 'missing-dir', 'trace.jsonl');
    assert.throws(
      () => Tracing.create({ traceFile: path }),
      (err: unknown) => err instanceof TraceFileError && err.path === path,
    );
  });
});

describe('sampling', () => {
  it('ratio 0 records no new trace but follows a sampled caller', async () => {
    const memory = new InMemorySpanExporter();
    const tracing = Tracing.create({ exporters: [memory], sampleRatio: 0 });
    const root = tracing.startSpan('root');
    assert.equal(root.isRecording(), false);
    root.end();
    const followed = tracing.startSpan('followed', {
      parent: tracing.extract({ traceparent: traceparent('01') }),
    });
    assert.equal(followed.isRecording(), true);
    followed.end();
    await tracing.flush();
    assert.deepEqual(
      memory.getFinishedSpans().map((s) => s.name),
      ['followed'],
    );
    await tracing.shutdown();
  });

  it('ratio 1 keeps a caller that chose not to sample unsampled', async () => {
    const memory = new InMemorySpanExporter();
    const tracing = Tracing.create({ exporters: [memory], sampleRatio: 1 });
    const span = tracing.startSpan('x', {
      parent: tracing.extract({ traceparent: traceparent('00') }),
    });
    assert.equal(span.isRecording(), false);
    span.end();
    await tracing.flush();
    assert.equal(memory.getFinishedSpans().length, 0);
    await tracing.shutdown();
  });

  it('ratio 0.5 samples about half of new traces', async () => {
    const memory = new InMemorySpanExporter();
    const tracing = Tracing.create({ exporters: [memory], sampleRatio: 0.5 });
    let recorded = 0;
    for (let i = 0; i < 2000; i++) {
      const span = tracing.startSpan('x');
      if (span.isRecording()) recorded++;
      span.end();
    }
    assert.ok(recorded > 850 && recorded < 1150, `recorded ${recorded} of 2000`);
    await tracing.shutdown();
  });

  it('parses the ratio from the command line', () => {
    assert.equal(parseSampleRatio('0.25'), 0.25);
    for (const bad of ['', 'half', '-0.1', '1.5', 'NaN']) {
      assert.throws(() => parseSampleRatio(bad), InvalidTelemetryOptionError, bad);
    }
    assert.throws(() => Tracing.create({ sampleRatio: 2 }), InvalidTelemetryOptionError);
  });
});

describe('tracing off', () => {
  it('is off without an exporter and hands out no-op spans', () => {
    const tracing = Tracing.create({});
    assert.equal(tracing.enabled, false);
    assert.equal(tracing.extract({ traceparent: traceparent('01') }), ROOT_CONTEXT);
    const span = tracing.startSpan('x', { attributes: { a: 1 } });
    assert.equal(span.isRecording(), false);
    assert.equal(span, tracing.startSpan('y'), 'one shared span, no allocation per call');
    assert.equal(tracing.withSpan(ROOT_CONTEXT, span), ROOT_CONTEXT);
    assert.equal(trace.getSpan(ROOT_CONTEXT), undefined);
  });

  it('does not touch the global OpenTelemetry provider', () => {
    Tracing.create({ exporters: [new InMemorySpanExporter()] });
    const global = trace.getTracer('probe').startSpan('probe');
    assert.equal(global.isRecording(), false);
  });
});

describe('OTLP/HTTP export', () => {
  it('posts spans to <endpoint>/v1/traces', async () => {
    const received: { url: string; body: string }[] = [];
    const collector = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ url: req.url ?? '', body: Buffer.concat(chunks).toString('latin1') });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    collector.listen(0, '127.0.0.1');
    await once(collector, 'listening');
    const { port } = collector.address() as AddressInfo;
    try {
      const tracing = Tracing.create({ otlpEndpoint: `http://127.0.0.1:${port}` });
      tracing.startSpan('exported-span-name').end();
      await tracing.shutdown();
      assert.equal(received.length, 1);
      assert.equal(received[0]?.url, '/v1/traces');
      assert.match(received[0]?.body ?? '', /exported-span-name/);
    } finally {
      collector.close();
    }
  });

  it('refuses an endpoint that is not an http(s) URL', () => {
    for (const bad of ['localhost:4318', 'ftp://x/']) {
      assert.throws(
        () => Tracing.create({ otlpEndpoint: bad }),
        (err: unknown) =>
          err instanceof InvalidTelemetryOptionError && err.option === 'otlp-endpoint',
      );
    }
  });
});
