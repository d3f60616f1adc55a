// The server's ports: what it needs from a log, from a cluster and from a forwarder.
// The agent passes the single-node storage engine (through a small adapter) or the
// replicated log here; the server never imports them, and their errors reach the
// status table through rows the agent registers (errors.ts).

/**
 * One committed record, as the server sends it. `value` may be a view into a larger
 * buffer. `wire`, when the log has it, is the record's stored protobuf `Record` bytes
 * WITHOUT the offset field (field 2): the codec copies them and appends the offset, so
 * a consume sends what is on disk without decoding it (protobuf keeps the last value
 * of a repeated scalar field). When `wire` is given it must encode `value` and `term`.
 */
export interface CommittedRecord {
  offset: bigint;
  value: Buffer;
  /** The Raft term of the entry that carried the record; 0 on a single node. */
  term: bigint;
  wire?: Buffer;
}

/**
 * 'local' answers from this node's committed data (a follower may lag); 'linearizable'
 * first confirms with a quorum that this node has everything committed so far.
 */
export type ReadConsistency = 'local' | 'linearizable';

export interface ReadBatchOptions {
  signal?: AbortSignal;
  maxRecords?: number;
  maxBytes?: number;
}

export interface CommitLog {
  /**
   * Appends `values` (at least one) as consecutive records and resolves with the first
   * offset once they are committed (a cluster: by a quorum) or durable (a single node:
   * by its fsync policy). Rejects without appending when the node cannot take writes
   * (for example a follower: see `ApiServerOptions.notLeader`). An abort of `signal`
   * stops waiting; whether the records land is then unknown.
   */
  append(values: readonly Uint8Array[], o?: { signal?: AbortSignal }): Promise<bigint>;
  /** A committed record; rejects with the log's out-of-range error past either end. */
  read(offset: bigint, o?: { consistency?: ReadConsistency }): Promise<CommittedRecord>;
  /**
   * Batches of consecutive committed records from `from` on (each at least one record,
   * within the limits); when caught up, waits for more. Ends when `signal` aborts or
   * the log closes.
   */
  readBatchesFrom(from: bigint, o?: ReadBatchOptions): AsyncIterable<CommittedRecord[]>;
  /**
   * The offset the next committed record will get (one past the last committed); a
   * live tail tells its client this. Absent: the tail does not say.
   */
  readonly endOffset?: bigint;
}

/** One node as GetServers reports it. */
export interface ServerEntry {
  /** The node's name. */
  id: string;
  /** Its Raft id (the name and a suffix made once per data directory). */
  raftId?: string;
  rpcAddr: string;
  isLeader: boolean;
  /** A voter counts in elections and commits; a learner is catching up. */
  suffrage?: 'voter' | 'learner';
  /** Highest Raft index known to be on this node (the leader's view). */
  matchIndex?: number;
  /** Raft entries this node is behind the leader (the leader's view). */
  lag?: number;
}

/** Where the leader is, as far as this node knows. */
export interface LeaderHint {
  id: string;
  /** The leader's RPC address (what clients dial). */
  addr: string;
}

/** Who is in the cluster (the book's GetServerer) and who leads it. */
export interface ClusterView {
  servers(): Promise<ServerEntry[]>;
  /** The current leader, when known (a single node: itself). */
  leader(): LeaderHint | undefined;
  /**
   * Removes a member (by Raft id, or a name only one member has) from the
   * configuration; resolves with the Raft id removed. Rejects on a follower with the
   * log's not-leader refusal.
   */
  removeServer?(id: string): Promise<string>;
  /** Each leader change (undefined: no leader known); ends when `signal` aborts. */
  leaderChanges?(o?: { signal?: AbortSignal }): AsyncIterable<LeaderHint | undefined>;
  /** This node's Raft state, its log's offsets and the gossip state of each member. */
  status?(): Promise<ClusterStatus>;
}

/** A member's state in the gossip (SWIM): `dead` once suspicion ran out. */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** What this node knows of itself and the others (GET /v1/status; the web console). */
export interface ClusterStatus {
  /** This node's name and Raft id. */
  self: { id: string; raftId: string };
  role: string;
  term: number;
  /** Raft indexes: committed, applied to the log, last appended. */
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  /** The committed records readable here: [startOffset, endOffset). */
  startOffset: bigint;
  endOffset: bigint;
  /** The gossip state of each member known to this node, by node name. */
  members: { id: string; state: MemberState }[];
}

/**
 * Sends a produce to the leader and resolves with the first offset it assigned. The
 * agent implements it with the client; the server never imports client/. One hop: the
 * leader does not forward again.
 */
export interface LeaderForwarder {
  append(
    values: readonly Uint8Array[],
    leader: LeaderHint,
    o: { signal: AbortSignal },
  ): Promise<bigint>;
}

/** A structured logger (pino's call shape); the server has no global logger. */
export interface ServerLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Discards everything: the default when no logger is given. */
export const silentLogger: ServerLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
