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
 * A storage read the driver performs for the core: entries [lo, hi), at most
 * `maxBytes` of data (but at least one entry). `to` is the follower they are for, or
 * this node's own id for committed entries to apply (after a restart, the core holds
 * none of the unapplied tail in memory). The driver answers with
 * RaftCore.entriesLoaded(request, entries) or RaftCore.fetchFailed(request), passing
 * this very object back; the core drops answers that have gone stale. A failed read of
 * entries to apply throws (RaftInvariantError): the node cannot go on.
 */
export interface FetchRequest {
  readonly to: NodeId;
  readonly lo: number;
  readonly hi: number;
  readonly maxBytes: number;
  /** The leader's term when it asked. */
  readonly term: number;
}

/**
 * Work for the driver. Take it with ready(), do it, and call advance(ready) before the
 * next ready(). The fields, in the order the work must be done:
 */
export interface Ready {
  /**
   * Role, leader or term changed. Informational: nothing to persist. Report it to
   * listeners after the messages of this Ready are sent.
   */
  readonly softState?: SoftState;
  /**
   * A snapshot the follower received and must install before `entries`: afterwards
   * the log holds no entry at or below snapshot.lastIndex and the caller's state is
   * the snapshot's. It arrives with the snapshot's data already staged by the driver.
   */
  readonly snapshot?: SnapshotMeta;
  /**
   * Entries to persist, in order, before any message is sent. The first may
   * overwrite a suffix of the stored log: drop stored entries from its index on.
   * Always non-durable until written with `mustSync`.
   */
  readonly entries: readonly Entry[];
  /**
   * Term, vote and commit to persist atomically, before any message is sent, when
   * set (unchanged otherwise). With `mustSync` false only `commit` changed: it may be
   * written without fsync (a lost commit index is learned again from the leader).
   */
  readonly hardState?: HardState;
  /**
   * True when `entries`, `snapshot`, or hardState's term or vote changed: persist them
   * durably (fsync) before sending `messages`.
   */
  readonly mustSync: boolean;
  /**
   * Messages to send after `entries`, `snapshot` and `hardState` are persisted (a
   * leader's appends may go earlier, since the leader counts itself in the quorum only
   * at its durable index; nothing else may). Delivery is best effort.
   */
  readonly messages: readonly Message[];
  /**
   * Committed entries to apply, in order, each exactly once, after `entries` of this
   * Ready are persisted. Applying may run in its own stage, concurrent with the next
   * Readies, as long as the order holds.
   */
  readonly committed: readonly Entry[];
  /** Linearizable reads: serve each once the applied index reaches its `index`. */
  readonly readStates: readonly ReadState[];
  /**
   * Storage reads to start (outside the persist path): entries a follower needs that
   * are no longer in memory. Answer each with entriesLoaded or fetchFailed, at any
   * later time. Empty unless RaftConfig.fetchFromStorage is set.
   */
  readonly fetch: readonly FetchRequest[];
  /** The caller called compact(): storage may drop entries up to compacted.lastIndex. */
  readonly compacted?: SnapshotMeta;
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
