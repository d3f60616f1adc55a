import type { NodeId } from '../core/index.js';

/** This node does not lead; `leaderId`/`leaderAddress` say who does, when known. */
export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
  constructor(
    readonly leaderId: NodeId | undefined,
    readonly leaderAddress: string | undefined,
    options?: ErrorOptions,
  ) {
    super(
      leaderId ? `not the leader; the leader is ${leaderId}` : 'not the leader; no leader known',
      options,
    );
  }
}

/** Leadership was lost before the request finished: it may or may not take effect. */
export class LeadershipLostError extends Error {
  override name = 'LeadershipLostError';
  constructor(
    message = 'leadership lost before the request committed; its outcome is unknown',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The node is closed (or failed: see `cause`). */
export class ShutdownError extends Error {
  override name = 'ShutdownError';
  constructor(message = 'the raft node is shut down', options?: ErrorOptions) {
    super(message, options);
  }
}

/** A leadership transfer is under way; retry once it is over. */
export class LeadershipTransferInProgressError extends Error {
  override name = 'LeadershipTransferInProgressError';
  constructor(options?: ErrorOptions) {
    super('a leadership transfer is in progress', options);
  }
}

/** The leadership transfer did not complete in time. */
export class LeadershipTransferFailedError extends Error {
  override name = 'LeadershipTransferFailedError';
}

/** Another configuration change is not committed yet (one change at a time). */
export class ConfChangeInProgressError extends Error {
  override name = 'ConfChangeInProgressError';
  constructor(options?: ErrorOptions) {
    super(
      'a configuration change is in progress, or the leader has not committed its first entry',
      options,
    );
  }
}

/** The configuration change makes no sense (adding a member twice, promoting a voter…). */
export class InvalidConfChangeError extends Error {
  override name = 'InvalidConfChangeError';
}

/** A storage port failed; the node stopped. */
export class RaftStorageError extends Error {
  override name = 'RaftStorageError';
}

/** A snapshot transfer was abandoned (superseded, unacknowledged, or its leader lost its term). */
export class SnapshotTransferError extends Error {
  override name = 'SnapshotTransferError';
}
