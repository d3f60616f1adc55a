// The table from failures to gRPC and HTTP statuses, matched by class (`instanceof`).
// The server's own errors and auth/'s refusals are built-in rows. Errors defined in
// folders the server may not import (the log's, the cluster's, Raft's) come as rows the
// agent registers, so the compiler checks every class exists; an error no row matches
// is a bug and becomes INTERNAL without its text.
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';

import { encodeStatusDetails, type StatusDetail, type StatusErrorInfo } from '../api/index.js';
import { PermissionDeniedError, UnauthenticatedError } from '../auth/index.js';
import { isDescriptorExhaustion } from './limits.js';
import type { LeaderHint } from './ports.js';

/** A request the server refuses before it reaches the log. */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
  constructor(
    message: string,
    readonly field: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A record value over the node's size limit, refused before it reaches the log. */
export class ValueTooLargeError extends Error {
  override readonly name = 'ValueTooLargeError';
  constructor(
    readonly field: string,
    readonly size: number,
    readonly max: number,
    options?: ErrorOptions,
  ) {
    super(`${field} is ${size} bytes, more than the limit of ${max} bytes`, options);
  }
}

/** A request or stream that the node stopped serving because it is shutting down. */
export class ShuttingDownError extends Error {
  override readonly name = 'ShuttingDownError';
  constructor(options?: ErrorOptions) {
    super('the node is shutting down; retry on another node or later', options);
  }
}

/**
 * This node cannot take the write: it is not the leader. Nothing was appended, so the
 * client may retry at `leader` (when known). Sent with a google.rpc.ErrorInfo detail
 * (reason NOT_LEADER, metadata leader_id and leader_addr).
 */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError';
  constructor(
    readonly leader: LeaderHint | undefined,
    options?: ErrorOptions,
  ) {
    super(
      leader
        ? `this node is not the leader; the leader is ${leader.id} at ${leader.addr}`
        : 'this node is not the leader and knows no leader yet; retry shortly',
      options,
    );
  }
}

/**
 * A per-client or per-node limit is reached (streams, connections, buffered bytes). The
 * message names the limit, its value and the setting that changes it; the client may
 * retry once it holds less.
 */
export class LimitExceededError extends Error {
  override readonly name = 'LimitExceededError';
  constructor(
    /** What is limited, as the message says it ("streams on this connection"). */
    readonly what: string,
    readonly limit: number,
    /** The agent setting (flag without dashes) that changes the limit. */
    readonly setting: string,
    options?: ErrorOptions,
  ) {
    super(
      `too many ${what}: the limit is ${limit} (--${setting}); close some or ask the operator to raise --${setting}`,
      options,
    );
  }
}

/**
 * The process ran out of file descriptors (EMFILE/ENFILE) while serving a request: the
 * node's state, not the request's. Retryable; the operator raises the limit or lowers
 * the connection caps.
 */
export class DescriptorsExhaustedError extends Error {
  override readonly name = 'DescriptorsExhaustedError';
  constructor(options?: ErrorOptions) {
    super(
      'the node has run out of file descriptors (EMFILE); retry later. Operators: raise the open-file limit (ulimit -n, systemd LimitNOFILE, docker --ulimit nofile) or lower --max-connections and --max-connections-per-address',
      options,
    );
  }
}

/** The `domain` of the ErrorInfo details the server sends. */
export const ERROR_DOMAIN = 'commitlog';

/** How one kind of failure is answered. */
export interface StatusMapping<E extends Error = Error> {
  grpc: status;
  http: number;
  /** Send the message to the client as a google.rpc.LocalizedMessage detail too. */
  localized?: boolean;
  /** A machine-readable google.rpc.ErrorInfo detail (also in the HTTP body). */
  errorInfo?: (err: E) => StatusErrorInfo;
}

/** A class of errors, abstract or not, whatever its constructor takes. */
export type ErrorClass<E extends Error = Error> = abstract new (...args: never[]) => E;

/** One row of the table: errors that are `instanceof` the class get the mapping. */
export type ErrorStatusRow = readonly [ErrorClass, StatusMapping<never>];

/** A row whose `errorInfo` sees the class's own type. */
export function errorStatus<E extends Error>(
  errorClass: ErrorClass<E>,
  mapping: StatusMapping<E>,
): ErrorStatusRow {
  return [errorClass, mapping];
}

/** The HTTP body of a failure. */
export interface HttpErrorBody {
  error: string;
  reason?: string;
  metadata?: { [key: string]: string };
}

const BUILT_IN: readonly ErrorStatusRow[] = [
  errorStatus(ValueTooLargeError, { grpc: status.RESOURCE_EXHAUSTED, http: 413 }),
  errorStatus(InvalidRequestError, { grpc: status.INVALID_ARGUMENT, http: 400 }),
  errorStatus(LimitExceededError, {
    grpc: status.RESOURCE_EXHAUSTED,
    http: 429,
    errorInfo: (err) => ({
      reason: 'LIMIT_EXCEEDED',
      domain: ERROR_DOMAIN,
      metadata: { setting: err.setting, limit: String(err.limit) },
    }),
  }),
  errorStatus(ShuttingDownError, { grpc: status.UNAVAILABLE, http: 503 }),
  errorStatus(DescriptorsExhaustedError, {
    grpc: status.UNAVAILABLE,
    http: 503,
    errorInfo: () => ({ reason: 'DESCRIPTORS_EXHAUSTED', domain: ERROR_DOMAIN, metadata: {} }),
  }),
  // Nothing was appended, so the client may retry (at the leader): UNAVAILABLE.
  errorStatus(NotLeaderError, {
    grpc: status.UNAVAILABLE,
    http: 503,
    localized: true,
    errorInfo: (err) => {
      const metadata: { [key: string]: string } = {};
      if (err.leader) {
        metadata.leader_id = err.leader.id;
        metadata.leader_addr = err.leader.addr;
      }
      return { reason: 'NOT_LEADER', domain: ERROR_DOMAIN, metadata };
    },
  }),
  // auth/'s refusals: no verified client certificate, and a policy that says no.
  errorStatus(UnauthenticatedError, { grpc: status.UNAUTHENTICATED, http: 401 }),
  errorStatus(PermissionDeniedError, { grpc: status.PERMISSION_DENIED, http: 403 }),
];

const INTERNAL: StatusMapping = { grpc: status.INTERNAL, http: 500 };

/** Maps failures to statuses: the built-in rows, then the registered ones, first match wins. */
export class ErrorTable {
  private readonly rows: readonly ErrorStatusRow[];

  constructor(rows: readonly ErrorStatusRow[] = []) {
    this.rows = [...BUILT_IN, ...rows];
  }

  /** Errors as the client should see them: EMFILE anywhere in the chain is the node's state. */
  private static seen(err: unknown): unknown {
    if (!(err instanceof DescriptorsExhaustedError) && isDescriptorExhaustion(err)) {
      return new DescriptorsExhaustedError({ cause: err });
    }
    return err;
  }

  private mappingOf(err: unknown): StatusMapping | undefined {
    if (!(err instanceof Error)) return undefined;
    const row = this.rows.find(([errorClass]) => err instanceof errorClass);
    return row?.[1] as StatusMapping | undefined;
  }

  /** True for failures that are the client's or the node's state, not a server bug. */
  isExpected(err: unknown): boolean {
    return this.mappingOf(err) !== undefined;
  }

  /** The gRPC status for a failure; unknown failures become INTERNAL without their text. */
  toGrpcStatus(failure: unknown): StatusObject {
    const err = ErrorTable.seen(failure);
    const mapping = this.mappingOf(err);
    const metadata = new Metadata();
    if (!mapping || !(err instanceof Error)) {
      return { code: INTERNAL.grpc, details: 'internal error', metadata };
    }
    const details: StatusDetail[] = [];
    if (mapping.localized) details.push({ localized: { locale: 'en-US', message: err.message } });
    if (mapping.errorInfo) details.push({ errorInfo: mapping.errorInfo(err) });
    if (details.length > 0) {
      metadata.set(
        'grpc-status-details-bin',
        encodeStatusDetails(mapping.grpc, err.message, details),
      );
    }
    return { code: mapping.grpc, details: err.message, metadata };
  }

  /** The HTTP status and JSON body for a failure. */
  toHttpError(failure: unknown): { status: number; body: HttpErrorBody } {
    const err = ErrorTable.seen(failure);
    const mapping = this.mappingOf(err);
    if (!mapping || !(err instanceof Error)) {
      return { status: INTERNAL.http, body: { error: 'internal error' } };
    }
    const info = mapping.errorInfo?.(err);
    return {
      status: mapping.http,
      body: info
        ? { error: err.message, reason: info.reason, metadata: info.metadata }
        : { error: err.message },
    };
  }
}

/** The built-in rows alone: for refusals that never involve the log (authentication). */
const builtIn = new ErrorTable();

/** The gRPC status for a failure, by the built-in rows only. */
export function toGrpcStatus(err: unknown): StatusObject {
  return builtIn.toGrpcStatus(err);
}

/** The HTTP status and body for a failure, by the built-in rows only. */
export function toHttpError(err: unknown): { status: number; body: HttpErrorBody } {
  return builtIn.toHttpError(err);
}
