// What the leader knows about each follower's log (etcd's tracker.Progress).
//
// probe:     next is a guess; send one append at a time and wait for the answer.
// replicate: next is optimistic; stream appends, up to maxInflight messages and
//            maxInflightBytes of entry data unacknowledged.
// snapshot:  a snapshot is on its way; send nothing until it lands or fails.
//
// Orthogonal to the state: `fetching` is set while the driver reads entries the
// leader no longer holds in memory from storage; nothing is sent to the peer until
// that read answers (or fails).
import type { FetchRequest } from './types.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A ring of the last indexes (and entry bytes) of unacknowledged appends. */
export class Inflights {
  private readonly ring: number[];
  private readonly sizes: number[];
  private start = 0;
  private n = 0;
  private inBytes = 0;

  constructor(
    readonly capacity: number,
    readonly maxBytes: number,
  ) {
    this.ring = new Array<number>(capacity).fill(0);
    this.sizes = new Array<number>(capacity).fill(0);
  }

  get count(): number {
    return this.n;
  }

  /** Entry bytes of the appends in flight. */
  get bytes(): number {
    return this.inBytes;
  }

  /** Full by count, or by bytes (one message may overshoot the byte budget, as in etcd). */
  full(): boolean {
    return this.n >= this.capacity || this.inBytes >= this.maxBytes;
  }

  /** Room left: messages and bytes. */
  freeSlots(): number {
    return this.capacity - this.n;
  }

  freeBytes(): number {
    return Math.max(0, this.maxBytes - this.inBytes);
  }

  add(lastIndex: number, bytes: number): void {
    const at = (this.start + this.n) % this.capacity;
    this.ring[at] = lastIndex;
    this.sizes[at] = bytes;
    this.n++;
    this.inBytes += bytes;
  }

  /** Frees every append whose last index is <= index. */
  freeLE(index: number): void {
    while (this.n > 0 && this.ring[this.start]! <= index) this.freeFirst();
  }

  freeFirst(): void {
    if (this.n === 0) return;
    this.inBytes -= this.sizes[this.start]!;
    this.start = (this.start + 1) % this.capacity;
    this.n--;
  }

  reset(): void {
    this.start = 0;
    this.n = 0;
    this.inBytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** probe: an append is out; wait for its answer (or a heartbeat answer). */
  probeSent = false;
  /** snapshot: the index of the snapshot being sent, and ticks spent waiting on it. */
  pendingSnapshot = 0;
  snapshotTicks = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = true;
  /** A storage read for this peer is outstanding (the very object handed to the driver). */
  fetching: FetchRequest | undefined;
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflight: number,
    maxInflightBytes: number,
    public learner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
  }

  paused(): boolean {
    if (this.fetching) return true;
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
      this.pendingSnapshot = 0;
    } else {
      this.next = this.match + 1;
    }
    this.state = 'probe';
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotTicks = 0;
    this.inflights.reset();
  }

  /** An append of entries up to `last` (carrying `bytes` of data) went out. */
  sentEntries(last: number, bytes: number): void {
    if (this.state === 'replicate') {
      this.next = last + 1;
      this.inflights.add(last, bytes);
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** An accepted append up to index; false when the answer is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejected append at `rejected`; the follower suggests `hint` as its best match.
   * False when the rejection is stale (answers an append we no longer care about).
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }
}
