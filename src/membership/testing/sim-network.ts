import { Random } from '../core/random.js';

interface Scheduled {
  at: number;
  order: number;
  run: () => void;
}

/** Simulated time: a queue of callbacks ordered by time, then by insertion (deterministic). */
export class SimClock {
  now = 0;
  private heap: Scheduled[] = [];
  private order = 0;

  schedule(at: number, run: () => void): void {
    const item = { at: Math.max(at, this.now), order: this.order++, run };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, h[parent] as Scheduled)) break;
      h[i] = h[parent] as Scheduled;
      i = parent;
    }
    h[i] = item;
  }

  /** Runs callbacks in order until `until` (inclusive) or `stop()` returns true. */
  runUntil(until: number, stop?: () => boolean): boolean {
    while (this.heap.length > 0) {
      const top = this.heap[0] as Scheduled;
      if (top.at > until) break;
      this.pop();
      this.now = top.at;
      top.run();
      if (stop?.()) return true;
    }
    this.now = Math.max(this.now, until);
    return stop?.() ?? false;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Scheduled;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let best = last;
      if (l < h.length && before(h[l] as Scheduled, best)) {
        m = l;
        best = h[l] as Scheduled;
      }
      if (r < h.length && before(h[r] as Scheduled, best)) {
        m = r;
        best = h[r] as Scheduled;
      }
      if (m === i) break;
      h[i] = h[m] as Scheduled;
      i = m;
    }
    h[i] = last;
  }
}

const before = (a: Scheduled, b: Scheduled): boolean =>
  a.at < b.at || (a.at === b.at && a.order < b.order);

export interface NetworkOptions {
  /** Probability that one UDP packet is lost. */
  loss: number;
  minDelayMs: number;
  maxDelayMs: number;
  /** Probability that a UDP packet is delivered twice. */
  duplicate: number;
}

/**
 * A seeded in-memory network between addresses: random delay (which also reorders),
 * loss and duplication for datagrams, and partitions that cut both datagrams and
 * streams. Streams (TCP) are reliable while the link is up.
 */
export class SimNetwork {
  private readonly random: Random;
  /** Partition group of each address; addresses in different groups cannot talk. */
  private readonly group = new Map<string, number>();
  packetsDropped = 0;
  packetsDelivered = 0;

  constructor(
    readonly clock: SimClock,
    seed: number,
    public options: NetworkOptions,
  ) {
    this.random = new Random(seed ^ 0x5eed);
  }

  canTalk(a: string, b: string): boolean {
    return (this.group.get(a) ?? 0) === (this.group.get(b) ?? 0);
  }

  /** Cuts `addresses` off from everybody else. */
  isolate(addresses: readonly string[]): void {
    for (const a of addresses) this.group.set(a, 1);
  }

  heal(): void {
    this.group.clear();
  }

  delay(): number {
    const { minDelayMs, maxDelayMs } = this.options;
    return minDelayMs + this.random.next() * (maxDelayMs - minDelayMs);
  }

  /** Sends a datagram; `deliver` runs at arrival unless the packet is lost or cut. */
  sendPacket(from: string, to: string, deliver: () => void): void {
    const copies = this.random.next() < this.options.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (!this.canTalk(from, to) || this.random.next() < this.options.loss) {
        this.packetsDropped++;
        continue;
      }
      this.clock.schedule(this.clock.now + this.delay(), () => {
        if (!this.canTalk(from, to)) {
          this.packetsDropped++;
          return;
        }
        this.packetsDelivered++;
        deliver();
      });
    }
  }
}
