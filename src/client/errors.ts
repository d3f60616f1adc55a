// The client's errors: one class per failure a caller can act on, built from a gRPC
// status and its google.rpc details by CommitLogError.fromStatus.
//
// Retry policy (what the SDK does, and what a caller may do on its own):
// - reads (Consume, ConsumeStream, GetServers) are retried on UnavailableError: they
//   change nothing;
// - a produce is retried only on NotLeaderError: a node raises it before the append,
//   so the records certainly were not written;
// - any other produce failure after the request may have reached a node (UNAVAILABLE,
//   DEADLINE_EXCEEDED, CANCELLED, INTERNAL, UNKNOWN) is reported as
//   ProduceOutcomeUnknownError and never retried: the records may or may not be in the
//   log, and sending them again could write them twice.
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import * as grpc from '@grpc/grpc-js';

import { decodeStatusDetails } from '../api/index.js';

const ERROR_INFO_TYPE = 'type.googleapis.com/google.rpc.ErrorInfo';
/** The ErrorInfo reason a node sends when it is not the leader (before any append). */
export const NOT_LEADER_REASON = 'NOT_LEADER';

/** google.rpc.ErrorInfo: a machine-readable reason with string metadata. */
export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

/** A call that failed; `code` is the gRPC status code. */
export class CommitLogError extends Error {
  override readonly name: string = 'CommitLogError';
  constructor(
    message: string,
    readonly code: grpc.status,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /**
   * The typed error for a failed grpc-js call (a `ServiceError`, with the status details
   * in its `grpc-status-details-bin` trailer); anything else is returned unchanged.
   */
  static fromStatus(err: grpc.ServiceError): CommitLogError;
  static fromStatus(err: unknown): unknown;
  static fromStatus(err: unknown): unknown {
    if (err instanceof CommitLogError || !isServiceError(err)) return err;
    const { message, errorInfo } = describe(err);
    const options = { cause: err };
    const notLeader = errorInfo.find((i) => i.reason === NOT_LEADER_REASON);
    if (notLeader) {
      return new NotLeaderError(
        message,
        err.code,
        {
          leaderId: notLeader.metadata['leader_id'],
          leaderAddr: notLeader.metadata['leader_addr'],
        },
        options,
      );
    }
    const Class = CLASS_BY_CODE.get(err.code) ?? CommitLogError;
    return new Class(message, err.code, options);
  }
}

/** The offset is past either end of the log (OUT_OF_RANGE). */
export class OffsetOutOfRangeError extends CommitLogError {
  override readonly name = 'OffsetOutOfRangeError';
}

/** The node (or every node tried) could not be reached or had no leader (UNAVAILABLE). */
export class UnavailableError extends CommitLogError {
  override readonly name = 'UnavailableError';
}

/** The caller's identity may not do this (PERMISSION_DENIED). */
export class PermissionDeniedError extends CommitLogError {
  override readonly name = 'PermissionDeniedError';
}

/** The node does not know who the caller is (UNAUTHENTICATED). */
export class UnauthenticatedError extends CommitLogError {
  override readonly name = 'UnauthenticatedError';
}

/** The call's deadline passed before an answer (DEADLINE_EXCEEDED). */
export class DeadlineExceededError extends CommitLogError {
  override readonly name = 'DeadlineExceededError';
}

/**
 * The node called is not the leader and did not append (an ErrorInfo detail with reason
 * NOT_LEADER). The leader's id and RPC address come with it when the node knows them.
 */
export class NotLeaderError extends CommitLogError {
  override readonly name = 'NotLeaderError';
  readonly leaderId: string | undefined;
  readonly leaderAddr: string | undefined;
  constructor(
    message: string,
    code: grpc.status,
    leader: { leaderId?: string | undefined; leaderAddr?: string | undefined },
    options?: ErrorOptions,
  ) {
    super(message, code, options);
    this.leaderId = leader.leaderId || undefined;
    this.leaderAddr = leader.leaderAddr || undefined;
  }
}

/**
 * A produce failed after its request may have reached a node: the records may or may
 * not have been appended. `cause` is the typed error of the call. Unlike the other
 * errors this does not mean "did not happen"; read the log to find out.
 */
export class ProduceOutcomeUnknownError extends CommitLogError {
  override readonly name = 'ProduceOutcomeUnknownError';
  constructor(cause: CommitLogError) {
    super(`the produce may or may not have been appended: ${cause.message}`, cause.code, {
      cause,
    });
  }
}

const CLASS_BY_CODE = new Map<
  grpc.status,
  new (m: string, c: grpc.status, o?: ErrorOptions) => CommitLogError
>([
  [grpc.status.OUT_OF_RANGE, OffsetOutOfRangeError],
  [grpc.status.UNAVAILABLE, UnavailableError],
  [grpc.status.PERMISSION_DENIED, PermissionDeniedError],
  [grpc.status.UNAUTHENTICATED, UnauthenticatedError],
  [grpc.status.DEADLINE_EXCEEDED, DeadlineExceededError],
]);

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && 'code' in err && typeof err.code === 'number';
}

/**
 * The message to show (the server's LocalizedMessage when it sent one) and the
 * ErrorInfo details, from a status's `grpc-status-details-bin`.
 */
export function statusDetailsOf(status: {
  details?: string;
  message?: string;
  metadata?: grpc.Metadata;
}): {
  message: string;
  errorInfo: ErrorInfo[];
} {
  let message = status.details || status.message || '';
  const bytes = status.metadata?.get('grpc-status-details-bin')[0];
  if (!(bytes instanceof Buffer)) return { message, errorInfo: [] };
  try {
    const localized = decodeStatusDetails(bytes).localized[0];
    if (localized) message = localized.message;
    return { message, errorInfo: decodeErrorInfos(bytes) };
  } catch {
    // Undecodable details: the status itself still says what happened.
    return { message, errorInfo: [] };
  }
}

function describe(err: grpc.ServiceError): { message: string; errorInfo: ErrorInfo[] } {
  return statusDetailsOf(err);
}

/** The NOT_LEADER hint in a status's trailers, if any (used by the load balancer). */
export function notLeaderHint(
  metadata: grpc.Metadata | undefined,
): { leaderId?: string; leaderAddr?: string } | undefined {
  const info = statusDetailsOf({ metadata }).errorInfo.find((i) => i.reason === NOT_LEADER_REASON);
  if (!info) return undefined;
  const hint: { leaderId?: string; leaderAddr?: string } = {};
  if (info.metadata['leader_id']) hint.leaderId = info.metadata['leader_id'];
  if (info.metadata['leader_addr']) hint.leaderAddr = info.metadata['leader_addr'];
  return hint;
}

// api/ decodes only the LocalizedMessage detail; ErrorInfo (google/rpc/error_details.proto,
// field numbers from googleapis) is read here from google.rpc.Status { details = 3 } Any
// { type_url = 1, value = 2 }, ErrorInfo { reason = 1, domain = 2, metadata = 3 }.
function decodeErrorInfos(statusBytes: Uint8Array): ErrorInfo[] {
  const out: ErrorInfo[] = [];
  const r = new BinaryReader(statusBytes);
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field !== 3 || wire !== WireType.LengthDelimited) {
      r.skip(wire);
      continue;
    }
    const any = new BinaryReader(r.bytes());
    let typeUrl = '';
    let value: Uint8Array | undefined;
    while (any.pos < any.len) {
      const [f, w] = any.tag();
      if (f === 1 && w === WireType.LengthDelimited) typeUrl = any.string();
      else if (f === 2 && w === WireType.LengthDelimited) value = any.bytes();
      else any.skip(w);
    }
    if (typeUrl === ERROR_INFO_TYPE && value) out.push(decodeErrorInfo(value));
  }
  return out;
}

function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const info: ErrorInfo = { reason: '', domain: '', metadata: {} };
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) info.reason = r.string();
    else if (field === 2 && wire === WireType.LengthDelimited) info.domain = r.string();
    else if (field === 3 && wire === WireType.LengthDelimited) {
      const entry = new BinaryReader(r.bytes());
      let key = '';
      let value = '';
      while (entry.pos < entry.len) {
        const [f, w] = entry.tag();
        if (f === 1 && w === WireType.LengthDelimited) key = entry.string();
        else if (f === 2 && w === WireType.LengthDelimited) value = entry.string();
        else entry.skip(w);
      }
      info.metadata[key] = value;
    } else r.skip(wire);
  }
  return info;
}
