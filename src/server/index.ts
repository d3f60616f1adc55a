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
