// The agent's configuration: flags > environment (COMMITLOG_*) > config file (YAML or
// JSON, same keys as the flags) > defaults. Every key is parsed here, and every bad
// value or unknown key is a ConfigError that names the key and where it came from.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isIP } from 'node:net';

import { parse as parseYaml } from 'yaml';

import type { TlsFiles } from '../auth/index.js';
import { DEFAULT_LIMITS, type ServerLimits } from '../server/index.js';
import { InvalidLogOptionError, parseFsyncPolicy, type FsyncPolicy } from '../log/index.js';
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
  override readonly name = 'ConfigError';
  constructor(
    readonly key: string,
    /** What is wrong, without the key or the origin. */
    readonly reason: string,
    options?: ErrorOptions & {
      /** Where the bad value came from (`flag --rpc-port`, `config file a.yaml`, …). */
      origin?: string;
    },
  ) {
    super(`${key}: ${reason}${options?.origin ? ` (from ${options.origin})` : ''}`, options);
    this.origin = options?.origin;
  }

  readonly origin: string | undefined;

  /** The same problem, saying where the value came from. */
  withOrigin(origin: string): ConfigError {
    return new ConfigError(this.key, this.reason, { origin, cause: this.cause });
  }
}

export type { FsyncPolicy, LogFormat, LogLevel };

/** TLS files as given: each may be missing (securitySettings checks they come in threes). */
export interface TlsFileFields {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
}

/**
 * The parsed configuration, grouped by the part of the node that uses it. Flags,
 * environment variables and config-file keys stay flat (`server-tls-cert-file`); each
 * row of CONFIG_ROWS says where its value lands here.
 */
export interface AgentConfig {
  dataDir: string;
  nodeName: string;
  /** Gossip address host:port; its host is also where gRPC and HTTP listen. */
  bindAddr: string;
  /** The host other nodes and clients dial (never 0.0.0.0); default the bind host. */
  advertiseHost?: string;
  rpcPort: number;
  httpPort: number;
  /** Allow a non-loopback bind without server TLS. */
  insecure: boolean;
  membership: {
    startJoinAddrs: string[];
    /** How long a joining node waits to learn its cluster's id from the seeds. */
    joinTimeoutMs: number;
    /** On SIGTERM/SIGINT, leave the cluster (and be removed) rather than just stop. */
    leaveOnTerminate: boolean;
    /** Base64 AES key shared by every member; gossip is in clear without. */
    gossipKey?: string;
    /** Gossip timings: `lan` (memberlist's) or `local` (fast, one machine). */
    preset: 'lan' | 'local';
  };
  raft: {
    /** Start a new cluster with this node (derived: true when there is nobody to join). */
    bootstrap: boolean;
    /** True when --bootstrap was given (not derived). */
    bootstrapExplicit: boolean;
    tickMs: number;
    /** Followers campaign after [n, 2n) ticks without a leader. */
    electionTicks: number;
    /** How long a produce waits for an election before answering UNAVAILABLE. */
    leaderWaitMs: number;
    /** A dead voter is removed after this long (ms); absent: only by an operator. */
    reapAfterMs?: number;
    /** Reaping never leaves fewer voters than this. */
    minVoters: number;
  };
  storage: {
    fsync: FsyncPolicy;
    segmentMaxBytes: number;
    /** Produces are refused while the data directory's disk has less free (0: never). */
    minFreeBytes: number;
  };
  /** What one client and all clients may hold (streams, connections, buffers). */
  limits: ServerLimits;
  tls: {
    /** Mutual TLS for what clients reach (gRPC and HTTP). */
    server: TlsFileFields;
    /** This node's identity towards other nodes. */
    peer: TlsFileFields;
  };
  acl: {
    modelFile?: string;
    policyFile?: string;
  };
  telemetry: {
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
  };
}

/** A value as a source gives it: flags and environment give strings, config files more. */
export type Raw = string | number | boolean | string[];
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

function asEnum<T extends string>(values: readonly T[]): Parser {
  return (raw, key) => {
    if (typeof raw === 'string' && (values as readonly string[]).includes(raw)) return raw;
    throw new ConfigError(key, `must be one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
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

/** The log library's grammar (always | never | interval:<ms>[ms]), as a ConfigError. */
function asFsync(raw: Raw, key: string): FsyncPolicy {
  try {
    return parseFsyncPolicy(asString(raw, key));
  } catch (err) {
    if (!(err instanceof InvalidLogOptionError)) throw err;
    throw new ConfigError(
      key,
      `must be always, never or interval:<ms>, got ${JSON.stringify(raw)}`,
      { cause: err },
    );
  }
}

/** How an fsync policy is written (the inverse of asFsync). */
export function formatFsync(policy: FsyncPolicy): string {
  return typeof policy === 'object' ? `interval:${policy.intervalMs}` : policy;
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

/** One configuration key: everything flags, environment, config files, --help and docs need. */
export interface ConfigRow {
  /** The flag (`--key`) and config-file key. */
  key: string;
  /** The flag's argument in --help (`<dir>`); absent for switches. */
  arg?: string;
  help: string;
  parse: Parser;
  /** Where the parsed value lands in AgentConfig. */
  path: readonly [keyof AgentConfig, ...string[]];
  /** How the default reads in --help and docs, when the value itself would not do. */
  defaultText?: string;
  /** On by default: the flag is `--no-<key>`. */
  negatable?: boolean;
}

/** Every key, in --help order. */
const ROWS = [
  {
    key: 'data-dir',
    arg: '<dir>',
    help: 'where the log lives (<data-dir>/log)',
    parse: asString,
    path: ['dataDir'],
  },
  {
    key: 'node-name',
    arg: '<name>',
    help: "this node's unique id in the cluster",
    parse: asString,
    path: ['nodeName'],
    defaultText: 'the host name',
  },
  {
    key: 'bind-addr',
    arg: '<host:port>',
    help: 'gossip address; its host is where gRPC and HTTP listen too',
    parse: asHostPort,
    path: ['bindAddr'],
  },
  {
    key: 'rpc-port',
    arg: '<port>',
    help: 'gRPC port on the bind host (0 picks a free port)',
    parse: asInt(0, 65535),
    path: ['rpcPort'],
  },
  {
    key: 'http-port',
    arg: '<port>',
    help: 'HTTP/JSON API port on the bind host (0 picks a free port)',
    parse: asInt(0, 65535),
    path: ['httpPort'],
  },
  {
    key: 'start-join-addrs',
    arg: '<addrs>',
    help: 'comma-separated gossip addresses of nodes to join (a list in config files)',
    parse: asHostPortList,
    path: ['membership', 'startJoinAddrs'],
    defaultText: 'none',
  },
  {
    key: 'bootstrap',
    help: 'start a new cluster with this node',
    parse: asBool,
    path: ['raft', 'bootstrap'],
    defaultText: 'implied without start-join-addrs',
  },
  {
    key: 'advertise-host',
    arg: '<host>',
    help: 'the host or DNS name other nodes and clients dial (required in spirit when binding 0.0.0.0)',
    parse: asString,
    path: ['advertiseHost'],
    defaultText: 'the bind host (the host name when binding 0.0.0.0)',
  },
  {
    key: 'leave-on-terminate',
    help: 'on SIGTERM/SIGINT leave the cluster and be removed from it (scale-down), rather than stop as a member that will return (restart)',
    parse: asBool,
    path: ['membership', 'leaveOnTerminate'],
  },
  {
    key: 'gossip-key',
    arg: '<base64>',
    help: 'AES key (16, 24 or 32 bytes, base64) that encrypts gossip; the same on every node',
    parse: asString,
    path: ['membership', 'gossipKey'],
    defaultText: 'none (gossip in clear)',
  },
  {
    key: 'gossip-preset',
    arg: '<preset>',
    help: 'gossip timings: lan (probe every 1 s) | local (probe every 200 ms, one machine)',
    parse: asEnum(['lan', 'local']),
    path: ['membership', 'preset'],
  },
  {
    key: 'join-timeout-ms',
    arg: '<ms>',
    help: "how long a joining node waits to learn its cluster's id from the join addresses",
    parse: asInt(100, 3_600_000),
    path: ['membership', 'joinTimeoutMs'],
  },
  {
    key: 'raft-tick-ms',
    arg: '<ms>',
    help: 'Raft clock tick; heartbeats go every tick',
    parse: asInt(1, 10_000),
    path: ['raft', 'tickMs'],
  },
  {
    key: 'raft-election-ticks',
    arg: '<n>',
    help: 'followers campaign after n to 2n ticks without hearing a leader',
    parse: asInt(2, 1000),
    path: ['raft', 'electionTicks'],
  },
  {
    key: 'leader-wait-ms',
    arg: '<ms>',
    help: 'how long a produce waits for a leader to be elected before answering UNAVAILABLE',
    parse: asInt(0, 600_000),
    path: ['raft', 'leaderWaitMs'],
  },
  {
    key: 'reap-after-ms',
    arg: '<ms>',
    help: 'remove a voter that has been dead this long (never below min-voters)',
    parse: asInt(1000, 2 ** 31 - 1),
    path: ['raft', 'reapAfterMs'],
    defaultText: 'never (remove with `commitlog servers remove ID`)',
  },
  {
    key: 'min-voters',
    arg: '<n>',
    help: 'reaping dead voters never leaves fewer than this',
    parse: asInt(1, 99),
    path: ['raft', 'minVoters'],
  },
  {
    key: 'acl-model-file',
    arg: '<file>',
    help: 'Casbin ACL model (sub, obj, act); with --acl-policy-file, needs server TLS',
    parse: asString,
    path: ['acl', 'modelFile'],
  },
  {
    key: 'acl-policy-file',
    arg: '<file>',
    help: 'Casbin ACL policy; without ACL files every client with a valid certificate is allowed. Reloaded on SIGHUP and when the files change',
    parse: asString,
    path: ['acl', 'policyFile'],
  },
  {
    key: 'server-tls-cert-file',
    arg: '<file>',
    help: 'certificate for gRPC and HTTPS (PEM); with the key and CA files, turns on mutual TLS',
    parse: asString,
    path: ['tls', 'server', 'certFile'],
  },
  {
    key: 'server-tls-key-file',
    arg: '<file>',
    help: 'private key of --server-tls-cert-file (PEM)',
    parse: asString,
    path: ['tls', 'server', 'keyFile'],
  },
  {
    key: 'server-tls-ca-file',
    arg: '<file>',
    help: 'CA that signs client certificates; clients must present one (PEM)',
    parse: asString,
    path: ['tls', 'server', 'caFile'],
  },
  {
    key: 'peer-tls-cert-file',
    arg: '<file>',
    help: "this node's certificate towards other nodes (PEM)",
    parse: asString,
    path: ['tls', 'peer', 'certFile'],
  },
  {
    key: 'peer-tls-key-file',
    arg: '<file>',
    help: 'private key of --peer-tls-cert-file (PEM)',
    parse: asString,
    path: ['tls', 'peer', 'keyFile'],
  },
  {
    key: 'peer-tls-ca-file',
    arg: '<file>',
    help: "CA that signs other nodes' certificates (PEM)",
    parse: asString,
    path: ['tls', 'peer', 'caFile'],
  },
  {
    key: 'fsync',
    arg: '<policy>',
    help: 'always (with group commit) | never | interval:<ms> (e.g. interval:100 or interval:100ms)',
    parse: asFsync,
    path: ['storage', 'fsync'],
  },
  {
    key: 'segment-max-bytes',
    arg: '<n>',
    help: 'roll to a new segment past this size',
    parse: asInt(1024, 2 ** 31 - 1),
    path: ['storage', 'segmentMaxBytes'],
  },
  {
    key: 'min-free-bytes',
    arg: '<n>',
    help: 'refuse produces (RESOURCE_EXHAUSTED, HTTP 507) while the disk holding --data-dir has less free; 0: no reserve',
    parse: asInt(0, Number.MAX_SAFE_INTEGER),
    path: ['storage', 'minFreeBytes'],
  },
  {
    key: 'max-stream-buffer-bytes',
    arg: '<n>',
    help: 'bytes a consume stream may have waiting beyond the HTTP/2 window before it stops reading the log (one message always goes)',
    parse: asInt(16 * 1024, 2 ** 31 - 1),
    path: ['limits', 'streamBufferBytes'],
  },
  {
    key: 'max-streams-per-connection',
    arg: '<n>',
    help: 'long-lived streams (ConsumeStream, ConsumeBatchStream, ProduceStream) on one connection; more get RESOURCE_EXHAUSTED',
    parse: asInt(1, 100_000),
    path: ['limits', 'streamsPerConnection'],
  },
  {
    key: 'max-streams',
    arg: '<n>',
    help: 'long-lived streams on the node, all connections together; more get RESOURCE_EXHAUSTED',
    parse: asInt(1, 1_000_000),
    path: ['limits', 'streams'],
  },
  {
    key: 'max-connections-per-address',
    arg: '<n>',
    help: 'open connections from one client address, on the RPC port and on the HTTP port each; more are closed',
    parse: asInt(1, 1_000_000),
    path: ['limits', 'connectionsPerAddress'],
  },
  {
    key: 'max-connections',
    arg: '<n>',
    help: 'open connections to the HTTP port, all addresses together; more are closed',
    parse: asInt(1, 1_000_000),
    path: ['limits', 'connections'],
  },
  {
    key: 'handshake-timeout-ms',
    arg: '<ms>',
    help: 'a connection that has not sent a whole request head (HTTP) or finished TLS within this is closed',
    parse: asInt(100, 600_000),
    path: ['limits', 'handshakeTimeoutMs'],
  },
  {
    key: 'keepalive-time-ms',
    arg: '<ms>',
    help: 'send an HTTP/2 PING to a gRPC client after this much silence',
    parse: asInt(1000, 2 ** 31 - 1),
    path: ['limits', 'keepaliveTimeMs'],
  },
  {
    key: 'keepalive-timeout-ms',
    arg: '<ms>',
    help: 'close a gRPC connection whose PING is not answered within this',
    parse: asInt(100, 600_000),
    path: ['limits', 'keepaliveTimeoutMs'],
  },
  {
    key: 'connection-idle-ms',
    arg: '<ms>',
    help: 'close a gRPC connection that has had no call for this long',
    parse: asInt(1000, 2 ** 31 - 1),
    path: ['limits', 'connectionIdleMs'],
  },
  {
    key: 'log-level',
    arg: '<level>',
    help: 'fatal | error | warn | info | debug | trace | silent (successful requests are logged at debug)',
    parse: telemetry(parseLogLevel),
    path: ['telemetry', 'logLevel'],
  },
  {
    key: 'log-format',
    arg: '<format>',
    help: 'json | pretty | auto (auto: pretty when stdout is a terminal, JSON lines otherwise)',
    parse: telemetry(parseLogFormat),
    path: ['telemetry', 'logFormat'],
  },
  {
    key: 'metrics',
    help: 'Prometheus metrics on GET /metrics of the HTTP port (--no-metrics turns them off)',
    parse: asBool,
    path: ['telemetry', 'metrics'],
    negatable: true,
  },
  {
    key: 'otlp-endpoint',
    arg: '<url>',
    help: 'send trace spans to this OTLP/HTTP collector, e.g. http://localhost:4318 (turns tracing on)',
    parse: asHttpUrl,
    path: ['telemetry', 'otlpEndpoint'],
  },
  {
    key: 'trace-file',
    arg: '<path>',
    help: 'append trace spans to this file as JSON lines (turns tracing on)',
    parse: asString,
    path: ['telemetry', 'traceFile'],
  },
  {
    key: 'trace-sample-ratio',
    arg: '<ratio>',
    help: "share of new traces recorded when tracing is on, 0 to 1 (a caller's choice is kept)",
    parse: telemetry(parseSampleRatio),
    path: ['telemetry', 'traceSampleRatio'],
  },
  {
    key: 'insecure',
    help: 'allow binding a non-loopback address without TLS (otherwise refused)',
    parse: asBool,
    path: ['insecure'],
  },
] as const satisfies readonly ConfigRow[];

export type ConfigKey = (typeof ROWS)[number]['key'];
export const CONFIG_ROWS: readonly ConfigRow[] = ROWS;
export const CONFIG_KEYS: ConfigKey[] = ROWS.map<ConfigKey>((r) => r.key);

const BY_KEY = new Map<string, ConfigRow>(ROWS.map((r) => [r.key, r]));

/** The environment variable for a key: `data-dir` → `COMMITLOG_DATA_DIR`. */
export function envName(key: string): string {
  return 'COMMITLOG_' + key.toUpperCase().replaceAll('-', '_');
}

/** The value at a row's path (undefined when unset). */
export function valueAt(config: AgentConfig, path: readonly string[]): unknown {
  let at: unknown = config;
  for (const part of path) at = (at as Record<string, unknown> | undefined)?.[part];
  return at;
}

function setAt(config: AgentConfig, path: readonly string[], value: unknown): void {
  let at = config as unknown as Record<string, unknown>;
  for (const part of path.slice(0, -1)) at = at[part] as Record<string, unknown>;
  at[path[path.length - 1] as string] = value;
}

/** How a row's default reads in --help and docs; undefined when there is none. */
export function defaultText(
  row: ConfigRow,
  defaults: AgentConfig = defaultConfig(),
): string | undefined {
  if (row.defaultText !== undefined) return row.defaultText;
  const value = valueAt(defaults, row.path);
  if (value === undefined) return undefined;
  if (row.key === 'fsync') return formatFsync(value as FsyncPolicy);
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',');
  const scalar =
    typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
  return scalar ? String(value) : JSON.stringify(value);
}

export function defaultConfig(): AgentConfig {
  return {
    dataDir: './data',
    nodeName: hostname(),
    bindAddr: '127.0.0.1:8401',
    rpcPort: 8400,
    httpPort: 8080,
    insecure: false,
    membership: {
      startJoinAddrs: [],
      joinTimeoutMs: 30_000,
      leaveOnTerminate: false,
      preset: 'lan',
    },
    raft: {
      bootstrap: false,
      bootstrapExplicit: false,
      tickMs: 50,
      electionTicks: 12,
      leaderWaitMs: 5000,
      minVoters: 3,
    },
    storage: { fsync: 'always', segmentMaxBytes: 64 * 1024 * 1024, minFreeBytes: 64 * 1024 * 1024 },
    limits: { ...DEFAULT_LIMITS },
    tls: { server: {}, peer: {} },
    acl: {},
    telemetry: { logLevel: 'info', logFormat: 'auto', metrics: true, traceSampleRatio: 1 },
  };
}

export interface ConfigSources {
  /** Keys given on the command line (kebab-case keys). */
  flags?: Partial<Record<ConfigKey | 'config-file', Raw>>;
  env?: NodeJS.ProcessEnv;
}

function apply(config: AgentConfig, key: string, raw: Raw, origin: string): void {
  const row = BY_KEY.get(key);
  if (!row) {
    throw new ConfigError(key, `unknown key in ${origin} (known: ${CONFIG_KEYS.join(', ')})`);
  }
  try {
    setAt(config, row.path, row.parse(raw, key));
  } catch (err) {
    if (err instanceof ConfigError) throw err.withOrigin(origin);
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

/** COMMITLOG_* variables that are not agent keys but are read elsewhere (the client commands). */
const OTHER_ENV = new Set(['COMMITLOG_ADDR']);

/** Edit distance, for "did you mean" (short names only, so quadratic is fine). */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        (row[j] ?? 0) + 1,
        (next[j - 1] ?? 0) + 1,
        (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

/**
 * A COMMITLOG_* variable that names no key is a mistake the node would otherwise ignore
 * silently (COMMITLOG_RPCPORT): refused like an unknown config-file key.
 */
function checkEnvNames(env: NodeJS.ProcessEnv): void {
  const known = new Set([...CONFIG_KEYS, 'config-file'].map(envName));
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('COMMITLOG_') || known.has(name) || OTHER_ENV.has(name)) continue;
    const closest = [...known].sort((a, b) => distance(name, a) - distance(name, b))[0];
    const hint = closest && distance(name, closest) <= 3 ? `did you mean ${closest}? ` : '';
    throw new ConfigError(
      name,
      `unknown environment variable (${hint}every key has one: ${envName('data-dir')}, ${envName('rpc-port')}, …; see commitlog agent --help)`,
    );
  }
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
  checkEnvNames(env);
  for (const key of CONFIG_KEYS) {
    const value = env[envName(key)];
    if (value !== undefined) apply(config, key, value, `environment variable ${envName(key)}`);
  }
  for (const [key, value] of Object.entries(flags)) {
    if (key !== 'config-file' && value !== undefined) apply(config, key, value, `flag --${key}`);
  }
  config.raft.bootstrapExplicit = config.raft.bootstrap;
  // With nobody to join, a node starts its own cluster (the embedded default).
  if (config.membership.startJoinAddrs.length === 0) config.raft.bootstrap = true;
  securitySettings(config); // refuse bad combinations before anything starts
  return config;
}

function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost' || bare === '::1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

/** What the security keys ask for, once their combinations have been checked. */
export interface SecuritySettings {
  /** Mutual TLS for what clients reach (gRPC and HTTP). */
  serverTls?: TlsFiles;
  /** This node's identity towards other nodes (Raft, node-to-node calls). */
  peerTls?: TlsFiles;
  /** Casbin model and policy; without them every authenticated client is allowed. */
  acl?: { modelFile: string; policyFile: string };
}

function tlsGroup(
  prefix: 'server-tls' | 'peer-tls',
  { certFile, keyFile, caFile }: TlsFileFields,
): TlsFiles | undefined {
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
  const serverTls = tlsGroup('server-tls', config.tls.server);
  const peerTls = tlsGroup('peer-tls', config.tls.peer);
  const { modelFile, policyFile } = config.acl;
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

/** The host part of bind-addr, where the RPC and HTTP ports listen too. */
export function bindHost(config: AgentConfig): string {
  return config.bindAddr.slice(0, config.bindAddr.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}
