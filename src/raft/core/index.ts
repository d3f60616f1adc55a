export * from './types.js';
export {
  RaftCore,
  RaftConfigError,
  RaftUsageError,
  bootstrapState,
  applyChange,
  validateRaftConfig,
  validateConfState,
  EMPTY_CONF,
} from './raft.js';
export type { RaftConfig, CoreStatus, PeerStatus } from './raft.js';
export { RaftInvariantError } from './log.js';
export type { RaftLogView } from './log.js';
export {
  encodeConfState,
  decodeConfState,
  ConfEncodingError,
  CONF_ENCODING_VERSION,
} from './conf.js';
