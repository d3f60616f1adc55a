export { Agent } from './agent.js';
export {
  AGENT_STEPS,
  MAX_RECORD_BYTES,
  StartContext,
  StepOrderError,
  announce,
  createApiServer,
  joinHostPort,
  listenHttp,
  loadSecurity,
  parseStartupLine,
  startTelemetry,
  startupLine,
  warnIfExpiring,
  watchAcl,
  watchTlsExpiry,
} from './steps.js';
export type { AgentOptions, Security, StartupInfo, Step } from './steps.js';
export { Teardown, TeardownClosedError, TeardownError } from './teardown.js';
export { GrpcLeaderForwarder } from './forwarder.js';
export type { Deferred } from './teardown.js';
export { LocalCommitLog } from './local-log.js';
export { LOG_ERROR_STATUSES } from './error-statuses.js';
export { VERSION } from './version.js';
export {
  CONFIG_KEYS,
  CONFIG_ROWS,
  ConfigError,
  defaultConfig,
  defaultText,
  envName,
  formatFsync,
  resolveConfig,
  securitySettings,
  valueAt,
} from './config.js';
export type {
  AgentConfig,
  ConfigKey,
  ConfigRow,
  ConfigSources,
  FsyncPolicy,
  LogFormat,
  LogLevel,
  Raw,
  SecuritySettings,
  TlsFileFields,
} from './config.js';
export { guardHttp2StreamRaces } from './process-guards.js';
export { NotADataDirectoryError, isLogDamage, repairLog, type RepairOutcome } from './repair.js';
export {
  DiskSpaceGuard,
  LowDiskSpaceError,
  statfsFreeBytes,
  type DiskSpaceOptions,
  type FreeBytes,
} from './disk-space.js';
