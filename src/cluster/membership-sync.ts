// Membership drives Raft's configuration. Gossip says who is around; only the Raft
// leader changes the configuration, one change at a time, towards the live members:
//   - a member not in the configuration joins as a learner,
//   - a learner that has caught up is promoted to voter,
//   - a member that left gracefully is removed,
//   - a failed voter is KEPT (removing it on a partition would shrink the quorum under
//     the cluster's feet) unless the optional reap timeout passed and enough voters remain,
//   - an id superseded by its own node (the node came back wiped, under the same name and
//     a new id) is removed once enough voters remain: that id's log is gone for good, and
//     gossip, which knows members by name, no longer reports it at all.
// `reconcile` is pure; the replicated log runs it on every member event, on every
// leadership change and on a timer, so no event is lost when leadership moves.
import type { ConfChange, ConfState, NodeId } from '../raft/index.js';

import { nodeNameOf } from './identity.js';

/** What the reconcile loop needs to know of a gossip member. */
export interface ClusterMember {
  readonly raftId: NodeId;
  readonly rpcAddr: string;
  readonly status: 'alive' | 'suspect' | 'dead' | 'left';
  /** When the member was first seen dead (ms, the caller's clock); for reaping. */
  readonly deadSince?: number;
}

export interface ReconcileOptions {
  /** A learner is promoted once its match index is within this many entries of the leader's last. */
  readonly promoteWithin: number;
  /** Remove a voter dead for this long (ms); undefined: never (an operator removes it). */
  readonly reapAfterMs?: number;
  /** Never reap below this many voters. */
  readonly minVoters: number;
  readonly now: number;
}

export interface LeaderView {
  readonly self: NodeId;
  readonly conf: ConfState;
  readonly lastIndex: number;
  /** Match index per peer, as the leader tracks it. */
  readonly match: ReadonlyMap<NodeId, number>;
}

export function reconcile(
  members: readonly ClusterMember[],
  leader: LeaderView,
  o: ReconcileOptions,
): ConfChange | undefined {
  const { conf, self } = leader;
  const inConf = (id: NodeId): boolean => conf.voters.includes(id) || conf.learners.includes(id);
  const byId = new Map(members.map((m) => [m.raftId, m]));

  // Removals first: a member that left should not hold a quorum slot a moment longer.
  for (const m of members) {
    if (m.status === 'left' && m.raftId !== self && inConf(m.raftId))
      return { type: 'remove', id: m.raftId };
  }
  for (const m of members) {
    if ((m.status === 'alive' || m.status === 'suspect') && !inConf(m.raftId))
      return { type: 'addLearner', id: m.raftId, address: m.rpcAddr };
  }
  for (const id of conf.learners) {
    const m = byId.get(id);
    if (m?.status !== 'alive') continue;
    const match = leader.match.get(id) ?? 0;
    if (match > 0 && leader.lastIndex - match <= o.promoteWithin) return { type: 'promote', id };
  }
  // The replacement joins and is promoted first (above), so removing the old id does not
  // take the voters below the minimum.
  const liveIdOfName = new Map(
    members
      .filter((m) => m.status === 'alive' || m.status === 'suspect')
      .map((m) => [nodeNameOf(m.raftId), m.raftId]),
  );
  const superseded = (id: NodeId): boolean => {
    const current = liveIdOfName.get(nodeNameOf(id));
    return id !== self && !byId.has(id) && current !== undefined && current !== id;
  };
  for (const id of conf.learners) if (superseded(id)) return { type: 'remove', id };
  for (const id of conf.voters) {
    if (superseded(id) && conf.voters.length - 1 >= o.minVoters) return { type: 'remove', id };
  }
  if (o.reapAfterMs !== undefined) {
    for (const id of conf.voters) {
      const m = byId.get(id);
      if (id === self || m?.status !== 'dead' || m.deadSince === undefined) continue;
      if (o.now - m.deadSince >= o.reapAfterMs && conf.voters.length - 1 >= o.minVoters)
        return { type: 'remove', id };
    }
  }
  return undefined;
}
