// The wire API: messages and the grpc-js service generated from proto/log/v1/log.proto,
// plus the google.rpc status-details codec shared by server and client.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Any } from './gen/google/protobuf/any.js';
import { ErrorInfo, LocalizedMessage } from './gen/google/rpc/error_details.js';
import { Status } from './gen/google/rpc/status.js';

export {
  ConsumeBatchRequest,
  ConsumeBatchResponse,
  ConsumeRequest,
  ConsumeResponse,
  GetServersRequest,
  GetServersResponse,
  LogClient,
  LogService,
  ProduceBatchRequest,
  ProduceBatchResponse,
  ProduceRequest,
  ProduceResponse,
  RemoveServerRequest,
  RemoveServerResponse,
  // The generated name shadows TypeScript's Record<K, V>.
  Record as LogRecord,
  Server as ServerInfo,
} from './gen/log/v1/log.js';
export type { LogServer } from './gen/log/v1/log.js';

/** Package-qualified service name, as used by health checks and reflection. */
export const LOG_SERVICE_NAME = 'log.v1.Log';

const LOCALIZED_MESSAGE_TYPE = 'type.googleapis.com/google.rpc.LocalizedMessage';
const ERROR_INFO_TYPE = 'type.googleapis.com/google.rpc.ErrorInfo';

/** The package was installed without its proto/ folder (reflection needs it). */
export class ProtoFilesNotFoundError extends Error {
  override name = 'ProtoFilesNotFoundError';
  constructor(readonly from: string) {
    super(`proto/log/v1/log.proto not found in any folder above ${from}`);
  }
}

/** Where the .proto files live (proto/ at the package root, shipped with the package). */
export function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'proto', 'log', 'v1', 'log.proto'))) return join(dir, 'proto');
    const parent = dirname(dir);
    if (parent === dir) throw new ProtoFilesNotFoundError(fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** A human-readable message for the client, as google.rpc.LocalizedMessage carries it. */
export interface StatusMessage {
  locale: string;
  message: string;
}

/** Why a call failed, machine-readable, as google.rpc.ErrorInfo carries it. */
export interface StatusErrorInfo {
  /** UPPER_SNAKE_CASE, stable within `domain` (e.g. NOT_LEADER). */
  reason: string;
  domain: string;
  metadata: { [key: string]: string };
}

/** One entry of google.rpc.Status.details. */
export type StatusDetail = { localized: StatusMessage } | { errorInfo: StatusErrorInfo };

function packDetail(detail: StatusDetail): Any {
  return 'localized' in detail
    ? {
        typeUrl: LOCALIZED_MESSAGE_TYPE,
        value: Buffer.from(LocalizedMessage.encode(detail.localized).finish()),
      }
    : {
        typeUrl: ERROR_INFO_TYPE,
        value: Buffer.from(ErrorInfo.encode(detail.errorInfo).finish()),
      };
}

/**
 * Encodes the value of the `grpc-status-details-bin` trailer: a google.rpc.Status with
 * the given details (the book's ErrOffsetOutOfRange sends one LocalizedMessage).
 */
export function encodeStatusDetails(
  code: number,
  message: string,
  details: readonly StatusDetail[],
): Buffer {
  return Buffer.from(Status.encode({ code, message, details: details.map(packDetail) }).finish());
}

/** Decodes `grpc-status-details-bin`: its LocalizedMessage and ErrorInfo details. */
export function decodeStatusDetails(bytes: Uint8Array): {
  code: number;
  message: string;
  localized: StatusMessage[];
  errorInfo: StatusErrorInfo[];
} {
  const status = Status.decode(bytes);
  const localized = status.details
    .filter((d) => d.typeUrl === LOCALIZED_MESSAGE_TYPE)
    .map((d) => LocalizedMessage.decode(d.value));
  const errorInfo = status.details
    .filter((d) => d.typeUrl === ERROR_INFO_TYPE)
    .map((d) => ErrorInfo.decode(d.value));
  return { code: status.code, message: status.message, localized, errorInfo };
}
