/** A client command was given a bad option or argument (exit code 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    /** The option or argument at fault, without dashes (`count`, `cert-file`). */
    readonly option: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`${option}: ${reason}`, options);
  }
}

/** The agent stopped because a part failed beyond repair while running (exit code 1). */
export class NodeFailedError extends Error {
  override readonly name = 'NodeFailedError';
  constructor(cause: Error) {
    super(
      `commitlog: the node stopped: ${cause.message}` +
        (cause.cause instanceof Error ? ` (${cause.cause.message})` : '') +
        '; its data is intact, restart it once the cause is fixed',
      { cause },
    );
  }
}
