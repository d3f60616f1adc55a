// Waiting in tests: every wait has a deadline and names what it waited for, so a hung
// test fails with a reason instead of timing out the whole run.
import type { EventEmitter } from 'node:events';

/** Rejects with a message naming `what` if `promise` takes longer than `ms`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface UntilOptions {
  /** Deadline (default 5000 ms). */
  ms?: number;
  /** What is awaited, for the timeout message. */
  what: string;
  /** How often `pred` is asked (default 10 ms). */
  everyMs?: number;
}

/**
 * Resolves with the first truthy value of `pred` (sync or async); for state that
 * raises no event. Rejects after `ms`, naming `what` (and the last error `pred` threw).
 */
export async function until<T>(
  pred: () => T | Promise<T>,
  { ms = 5000, what, everyMs = 10 }: UntilOptions,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await pred();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${ms} ms: ${what}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * The first `event` of `emitter` whose arguments satisfy `match` (default: any),
 * within `ms`. Resolves with the arguments.
 */
export function nextEvent<A extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  event: string,
  match: (...args: A) => boolean = () => true,
  ms = 5000,
): Promise<A> {
  let listener: ((...args: A) => void) | undefined;
  const seen = new Promise<A>((resolve) => {
    listener = (...args: A) => {
      if (match(...args)) resolve(args);
    };
    emitter.on(event, listener as (...args: unknown[]) => void);
  });
  return within(ms, `event ${event}`, seen).finally(() =>
    emitter.off(event, listener as (...args: unknown[]) => void),
  );
}

export interface SettledOptions {
  /** Deadline for the value to stop changing (default 10 s). */
  ms?: number;
  /** How often the value is read (default 20 ms). */
  everyMs?: number;
}

/**
 * Resolves with `read()` once it has not changed for `quietMs`: for asserting that
 * something stopped (a paused consumer stops the server reading). It measures the
 * absence of progress, so it is timed by nature; the deadline bounds it.
 */
export async function settled(
  read: () => number,
  quietMs: number,
  { ms = 10_000, everyMs = 20 }: SettledOptions = {},
): Promise<number> {
  const deadline = Date.now() + ms;
  let last = read();
  let since = Date.now();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, everyMs));
    const now = read();
    if (now !== last) [last, since] = [now, Date.now()];
    else if (Date.now() - since >= quietMs) return now;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${ms} ms: value still changing (last ${now})`);
    }
  }
}
