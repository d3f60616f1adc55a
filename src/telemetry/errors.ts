/** A telemetry setting (log level, log format, sample ratio, endpoint) has a bad value. */
export class InvalidTelemetryOptionError extends Error {
  override readonly name = 'InvalidTelemetryOptionError';
  constructor(
    /** The option's name as the operator spells it, e.g. `log-level`. */
    readonly option: string,
    readonly value: unknown,
    /** What would have been accepted, e.g. `one of json, pretty, auto`. */
    readonly expected: string,
    options?: ErrorOptions,
  ) {
    super(`invalid ${option} ${JSON.stringify(value)}: expected ${expected}`, options);
  }
}

/** The trace file given by `--trace-file` cannot be opened or written. */
export class TraceFileError extends Error {
  override readonly name = 'TraceFileError';
  constructor(
    readonly path: string,
    options?: ErrorOptions,
  ) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`cannot write the trace file ${path}${reason}`, options);
  }
}
