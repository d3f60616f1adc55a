// The one table from failures to gRPC and HTTP statuses. Domain errors (the log's,
// the cluster's) carry no status codes; they are recognised here by their `name`,
// because the server may not import the folders that define them.
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';

import { encodeStatusDetails } from '../api/index.js';

/** A request the server refuses before it reaches the log. */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** A record value over the node's size limit, refused before it reaches the log. */
export class ValueTooLargeError extends Error {
  override name = 'ValueTooLargeError';
  constructor(
    readonly field: string,
    readonly size: number,
    readonly max: number,
  ) {
    super(`${field} is ${size} bytes, more than the limit of ${max} bytes`);
  }
}

/** A request or stream that the node stopped serving because it is shutting down. */
export class ShuttingDownError extends Error {
  override name = 'ShuttingDownError';
  constructor() {
    super('the node is shutting down; retry on another node or later');
  }
}

interface StatusMapping {
  grpc: status;
  http: number;
  /** Send the message to the client as a google.rpc.LocalizedMessage detail too. */
  localized?: boolean;
}

/**
 * OUT_OF_RANGE, not the book's 404 (not a gRPC code; grpc-go sends it as-is but other
 * stacks map unknown codes to UNKNOWN): it is the code gRPC defines for "read past the
 * end of a sequence", which a consumer can wait on and retry.
 */
const TABLE: Readonly<Partial<Record<string, StatusMapping>>> = {
  OffsetOutOfRangeError: { grpc: status.OUT_OF_RANGE, http: 404, localized: true },
  RecordTooLargeError: { grpc: status.RESOURCE_EXHAUSTED, http: 413 },
  ValueTooLargeError: { grpc: status.RESOURCE_EXHAUSTED, http: 413 },
  InvalidRequestError: { grpc: status.INVALID_ARGUMENT, http: 400 },
  LogClosedError: { grpc: status.UNAVAILABLE, http: 503 },
  LogFailedError: { grpc: status.UNAVAILABLE, http: 503 },
  ShuttingDownError: { grpc: status.UNAVAILABLE, http: 503 },
  CorruptSegmentError: { grpc: status.DATA_LOSS, http: 500 },
};

const INTERNAL: StatusMapping = { grpc: status.INTERNAL, http: 500 };

function mappingOf(err: unknown): StatusMapping | undefined {
  return err instanceof Error ? TABLE[err.name] : undefined;
}

/** True for failures that are the client's or the node's state, not a server bug. */
export function isExpectedError(err: unknown): boolean {
  return mappingOf(err) !== undefined;
}

/** The gRPC status for a failure; unknown failures become INTERNAL without their text. */
export function toGrpcStatus(err: unknown): StatusObject {
  const mapping = mappingOf(err);
  const metadata = new Metadata();
  if (!mapping || !(err instanceof Error)) {
    return { code: INTERNAL.grpc, details: 'internal error', metadata };
  }
  if (mapping.localized) {
    metadata.set(
      'grpc-status-details-bin',
      encodeStatusDetails(mapping.grpc, err.message, { locale: 'en-US', message: err.message }),
    );
  }
  return { code: mapping.grpc, details: err.message, metadata };
}

/** The HTTP status and JSON body for a failure. */
export function toHttpError(err: unknown): { status: number; body: { error: string } } {
  const mapping = mappingOf(err);
  if (!mapping || !(err instanceof Error)) {
    return { status: INTERNAL.http, body: { error: 'internal error' } };
  }
  return { status: mapping.http, body: { error: err.message } };
}
