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

/**
 * The agent could not open its log: damage a repair can cut off. The message adds the
 * commands to see and make that repair.
 */
export class DamagedLogError extends Error {
  override readonly name = 'DamagedLogError';
  constructor(
    readonly dataDir: string,
    options: ErrorOptions & { cause: Error },
  ) {
    super(
      `${options.cause.message}\n` +
        `The log cannot be opened as it is. Keep a copy of ${dataDir}, then see what a repair would cut:\n` +
        `  commitlog repair ${dataDir} --dry-run\n` +
        `and cut it with: commitlog repair ${dataDir}\n` +
        'On a cluster member the entries cut come back from the leader; on a single node they are lost (docs/storage.md).',
      options,
    );
  }
}
