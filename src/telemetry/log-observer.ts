import type { Metrics } from './metrics.js';

/**
 * The storage engine's write hooks (`LogOptions.observer` in src/log, which has the same
 * shape; telemetry does not import the engine). The engine calls them synchronously and
 * does not await them: they must be cheap and must not throw.
 */
export interface LogObserver {
  /** A group-committed write reached the file: `records` (possibly from several appends), `bytes` with framing. */
  appended(records: number, bytes: number): void;
  /** An fsync of a segment finished (a write under `always`, the `interval` timer, a roll). */
  synced(seconds: number): void;
}

/** The observer that feeds a node's storage histograms. */
export function logObserver(metrics: Metrics): LogObserver {
  return {
    appended: (records, bytes) => metrics.appendBatch(records, bytes),
    synced: (seconds) => metrics.fsynced(seconds),
  };
}
