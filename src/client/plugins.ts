// Registration of the grpc-js plug-ins and what a channel needs to use them. Nothing
// registers on import: grpc-js's registries are global, and an application decides.
import * as grpc from '@grpc/grpc-js';

import {
  CommitlogLoadBalancer,
  CommitlogLoadBalancingConfig,
  ROUTE_HEADER,
  type Route,
} from './balancer.js';
import {
  COMMITLOG_LB_POLICY,
  COMMITLOG_SCHEME,
  CommitlogResolver,
  GET_SERVERS_TIMEOUT_OPTION,
  REFRESH_INTERVAL_OPTION,
  RESOLVER_CREDENTIALS_OPTION,
  RETRY_DELAY_OPTION,
} from './resolver.js';

let resolverRegistered = false;

/**
 * Registers the `commitlog:` resolver and the `commitlog_leader` load-balancing policy
 * with grpc-js. Idempotent; call it once before creating a channel to a
 * `commitlog:` target (connect() calls it).
 */
export function registerCommitlogPlugins(): void {
  if (!grpc.experimental.isLoadBalancerNameRegistered(COMMITLOG_LB_POLICY)) {
    grpc.experimental.registerLoadBalancerType(
      COMMITLOG_LB_POLICY,
      CommitlogLoadBalancer,
      CommitlogLoadBalancingConfig,
    );
  }
  if (!resolverRegistered) {
    grpc.experimental.registerResolver(COMMITLOG_SCHEME, CommitlogResolver);
    resolverRegistered = true;
  }
}

/** Settings of the resolver, as channel options (see clusterChannelOptions). */
export interface ResolverSettings {
  /** Credentials for the resolver's GetServers calls: pass the channel's. */
  credentials?: grpc.ChannelCredentials;
  /** Routine refresh of the member list (default 10 000 ms). */
  refreshIntervalMs?: number;
  /** Delay before asking again after a failure or while no leader is known (default 100 ms). */
  retryDelayMs?: number;
  /** Deadline of one GetServers call (default 2 000 ms). */
  getServersTimeoutMs?: number;
}

/** Channel options for a `commitlog:` channel: the resolver's credentials and timings. */
export function clusterChannelOptions(s: ResolverSettings = {}): grpc.ChannelOptions {
  const o: grpc.ChannelOptions = {};
  if (s.credentials) o[RESOLVER_CREDENTIALS_OPTION] = s.credentials;
  if (s.refreshIntervalMs !== undefined) o[REFRESH_INTERVAL_OPTION] = s.refreshIntervalMs;
  if (s.retryDelayMs !== undefined) o[RETRY_DELAY_OPTION] = s.retryDelayMs;
  if (s.getServersTimeoutMs !== undefined) o[GET_SERVERS_TIMEOUT_OPTION] = s.getServersTimeoutMs;
  return o;
}

/** Methods that append: routed to the leader. */
const LEADER_METHODS = new Set([
  '/log.v1.Log/Produce',
  '/log.v1.Log/ProduceBatch',
  '/log.v1.Log/ProduceStream',
]);

/**
 * A client interceptor for generated clients: sets ROUTE_HEADER from the method
 * (produces to the leader, the rest to any member) unless the call set it itself.
 */
export const routeInterceptor: grpc.Interceptor = (options, nextCall) =>
  new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      if (metadata.get(ROUTE_HEADER).length === 0) {
        const route: Route = LEADER_METHODS.has(options.method_definition.path) ? 'leader' : 'any';
        metadata.set(ROUTE_HEADER, route);
      }
      next(metadata, listener);
    },
  });

/**
 * `commitlog://…` as is; `a:1,b:2` or `a:1` become `commitlog:///a:1,b:2`: a list of
 * members is always resolved through GetServers.
 */
export function clusterTarget(target: string): string {
  if (target.startsWith(`${COMMITLOG_SCHEME}:`)) return target;
  const list = target
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return `${COMMITLOG_SCHEME}:///${list.join(',')}`;
}

/** Whether `target` names several members or uses the commitlog: scheme. */
export function isClusterTarget(target: string): boolean {
  return target.startsWith(`${COMMITLOG_SCHEME}:`) || target.includes(',');
}

export { ROUTE_HEADER };
export type { Route };
