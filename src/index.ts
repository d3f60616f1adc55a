// The package root: the client SDK (talk to a commitlog cluster) and the agent (run a
// node in-process). The libraries have their own entry points: commitlog/log,
// commitlog/raft (+ /testing), commitlog/membership (+ /testing), commitlog/client,
// commitlog/auth.
export {
  channelCredentials,
  CommitLogClient,
  CommitLogError,
  OffsetOutOfRangeError,
  toClientError,
} from './client/index.js';
export type { ClientOptions, ConsumedRecord, TlsFiles } from './client/index.js';
export {
  Agent,
  ConfigError,
  CONFIG_KEYS,
  CONFIG_ROWS,
  defaultConfig,
  envName,
  parseStartupLine,
  resolveConfig,
  VERSION,
} from './agent/index.js';
export type {
  AgentConfig,
  AgentOptions,
  ConfigKey,
  ConfigRow,
  ConfigSources,
  StartupInfo,
} from './agent/index.js';
