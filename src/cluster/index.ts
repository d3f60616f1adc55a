// The replicated log: Raft over the storage engine, membership turned into Raft
// configuration changes.
export { ReplicatedLog } from './replicated-log.js';
export type {
  ReplicatedLogOptions,
  CommittedRecord,
  LeaderHint,
  ServerInfo,
  ReadOptions,
} from './replicated-log.js';
export { reconcile } from './membership-sync.js';
export type { ClusterMember, ReconcileOptions, LeaderView } from './membership-sync.js';
export {
  AlreadyBootstrappedError,
  AmbiguousMemberError,
  UnknownMemberError,
  ClusterMismatchError,
  DuplicateNodeNameError,
  JoinTimeoutError,
  EntryCodecError,
  NoLeaderError,
  RecordOutOfRangeError,
  ReplicatedLogClosedError,
  StateFileError,
} from './errors.js';
export { MembershipLoop, clusterMembers, TAGS } from './membership-loop.js';
export type { MembershipLoopOptions } from './membership-loop.js';
export {
  loadIdentity,
  saveIdentity,
  bootstrapIdentity,
  joinIdentity,
  newRaftId,
  nodeNameOf,
} from './identity.js';
export type { NodeIdentity } from './identity.js';
