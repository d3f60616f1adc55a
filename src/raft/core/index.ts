export * from './types.js';
export { RaftCore, bootstrapState, applyChange, EMPTY_CONF } from './raft.js';
export type { RaftConfig, CoreStatus, PeerStatus } from './raft.js';
export { RaftInvariantError } from './log.js';
export { encodeConfState, decodeConfState } from './conf.js';
