// A watermark: a bigint that only moves forward, and a way to wait (no polling) until
// it reaches a value. The log uses one for the commit point its readers stop at; a
// replicated log can use more (Raft's commit index, an applied index).

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

export class Watermark {
  #value: bigint;
  /** Resolved (and replaced) on every change; created only when someone waits. */
  #changed: Deferred | undefined;
  #closed: Error | undefined;

  constructor(initial = 0n) {
    this.#value = initial;
  }

  get value(): bigint {
    return this.#value;
  }

  /** Moves the mark up to `to`; a lower or equal `to` changes nothing. Wakes waiters. */
  advance(to: bigint): void {
    if (to <= this.#value) return;
    this.#value = to;
    this.wake();
  }

  /**
   * Resolves once the mark is at least `v`. Rejects with the signal's reason when it
   * aborts, and with the close reason once the watermark is closed.
   */
  async waitFor(v: bigint, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    while (this.#value < v) {
      if (this.#closed !== undefined) throw this.#closed;
      signal?.throwIfAborted();
      this.#changed ??= deferred();
      await abortable(this.#changed.promise, signal);
    }
  }

  /** Pending and later waits that are not yet satisfied reject with `reason`. */
  close(reason: Error): void {
    this.#closed ??= reason;
    this.wake();
  }

  /** For owners whose mark may legitimately move back (a log cut below it). */
  protected set(to: bigint): void {
    if (to === this.#value) return;
    this.#value = to;
    this.wake();
  }

  private wake(): void {
    const changed = this.#changed;
    if (changed === undefined) return;
    this.#changed = undefined;
    changed.resolve();
  }
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Waits for a never-rejecting promise, or rejects with the signal's reason on abort. */
function abortable(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return promise;
  signal.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
