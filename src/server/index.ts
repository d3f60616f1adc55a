// The node's API surface (gRPC and HTTP) and its ports: what it needs from a log, a
// cluster and a forwarder, and the status table that registered error rows extend.
export type {
  ClusterView,
  CommitLog,
  CommittedRecord,
  LeaderForwarder,
  LeaderHint,
  ReadBatchOptions,
  ReadConsistency,
  ServerEntry,
  ServerLogger,
} from './ports.js';
export { silentLogger } from './ports.js';
export {
  ERROR_DOMAIN,
  ErrorTable,
  InvalidRequestError,
  LimitExceededError,
  NotLeaderError,
  ShuttingDownError,
  ValueTooLargeError,
  errorStatus,
  toGrpcStatus,
  toHttpError,
} from './errors.js';
/** gRPC status codes, for the rows the agent registers (grpc-js stays inside server/). */
export { status as GrpcStatus } from '@grpc/grpc-js';
export type { ErrorClass, ErrorStatusRow, HttpErrorBody, StatusMapping } from './errors.js';
export type { NotLeaderClassifier } from './forwarding.js';
export { ApiServer, ListenError, TlsNotConfiguredError } from './server.js';
export type { ApiServerOptions, BoundAddress } from './server.js';
export { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
export {
  GRPC_METHOD_ACTIONS,
  createAuthInterceptor,
  createHttpAuthorize,
  mutualTlsServerCredentials,
  MutualTlsCredentialSource,
} from './auth.js';
export type { AuthInterceptorOptions, AuthLogger, HttpAuthorize } from './auth.js';
