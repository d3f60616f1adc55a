// A monotonic bigint that readers wait on: the commit index as an exclusive end.
export class Watermark {
  private waiters: { at: bigint; resolve: () => void }[] = [];

  constructor(private current: bigint) {}

  get value(): bigint {
    return this.current;
  }

  advance(to: bigint): void {
    if (to <= this.current) return;
    this.current = to;
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.at < to) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** Resets after the log was replaced (a snapshot install moves the base forward). */
  reset(to: bigint): void {
    this.current = to;
    this.wakeAll();
  }

  /** Resolves once value > at (the entry at `at` is below the mark). */
  waitAbove(at: bigint, signal?: AbortSignal): Promise<void> {
    if (at < this.current) return Promise.resolve();
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      const waiter = {
        at,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Wakes every waiter (on close: they re-check and see the log is closed). */
  wakeAll(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve();
  }
}
