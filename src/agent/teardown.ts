// A stack of undo actions (Node 20 has no AsyncDisposableStack): each start step
// defers how it is undone; close() runs them in reverse, every one even when some
// fail, and rejects with all their errors.

/** What a step can defer: a disposable, or a function that undoes something. */
export type Deferred = AsyncDisposable | Disposable | (() => unknown);

/** Some undo actions failed; `errors` holds each failure, last deferred first. */
export class TeardownError extends AggregateError {
  override readonly name = 'TeardownError';
  constructor(errors: unknown[], options?: ErrorOptions) {
    super(errors, `${errors.length} step(s) failed to close`, options);
  }
}

export class Teardown implements AsyncDisposable {
  private readonly stack: (() => unknown)[] = [];
  private closing: Promise<void> | undefined;

  /** Registers an undo action; refused (TeardownClosedError) once close() has begun. */
  defer(d: Deferred): void {
    const undo =
      typeof d === 'function'
        ? d
        : Symbol.asyncDispose in d
          ? () => d[Symbol.asyncDispose]()
          : () => d[Symbol.dispose]();
    if (this.closing) throw new TeardownClosedError();
    this.stack.push(undo);
  }

  /** Undoes everything in reverse order; idempotent (later calls get the same outcome). */
  close(): Promise<void> {
    this.closing ??= this.unwind();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async unwind(): Promise<void> {
    const errors: unknown[] = [];
    for (let undo = this.stack.pop(); undo !== undefined; undo = this.stack.pop()) {
      try {
        await undo();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new TeardownError(errors);
  }
}

/** Something was deferred after the teardown began: it would never be undone. */
export class TeardownClosedError extends Error {
  override readonly name = 'TeardownClosedError';
  constructor(options?: ErrorOptions) {
    super('cannot defer: the teardown has already begun', options);
  }
}
