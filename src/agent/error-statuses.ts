// Statuses for the errors of folders the server may not import, registered with the
// ApiServer and matched with `instanceof`: a renamed class is a compile error here,
// never a silent INTERNAL. Cluster and Raft errors join this list when they are wired.
import {
  CorruptSegmentError,
  DiskFullError,
  LogClosedError,
  LogFailedError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
} from '../log/index.js';
import {
  AmbiguousMemberError,
  EntryCodecError,
  UnknownMemberError,
  NoLeaderError,
  RecordOutOfRangeError,
  ReplicatedLogClosedError,
} from '../cluster/index.js';
import { ConfChangeInProgressError, LeadershipLostError, ShutdownError } from '../raft/index.js';
import {
  ForwardOutcomeUnknownError,
  ForwardRefusedError,
  LeaderUnreachableError,
} from './forwarder.js';
import { LowDiskSpaceError } from './disk-space.js';
import { errorStatus, GrpcStatus as status, type ErrorStatusRow } from '../server/index.js';

/**
 * OUT_OF_RANGE, not the book's 404 (not a gRPC code; grpc-go sends it as-is but other
 * stacks map unknown codes to UNKNOWN): it is the code gRPC defines for "read past the
 * end of a sequence", which a consumer can wait on and retry.
 */
export const LOG_ERROR_STATUSES: readonly ErrorStatusRow[] = [
  errorStatus(OffsetOutOfRangeError, { grpc: status.OUT_OF_RANGE, http: 404, localized: true }),
  errorStatus(RecordTooLargeError, { grpc: status.RESOURCE_EXHAUSTED, http: 413 }),
  errorStatus(LogClosedError, { grpc: status.UNAVAILABLE, http: 503 }),
  errorStatus(LogFailedError, { grpc: status.UNAVAILABLE, http: 503 }),
  errorStatus(CorruptSegmentError, { grpc: status.DATA_LOSS, http: 500 }),
  // A full disk is a resource running out, and HTTP has a status for it (507 Insufficient
  // Storage); the log takes appends again once there is space.
  errorStatus(DiskFullError, { grpc: status.RESOURCE_EXHAUSTED, http: 507 }),
  errorStatus(LowDiskSpaceError, { grpc: status.RESOURCE_EXHAUSTED, http: 507 }),
];

/** The replicated log's and Raft's refusals. */
export const CLUSTER_ERROR_STATUSES: readonly ErrorStatusRow[] = [
  errorStatus(RecordOutOfRangeError, { grpc: status.OUT_OF_RANGE, http: 404, localized: true }),
  errorStatus(NoLeaderError, { grpc: status.UNAVAILABLE, http: 503 }),
  errorStatus(ReplicatedLogClosedError, { grpc: status.UNAVAILABLE, http: 503 }),
  errorStatus(ShutdownError, { grpc: status.UNAVAILABLE, http: 503 }),
  errorStatus(ConfChangeInProgressError, { grpc: status.UNAVAILABLE, http: 503 }),
  // Leadership moved after the append: the record may or may not be committed. A
  // client must not retry it blindly (the SDK raises ProduceOutcomeUnknownError).
  errorStatus(LeadershipLostError, {
    grpc: status.UNAVAILABLE,
    http: 503,
    errorInfo: () => ({ reason: 'OUTCOME_UNKNOWN', domain: 'commitlog', metadata: {} }),
  }),
  errorStatus(EntryCodecError, { grpc: status.DATA_LOSS, http: 500 }),
  errorStatus(UnknownMemberError, { grpc: status.NOT_FOUND, http: 404 }),
  errorStatus(AmbiguousMemberError, { grpc: status.INVALID_ARGUMENT, http: 400 }),
  errorStatus(LeaderUnreachableError, {
    grpc: status.UNAVAILABLE,
    http: 503,
    errorInfo: (err) => ({
      reason: 'LEADER_UNREACHABLE',
      domain: 'commitlog',
      metadata: { leader_id: err.leader.id, leader_addr: err.leader.addr },
    }),
  }),
  errorStatus(ForwardOutcomeUnknownError, {
    grpc: status.UNAVAILABLE,
    http: 503,
    errorInfo: () => ({ reason: 'OUTCOME_UNKNOWN', domain: 'commitlog', metadata: {} }),
  }),
  errorStatus(ForwardRefusedError, { grpc: status.FAILED_PRECONDITION, http: 502 }),
];
