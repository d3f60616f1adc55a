/**
 * Local health (Lifeguard): a score in [0, max-1] that rises when this member misses
 * acks it should have had or is accused of failing, and falls on each successful probe.
 * Timeouts are stretched by (score + 1), so a slow member waits longer before it
 * suspects others instead of flooding the cluster with false suspicions.
 */
export class Awareness {
  private score = 0;

  constructor(private readonly max: number) {}

  applyDelta(delta: number): void {
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta));
  }

  getScore(): number {
    return this.score;
  }

  scaleTimeout(ms: number): number {
    return ms * (this.score + 1);
  }
}
