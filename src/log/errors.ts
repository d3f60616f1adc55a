/** An offset below the lowest or above the highest readable offset. */
export class OffsetOutOfRangeError extends Error {
  constructor(
    readonly offset: bigint,
    readonly lowest: bigint,
    readonly highest: bigint,
    options?: ErrorOptions,
  ) {
    super(`The requested offset is outside the log's range: ${offset}`, options);
    this.name = 'OffsetOutOfRangeError';
  }
}

/** A record larger than the log's `maxRecordBytes`. */
export class RecordTooLargeError extends Error {
  constructor(
    readonly size: number,
    readonly max: number,
  ) {
    super(`record of ${size} bytes exceeds the maximum of ${max} bytes`);
    this.name = 'RecordTooLargeError';
  }
}

/**
 * Stored bytes that fail their checksum or framing where they cannot be a torn tail:
 * inside a sealed segment, or before valid records of the last one.
 */
export class CorruptSegmentError extends Error {
  constructor(
    readonly file: string,
    readonly position: number,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`corrupt segment file ${file} at byte ${position}: ${reason}`, options);
    this.name = 'CorruptSegmentError';
  }
}

/** The data directory holds files that do not form a log (gaps, strays, lone indexes). */
export class InvalidLogDirectoryError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'InvalidLogDirectoryError';
  }
}

/** An operation on a log that is closed (or closing). */
export class LogClosedError extends Error {
  constructor() {
    super('the log is closed');
    this.name = 'LogClosedError';
  }
}

/**
 * A write to the files failed and could not be undone; the log refuses further
 * writes until reopened (which recovers from the files).
 */
export class LogFailedError extends Error {
  constructor(options?: ErrorOptions) {
    super('the log stopped after a failed write; reopen it to recover', options);
    this.name = 'LogFailedError';
  }
}

/** A configuration value the log cannot work with. */
export class InvalidLogOptionError extends Error {
  constructor(
    readonly option: string,
    reason: string,
  ) {
    super(`invalid log option ${option}: ${reason}`);
    this.name = 'InvalidLogOptionError';
  }
}

/** truncateSuffix would cut records that an open snapshot still reads. */
export class SnapshotConflictError extends Error {
  constructor(
    readonly from: bigint,
    readonly snapshotHighest: bigint,
  ) {
    super(
      `cannot truncate from offset ${from}: an open snapshot reads up to offset ${snapshotHighest}`,
    );
    this.name = 'SnapshotConflictError';
  }
}
