// The HTTP/JSON API: the book's first chapter on `/` (POST to produce, GET with a
// JSON body to consume), REST routes under /v1, a live tail, and health probes.
// Offsets are JSON numbers, as in the book; requests may also send them as strings.
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { ACTION_CONSUME, ACTION_PRODUCE } from '../auth/index.js';
import type { HttpAuthorize } from './auth.js';
import type { Metrics } from '../telemetry/index.js';
import type { CommitLog, CommitLogRecord, ServerLogger } from './commit-log.js';
import { InvalidRequestError, isExpectedError, toHttpError, ValueTooLargeError } from './errors.js';
import { httpScope, serveMetrics, traceAppend } from './telemetry.js';

export interface HttpGatewayOptions {
  log: CommitLog;
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
}

/** The action a route needs; `undefined` for open routes (probes, 404s, 405s). */
function routeAction(method: string, path: string): string | undefined {
  const records = path === '/' || path === '/v1/records' || path.startsWith('/v1/records/');
  if (!records) return undefined;
  if (method === 'POST' && !path.startsWith('/v1/records/')) return ACTION_PRODUCE;
  if (method === 'GET') return ACTION_CONSUME;
  return undefined;
}

const MAX_OFFSET = (1n << 64n) - 1n;

/** A JSON number written with every digit, so offsets past 2^53 are not rounded. */
function offsetJson(offset: bigint): string {
  return offset.toString();
}

function recordJson(r: CommitLogRecord): string {
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
  const { log, logger, metrics } = opts;
  // base64 grows by 4/3; leave room for the JSON around the value.
  const bodyLimit = Math.ceil((opts.maxRecordBytes * 4) / 3) + 64 * 1024;

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
    const value = parseValue(record.value, field, opts.maxRecordBytes);
    const bytes = value.byteLength;
    const offset = await traceAppend(httpScope(req), 1, bytes, () => log.append(value));
    metrics?.produced(1, bytes);
    send(res, 200, `{"offset":${offsetJson(offset)}}`);
  }

  async function consume(res: ServerResponse, offset: bigint) {
    const value = await log.read(offset);
    metrics?.consumed(1, value.byteLength);
    send(res, 200, `{"record":${recordJson({ offset, value })}}`);
  }

  async function tail(req: IncomingMessage, res: ServerResponse, url: URL) {
    const from = parseOffset(url.searchParams.get('from') ?? '0', 'from');
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
    res.writeHead(200, {
      'content-type': sse ? 'text/event-stream' : 'application/x-ndjson',
      'cache-control': 'no-cache',
    });
    res.flushHeaders();
    let sent = 0n;
    if (count === 0n) return void res.end();
    try {
      for await (const r of log.readFrom(from, { signal })) {
        const line = sse ? `id: ${r.offset}\ndata: ${recordJson(r)}\n\n` : `${recordJson(r)}\n`;
        const more = res.write(line);
        metrics?.consumed(1, r.value.byteLength);
        if (!more) await once(res, 'drain', { signal });
        sent += 1n;
        if (count !== undefined && sent >= count) break;
      }
    } catch (err) {
      if (signal.aborted) return void res.end();
      // The status line is gone: the failure becomes the stream's last entry.
      if (!isExpectedError(err)) logger.error({ err, url: req.url }, 'HTTP tail failed');
      const error = JSON.stringify(toHttpError(err).body);
      res.end(sse ? `event: error\ndata: ${error}\n\n` : `${error}\n`);
      return;
    }
    res.end();
  }

  async function route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const action = routeAction(method, path);
    if (action !== undefined) opts.authorize?.(req, action);
    if (path === '/') {
      if (method === 'POST') return produce(req, res, true);
      if (method === 'GET') {
        const body = await readJson(req, 64 * 1024);
        if (!isObject(body)) throw new InvalidRequestError('body must be an object', 'body');
        return consume(res, parseOffset(body.offset, 'offset'));
      }
    } else if (path === '/v1/records') {
      if (method === 'POST') return produce(req, res, false);
      if (method === 'GET') return tail(req, res, url);
    } else if (path.startsWith('/v1/records/')) {
      if (method === 'GET') {
        return consume(res, parseOffset(decodeURIComponent(path.slice(12)), 'offset'));
      }
    } else if (path === '/metrics' && metrics) {
      if (method === 'GET') return serveMetrics(metrics, res);
    } else if (path === '/healthz') {
      if (method === 'GET') return send(res, 200, '{"status":"ok"}');
    } else if (path === '/readyz') {
      if (method === 'GET') {
        return opts.isReady()
          ? send(res, 200, '{"status":"ready"}')
          : send(res, 503, '{"status":"shutting down"}');
      }
    } else {
      return send(res, 404, JSON.stringify({ error: `no route for ${path}` }));
    }
    res.setHeader('allow', path === '/' || path === '/v1/records' ? 'GET, POST' : 'GET');
    return send(res, 405, JSON.stringify({ error: `${method} is not allowed on ${path}` }));
  }

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!isExpectedError(err)) logger.error({ err, url: req.url }, 'HTTP request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const { status, body } = toHttpError(err);
      // The rest of an oversized body is not read: close rather than drain it.
      if (!req.complete) res.setHeader('connection', 'close');
      send(res, status, JSON.stringify(body));
    });
  };
}
