// The agent's configuration: flags > environment (COMMITLOG_*) > config file (YAML or
// JSON, same keys as the flags) > defaults. Every key is parsed here, and every bad
// value or unknown key is a ConfigError that names the key and where it came from.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isIP } from 'node:net';

import { parse as parseYaml } from 'yaml';

import {
  InvalidTelemetryOptionError,
  type LogFormat,
  type LogLevel,
  parseLogFormat,
  parseLogLevel,
  parseSampleRatio,
} from '../telemetry/index.js';

/** A configuration problem; `key` is the flag/config-file name (e.g. `rpc-port`). */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly key: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${key}: ${message}`, options);
  }
}

export type { LogFormat, LogLevel };

export interface AgentConfig {
  dataDir: string;
  nodeName: string;
  /** Gossip address host:port; its host is also where gRPC and HTTP listen. */
  bindAddr: string;
  rpcPort: number;
  httpPort: number;
  startJoinAddrs: string[];
  bootstrap: boolean;
  aclModelFile?: string;
  aclPolicyFile?: string;
  serverTlsCertFile?: string;
  serverTlsKeyFile?: string;
  serverTlsCaFile?: string;
  peerTlsCertFile?: string;
  peerTlsKeyFile?: string;
  peerTlsCaFile?: string;
  /** 'always' | 'never' | 'interval:<ms>' (checked by the log when it opens). */
  fsync: string;
  segmentMaxBytes: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Prometheus metrics on GET /metrics. */
  metrics: boolean;
  /** OTLP/HTTP collector for traces; tracing is on when this or traceFile is set. */
  otlpEndpoint?: string;
  /** Append spans to this file as JSON lines. */
  traceFile?: string;
  /** Share of new traces recorded, 0..1. */
  traceSampleRatio: number;
  insecure: boolean;
}

type Raw = string | number | boolean | string[];
type Parser = (raw: Raw, key: string) => unknown;

function asString(raw: Raw, key: string): string {
  if (typeof raw === 'string' && raw !== '') return raw;
  if (typeof raw === 'number') return String(raw);
  throw new ConfigError(key, `must be a non-empty string, got ${JSON.stringify(raw)}`);
}

function asInt(min: number, max: number): Parser {
  return (raw, key) => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw.trim()) : NaN;
    if (
      !Number.isInteger(n) ||
      n < min ||
      n > max ||
      (typeof raw === 'string' && raw.trim() === '')
    ) {
      throw new ConfigError(
        key,
        `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
      );
    }
    return n;
  };
}

function asBool(raw: Raw, key: string): boolean {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(key, `must be true or false, got ${JSON.stringify(raw)}`);
}

function asHostPort(raw: Raw, key: string): string {
  const text = asString(raw, key);
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):([0-9]{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535)
    throw new ConfigError(key, `must be host:port, got ${JSON.stringify(raw)}`);
  return text;
}

function asHostPortList(raw: Raw, key: string): string[] {
  const items = Array.isArray(raw)
    ? raw
    : asString(raw, key)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
  return items.map((item, i) => asHostPort(item, `${key}[${i}]`));
}

function asFsync(raw: Raw, key: string): string {
  const text = asString(raw, key);
  if (text === 'always' || text === 'never' || /^interval:[1-9][0-9]*$/.test(text)) return text;
  throw new ConfigError(key, `must be always, never or interval:<ms>, got ${JSON.stringify(raw)}`);
}

/** A parser of the telemetry library, its error turned into a ConfigError for `key`. */
function telemetry<T>(parse: (text: string) => T): Parser {
  return (raw, key) => {
    try {
      return parse(typeof raw === 'number' ? String(raw) : asString(raw, key));
    } catch (err) {
      if (!(err instanceof InvalidTelemetryOptionError)) throw err;
      throw new ConfigError(key, `must be ${err.expected}, got ${JSON.stringify(raw)}`, {
        cause: err,
      });
    }
  };
}

function asHttpUrl(raw: Raw, key: string): string {
  const text = asString(raw, key);
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new ConfigError(key, `must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  }
  return text;
}

/** Every key, as written on the command line and in config files, with its parser. */
const KEYS = {
  'data-dir': ['dataDir', asString],
  'node-name': ['nodeName', asString],
  'bind-addr': ['bindAddr', asHostPort],
  'rpc-port': ['rpcPort', asInt(0, 65535)],
  'http-port': ['httpPort', asInt(0, 65535)],
  'start-join-addrs': ['startJoinAddrs', asHostPortList],
  bootstrap: ['bootstrap', asBool],
  'acl-model-file': ['aclModelFile', asString],
  'acl-policy-file': ['aclPolicyFile', asString],
  'server-tls-cert-file': ['serverTlsCertFile', asString],
  'server-tls-key-file': ['serverTlsKeyFile', asString],
  'server-tls-ca-file': ['serverTlsCaFile', asString],
  'peer-tls-cert-file': ['peerTlsCertFile', asString],
  'peer-tls-key-file': ['peerTlsKeyFile', asString],
  'peer-tls-ca-file': ['peerTlsCaFile', asString],
  fsync: ['fsync', asFsync],
  'segment-max-bytes': ['segmentMaxBytes', asInt(1024, 2 ** 31 - 1)],
  'log-level': ['logLevel', telemetry(parseLogLevel)],
  'log-format': ['logFormat', telemetry(parseLogFormat)],
  metrics: ['metrics', asBool],
  'otlp-endpoint': ['otlpEndpoint', asHttpUrl],
  'trace-file': ['traceFile', asString],
  'trace-sample-ratio': ['traceSampleRatio', telemetry(parseSampleRatio)],
  insecure: ['insecure', asBool],
} as const satisfies Record<string, readonly [keyof AgentConfig, Parser]>;

export type ConfigKey = keyof typeof KEYS;
export const CONFIG_KEYS = Object.keys(KEYS) as ConfigKey[];

/** The environment variable for a key: `data-dir` → `COMMITLOG_DATA_DIR`. */
export function envName(key: string): string {
  return 'COMMITLOG_' + key.toUpperCase().replaceAll('-', '_');
}

export function defaultConfig(): AgentConfig {
  return {
    dataDir: './data',
    nodeName: hostname(),
    bindAddr: '127.0.0.1:8401',
    rpcPort: 8400,
    httpPort: 8080,
    startJoinAddrs: [],
    bootstrap: false,
    fsync: 'always',
    segmentMaxBytes: 64 * 1024 * 1024,
    logLevel: 'info',
    logFormat: 'auto',
    metrics: true,
    traceSampleRatio: 1,
    insecure: false,
  };
}

export interface ConfigSources {
  /** Keys given on the command line (kebab-case keys). */
  flags?: Partial<Record<ConfigKey | 'config-file', Raw>>;
  env?: NodeJS.ProcessEnv;
}

function apply(config: AgentConfig, key: string, raw: Raw, origin: string): void {
  const entry = (KEYS as Record<string, readonly [keyof AgentConfig, Parser]>)[key];
  if (!entry)
    throw new ConfigError(key, `unknown key in ${origin} (known: ${CONFIG_KEYS.join(', ')})`);
  const [field, parse] = entry;
  try {
    (config as unknown as Record<string, unknown>)[field] = parse(raw, key);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ConfigError(err.key, `${err.message.slice(err.key.length + 2)} (from ${origin})`);
    }
    throw err;
  }
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config-file', `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let parsed: unknown;
  try {
    // YAML is a superset of JSON, so one parser reads both.
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      'config-file',
      `${path} is not valid YAML or JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('config-file', `${path} must hold a mapping of keys to values`);
  }
  return parsed as Record<string, unknown>;
}

function isRaw(v: unknown): v is Raw {
  return (
    typeof v === 'string' ||
    typeof v === 'number' ||
    typeof v === 'boolean' ||
    (Array.isArray(v) && v.every((x) => typeof x === 'string'))
  );
}

/** Builds the configuration from every source, highest precedence last applied. */
export async function resolveConfig(sources: ConfigSources): Promise<AgentConfig> {
  const flags = sources.flags ?? {};
  const env = sources.env ?? {};
  const config = defaultConfig();
  const configFile = flags['config-file'] ?? env[envName('config-file')];
  if (configFile !== undefined) {
    const path = asString(configFile, 'config-file');
    for (const [key, value] of Object.entries(await readConfigFile(path))) {
      if (!isRaw(value)) {
        throw new ConfigError(
          key,
          `has an unsupported value ${JSON.stringify(value)} (in ${path})`,
        );
      }
      apply(config, key, value, `config file ${path}`);
    }
  }
  for (const key of CONFIG_KEYS) {
    const value = env[envName(key)];
    if (value !== undefined) apply(config, key, value, `environment variable ${envName(key)}`);
  }
  for (const [key, value] of Object.entries(flags)) {
    if (key !== 'config-file' && value !== undefined) apply(config, key, value, `flag --${key}`);
  }
  check(config);
  return config;
}

function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost' || bare === '::1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

/** TLS files as the agent passes them on: all three or none. */
export interface TlsFileSet {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** What the security keys ask for, once their combinations have been checked. */
export interface SecuritySettings {
  /** Mutual TLS for what clients reach (gRPC and HTTP). */
  serverTls?: TlsFileSet;
  /** This node's identity towards other nodes (Raft, node-to-node calls). */
  peerTls?: TlsFileSet;
  /** Casbin model and policy; without them every authenticated client is allowed. */
  acl?: { modelFile: string; policyFile: string };
}

function tlsGroup(
  prefix: 'server-tls' | 'peer-tls',
  certFile: string | undefined,
  keyFile: string | undefined,
  caFile: string | undefined,
): TlsFileSet | undefined {
  const given = [certFile, keyFile, caFile];
  if (given.every((v) => v === undefined)) return undefined;
  if (certFile === undefined || keyFile === undefined || caFile === undefined) {
    const names = ['cert-file', 'key-file', 'ca-file'];
    const missing = names.filter((_n, i) => given[i] === undefined).map((n) => `--${prefix}-${n}`);
    const present = names.find((_n, i) => given[i] !== undefined) ?? 'cert-file';
    throw new ConfigError(
      `${prefix}-${present}`,
      `needs --${prefix}-cert-file, --${prefix}-key-file and --${prefix}-ca-file together (missing ${missing.join(', ')})`,
    );
  }
  return { certFile, keyFile, caFile };
}

/**
 * Checks the TLS, ACL and bind rules that span keys and answers what they ask for.
 * Secure by default: a non-loopback bind without server TLS needs --insecure.
 */
export function securitySettings(config: AgentConfig): SecuritySettings {
  const serverTls = tlsGroup(
    'server-tls',
    config.serverTlsCertFile,
    config.serverTlsKeyFile,
    config.serverTlsCaFile,
  );
  const peerTls = tlsGroup(
    'peer-tls',
    config.peerTlsCertFile,
    config.peerTlsKeyFile,
    config.peerTlsCaFile,
  );
  const { aclModelFile: modelFile, aclPolicyFile: policyFile } = config;
  if ((modelFile === undefined) !== (policyFile === undefined)) {
    throw new ConfigError(
      modelFile === undefined ? 'acl-policy-file' : 'acl-model-file',
      'needs --acl-model-file and --acl-policy-file together',
    );
  }
  const acl =
    modelFile !== undefined && policyFile !== undefined ? { modelFile, policyFile } : undefined;
  if (acl && !serverTls) {
    throw new ConfigError(
      'acl-model-file',
      "ACLs need server TLS (--server-tls-cert-file, --server-tls-key-file, --server-tls-ca-file): the subject is the client certificate's CN",
    );
  }
  const host = bindHost(config);
  if (!serverTls && !isLoopback(host) && !config.insecure) {
    throw new ConfigError(
      'bind-addr',
      `${host} is not a loopback address; serving it without TLS needs --insecure`,
    );
  }
  return { serverTls, peerTls, acl };
}

/** Rules that span keys. */
function check(config: AgentConfig): void {
  // With nobody to join, a node starts its own cluster (the embedded default).
  if (config.startJoinAddrs.length === 0) config.bootstrap = true;
  securitySettings(config);
}

/** The host part of bind-addr, where the RPC and HTTP ports listen too. */
export function bindHost(config: AgentConfig): string {
  return config.bindAddr.slice(0, config.bindAddr.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}
