import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { type BenchReport, sdkVsBatch, sdkVsBatchPerRound } from './command.js';

/** A report with only what the ratios read. */
function report(mode: 'batch' | 'sdk', rates: number[]): BenchReport {
  const sorted = [...rates].sort((a, b) => a - b);
  return {
    settings: { mode },
    recordsPerSecond: sorted[sorted.length >> 1],
    runs: rates.map((recordsPerSecond) => ({ recordsPerSecond })),
  } as unknown as BenchReport;
}

describe('bench sdk / batch ratios', () => {
  it('compares runs of the same round, not medians of runs far apart', () => {
    // The machine slows down over the run; each round the SDK does 0.95× of batch,
    // except one round a disturbance hit the SDK's run alone.
    const batch = [100, 80, 60, 40, 20];
    const sdk = batch.map((x, i) => (i === 1 ? 10 : x * 0.95));
    const reports = [report('batch', batch), report('sdk', sdk)];
    assert.equal(sdkVsBatchPerRound(reports)?.toFixed(2), '0.95');
    assert.equal(sdkVsBatch(reports)?.toFixed(2), '0.63', 'the median of each mode shifts');
    assert.equal(sdkVsBatchPerRound([report('batch', batch)]), null);
  });
});
