export type {
  CommitLog,
  CommitLogRecord,
  ServerEntry,
  ServerLister,
  ServerLogger,
} from './commit-log.js';
export { silentLogger } from './commit-log.js';
export {
  InvalidRequestError,
  ShuttingDownError,
  ValueTooLargeError,
  toGrpcStatus,
  toHttpError,
} from './errors.js';
export { ApiServer, ListenError } from './server.js';
export type { ApiServerOptions, BoundAddress } from './server.js';
export {
  GRPC_METHOD_ACTIONS,
  createAuthInterceptor,
  createHttpAuthorize,
  mutualTlsServerCredentials,
} from './auth.js';
export type { AuthInterceptorOptions, AuthLogger, HttpAuthorize } from './auth.js';
