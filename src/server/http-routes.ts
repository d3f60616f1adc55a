// The HTTP API's routes, described once: authorization (the action a route needs),
// dispatch (the handler it runs), 405 answers with `Allow`, and the route name that
// request metrics and spans are labelled with all come from these rows.
import { ACTION_CONSUME, ACTION_PRODUCE } from '../auth/index.js';

export type HttpMethod = 'GET' | 'POST';

/** What a route does; the gateway binds each name to its handler (checked exhaustively). */
export type HttpHandlerName =
  | 'produceWrapped'
  | 'consumeBody'
  | 'produce'
  | 'tail'
  | 'consumeAt'
  | 'metrics'
  | 'healthz'
  | 'readyz'
  | 'status'
  | 'consolePage'
  | 'consoleAsset';

export interface HttpRoute {
  method: HttpMethod;
  /** The route matches this path exactly, or every path under `prefix`. */
  match: { path: string } | { prefix: string };
  /** The ACL action the route needs; absent for open routes (probes, metrics). */
  action?: string;
  handler: HttpHandlerName;
  /** The template that labels the route in metrics and spans (a bounded set). */
  routeName: string;
  /** A response that stays open (a tail). */
  streaming?: boolean;
}

export const HTTP_ROUTES: readonly HttpRoute[] = [
  // The book's first chapter: POST {"record":…} to produce, GET {"offset":N} to consume.
  {
    method: 'POST',
    match: { path: '/' },
    action: ACTION_PRODUCE,
    handler: 'produceWrapped',
    routeName: '/',
  },
  {
    method: 'GET',
    match: { path: '/' },
    action: ACTION_CONSUME,
    handler: 'consumeBody',
    routeName: '/',
  },
  {
    method: 'POST',
    match: { path: '/v1/records' },
    action: ACTION_PRODUCE,
    handler: 'produce',
    routeName: '/v1/records',
  },
  {
    method: 'GET',
    match: { path: '/v1/records' },
    action: ACTION_CONSUME,
    handler: 'tail',
    routeName: '/v1/records',
    streaming: true,
  },
  {
    method: 'GET',
    match: { prefix: '/v1/records/' },
    action: ACTION_CONSUME,
    handler: 'consumeAt',
    routeName: '/v1/records/{offset}',
  },
  { method: 'GET', match: { path: '/metrics' }, handler: 'metrics', routeName: '/metrics' },
  { method: 'GET', match: { path: '/healthz' }, handler: 'healthz', routeName: '/healthz' },
  { method: 'GET', match: { path: '/readyz' }, handler: 'readyz', routeName: '/readyz' },
  // Who is in the cluster is read access, as GetServers is.
  {
    method: 'GET',
    match: { path: '/v1/status' },
    action: ACTION_CONSUME,
    handler: 'status',
    routeName: '/v1/status',
  },
  // The web console's static files hold no data: its data calls are the routes above.
  { method: 'GET', match: { path: '/ui' }, handler: 'consolePage', routeName: '/ui' },
  {
    method: 'GET',
    match: { prefix: '/ui/assets/' },
    handler: 'consoleAsset',
    routeName: '/ui/assets/{name}',
  },
];

function matches(route: HttpRoute, path: string): boolean {
  return 'path' in route.match ? path === route.match.path : path.startsWith(route.match.prefix);
}

/** What is left of `path` after the route's prefix (the `{offset}` of a prefix route). */
export function routeRest(route: HttpRoute, path: string): string {
  return 'prefix' in route.match ? path.slice(route.match.prefix.length) : '';
}

export type RouteLookup =
  | { kind: 'found'; route: HttpRoute }
  /** The path exists, not with this method: 405 with these methods in `Allow`. */
  | { kind: 'method-not-allowed'; allow: HttpMethod[]; routeName: string }
  | { kind: 'not-found' };

/** Finds the route for a request; `exclude` drops routes that are switched off. */
export function findRoute(
  method: string,
  path: string,
  exclude: (route: HttpRoute) => boolean = () => false,
): RouteLookup {
  const onPath = HTTP_ROUTES.filter((r) => !exclude(r) && matches(r, path));
  const route = onPath.find((r) => r.method === method);
  if (route) return { kind: 'found', route };
  const first = onPath[0];
  if (first === undefined) return { kind: 'not-found' };
  return {
    kind: 'method-not-allowed',
    allow: [...new Set(onPath.map((r) => r.method))].sort(),
    routeName: first.routeName,
  };
}

/** The route template of a path, for metric labels: 'other' for paths no route has. */
export function httpRoute(path: string): string {
  return HTTP_ROUTES.find((r) => matches(r, path))?.routeName ?? 'other';
}
