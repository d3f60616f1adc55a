// The storage engine: a segmented, checksummed, crash-safe append-only log.
// Offsets are bigint at every boundary (unsigned 64-bit, as on the wire).
export { Log, LogSnapshot, type ReadLimits } from './log.js';
export type { StoredRecord } from './segment.js';
export type { RecoveryReport } from './recovery.js';
export {
  parseFsyncPolicy,
  type FsyncPolicy,
  type LogObserver,
  type LogOptions,
} from './options.js';
export {
  CorruptSegmentError,
  InvalidLogDirectoryError,
  InvalidLogOptionError,
  LogClosedError,
  LogFailedError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
  SnapshotConflictError,
} from './errors.js';
