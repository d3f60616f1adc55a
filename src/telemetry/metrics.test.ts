import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExposition, sampleValue, type Sample } from './exposition.js';
import { logObserver } from './log-observer.js';
import { Metrics, type LogStatsSource } from './metrics.js';

async function scrape(metrics: Metrics): Promise<Sample[]> {
  return parseExposition((await metrics.exposition()).body);
}

describe('Metrics', () => {
  it('counts RPCs and observes their latency by method and code', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const produce = 'log.v1.Log/Produce';
    metrics.rpcHandled(produce, 'OK', 0.0004);
    metrics.rpcHandled(produce, 'OK', 0.003);
    metrics.rpcHandled(produce, 'INVALID_ARGUMENT', 0.0001);
    const s = await scrape(metrics);
    const ok = { method: produce, code: 'OK' };
    assert.equal(sampleValue(s, 'commitlog_rpc_requests_total', ok), 2);
    assert.equal(
      sampleValue(s, 'commitlog_rpc_requests_total', { method: produce, code: 'INVALID_ARGUMENT' }),
      1,
    );
    assert.equal(sampleValue(s, 'commitlog_rpc_duration_seconds_count', ok), 2);
    assert.ok(Math.abs(sampleValue(s, 'commitlog_rpc_duration_seconds_sum', ok) - 0.0034) < 1e-9);
    // Buckets are cumulative: 0.0004 falls in le=0.0005, 0.003 first in le=0.005.
    const bucket = (le: string) =>
      sampleValue(s, 'commitlog_rpc_duration_seconds_bucket', { ...ok, le });
    assert.equal(bucket('0.00025'), 0);
    assert.equal(bucket('0.0005'), 1);
    assert.equal(bucket('0.0025'), 1);
    assert.equal(bucket('0.005'), 2);
    assert.equal(bucket('+Inf'), 2);
  });

  it('counts HTTP requests by method, route template and status', async () => {
    const metrics = new Metrics({ processMetrics: false });
    metrics.httpHandled('GET', '/v1/records/{offset}', 404, 0.002);
    metrics.httpHandled('GET', '/v1/records/{offset}', 200, 0.001);
    metrics.httpHandled('GET', '/v1/records/{offset}', 200, 0.001);
    const s = await scrape(metrics);
    const labels = { method: 'GET', route: '/v1/records/{offset}' };
    assert.equal(sampleValue(s, 'commitlog_http_requests_total', { ...labels, code: '200' }), 2);
    assert.equal(sampleValue(s, 'commitlog_http_requests_total', { ...labels, code: '404' }), 1);
    assert.equal(
      sampleValue(s, 'commitlog_http_request_duration_seconds_count', { ...labels, code: '200' }),
      2,
    );
  });

  it('counts records and bytes produced and consumed', async () => {
    const metrics = new Metrics({ processMetrics: false });
    metrics.produced(1, 10);
    metrics.produced(100, 2500);
    metrics.consumed(3, 30);
    const s = await scrape(metrics);
    assert.equal(sampleValue(s, 'commitlog_produced_records_total'), 101);
    assert.equal(sampleValue(s, 'commitlog_produced_bytes_total'), 2510);
    assert.equal(sampleValue(s, 'commitlog_consumed_records_total'), 3);
    assert.equal(sampleValue(s, 'commitlog_consumed_bytes_total'), 30);
  });

  it('feeds the batch and fsync histograms through the log observer', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const observer = logObserver(metrics);
    observer.appended(1, 50);
    observer.appended(300, 40_000);
    observer.synced(0.002);
    const s = await scrape(metrics);
    assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_count'), 2);
    assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_sum'), 301);
    assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_bucket', { le: '1' }), 1);
    assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_bucket', { le: '256' }), 1);
    assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_bucket', { le: '512' }), 2);
    assert.equal(sampleValue(s, 'commitlog_log_append_batch_bytes_bucket', { le: '64' }), 1);
    assert.equal(sampleValue(s, 'commitlog_log_append_batch_bytes_bucket', { le: '65536' }), 2);
    assert.equal(sampleValue(s, 'commitlog_log_fsync_duration_seconds_count'), 1);
    assert.equal(sampleValue(s, 'commitlog_log_fsync_duration_seconds_bucket', { le: '0.001' }), 0);
    assert.equal(
      sampleValue(s, 'commitlog_log_fsync_duration_seconds_bucket', { le: '0.0025' }),
      1,
    );
  });

  it('reads the log gauges from the log at scrape time', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const log = { lowestOffset: 0n, highestOffset: -1n, segments: 1, bytes: 0, statsCalls: 0 };
    const source: LogStatsSource = {
      get lowestOffset() {
        return log.lowestOffset;
      },
      get highestOffset() {
        return log.highestOffset;
      },
      stats: () => {
        log.statsCalls++;
        return { segments: log.segments, bytes: log.bytes };
      },
    };
    metrics.watchLog(source);
    let s = await scrape(metrics);
    assert.equal(sampleValue(s, 'commitlog_log_highest_offset'), -1);
    assert.equal(sampleValue(s, 'commitlog_log_segments'), 1);

    Object.assign(log, { lowestOffset: 5n, highestOffset: 41n, segments: 3, bytes: 123_456 });
    const callsBefore = log.statsCalls;
    s = await scrape(metrics);
    assert.ok(log.statsCalls > callsBefore, 'stats are read when scraped');
    assert.equal(sampleValue(s, 'commitlog_log_lowest_offset'), 5);
    assert.equal(sampleValue(s, 'commitlog_log_highest_offset'), 41);
    assert.equal(sampleValue(s, 'commitlog_log_segments'), 3);
    assert.equal(sampleValue(s, 'commitlog_log_size_bytes'), 123_456);

    metrics.watchLog(undefined);
    const callsDetached = log.statsCalls;
    s = await scrape(metrics);
    assert.equal(log.statsCalls, callsDetached);
    assert.equal(sampleValue(s, 'commitlog_log_size_bytes'), 0);
  });

  it('tracks open consume streams', async () => {
    const metrics = new Metrics({ processMetrics: false });
    metrics.consumeStreamOpened();
    metrics.consumeStreamOpened();
    metrics.consumeStreamClosed();
    assert.equal(sampleValue(await scrape(metrics), 'commitlog_consume_streams_open'), 1);
  });

  it('exports Node process metrics in its own registry, and instances do not share state', async () => {
    const a = new Metrics({ defaultLabels: { node: 'a' } });
    const b = new Metrics();
    a.produced(1, 1);
    a.rpcHandled('log.v1.Log/Consume', 'OK', 0.001);
    const sa = await scrape(a);
    const sb = await scrape(b);
    assert.ok(sa.some((x) => x.name === 'process_cpu_user_seconds_total'));
    assert.ok(sa.some((x) => x.name === 'nodejs_eventloop_lag_seconds'));
    assert.ok(sb.some((x) => x.name === 'process_resident_memory_bytes'));
    assert.equal(sampleValue(sa, 'commitlog_produced_records_total', { node: 'a' }), 1);
    assert.equal(sampleValue(sb, 'commitlog_produced_records_total'), 0);
    assert.equal(
      sampleValue(sa, 'commitlog_rpc_duration_seconds_bucket', { node: 'a', le: '0.001' }),
      1,
    );
    assert.equal(sampleValue(sb, 'commitlog_rpc_requests_total'), 0);
    assert.match((await a.exposition()).contentType, /^text\/plain; version=0\.0\.4/);
  });

  it('names every commitlog series in Prometheus style and documents it', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const text = (await metrics.exposition()).body;
    const names = [...text.matchAll(/^# TYPE (commitlog_\w+) (\w+)$/gm)];
    assert.ok(names.length >= 16);
    for (const [, name = '', type] of names) {
      if (type === 'counter') assert.match(name, /_total$/);
      assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'));
    }
  });
});
