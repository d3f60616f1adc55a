// One class per failure of the replicated log. None carries a gRPC code: the agent
// registers how each maps to a status.

/** A stored Raft entry could not be decoded (a bug or damage the log's CRC missed). */
export class EntryCodecError extends Error {
  override readonly name = 'EntryCodecError';
  constructor(
    readonly index: number,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`raft entry ${index}: ${reason}`, options);
  }
}

/** A small state file (hard state, log base, identity) is damaged or unreadable. */
export class StateFileError extends Error {
  override readonly name = 'StateFileError';
  constructor(
    readonly path: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`${path}: ${reason}`, options);
  }
}

/** The data directory belongs to another cluster than the one this node was asked to join. */
export class ClusterMismatchError extends Error {
  override readonly name = 'ClusterMismatchError';
  constructor(
    readonly ours: string,
    readonly theirs: string,
    options?: ErrorOptions,
  ) {
    super(
      `this node's data belongs to cluster ${ours}, but the members it reached are in cluster ${theirs}; ` +
        'use another --data-dir to join that cluster',
      options,
    );
  }
}

/** --bootstrap was given for a data directory that already holds a cluster's state. */
export class AlreadyBootstrappedError extends Error {
  override readonly name = 'AlreadyBootstrappedError';
  constructor(
    readonly dataDir: string,
    readonly clusterId: string,
    options?: ErrorOptions,
  ) {
    super(
      `${dataDir} already holds cluster ${clusterId}; start without --bootstrap to rejoin it, ` +
        'or use an empty --data-dir to bootstrap a new cluster',
      options,
    );
  }
}

/** Another live member already uses this node's name. */
export class DuplicateNodeNameError extends Error {
  override readonly name = 'DuplicateNodeNameError';
  constructor(
    readonly nodeName: string,
    readonly otherId: string,
    options?: ErrorOptions,
  ) {
    super(
      `another member (${otherId}) already uses the node name ${nodeName}; give each node its own --node-name`,
      options,
    );
  }
}

/** A consumer offset outside the committed records. */
export class RecordOutOfRangeError extends Error {
  // The server maps errors by class; this name matches the storage engine's for logs.
  override readonly name = 'OffsetOutOfRangeError';
  constructor(
    readonly offset: bigint,
    readonly lowest: bigint,
    readonly next: bigint,
    options?: ErrorOptions,
  ) {
    // The storage engine's wording, which clients and the book's tests already know.
    super(`The requested offset is outside the log's range: ${offset}`, options);
  }
}

/** No leader became known within the wait allowed to a call. */
export class NoLeaderError extends Error {
  override readonly name = 'NoLeaderError';
  constructor(waitedMs: number, options?: ErrorOptions) {
    super(`no leader elected within ${waitedMs} ms; the cluster may have lost its quorum`, options);
  }
}

/** The replicated log is closed. */
export class ReplicatedLogClosedError extends Error {
  override readonly name = 'ReplicatedLogClosedError';
  constructor(options?: ErrorOptions) {
    super('the replicated log is closed', options);
  }
}

/** RemoveServer named no member of the configuration. */
export class UnknownMemberError extends Error {
  override readonly name = 'UnknownMemberError';
  constructor(
    readonly id: string,
    options?: ErrorOptions,
  ) {
    super(`no member ${id} in the configuration (GetServers lists the members)`, options);
  }
}

/** RemoveServer named a node name that several members share (a wiped node came back). */
export class AmbiguousMemberError extends Error {
  override readonly name = 'AmbiguousMemberError';
  constructor(
    readonly id: string,
    readonly candidates: readonly string[],
    options?: ErrorOptions,
  ) {
    super(`${id} names several members (${candidates.join(', ')}); give the Raft id`, options);
  }
}

/** No join address answered with a cluster to join within the join timeout. */
export class JoinTimeoutError extends Error {
  override readonly name = 'JoinTimeoutError';
  constructor(
    readonly seeds: readonly string[],
    readonly waitedMs: number,
    options?: ErrorOptions,
  ) {
    super(
      `no member of a cluster answered at ${seeds.join(', ')} within ${waitedMs} ms; ` +
        'check --start-join-addrs (gossip addresses), or add --bootstrap to start a new cluster',
      options,
    );
  }
}

/** Raft asked for entries at or below the compaction point. */
export class CompactedError extends Error {
  override readonly name = 'CompactedError';
  constructor(
    readonly index: number,
    readonly compactedTo: number,
    options?: ErrorOptions,
  ) {
    super(`entry ${index} is compacted (the log starts after ${compactedTo})`, options);
  }
}
