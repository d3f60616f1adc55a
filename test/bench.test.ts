// `commitlog bench` end to end: a real node, the CLI as a process with tiny counts,
// its --json output parsed and checked against what the node holds afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { CommitLogClient } from '../src/client/index.js';
import type { BenchReport } from '../src/cli/index.js';
import { runCli } from './support/agent-process.js';
import { startNode, type TestNode } from './support/node.js';

const cli = (args: string[]) => runCli(args, { ms: 20_000 });

async function benchJson(args: string[]): Promise<BenchReport> {
  const r = await cli(['bench', ...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BenchReport;
}

describe('commitlog bench', () => {
  let node: TestNode;
  let addr: string;
  before(async () => {
    node = await startNode();
    addr = node.agent.rpcAddr;
  });
  after(() => node.cleanup());

  it('produces with every mode and reports rates, latency and CPU as JSON', async () => {
    const unary = await benchJson(['produce', '--addr', addr, '--count', '20', '--inflight', '4']);
    assert.equal(unary.runs[0]?.records, 20);
    assert.ok(unary.recordsPerSecond > 0);
    assert.equal(unary.latencyMicros?.count, 20);
    assert.ok((unary.latencyMicros?.p50 ?? 0) <= (unary.latencyMicros?.max ?? 0));
    assert.ok(unary.cpuCores.client > 0);
    assert.equal(unary.cpuCores.server, null); // no --server-pid or --metrics-url

    const stream = await benchJson([
      ...['produce', '--addr', addr, '--mode', 'stream', '--count', '30', '--inflight', '7'],
      ...['--server-pid', String(process.pid), '--clients', '2', '--runs', '2'],
    ]);
    assert.deepEqual(
      stream.runs.map((r) => r.records),
      [30, 30],
    );
    assert.equal(stream.latencyMicros?.count, 60); // one per acknowledgement
    assert.ok(stream.cpuCores.server !== null && stream.cpuCores.server >= 0);

    const batch = await benchJson([
      ...['produce', '--addr', addr, '--mode', 'batch', '--count', '25', '--batch', '10'],
      ...['--size', '7'],
    ]);
    assert.equal(batch.runs[0]?.records, 25);
    assert.equal(batch.latencyMicros?.count, 3); // 10 + 10 + 5

    const client = new CommitLogClient(addr);
    try {
      const last = await client.consume(20n + 60n + 24n);
      assert.equal(last.value.length, 7);
    } finally {
      client.close();
    }
  });

  it('consumes what is there, checking offsets, with both calls', async () => {
    for (const mode of ['stream', 'batch']) {
      const r = await benchJson(['consume', '--addr', addr, '--mode', mode, '--from', '5']);
      assert.equal(r.runs[0]?.records, 105 - 5, mode); // everything the first test wrote
      assert.equal(r.latencyMicros, null);
    }
    const two = await benchJson(['consume', '--addr', addr, '--clients', '3', '--count', '50']);
    assert.equal(two.runs[0]?.records, 50);
  });

  it('refuses bad settings with exit code 2 and names the flag', async () => {
    const r = await cli(['bench', 'consume', '--addr', addr, '--mode', 'unary']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /mode: must be one of stream, batch/);
    const past = await cli(['bench', 'consume', '--addr', addr, '--from', '100000']);
    assert.equal(past.code, 2);
    assert.match(past.stderr, /nothing to read at offset 100000/);
  });

  it('prints a human summary without --json', async () => {
    const r = await cli(['bench', 'produce', '--addr', addr, '--count', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /records\/s/);
    assert.match(r.stdout, /latency per call \(µs\): p50/);
  });
});
