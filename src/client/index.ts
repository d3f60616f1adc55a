export {
  channelCredentials,
  CommitLogClient,
  DEFAULT_SERVER_NAME,
  serverNameFor,
  serverNameOptions,
  toClientError,
} from './client.js';
export type { ClientOptions, ConsumedRecord, TlsFiles } from './client.js';
export {
  CommitLogError,
  DeadlineExceededError,
  NOT_LEADER_REASON,
  NotLeaderError,
  OffsetOutOfRangeError,
  PermissionDeniedError,
  ProduceOutcomeUnknownError,
  UnauthenticatedError,
  UnavailableError,
} from './errors.js';
export type { ErrorInfo } from './errors.js';
/** Experimental: log.v1.Log with bytes in and bytes out (benchmarks, proxies). */
export * as raw from './raw.js';
