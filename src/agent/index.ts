export { Agent } from './agent.js';
export type { AgentOptions } from './agent.js';
export { CONFIG_KEYS, ConfigError, defaultConfig, envName, resolveConfig } from './config.js';
export type { AgentConfig, ConfigKey, ConfigSources, LogLevel } from './config.js';
