import type { Message, NodeId, SnapshotMeta } from '../core/index.js';

/**
 * One piece of an InstallSnapshot stream. The leader's snapshot port supplies the
 * data in order; `offset` is the byte offset of `data` in the stream, and the last
 * chunk has `done` set. A follower that misses a chunk drops the transfer; the leader
 * retries after its snapshot timeout.
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

/** Everything a transport carries between Raft nodes. */
export type WireMessage = Exclude<Message, { type: 'snapshot' }> | SnapshotChunk;
