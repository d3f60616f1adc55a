// Telemetry at the server's edges: a grpc-js interceptor and an HTTP wrapper that end
// every request in one log line, the request metrics and a server span, and the
// `GET /metrics` handler. Handlers reach their request's scope (for child spans) through
// `grpcScope(call.metadata)` / `httpScope(req)`.
import type { IncomingMessage, ServerResponse } from 'node:http';

import {
  type Metadata,
  ResponderBuilder,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status,
  type ServerInterceptor,
} from '@grpc/grpc-js';

import type {
  Metrics,
  Outcome,
  RequestLogLevel,
  RequestScope,
  RequestTelemetry,
} from '../telemetry/index.js';
import { findRoute, httpRoute } from './http-routes.js';

export { httpRoute };

const grpcScopes = new WeakMap<Metadata, RequestScope>();
const httpScopes = new WeakMap<IncomingMessage, RequestScope>();

/** The scope of the gRPC call whose request metadata this is (the handler's `call.metadata`). */
export function grpcScope(metadata: Metadata): RequestScope | undefined {
  return grpcScopes.get(metadata);
}

/** The scope of an HTTP request. */
export function httpScope(req: IncomingMessage): RequestScope | undefined {
  return httpScopes.get(req);
}

/**
 * Runs a storage append inside a `commitlog.log.append` child span of the request's
 * server span, when it is traced. The span covers waiting for the group commit, the
 * write and the fsync by policy.
 */
export function traceAppend(
  scope: RequestScope | undefined,
  records: number,
  bytes: number,
  append: () => Promise<bigint>,
): Promise<bigint> {
  if (!scope?.tracing) return append();
  const attributes = { 'commitlog.records': records, 'commitlog.bytes': bytes };
  return scope.trace('commitlog.log.append', attributes, async (span) => {
    const first = await append();
    span.setAttribute('commitlog.offset', Number(first));
    return first;
  });
}

/** Codes that mean the node failed, as OpenTelemetry's gRPC conventions count them. */
const SERVER_ERRORS = new Set<status>([
  status.UNKNOWN,
  status.UNIMPLEMENTED,
  status.INTERNAL,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

export function grpcOutcome(code: status): Outcome {
  if (code === status.OK) return 'ok';
  return SERVER_ERRORS.has(code) ? 'server_error' : 'client_error';
}

/**
 * UNAVAILABLE is what a node answers while it shuts down or after its log stopped;
 * the cause is logged on its own, so each refused call is a warning, not an error.
 */
function grpcLevel(code: status): RequestLogLevel | undefined {
  return code === status.UNAVAILABLE ? 'warn' : undefined;
}

function codeName(code: status): string {
  return status[code] ?? String(code);
}

/** The certificate CN of a TLS client, when there is one. */
function subjectOf(call: { getAuthContext(): { sslPeerCertificate?: { subject?: unknown } } }) {
  const subject = call.getAuthContext().sslPeerCertificate?.subject as
    { CN?: string | string[] } | undefined;
  const cn = subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

/**
 * The interceptor that ends every gRPC call (health and reflection included) in the
 * request telemetry. Put it first in the server's `interceptors`: grpc-js wraps each
 * later interceptor around the earlier ones, and one that refuses a call (authentication)
 * sends its status through those before it, so only the first sees every call.
 */
export function telemetryInterceptor(requests: RequestTelemetry): ServerInterceptor {
  return (descriptor, call) => {
    const method = descriptor.path.startsWith('/') ? descriptor.path.slice(1) : descriptor.path;
    const streaming = descriptor.requestStream || descriptor.responseStream;
    let scope: RequestScope | undefined;
    const begin = (metadata: Metadata | undefined) => {
      scope ??= requests.rpc({
        method,
        peer: call.getPeer(),
        streaming,
        metadata: requests.tracing && metadata ? metadata.getMap() : undefined,
      });
      return scope;
    };
    const finish = (code: status, details: string | undefined) => {
      const outcome = grpcOutcome(code);
      begin(undefined).end({
        code: codeName(code),
        outcome,
        subject: () => subjectOf(call),
        error: outcome === 'ok' ? undefined : details,
        level: grpcLevel(code),
      });
    };
    // grpc-js answers some failures itself, below every interceptor (a request that does
    // not parse: INTERNAL; one over the size limit: RESOURCE_EXHAUSTED), and then reports
    // the call as cancelled. The first interceptor is handed that bottom call, so its
    // sendStatus is where such a status can be seen: record what the client got.
    let sentBelow: { code: status; details: string } | undefined;
    const bottom = call as { sendStatus?: (s: { code: status; details: string }) => void };
    const own = bottom.sendStatus;
    if (typeof own === 'function') {
      bottom.sendStatus = function (this: unknown, sent) {
        sentBelow ??= { code: sent.code, details: sent.details };
        own.call(this, sent);
      };
    }
    return new ServerInterceptingCall(
      call,
      new ResponderBuilder()
        .withStart((next) => {
          next(
            new ServerListenerBuilder()
              .withOnReceiveMetadata((metadata, nextMetadata) => {
                grpcScopes.set(metadata, begin(metadata));
                nextMetadata(metadata);
              })
              .withOnCancel(() =>
                sentBelow
                  ? finish(sentBelow.code, sentBelow.details)
                  : finish(status.CANCELLED, 'cancelled by the client'),
              )
              .build(),
          );
        })
        .withSendStatus((sent, next) => {
          finish(sent.code, sent.details);
          next(sent);
        })
        .build(),
    );
  };
}

function httpOutcome(code: number): Outcome {
  if (code >= 500) return 'server_error';
  return code >= 400 ? 'client_error' : 'ok';
}

/** nginx's code for a request whose client went away before the answer. */
const CLIENT_CLOSED = 499;

function peerOf(req: IncomingMessage): string | undefined {
  const { remoteAddress, remotePort } = req.socket;
  if (remoteAddress === undefined) return undefined;
  return remoteAddress.includes(':')
    ? `[${remoteAddress}]:${remotePort ?? 0}`
    : `${remoteAddress}:${remotePort ?? 0}`;
}

/** Wraps the HTTP handler so that every request ends in the request telemetry. */
export function instrumentHttp(
  requests: RequestTelemetry,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const found = findRoute(method, path);
    const scope = requests.http({
      method,
      route: httpRoute(path),
      peer: peerOf(req),
      headers: requests.tracing ? req.headers : undefined,
      streaming: found.kind === 'found' && found.route.streaming === true,
    });
    httpScopes.set(req, scope);
    res.once('close', () => {
      const code = res.headersSent || res.writableFinished ? res.statusCode : CLIENT_CLOSED;
      scope.end({ code, outcome: httpOutcome(code) });
    });
    handler(req, res);
  };
}

/** `GET /metrics`: the Prometheus text exposition. */
export function serveMetrics(metrics: Metrics, res: ServerResponse): Promise<void> {
  return metrics.exposition().then(({ contentType, body }) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}
