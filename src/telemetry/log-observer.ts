import type { Metrics } from './metrics.js';

/**
 * What the storage engine reports about its writes (`LogOptions.observer`). The engine
 * calls it synchronously and does not await it: an implementation must be cheap and
 * must not throw.
 */
export interface LogObserver {
  /**
   * Once per group-committed write, after it reached the file.
   * @param records records in this write (all appends grouped into it)
   * @param bytes bytes written to the store file, framing included
   */
  onAppendBatch(records: number, bytes: number): void;
  /**
   * Once per fsync of a segment file, whatever triggered it (a write under the
   * `always` policy, the `interval` timer, a segment roll, close).
   */
  onFsync(seconds: number): void;
}

/** The observer that feeds a node's storage histograms. */
export function logObserver(metrics: Metrics): LogObserver {
  return {
    onAppendBatch: (records, bytes) => metrics.appendBatch(records, bytes),
    onFsync: (seconds) => metrics.fsynced(seconds),
  };
}
