export {
  channelCredentials,
  CommitLogClient,
  CommitLogError,
  OffsetOutOfRangeError,
  toClientError,
} from './client.js';
export type { ClientOptions, ConsumedRecord, TlsFiles } from './client.js';
/** Experimental: log.v1.Log with bytes in and bytes out (benchmarks, proxies). */
export * as raw from './raw.js';
