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
