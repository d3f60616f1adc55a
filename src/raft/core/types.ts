// The data the Raft core exchanges with its driver. Indexes and terms are plain
// numbers: safe integers (<= 2^53 - 1), which the codec checks at the boundary. A log
// that grows by a million entries per second takes 285 years to reach that bound,
// and numbers keep the hot path free of bigint arithmetic.

/** A node's stable identity (not its address, which may change). */
export type NodeId = string;

/** "No node": no vote cast, no leader known. */
export const NONE: NodeId = '';

/** `noop` opens each leader's term; `config` carries a whole {@link ConfState}. */
export type EntryType = 'normal' | 'noop' | 'config';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** A cluster configuration. Learners receive the log but neither vote nor count. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** Address hints (for NotLeader answers and transports); may be incomplete. */
  readonly addresses: Readonly<Record<NodeId, string>>;
}

/** What a snapshot stands for: the state after applying every entry up to lastIndex. */
export interface SnapshotMeta {
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly config: ConfState;
}

/** Persisted atomically and durably before any message that depends on it is sent. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state, reported when it changes. */
export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId;
  readonly term: number;
}

/** A read request `context` may be served once the applied index reaches `index`. */
export interface ReadState {
  readonly context: number;
  readonly index: number;
}

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** RequestVote; `pre` marks a pre-vote (its term is the term the sender would use). */
export interface VoteMessage extends Envelope {
  readonly type: 'vote';
  readonly pre: boolean;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Set by a leadership transfer: voters grant it even while they hear a leader. */
  readonly force: boolean;
}

export interface VoteResponse extends Envelope {
  readonly type: 'voteResp';
  readonly pre: boolean;
  readonly reject: boolean;
}

export interface AppendMessage extends Envelope {
  readonly type: 'append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * Accepted: `index` is the follower's last index known to match the leader. Rejected:
 * `index` is the rejected prevIndex and (hintIndex, hintTerm) lets the leader skip a
 * whole conflicting term at once (fast back-off).
 */
export interface AppendResponse extends Envelope {
  readonly type: 'appendResp';
  readonly index: number;
  readonly reject: boolean;
  readonly hintIndex: number;
  readonly hintTerm: number;
}

/** `context` is a ReadIndex round (0: none); followers echo it back. */
export interface HeartbeatMessage extends Envelope {
  readonly type: 'heartbeat';
  readonly commit: number;
  readonly context: number;
}

export interface HeartbeatResponse extends Envelope {
  readonly type: 'heartbeatResp';
  readonly context: number;
}

/** InstallSnapshot as the core sees it; the driver streams the data in chunks. */
export interface SnapshotMessage extends Envelope {
  readonly type: 'snapshot';
  readonly meta: SnapshotMeta;
}

/** Leadership transfer: the recipient campaigns at once. */
export interface TimeoutNowMessage extends Envelope {
  readonly type: 'timeoutNow';
}

export type Message =
  | VoteMessage
  | VoteResponse
  | AppendMessage
  | AppendResponse
  | HeartbeatMessage
  | HeartbeatResponse
  | SnapshotMessage
  | TimeoutNowMessage;

/**
 * Work for the driver, in this order: install `snapshot`, persist `entries` (the first
 * may overwrite a suffix: drop stored entries from its index on) and `hardState`, then
 * send `messages`, then apply `committed`, serve `readStates`, let storage drop
 * entries up to `compacted`, and call `advance(ready)`.
 */
export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly snapshot?: SnapshotMeta;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly committed: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly compacted?: SnapshotMeta;
  /** True when hardState's term/vote or entries changed: persist with fsync. */
  readonly mustSync: boolean;
}

/** What a restarting core needs; `entries` is the stored tail from applied+1 (or earlier). */
export interface RestoreState {
  readonly hardState: HardState;
  /** The compaction point: entries up to lastIndex are gone (lastIndex 0: none). */
  readonly snapshot: SnapshotMeta;
  readonly lastIndex: number;
  /** Run-length terms: [index, term] pairs, each the first index of a term, ascending. */
  readonly termRuns: readonly (readonly [number, number])[];
  /** Configuration entries after the snapshot, ascending. */
  readonly configs: readonly { readonly index: number; readonly config: ConfState }[];
  readonly entries: readonly Entry[];
  /** The index the caller's state machine has applied (>= snapshot.lastIndex). */
  readonly applied: number;
}

export type ConfChange =
  | { readonly type: 'addLearner'; readonly id: NodeId; readonly address?: string }
  | { readonly type: 'promote'; readonly id: NodeId }
  | { readonly type: 'remove'; readonly id: NodeId };

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: RefusalReason; readonly leader: NodeId };

/**
 * notLeader: this node does not lead; transferring: a leadership transfer is under
 * way; confPending: a configuration change is not committed yet (or the leader has
 * not committed its first entry); invalidConf: the change makes no sense.
 */
export type RefusalReason = 'notLeader' | 'transferring' | 'confPending' | 'invalidConf';
