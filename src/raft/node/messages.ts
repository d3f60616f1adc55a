import type { Message, NodeId, SnapshotMeta } from '../core/index.js';

/**
 * One piece of an InstallSnapshot stream. The leader's snapshot port supplies the
 * data in order; `offset` is the byte offset of `data` in the stream, and the last
 * chunk has `done` set. The follower answers each chunk with a SnapshotAck; the leader
 * keeps a few chunks unacknowledged at most (backpressure) and resends from the
 * acknowledged offset when a chunk is lost (resume, not restart).
 */
export interface SnapshotChunk {
  readonly type: 'snapshotChunk';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

/**
 * The follower holds the bytes [0, offset) of the snapshot at `lastIndex` (written to
 * its sink). `done`: the whole stream is staged. Duplicate or out-of-order chunks are
 * answered with the offset expected next, which makes the leader resend from there.
 */
export interface SnapshotAck {
  readonly type: 'snapshotAck';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly lastIndex: number;
  readonly offset: number;
  readonly done: boolean;
}

/** Everything a transport carries between Raft nodes. */
export type WireMessage = Exclude<Message, { type: 'snapshot' }> | SnapshotChunk | SnapshotAck;
