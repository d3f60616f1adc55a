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
export {
  CommitLog,
  connect,
  CONSISTENCY_HEADER,
  DEFAULT_READ_AHEAD_BYTES,
  tlsCredentials,
  tlsFromFiles,
} from './sdk.js';
export type {
  CallOptions,
  ConnectOptions,
  Consistency,
  ConsumeOptions,
  ReadOptions,
  ServerEntry,
  TlsOptions,
} from './sdk.js';
export { Producer, ProducerClosedError } from './producer.js';
export type { PrepareBatch, ProducerOptions } from './producer.js';
export {
  clusterChannelOptions,
  clusterTarget,
  isClusterTarget,
  registerCommitlogPlugins,
  ROUTE_HEADER,
  routeInterceptor,
} from './plugins.js';
export type { ResolverSettings, Route } from './plugins.js';
export { COMMITLOG_LB_POLICY, COMMITLOG_SCHEME, LEADER_ATTRIBUTE } from './resolver.js';
