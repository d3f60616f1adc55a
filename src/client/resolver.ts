// The `commitlog:` name resolver, a grpc-js plug-in: `commitlog:///h1:8400,h2:8400`
// (or `commitlog://h1:8400,h2:8400`) names a cluster by any subset of its members. It
// asks them GetServers, hands grpc-js one endpoint per member and the leader's address
// as an attribute, and picks our load-balancing policy through the service config.
// It resolves again on a timer, when the channel asks (a connection dropped, a
// NOT_LEADER answer), and, after a short delay, while it knows no leader or no member
// answered: grpc-js's own resolution backoff starts at a second, too slow for failover.
import * as grpc from '@grpc/grpc-js';

import {
  GetServersRequest,
  GetServersResponse,
  LogService,
  type ServerInfo,
} from '../api/index.js';

const { SUBCHANNEL_ARGS_EXCLUDE_KEY_PREFIX, splitHostPort, statusOrFromError, statusOrFromValue } =
  grpc.experimental;

/** The URI scheme of cluster targets. */
export const COMMITLOG_SCHEME = 'commitlog';
/** Name of the load-balancing policy (see balancer.ts). */
export const COMMITLOG_LB_POLICY = 'commitlog_leader';
/**
 * Resolver attribute: the leader's address (`host:port`), absent while none is known.
 * grpc-js merges resolver attributes into the options it gives load balancers and
 * subchannels; the prefix keeps it out of subchannel options, so a new leader does not
 * mean new connections.
 */
export const LEADER_ATTRIBUTE = `${SUBCHANNEL_ARGS_EXCLUDE_KEY_PREFIX}.commitlog.leader`;
/**
 * Channel option: the grpc.ChannelCredentials the resolver uses for GetServers
 * (default: plaintext). The channel's own credentials are not visible to a resolver.
 */
export const RESOLVER_CREDENTIALS_OPTION = `${SUBCHANNEL_ARGS_EXCLUDE_KEY_PREFIX}.commitlog.credentials`;
/** Channel option: milliseconds between routine refreshes (default 10 000). */
export const REFRESH_INTERVAL_OPTION = `${SUBCHANNEL_ARGS_EXCLUDE_KEY_PREFIX}.commitlog.refresh_ms`;
/** Channel option: delay before resolving again after a failure or without a leader (default 100). */
export const RETRY_DELAY_OPTION = `${SUBCHANNEL_ARGS_EXCLUDE_KEY_PREFIX}.commitlog.retry_ms`;
/** Channel option: deadline of one GetServers call in milliseconds (default 2 000). */
export const GET_SERVERS_TIMEOUT_OPTION = `${SUBCHANNEL_ARGS_EXCLUDE_KEY_PREFIX}.commitlog.get_servers_ms`;

const DEFAULT_REFRESH_MS = 10_000;
const DEFAULT_RETRY_MS = 100;
const DEFAULT_GET_SERVERS_MS = 2_000;
/** The TLS name used when none is set; every `commitlog cert` server certificate has it. */
const DEFAULT_AUTHORITY = 'localhost';

/** The seeds of a `commitlog:` target: `host:port` strings. */
export function seedsOf(target: grpc.experimental.GrpcUri): string[] {
  const list = target.path.replace(/^\/+/, '');
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function parseAddress(address: string): { host: string; port: number } | undefined {
  const hp = splitHostPort(address);
  if (!hp || hp.port === undefined || hp.host === '') return undefined;
  return { host: hp.host, port: hp.port };
}

function joinAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

/**
 * `addr` as a dialable address: a node that advertises a wildcard host (it listens on
 * every interface) is reached on the host we reached the answering node at.
 */
function dialable(addr: string, answeredBy: string): string | undefined {
  const a = parseAddress(addr);
  if (!a) return undefined;
  if (!WILDCARD_HOSTS.has(a.host)) return joinAddress(a.host, a.port);
  const by = parseAddress(answeredBy);
  return by ? joinAddress(by.host, a.port) : undefined;
}

const GetServersClient = grpc.makeGenericClientConstructor(
  { getServers: LogService.getServers },
  'log.v1.Log',
);

function numberOption(options: grpc.ChannelOptions, key: string, fallback: number): number {
  const v: unknown = options[key];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fallback;
}

/** A member list as one node answered it, in dialable addresses. */
interface Answer {
  servers: { id: string; addr: string; isLeader: boolean }[];
  from: string;
}

export class CommitlogResolver implements grpc.experimental.Resolver {
  private readonly seeds: string[];
  private readonly refreshMs: number;
  private readonly retryMs: number;
  private readonly getServersMs: number;
  private readonly credentials: grpc.ChannelCredentials;
  private readonly clientOptions: grpc.ChannelOptions;
  private readonly clients = new Map<string, grpc.Client>();
  /** Addresses from the last answer: asked first next time (seeds may be gone). */
  private members: string[] = [];
  private reported = false;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;
  private running = false;
  private again = false;
  private destroyed = false;

  constructor(
    target: grpc.experimental.GrpcUri,
    private readonly listener: grpc.experimental.ResolverListener,
    options: grpc.ChannelOptions,
  ) {
    this.seeds = seedsOf(target);
    this.refreshMs = numberOption(options, REFRESH_INTERVAL_OPTION, DEFAULT_REFRESH_MS);
    this.retryMs = numberOption(options, RETRY_DELAY_OPTION, DEFAULT_RETRY_MS);
    this.getServersMs = numberOption(options, GET_SERVERS_TIMEOUT_OPTION, DEFAULT_GET_SERVERS_MS);
    const creds: unknown = options[RESOLVER_CREDENTIALS_OPTION];
    this.credentials =
      creds instanceof grpc.ChannelCredentials ? creds : grpc.credentials.createInsecure();
    // GetServers verifies the same TLS name as the channel's calls.
    this.clientOptions = {};
    for (const key of ['grpc.ssl_target_name_override', 'grpc.default_authority']) {
      const value: unknown = options[key];
      if (value !== undefined) this.clientOptions[key] = value;
    }
    if (this.clientOptions['grpc.ssl_target_name_override'] === undefined) {
      this.clientOptions['grpc.ssl_target_name_override'] = DEFAULT_AUTHORITY;
    }
  }

  static getDefaultAuthority(target: grpc.experimental.GrpcUri): string {
    if (seedsOf(target).length === 0) {
      throw new Error(`${COMMITLOG_SCHEME}: target names no host:port: ${target.path}`);
    }
    return DEFAULT_AUTHORITY;
  }

  updateResolution(): void {
    this.destroyed = false;
    // Never synchronously (the Resolver contract), and never more often than retryMs.
    this.schedule(this.reported ? this.retryMs : 0);
  }

  destroy(): void {
    this.destroyed = true;
    this.clearTimer();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  /** Resolves in `delay` ms unless a resolution is already due sooner. */
  private schedule(delay: number): void {
    if (this.destroyed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    const due = Date.now() + delay;
    if (due >= this.timerDue) return;
    this.clearTimer();
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      void this.resolve();
    }, delay);
    this.timer.unref();
  }

  private async resolve(): Promise<void> {
    this.running = true;
    let next = this.refreshMs;
    try {
      const answer = await this.ask();
      if (this.destroyed) return;
      this.report(answer);
      if (!answer.servers.some((s) => s.isLeader)) next = this.retryMs;
    } catch (err) {
      if (this.destroyed) return;
      next = this.retryMs;
      // Keep using the last good list: a blip in GetServers is not a reason to drop
      // connections that work.
      if (!this.reported) {
        this.listener(
          statusOrFromError({
            code: grpc.status.UNAVAILABLE,
            details: `no member of ${this.seeds.join(',')} answered GetServers: ${(err as Error).message}`,
          }),
          {},
          null,
          '',
        );
      }
    } finally {
      this.running = false;
    }
    if (this.again) {
      this.again = false;
      next = Math.min(next, this.retryMs);
    }
    this.schedule(next);
  }

  private report(answer: Answer): void {
    const endpoints: grpc.experimental.Endpoint[] = [];
    let leader: string | undefined;
    for (const s of answer.servers) {
      const a = parseAddress(s.addr);
      if (!a) continue;
      endpoints.push({ addresses: [a] });
      if (s.isLeader) leader = s.addr;
    }
    this.members = answer.servers.map((s) => s.addr);
    this.reported = true;
    const attributes: { [key: string]: unknown } = {};
    if (leader !== undefined) attributes[LEADER_ATTRIBUTE] = leader;
    this.listener(
      statusOrFromValue(endpoints),
      attributes,
      statusOrFromValue({ loadBalancingConfig: [{ [COMMITLOG_LB_POLICY]: {} }], methodConfig: [] }),
      `${COMMITLOG_SCHEME}: members from ${answer.from}`,
    );
  }

  private client(address: string): grpc.Client {
    let c = this.clients.get(address);
    if (!c) {
      c = new GetServersClient(address, this.credentials, this.clientOptions);
      this.clients.set(address, c);
    }
    return c;
  }

  private getServers(address: string): Promise<ServerInfo[]> {
    return new Promise((resolve, reject) => {
      this.client(address).makeUnaryRequest<GetServersRequest, GetServersResponse>(
        LogService.getServers.path,
        LogService.getServers.requestSerialize,
        LogService.getServers.responseDeserialize,
        {},
        { deadline: Date.now() + this.getServersMs },
        (err, res) => (err || !res ? reject(err ?? new Error('no answer')) : resolve(res.servers)),
      );
    });
  }

  /**
   * Asks every known member and seed at once; the first answer that names a leader
   * wins, else the first answer. Rejects when nobody answers.
   */
  private ask(): Promise<Answer> {
    const candidates = [...new Set([...this.members, ...this.seeds])];
    for (const [addr, c] of this.clients) {
      if (!candidates.includes(addr)) {
        c.close();
        this.clients.delete(addr);
      }
    }
    return new Promise((resolve, reject) => {
      let pending = candidates.length;
      let first: Answer | undefined;
      let lastError: unknown;
      const settle = () => {
        if (--pending > 0) return;
        if (first) resolve(first);
        else reject(lastError instanceof Error ? lastError : new Error('no seeds'));
      };
      for (const from of candidates) {
        this.getServers(from).then(
          (list) => {
            const servers = list.flatMap((s) => {
              const addr = dialable(s.rpcAddr, from);
              return addr ? [{ id: s.id, addr, isLeader: s.isLeader }] : [];
            });
            const answer = { servers, from };
            if (servers.some((s) => s.isLeader)) resolve(answer);
            else if (servers.length > 0) first ??= answer;
            settle();
          },
          (err: unknown) => {
            lastError = err;
            settle();
          },
        );
      }
      if (candidates.length === 0) reject(new Error('no seeds'));
    });
  }
}
