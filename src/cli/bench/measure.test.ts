import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { Latencies, metricsCpu, procCpu, ServerCpuError } from './measure.js';

describe('bench measurements', () => {
  let server: Server;
  let base: string;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/metrics') {
        res.end(
          '# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n' +
            '# TYPE process_cpu_seconds_total counter\n' +
            'process_cpu_seconds_total 12.5\n' +
            'process_cpu_user_seconds_total 10\n',
        );
      } else if (req.url === '/labelled') {
        res.end('process_cpu_seconds_total{node="a"} 3.25\n');
      } else if (req.url === '/other') {
        res.end('up 1\n');
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it("reads the node's CPU seconds from a Prometheus endpoint", async () => {
    assert.equal(await metricsCpu(`${base}/metrics`).read(), 12.5);
    assert.equal(await metricsCpu(`${base}/labelled`).read(), 3.25);
  });

  it('names the URL when the metric or the endpoint is missing', async () => {
    await assert.rejects(metricsCpu(`${base}/other`).read(), (err: Error) => {
      assert.ok(err instanceof ServerCpuError);
      assert.match(err.message, /\/other has no process_cpu_seconds_total/);
      return true;
    });
    await assert.rejects(metricsCpu(`${base}/nope`).read(), /HTTP 404/);
  });

  it('reads a local process from /proc', async (t) => {
    if (process.platform !== 'linux') {
      t.skip('no /proc');
      return;
    }
    const cpu = procCpu(process.pid);
    const first = await cpu.read();
    const spinUntil = performance.now() + 60;
    while (performance.now() < spinUntil); // burn a few clock ticks
    assert.ok((await cpu.read()) > first);
    await assert.rejects(procCpu(2 ** 30).read(), ServerCpuError);
  });

  it('summarizes latencies in microseconds', () => {
    const l = new Latencies();
    assert.equal(l.summary(), null);
    for (let i = 1; i <= 1000; i++) l.record(i);
    l.record(0.2); // counted as 1 µs, the histogram's floor
    assert.deepEqual(l.summary(), {
      p50: 500,
      p90: 900,
      p99: 990,
      p999: 999,
      max: 1000,
      count: 1001,
    });
  });
});
