export {
  channelCredentials,
  CommitLogClient,
  CommitLogError,
  OffsetOutOfRangeError,
  toClientError,
} from './client.js';
export type { ClientOptions, ConsumedRecord, TlsFiles } from './client.js';
