export { CommitLogClient, CommitLogError, OffsetOutOfRangeError, toClientError } from './client.js';
export type { ClientOptions, ConsumedRecord } from './client.js';
