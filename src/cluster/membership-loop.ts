// Runs `reconcile` on the leader: on every gossip event, on every leadership change and
// on a timer (so a change missed while another node led is still made), one change at
// a time. Gossip members carry their Raft id, RPC address and cluster id as tags.
import type { MemberView, Membership } from '../membership/index.js';
import type { ConfChange } from '../raft/index.js';

import type { ClusterMember } from './membership-sync.js';
import type { ReplicatedLog } from './replicated-log.js';

/** The gossip tags a member announces. */
export const TAGS = { raftId: 'raft_id', rpcAddr: 'rpc_addr', clusterId: 'cluster_id' } as const;

export interface MembershipLoopOptions {
  readonly intervalMs?: number;
  readonly promoteWithin?: number;
  readonly reapAfterMs?: number;
  readonly minVoters?: number;
  /** Told about every change made, and every failure (the loop retries). */
  readonly onChange?: (change: ConfChange) => void;
  readonly onError?: (err: Error) => void;
}

/** The gossip members that belong to `clusterId`, as reconcile sees them. */
export function clusterMembers(
  views: readonly MemberView[],
  clusterId: string,
  deadSince: ReadonlyMap<string, number>,
): ClusterMember[] {
  const out: ClusterMember[] = [];
  for (const v of views) {
    const raftId = v.tags[TAGS.raftId];
    const rpcAddr = v.tags[TAGS.rpcAddr];
    if (!raftId || !rpcAddr || v.tags[TAGS.clusterId] !== clusterId) continue;
    const since = deadSince.get(raftId);
    out.push({
      raftId,
      rpcAddr,
      status: v.status,
      ...(since !== undefined ? { deadSince: since } : {}),
    });
  }
  return out;
}

export class MembershipLoop {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running = false;
  private again = false;
  private closed = false;
  private readonly deadSince = new Map<string, number>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly log: ReplicatedLog,
    private readonly membership: Membership,
    private readonly clusterId: string,
    private readonly o: MembershipLoopOptions = {},
  ) {}

  start(): void {
    const onEvent = (): void => this.kick();
    this.membership.on('event', onEvent);
    this.unsubscribe.push(() => this.membership.off('event', onEvent));
    this.unsubscribe.push(this.log.onLeaderChange(() => this.kick()));
    this.timer = setInterval(() => this.kick(), this.o.intervalMs ?? 1000);
    this.timer.unref();
    this.kick();
  }

  /** Runs reconcile until nothing is left to change (or this node stops leading). */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.run().finally(() => {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async run(): Promise<void> {
    for (let k = 0; k < 16 && !this.closed; k++) {
      const views = this.membership.members();
      const now = Date.now();
      for (const v of views) {
        const id = v.tags[TAGS.raftId];
        if (!id) continue;
        if (v.status === 'dead') {
          if (!this.deadSince.has(id)) this.deadSince.set(id, now);
        } else this.deadSince.delete(id);
      }
      let change: ConfChange | undefined;
      try {
        change = await this.log.reconcile(clusterMembers(views, this.clusterId, this.deadSince), {
          promoteWithin: this.o.promoteWithin ?? 1000,
          minVoters: this.o.minVoters ?? 3,
          ...(this.o.reapAfterMs !== undefined ? { reapAfterMs: this.o.reapAfterMs } : {}),
          now,
        });
      } catch (err) {
        this.o.onError?.(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (!change) return;
      this.o.onChange?.(change);
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const u of this.unsubscribe) u();
  }
}
