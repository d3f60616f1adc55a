// The storage engine: a segmented, checksummed, crash-safe append-only log.
// Offsets are bigint at every boundary (unsigned 64-bit, as on the wire).
export { Log, LogSnapshot, type AppendOptions, type ReadLimits } from './log.js';
export { Watermark } from './watermark.js';
export type { StoredRecord } from './segment.js';
export { describeTruncation, type RecoveryReport, type Truncation } from './recovery.js';
export {
  applyRepair,
  describeRepair,
  planRepair,
  type RepairOptions,
  type RepairPlan,
} from './repair.js';
export { nodeLogFs, type LogFileHandle, type LogFs, type LogOpenFlags } from './fs.js';
export {
  parseFsyncPolicy,
  type FsyncPolicy,
  type LogObserver,
  type LogOptions,
} from './options.js';
export {
  CommitOutOfRangeError,
  CommittedRecordsError,
  CorruptSegmentError,
  DiskFullError,
  InvalidLogDirectoryError,
  InvalidLogOptionError,
  LogClosedError,
  LogFailedError,
  OffsetConflictError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
  SnapshotConflictError,
} from './errors.js';
