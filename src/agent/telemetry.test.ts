import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { NodeTelemetry } from './telemetry.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    destination: {
      write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>),
    },
  };
}

describe('NodeTelemetry', () => {
  it('defaults to metrics on, tracing off, request lines from the server component', () => {
    const out = capture();
    const t = NodeTelemetry.create({
      nodeName: 'node-1',
      logLevel: 'info',
      logFormat: 'json',
      metrics: true,
      traceSampleRatio: 1,
      logDestination: out.destination,
    });
    assert.ok(t.metrics);
    assert.ok(t.logObserver());
    assert.equal(t.tracing.enabled, false);
    t.requests
      .rpc({ method: 'log.v1.Log/Consume' })
      .end({ code: 'OUT_OF_RANGE', outcome: 'client_error' });
    assert.equal(out.lines[0]?.node, 'node-1');
    assert.equal(out.lines[0]?.component, 'server');
  });

  it('turns metrics off and tracing on from the options, and flushes spans on shutdown', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'commitlog-node-telemetry-'));
    try {
      const traceFile = join(dir, 'trace.jsonl');
      const t = NodeTelemetry.create({
        nodeName: 'node-2',
        logLevel: 'silent',
        logFormat: 'json',
        metrics: false,
        traceFile,
        traceSampleRatio: 1,
        logDestination: capture().destination,
      });
      assert.equal(t.metrics, undefined);
      assert.equal(t.logObserver(), undefined);
      assert.equal(t.tracing.enabled, true);
      t.requests.rpc({ method: 'log.v1.Log/Produce' }).end({ code: 'OK', outcome: 'ok' });
      await t.shutdown();
      const [line] = (await readFile(traceFile, 'utf8')).trim().split('\n');
      assert.equal((JSON.parse(line ?? '{}') as { name?: string }).name, 'log.v1.Log/Produce');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
