// The HTTP/JSON API: the book's first chapter on `/` (POST to produce, GET with a
// JSON body to consume), REST routes under /v1, a live tail, and health probes.
// Offsets are JSON numbers, as in the book; requests may also send them as strings.
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { HttpAuthenticate, HttpAuthorize } from './auth.js';
import type { Metrics } from '../telemetry/index.js';
import {
  InvalidRequestError,
  ShuttingDownError,
  ValueTooLargeError,
  type ErrorTable,
} from './errors.js';
import { serveConsoleAsset, serveConsolePage } from './console-assets.js';
import { statusDocument, ThroughputSampler } from './console-status.js';
import type { Appender } from './forwarding.js';
import { findRoute, routeRest, type HttpHandlerName } from './http-routes.js';
import { recordsFrom } from './log-service.js';
import type { ClusterView, CommitLog, CommittedRecord, ServerLogger } from './ports.js';
import { httpScope, serveMetrics, traceAppend } from './telemetry.js';

export interface HttpGatewayOptions {
  log: CommitLog;
  /** Appends through here: to the log, or to the leader when this node is not it. */
  appender: Appender;
  errors: ErrorTable;
  logger: ServerLogger;
  /** Records and bytes produced and consumed, open tails; serves GET /metrics. */
  metrics?: Metrics;
  maxRecordBytes: number;
  /** False once the node is shutting down (/readyz answers 503). */
  isReady: () => boolean;
  /** Aborts live tails when the node shuts down. */
  shutdownSignal: AbortSignal;
  /** Authorization for the routes that touch the log (absent: no checks, plain HTTP). */
  authorize?: HttpAuthorize;
  /** Who is in the cluster: serves GET /v1/status (absent: no such route). */
  cluster?: ClusterView;
  /** Under mutual TLS, GET /metrics needs a verified client certificate (no ACL action). */
  authenticate?: HttpAuthenticate;
  /** An idle SSE tail gets a `: heartbeat` comment this often (default 15 s). */
  sseHeartbeatMs?: number;
}

const MAX_OFFSET = (1n << 64n) - 1n;

/** A JSON number written with every digit, so offsets past 2^53 are not rounded. */
function offsetJson(offset: bigint): string {
  return offset.toString();
}

function recordJson(r: { offset: bigint; value: Buffer }): string {
  return `{"value":${JSON.stringify(r.value.toString('base64'))},"offset":${offsetJson(r.offset)}}`;
}

function parseOffset(raw: unknown, field: string): bigint {
  if (typeof raw === 'number') {
    if (!Number.isSafeInteger(raw) || raw < 0) {
      throw new InvalidRequestError(
        `${field} must be a non-negative integer below 2^53 (send larger offsets as strings)`,
        field,
      );
    }
    return BigInt(raw);
  }
  if (typeof raw === 'string' && /^[0-9]{1,20}$/.test(raw)) {
    const value = BigInt(raw);
    if (value <= MAX_OFFSET) return value;
  }
  throw new InvalidRequestError(`${field} must be an unsigned 64-bit integer`, field);
}

function parseValue(raw: unknown, field: string, maxRecordBytes: number): Buffer {
  if (typeof raw !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(raw)) {
    throw new InvalidRequestError(`${field} must be a base64 string`, field);
  }
  // Node decodes what it can and drops the rest: a lone last character (length 1 mod 4
  // without padding) or padding in the wrong place would store a shorter value.
  const bare = raw.replace(/=+$/, '');
  if (bare.length % 4 === 1 || (bare.length !== raw.length && raw.length % 4 !== 0)) {
    throw new InvalidRequestError(
      `${field} is not valid base64: ${raw.length} characters cannot encode whole bytes (a character is missing or extra)`,
      field,
    );
  }
  const value = Buffer.from(raw, 'base64');
  if (value.byteLength > maxRecordBytes) {
    throw new ValueTooLargeError(field, value.byteLength, maxRecordBytes);
  }
  return value;
}

function isObject(v: unknown): v is { [key: string]: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > limit) throw new ValueTooLargeError('request body', size, limit);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new InvalidRequestError('request body must be JSON', 'body');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new InvalidRequestError(`malformed JSON: ${(err as Error).message}`, 'body');
  }
}

function send(res: ServerResponse, status: number, json: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
  });
  res.end(json);
}

/** Returns the request handler for node:http. */
export function createHttpHandler(
  opts: HttpGatewayOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const { log, appender, errors, logger, metrics } = opts;
  // base64 grows by 4/3; leave room for the JSON around the value.
  const bodyLimit = Math.ceil((opts.maxRecordBytes * 4) / 3) + 64 * 1024;
  // Rates and latencies for GET /v1/status, read from the metrics once a second.
  const sampler =
    metrics &&
    opts.cluster &&
    new ThroughputSampler(metrics, opts.shutdownSignal, {
      onError: (err) => logger.warn({ err }, 'sampling the metrics for /v1/status failed'),
    });

  async function produce(req: IncomingMessage, res: ServerResponse, wrapped: boolean) {
    const body = await readJson(req, bodyLimit);
    const record = wrapped ? (isObject(body) ? body.record : undefined) : body;
    const field = wrapped ? 'record.value' : 'value';
    if (!isObject(record)) {
      throw new InvalidRequestError(
        wrapped ? 'record is required' : 'body must be an object',
        'record',
      );
    }
    if (!wrapped && record.value === undefined && 'record' in record) {
      throw new InvalidRequestError(
        'POST /v1/records takes {"value":"<base64>"}; the {"record":{"value":"<base64>"}} body is for POST /',
        'value',
      );
    }
    const value = parseValue(record.value, field, opts.maxRecordBytes);
    const bytes = value.byteLength;
    const offset = await traceAppend(httpScope(req), 1, bytes, () => appender.append([value]));
    metrics?.produced(1, bytes);
    send(res, 200, `{"offset":${offsetJson(offset)}}`);
  }

  async function consume(res: ServerResponse, offset: bigint) {
    const record: CommittedRecord = await log.read(offset);
    metrics?.consumed(1, record.value.byteLength);
    send(res, 200, `{"record":${recordJson(record)}}`);
  }

  async function tail(req: IncomingMessage, res: ServerResponse, url: URL) {
    // A browser's EventSource reconnects with the id of the last event it got: go on
    // after it, so that it sees no record twice.
    const lastId = req.headers['last-event-id'];
    const from =
      typeof lastId === 'string' && lastId !== ''
        ? parseOffset(lastId, 'Last-Event-ID') + 1n
        : parseOffset(url.searchParams.get('from') ?? '0', 'from');
    const countText = url.searchParams.get('count');
    const count = countText === null ? undefined : parseOffset(countText, 'count');
    const sse = (req.headers.accept ?? '').includes('text/event-stream');
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, opts.shutdownSignal]);
    metrics?.consumeStreamOpened();
    res.on('close', () => {
      controller.abort();
      metrics?.consumeStreamClosed();
    });
    // The end goes out at once with the headers: a tail from past it (a typo, an offset
    // from another log) waits for records that may never come, and the client can tell.
    const end = log.endOffset;
    res.writeHead(200, {
      'content-type': sse ? 'text/event-stream' : 'application/x-ndjson',
      'cache-control': 'no-cache',
      ...(end !== undefined && { 'commitlog-end-offset': end.toString() }),
    });
    let sent = 0n;
    if (count === 0n || req.method === 'HEAD') return void res.end();
    if (sse && end !== undefined && from > end) {
      res.write(
        `: from ${from} is past the end of the log (the next record gets offset ${end}); waiting\n\n`,
      );
    } else res.flushHeaders();
    // Comments on an idle event stream keep proxies and browsers from timing it out.
    let wrote = true;
    const heartbeat = sse
      ? setInterval(() => {
          if (!wrote) res.write(': heartbeat\n\n');
          wrote = false;
        }, opts.sseHeartbeatMs ?? 15_000)
      : undefined;
    heartbeat?.unref();
    res.on('close', () => clearInterval(heartbeat));
    let failure: unknown;
    try {
      for await (const r of recordsFrom(log, from, signal)) {
        const line = sse ? `id: ${r.offset}\ndata: ${recordJson(r)}\n\n` : `${recordJson(r)}\n`;
        const more = res.write(line);
        wrote = true;
        metrics?.consumed(1, r.value.byteLength);
        if (!more) await once(res, 'drain', { signal });
        sent += 1n;
        if (count !== undefined && sent >= count) return void res.end();
      }
      // The records ended without the client leaving: the node is stopping (as gRPC says).
      failure = new ShuttingDownError();
    } catch (err) {
      failure = opts.shutdownSignal.aborted ? new ShuttingDownError() : err;
    }
    if (controller.signal.aborted) return void res.end(); // the client went away
    // The status line is gone: the failure becomes the stream's last entry.
    if (!errors.isExpected(failure)) {
      logger.error({ err: failure, url: req.url }, 'HTTP tail failed');
    }
    const error = JSON.stringify(errors.toHttpError(failure).body);
    res.end(sse ? `event: error\ndata: ${error}\n\n` : `${error}\n`);
  }

  type Handler = (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    rest: string,
  ) => Promise<void> | void;
  const handlers: Record<HttpHandlerName, Handler> = {
    produceWrapped: (req, res) => produce(req, res, true),
    consumeBody: async (req, res) => {
      const body = await readJson(req, 64 * 1024);
      if (!isObject(body)) throw new InvalidRequestError('body must be an object', 'body');
      return consume(res, parseOffset(body.offset, 'offset'));
    },
    produce: (req, res) => produce(req, res, false),
    tail: (req, res, url) => tail(req, res, url),
    consumeAt: (_req, res, _url, rest) =>
      consume(res, parseOffset(decodeURIComponent(rest), 'offset')),
    metrics: (_req, res) => (metrics ? serveMetrics(metrics, res) : undefined),
    healthz: (_req, res) => send(res, 200, '{"status":"ok"}'),
    readyz: (_req, res) =>
      opts.isReady()
        ? send(res, 200, '{"status":"ready"}')
        : send(res, 503, '{"status":"shutting down"}'),
    status: async (_req, res) => {
      if (opts.cluster) send(res, 200, JSON.stringify(await statusDocument(opts.cluster, sampler)));
    },
    consolePage: (req, res) => serveConsolePage(req, res),
    consoleAsset: (req, res, _url, rest) => {
      if (!serveConsoleAsset(req, res, rest)) {
        send(res, 404, JSON.stringify({ error: `no console asset ${rest}` }));
      }
    },
  };

  async function route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    // HEAD is answered wherever GET is: the same status and headers, no body (node:http
    // drops the body of a response to HEAD).
    const asked = req.method ?? 'GET';
    const method = asked === 'HEAD' ? 'GET' : asked;
    // A browser opening the node's address gets the console; API calls to / carry a body.
    const bodyless =
      req.headers['content-length'] === undefined && !req.headers['transfer-encoding'];
    if (
      method === 'GET' &&
      path === '/' &&
      bodyless &&
      /\btext\/html\b/.test(req.headers.accept ?? '')
    ) {
      res.writeHead(303, { location: '/ui', 'content-length': 0 });
      return void res.end();
    }
    // Without metrics there is no /metrics route at all (404, not 405); likewise /v1/status.
    const found = findRoute(
      method,
      path,
      (r) => (r.handler === 'metrics' && !metrics) || (r.handler === 'status' && !opts.cluster),
    );
    if (found.kind === 'not-found') {
      return send(res, 404, JSON.stringify({ error: `no route for ${path}` }));
    }
    if (found.kind === 'method-not-allowed') {
      const allow = found.allow.includes('GET') ? [...found.allow, 'HEAD'] : found.allow;
      res.setHeader('allow', allow.join(', '));
      return send(res, 405, JSON.stringify({ error: `${method} is not allowed on ${path}` }));
    }
    const { route } = found;
    if (route.action !== undefined) opts.authorize?.(req, route.action);
    else if (route.handler === 'metrics') opts.authenticate?.(req);
    return handlers[route.handler](req, res, url, routeRest(route, path));
  }

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!errors.isExpected(err)) logger.error({ err, url: req.url }, 'HTTP request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const { status, body } = errors.toHttpError(err);
      // The rest of an oversized body is not read: close rather than drain it.
      if (!req.complete) res.setHeader('connection', 'close');
      send(res, status, JSON.stringify(body));
    });
  };
}
