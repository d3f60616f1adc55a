// Observability of a real node: metrics move by the right amounts after produces and
// consumes over gRPC and HTTP, a produce carrying a `traceparent` leaves a server span
// and a storage child span in the trace file, and the logs are JSON lines with the
// expected fields.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { appendFile, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { LogClient, type LogRecord } from '../src/api/index.js';
import { CommitLogClient } from '../src/client/index.js';
import {
  parseExposition,
  sampleValue,
  type Sample,
  type SpanLine,
} from '../src/telemetry/index.js';
import { startNode, tempDir, type TestNode } from './support/node.js';
import { until, within } from './support/wait.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

function record(text: string): LogRecord {
  return { value: Buffer.from(text), offset: 0n, term: 0n, type: 0 };
}

async function scrape(node: TestNode): Promise<Sample[]> {
  const res = await fetch(`http://${node.agent.httpAddr}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

/** A log destination that keeps each line, parsed (and so proven to be JSON). */
function captureLines() {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    destination: {
      write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>),
    },
  };
}

describe('metrics of a node', () => {
  let node: TestNode;
  let client: CommitLogClient;

  before(async () => {
    node = await startNode({ fsync: 'always' });
    client = new CommitLogClient(node.agent.rpcAddr);
  });
  after(async () => {
    client?.close();
    await node?.cleanup();
  });

  it('move by the right amounts after produces and consumes over gRPC and HTTP', async () => {
    const before = await scrape(node);
    const delta = (after: Sample[], name: string, labels: Record<string, string> = {}) =>
      sampleValue(after, name, labels) - sampleValue(before, name, labels);

    await client.produce(Buffer.from('12345')); // 5 bytes
    await client.produceBatch([Buffer.from('ab'), Buffer.from('cde'), Buffer.from('f')]); // 6
    const post = await fetch(`http://${node.agent.httpAddr}/v1/records`, {
      method: 'POST',
      body: JSON.stringify({ value: Buffer.from('http!').toString('base64') }), // 5
    });
    assert.equal(post.status, 200);
    assert.equal((await client.consume(0n)).value.toString(), '12345');
    const streamed: string[] = [];
    // From offset 2 the stream holds exactly the last three records, then waits.
    for await (const r of client.consumeStream(2n)) {
      streamed.push(r.value.toString());
      if (streamed.length === 3) break;
    }
    assert.deepEqual(streamed, ['cde', 'f', 'http!']);
    await assert.rejects(client.consume(99n), /outside the log's range/);

    const after = await scrape(node);
    assert.equal(delta(after, 'commitlog_produced_records_total'), 5);
    assert.equal(delta(after, 'commitlog_produced_bytes_total'), 16);
    assert.equal(delta(after, 'commitlog_consumed_records_total'), 4);
    assert.equal(delta(after, 'commitlog_consumed_bytes_total'), 14);
    const rpc = (method: string, code: string) =>
      delta(after, 'commitlog_rpc_requests_total', { method: `log.v1.Log/${method}`, code });
    assert.equal(rpc('Produce', 'OK'), 1);
    assert.equal(rpc('ProduceBatch', 'OK'), 1);
    assert.equal(rpc('Consume', 'OK'), 1);
    assert.equal(rpc('Consume', 'OUT_OF_RANGE'), 1);
    assert.equal(
      delta(after, 'commitlog_rpc_duration_seconds_count', {
        method: 'log.v1.Log/Produce',
        code: 'OK',
      }),
      1,
    );
    assert.equal(
      delta(after, 'commitlog_http_requests_total', {
        method: 'POST',
        route: '/v1/records',
        code: '200',
      }),
      1,
    );
    // Three appends (one of them a batch of three), each its own write with fsync always.
    assert.equal(delta(after, 'commitlog_log_append_batch_records_count'), 3);
    assert.equal(delta(after, 'commitlog_log_append_batch_records_sum'), 5);
    assert.ok(delta(after, 'commitlog_log_fsync_duration_seconds_count') >= 3);
    assert.equal(sampleValue(after, 'commitlog_log_highest_offset'), 4);
    assert.equal(sampleValue(after, 'commitlog_log_lowest_offset'), 0);
    assert.equal(sampleValue(after, 'commitlog_log_segments'), 1);
    assert.ok(sampleValue(after, 'commitlog_log_size_bytes') > 16);
    assert.ok(after.some((s) => s.name === 'process_resident_memory_bytes'));
  });

  it('count the consume streams that are open', async () => {
    const streamsOpen = async () =>
      sampleValue(await scrape(node), 'commitlog_consume_streams_open');
    const settle = (n: number, what: string) =>
      within(
        10_000,
        what,
        (async () => {
          while ((await streamsOpen()) !== n);
        })(),
      );
    await settle(0, 'streams of earlier tests to end');
    const cancelled = async () =>
      sampleValue(await scrape(node), 'commitlog_rpc_requests_total', {
        method: 'log.v1.Log/ConsumeStream',
        code: 'CANCELLED',
      });
    const cancelledBefore = await cancelled();
    const raw = new LogClient(node.agent.rpcAddr, grpc.credentials.createInsecure());
    try {
      const stream = raw.consumeStream({ offset: 0n });
      stream.on('error', () => undefined); // the cancellation below
      await once(stream, 'data');
      assert.equal(await streamsOpen(), 1);
      stream.cancel();
      await settle(0, 'the stream gauge to drop');
      assert.equal((await cancelled()) - cancelledBefore, 1);
    } finally {
      raw.close();
    }
  });
});

describe('a node with metrics off', () => {
  it('answers 404 on /metrics and still serves', async () => {
    const node = await startNode({ metrics: false });
    const client = new CommitLogClient(node.agent.rpcAddr);
    try {
      assert.equal(await client.produce(Buffer.from('x')), 0n);
      assert.equal((await fetch(`http://${node.agent.httpAddr}/metrics`)).status, 404);
    } finally {
      client.close();
      await node.cleanup();
    }
  });
});

describe('traces of a node', () => {
  it('write a produce span with its caller as parent and the storage append as child', async () => {
    const dir = await tempDir('trace');
    const traceFile = join(dir, 'trace.jsonl');
    const node = await startNode({ 'trace-file': traceFile, 'trace-sample-ratio': 1 });
    const raw = new LogClient(node.agent.rpcAddr, grpc.credentials.createInsecure());
    let offset: bigint;
    try {
      const metadata = new grpc.Metadata();
      metadata.set('traceparent', `00-${TRACE_ID}-${PARENT_ID}-01`);
      offset = await new Promise<bigint>((resolve, reject) =>
        raw.produce({ record: record('traced') }, metadata, (err, res) =>
          err ? reject(err) : resolve(res.offset),
        ),
      );
    } finally {
      raw.close();
      await node.cleanup(); // flushes the spans
    }
    const spans = (await readFile(traceFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as SpanLine);
    await rm(dir, { recursive: true, force: true });

    const produce = spans.find((s) => s.name === 'log.v1.Log/Produce');
    assert.ok(produce, `spans: ${spans.map((s) => s.name).join(', ')}`);
    assert.equal(produce.kind, 'SERVER');
    assert.equal(produce.traceId, TRACE_ID);
    assert.equal(produce.parentSpanId, PARENT_ID);
    assert.equal(produce.attributes['rpc.system.name'], 'grpc');
    assert.equal(produce.attributes['rpc.method'], 'log.v1.Log/Produce');
    assert.equal(produce.attributes['rpc.status_code'], 'OK');
    assert.match(String(produce.attributes['network.peer.address']), /^127\.0\.0\.1:\d+$/);
    assert.equal(produce.status.code, 'UNSET');

    const append = spans.find((s) => s.name === 'commitlog.log.append');
    assert.ok(append);
    assert.equal(append.traceId, TRACE_ID);
    assert.equal(append.parentSpanId, produce.spanId);
    assert.equal(append.attributes['commitlog.records'], 1);
    assert.equal(append.attributes['commitlog.bytes'], 6);
    assert.equal(append.attributes['commitlog.offset'], Number(offset));
    assert.ok(BigInt(append.startUnixNano) >= BigInt(produce.startUnixNano));
    // OpenTelemetry JS starts each span's clock at Date.now() (whole milliseconds) and
    // adds the monotonic time since, so two spans' end times are comparable only to 1 ms:
    // a child that ends just before its parent can be stamped up to 1 ms after it.
    const clockResolution = 1_000_000n;
    assert.ok(
      BigInt(append.endUnixNano) <= BigInt(produce.endUnixNano) + clockResolution,
      `append ends ${BigInt(append.endUnixNano) - BigInt(produce.endUnixNano)} ns after produce`,
    );
  });
});

describe('logs of a node', () => {
  it('are JSON lines: start-up addresses, one line per request, nothing per record at info', async () => {
    const out = captureLines();
    const node = await startNode(
      { 'log-level': 'debug', 'node-name': 'log-node' },
      { logDestination: out.destination },
    );
    const client = new CommitLogClient(node.agent.rpcAddr);
    try {
      await client.produce(Buffer.from('a'));
      await until(() => out.lines.some((l) => l.method === 'log.v1.Log/Produce'), {
        ms: 10_000,
        what: 'the Produce request line',
      });
    } finally {
      client.close();
      await node.cleanup();
    }
    for (const line of out.lines) {
      assert.equal(line.node, 'log-node');
      assert.equal(typeof line.msg, 'string');
      assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
      assert.equal(typeof line.pid, 'number');
    }
    const agent = out.lines.filter((l) => l.component === 'agent');
    assert.ok(agent.some((l) => l.rpcAddr === node.agent.rpcAddr && l.level === 'info'));
    assert.ok(agent.some((l) => l.httpAddr === node.agent.httpAddr && l.level === 'info'));
    assert.ok(agent.some((l) => l.dataDir === node.dir && l.level === 'info'));
    const produce = out.lines.find((l) => l.method === 'log.v1.Log/Produce') ?? {};
    assert.equal(produce.component, 'server');
    assert.equal(produce.level, 'debug');
    assert.equal(produce.protocol, 'grpc');
    assert.equal(produce.code, 'OK');
    assert.equal(typeof produce.durationMs, 'number');
    assert.match(String(produce.peer), /^127\.0\.0\.1:\d+$/);
    assert.equal(produce.msg, 'log.v1.Log/Produce OK');
  });

  it('at the default level, keep the hot path silent and report recovery as a warning', async () => {
    const first = captureLines();
    const node = await startNode({ 'log-level': 'info' }, { logDestination: first.destination });
    const client = new CommitLogClient(node.agent.rpcAddr);
    const dir = node.dir;
    try {
      const linesBefore = first.lines.length;
      for (let i = 0; i < 50; i++) await client.produce(Buffer.from(`r${i}`));
      await client.consume(3n);
      assert.equal(first.lines.length, linesBefore, 'no line per request or record at info');
    } finally {
      client.close();
      await node.agent.shutdown();
    }
    // A torn tail: half a frame header after the last record.
    const logDir = join(dir, 'groups', 'default', 'log');
    const store = (await readdir(logDir)).find((f) => f.endsWith('.store'));
    assert.ok(store);
    await appendFile(join(logDir, store), Buffer.from([1, 2, 3]));

    const second = captureLines();
    const again = await startNode(
      { 'data-dir': dir, 'log-level': 'info' },
      { logDestination: second.destination },
    );
    await again.cleanup();
    const warning = second.lines.find((l) => l.level === 'warn');
    assert.ok(warning, 'a recovery warning');
    assert.match(String(warning.msg), /recovered/);
    const recovery = warning.recovery as { truncated?: { bytes: number } };
    assert.equal(recovery.truncated?.bytes, 3);
  });
});
