/**
 * The suspicion timer of one member (Lifeguard). It starts at `max` and shrinks towards
 * `min` as k independent members confirm the suspicion: after n confirmations the
 * timeout is max - log(n+1)/log(k+1) × (max - min), never below min. The member that
 * raised the suspicion is counted up front, because our own suspect message can be
 * gossiped back to us and must not count as a confirmation.
 */
export class Suspicion {
  private confirmations = 0;
  private lastChanceTaken = false;
  private readonly seen = new Set<string>();
  /** When the member is declared dead, in ms on the caller's clock. */
  deadline: number;

  constructor(
    from: string,
    private readonly k: number,
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly startedAt: number,
  ) {
    this.seen.add(from);
    // With nobody able to confirm, waiting for confirmations is pointless.
    this.deadline = startedAt + (k < 1 ? minMs : maxMs);
  }

  /** Records a confirmation; true if it was new (and so worth re-broadcasting). */
  confirm(from: string): boolean {
    if (this.confirmations >= this.k) return false;
    if (this.seen.has(from)) return false;
    this.seen.add(from);
    this.confirmations++;
    this.deadline =
      this.startedAt + timeoutAfter(this.confirmations, this.k, this.minMs, this.maxMs);
    return true;
  }

  /**
   * True the first time the timer runs out: the caller then probes the member a last time
   * before declaring it dead, in case only we missed its refutation.
   */
  takeLastChance(): boolean {
    if (this.lastChanceTaken) return false;
    this.lastChanceTaken = true;
    return true;
  }

  confirmationCount(): number {
    return this.confirmations;
  }
}

/** Total suspicion timeout after n of k wanted confirmations. */
export function timeoutAfter(n: number, k: number, minMs: number, maxMs: number): number {
  if (k <= 0) return minMs;
  const frac = Math.log(n + 1) / Math.log(k + 1);
  const raw = Math.floor(maxMs - frac * (maxMs - minMs));
  return Math.max(minMs, raw);
}
