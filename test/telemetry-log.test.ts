// The storage engine's observer hooks and gauges, fed into a node's metrics: the
// engine and the telemetry library do not know each other, the agent joins them.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Log } from '../src/log/index.js';
import { logObserver, Metrics, parseExposition, sampleValue } from '../src/telemetry/index.js';

describe('storage metrics', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-telemetry-log-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('count writes, records per write and fsyncs, and read the log at scrape time', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const log = await Log.open(dir, { observer: logObserver(metrics), fsync: 'always' });
    metrics.watchLog(log);
    try {
      const scrape = async () => parseExposition((await metrics.exposition()).body);
      let s = await scrape();
      assert.equal(sampleValue(s, 'commitlog_log_highest_offset'), -1);
      assert.equal(sampleValue(s, 'commitlog_log_segments'), 1);

      await log.appendBatch([Buffer.from('a'), Buffer.from('bb'), Buffer.from('ccc')]);
      await log.append(Buffer.from('dddd'));
      s = await scrape();
      assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_count'), 2);
      assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_sum'), 4);
      assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_bucket', { le: '2' }), 1);
      assert.equal(sampleValue(s, 'commitlog_log_append_batch_records_bucket', { le: '4' }), 2);
      // Framing adds a header to each value, so the bytes written exceed the 10 value bytes.
      assert.ok(sampleValue(s, 'commitlog_log_append_batch_bytes_sum') > 10);
      assert.ok(sampleValue(s, 'commitlog_log_fsync_duration_seconds_count') >= 2);
      assert.equal(sampleValue(s, 'commitlog_log_lowest_offset'), 0);
      assert.equal(sampleValue(s, 'commitlog_log_highest_offset'), 3);
      assert.equal(sampleValue(s, 'commitlog_log_size_bytes'), log.stats().bytes);
      assert.ok(log.stats().bytes > 0);
    } finally {
      metrics.watchLog(undefined);
      await log.close();
    }
  });
});
