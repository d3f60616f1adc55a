/** One piece of news about a member, already encoded as one message. */
interface Broadcast {
  /** The member the news is about: newer news about it replaces older. */
  readonly member: string;
  readonly message: Uint8Array;
  readonly id: number;
  transmits: number;
}

/**
 * Messages waiting to be piggybacked on outgoing packets, each sent a bounded number of
 * times (memberlist's TransmitLimitedQueue). The least-sent messages go first, newer
 * before older among equals; a message is dropped once it was sent `limit` times or
 * when newer news about the same member arrives.
 */
export class BroadcastQueue {
  private items: Broadcast[] = [];
  private nextId = 1;

  /** Queues news about `member`, dropping older news about it; returns its id. */
  enqueue(member: string, message: Uint8Array): number {
    this.items = this.items.filter((b) => b.member !== member);
    const id = this.nextId++;
    this.items.push({ member, message, id, transmits: 0 });
    return id;
  }

  /** True while the broadcast with this id is still waiting to be sent (again). */
  has(id: number): boolean {
    return this.items.some((b) => b.id === id);
  }

  hasNewsAbout(member: string): boolean {
    return this.items.some((b) => b.member === member);
  }

  size(): number {
    return this.items.length;
  }

  /**
   * Takes messages that fit into `budget` bytes, counting `overhead` extra bytes per
   * message, and counts one transmission for each; `limit` is the retransmit limit.
   */
  take(overhead: number, budget: number, limit: number, maxCount: number): Uint8Array[] {
    if (this.items.length === 0) return [];
    this.items.sort((x, y) => x.transmits - y.transmits || y.id - x.id);
    const out: Uint8Array[] = [];
    let used = 0;
    for (const b of this.items) {
      if (out.length >= maxCount) break;
      const cost = overhead + b.message.length;
      if (used + cost > budget) continue;
      used += cost;
      b.transmits++;
      out.push(b.message);
    }
    this.items = this.items.filter((b) => b.transmits < limit);
    return out;
  }
}
