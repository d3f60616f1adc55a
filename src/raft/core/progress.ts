// What the leader knows about each follower's log (etcd's tracker.Progress).
//
// probe:     next is a guess; send one append at a time and wait for the answer.
// replicate: next is optimistic; stream appends, up to maxInflight unacknowledged.
// snapshot:  a snapshot is on its way; send nothing until it lands or fails.
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A ring of the last indexes of unacknowledged appends. */
export class Inflights {
  private readonly ring: number[];
  private start = 0;
  count = 0;

  constructor(readonly capacity: number) {
    this.ring = new Array<number>(capacity).fill(0);
  }

  full(): boolean {
    return this.count >= this.capacity;
  }

  add(lastIndex: number): void {
    this.ring[(this.start + this.count) % this.capacity] = lastIndex;
    this.count++;
  }

  /** Frees every append whose last index is <= index. */
  freeLE(index: number): void {
    while (this.count > 0 && this.ring[this.start]! <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  freeFirst(): void {
    if (this.count === 0) return;
    this.start = (this.start + 1) % this.capacity;
    this.count--;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
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
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflight: number,
    public learner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  paused(): boolean {
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
