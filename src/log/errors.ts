/** An offset below the lowest or above the highest readable offset. */
export class OffsetOutOfRangeError extends Error {
  override readonly name = 'OffsetOutOfRangeError';
  constructor(
    readonly offset: bigint,
    readonly lowest: bigint,
    readonly highest: bigint,
    options?: ErrorOptions,
  ) {
    super(`The requested offset is outside the log's range: ${offset}`, options);
  }
}

/** A record larger than the log's `maxRecordBytes`. */
export class RecordTooLargeError extends Error {
  override readonly name = 'RecordTooLargeError';
  constructor(
    readonly size: number,
    readonly max: number,
    options?: ErrorOptions,
  ) {
    super(`record of ${size} bytes exceeds the maximum of ${max} bytes`, options);
  }
}

/**
 * Stored bytes that fail their checksum or framing where they cannot be a torn tail:
 * inside a sealed segment, or before valid records of the last one.
 */
export class CorruptSegmentError extends Error {
  override readonly name = 'CorruptSegmentError';
  constructor(
    readonly file: string,
    readonly position: number,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`corrupt segment file ${file} at byte ${position}: ${reason}`, options);
  }
}

/** The data directory holds files that do not form a log (gaps, strays, lone indexes). */
export class InvalidLogDirectoryError extends Error {
  override readonly name = 'InvalidLogDirectoryError';
  constructor(
    readonly file: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${reason}`, options);
  }
}

/** An operation on a log that is closed (or closing). */
export class LogClosedError extends Error {
  override readonly name = 'LogClosedError';
  constructor(options?: ErrorOptions) {
    super('the log is closed', options);
  }
}

/**
 * A write, fsync or file operation failed; the log refuses further writes until
 * reopened (which recovers every acknowledged record from the files). `cause` is the
 * I/O error, or an AggregateError of it and the error of undoing the partial write.
 */
export class LogFailedError extends Error {
  override readonly name = 'LogFailedError';
  constructor(options?: ErrorOptions) {
    super(
      `the log stopped after a failed write${describeCause(options?.cause)}; reopen it to recover`,
      options,
    );
  }
}

/** A configuration value (or a call the configuration does not allow). */
export class InvalidLogOptionError extends Error {
  override readonly name = 'InvalidLogOptionError';
  constructor(
    readonly option: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`invalid log option ${option}: ${reason}`, options);
  }
}

/** truncateSuffix would cut records that an open snapshot still reads. */
export class SnapshotConflictError extends Error {
  override readonly name = 'SnapshotConflictError';
  constructor(
    readonly from: bigint,
    readonly snapshotHighest: bigint,
    options?: ErrorOptions,
  ) {
    super(
      `cannot truncate from offset ${from}: an open snapshot reads up to offset ${snapshotHighest}`,
      options,
    );
  }
}

/** An append with `expectFirst` found the log's next offset elsewhere; nothing was written. */
export class OffsetConflictError extends Error {
  override readonly name = 'OffsetConflictError';
  constructor(
    readonly expected: bigint,
    readonly actual: bigint,
    options?: ErrorOptions,
  ) {
    super(`expected to append at offset ${expected}, but the next offset is ${actual}`, options);
  }
}

/** truncateSuffix or resetTo would drop committed records (below `committedEnd`). */
export class CommittedRecordsError extends Error {
  override readonly name = 'CommittedRecordsError';
  constructor(
    readonly from: bigint,
    readonly committedEnd: bigint,
    options?: ErrorOptions,
  ) {
    super(
      `cannot drop records from offset ${from}: offsets below ${committedEnd} are committed`,
      options,
    );
  }
}

/** commit(end) beyond what the log holds durably. */
export class CommitOutOfRangeError extends Error {
  override readonly name = 'CommitOutOfRangeError';
  constructor(
    readonly end: bigint,
    readonly durableEnd: bigint,
    options?: ErrorOptions,
  ) {
    super(
      `cannot commit up to offset ${end}: the log holds offsets below ${durableEnd} durably`,
      options,
    );
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof AggregateError) {
    return `: ${cause.errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')}`;
  }
  return cause instanceof Error ? `: ${cause.message}` : '';
}

/**
 * The device holding the log is full (ENOSPC, or EDQUOT: over quota): the records of the
 * refused appends were cut back off the files, and the log takes appends again once
 * there is space. `cause` is the I/O error.
 */
export class DiskFullError extends Error {
  override readonly name = 'DiskFullError';
  constructor(
    readonly dir: string,
    options?: ErrorOptions,
  ) {
    super(
      `no space left on the device holding ${dir}: the records were not written; free space or grow the volume, then retry`,
      options,
    );
  }
}
