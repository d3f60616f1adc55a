// The HTTP gateway over fakes (no disk): routes from one table (dispatch, the action
// each needs, 405 with Allow), and failures as statuses and JSON bodies.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';

import { ACTION_CONSUME, ACTION_PRODUCE, PermissionDeniedError } from '../auth/index.js';
import { errorStatus, ErrorTable, NotLeaderError } from './errors.js';
import { FakeOutOfRangeError, MemoryCommitLog } from './fake-log.test-support.js';
import { Appender } from './forwarding.js';
import { createHttpHandler } from './http-gateway.js';
import { HTTP_ROUTES, httpRoute } from './http-routes.js';
import { silentLogger } from './ports.js';

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

describe('HTTP gateway over fakes', () => {
  let server: Server;
  let port: number;
  const log = new MemoryCommitLog();
  const authorized: string[] = [];
  let deny = false;

  before(async () => {
    const handler = createHttpHandler({
      log,
      appender: new Appender(log),
      errors: new ErrorTable([errorStatus(FakeOutOfRangeError, { grpc: 11, http: 404 })]),
      logger: silentLogger,
      maxRecordBytes: 1024,
      isReady: () => true,
      shutdownSignal: new AbortController().signal,
      sseHeartbeatMs: 50,
      authorize: (_req, action) => {
        authorized.push(action);
        if (deny) throw new PermissionDeniedError('nobody', action, 'records');
      },
    });
    server = createServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function http(method: string, path: string, body?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const headers = body === undefined ? {} : { 'content-length': Buffer.byteLength(body) };
      const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('dispatches each route and checks the action its row names', async () => {
    authorized.length = 0;
    const value = Buffer.from('hi').toString('base64');
    assert.deepEqual(
      await http('POST', '/v1/records', JSON.stringify({ value })).then((r) => r.body),
      '{"offset":0}',
    );
    assert.equal(
      (await http('POST', '/', JSON.stringify({ record: { value } }))).body,
      '{"offset":1}',
    );
    assert.equal(
      (await http('GET', '/v1/records/1')).body,
      `{"record":{"value":"${value}","offset":1}}`,
    );
    assert.equal(
      (await http('GET', '/', JSON.stringify({ offset: 0 }))).body,
      `{"record":{"value":"${value}","offset":0}}`,
    );
    assert.equal((await http('GET', '/healthz')).status, 200);
    assert.deepEqual(authorized, [ACTION_PRODUCE, ACTION_PRODUCE, ACTION_CONSUME, ACTION_CONSUME]);
  });

  it('answers 405 with Allow from the table, 404 for unknown paths and a metrics route without metrics', async () => {
    authorized.length = 0;
    const records = await http('DELETE', '/v1/records');
    assert.equal(records.status, 405);
    assert.equal(records.headers.allow, 'GET, POST, HEAD');
    const one = await http('POST', '/v1/records/3');
    assert.equal(one.status, 405);
    assert.equal(one.headers.allow, 'GET, HEAD');
    assert.equal((await http('GET', '/nope')).status, 404);
    assert.equal((await http('GET', '/metrics')).status, 404);
    assert.deepEqual(authorized, [], 'refused methods never reach authorization');
  });

  it('turns failures into statuses and bodies: registered rows, refusals, NOT_LEADER', async () => {
    const missing = await http('GET', '/v1/records/99');
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), { error: 'offset 99 is out of range' });
    deny = true;
    try {
      assert.equal((await http('GET', '/v1/records/0')).status, 403);
    } finally {
      deny = false;
    }
    log.refuse = () => new NotLeaderError({ id: 'n2', addr: 'b:8400' });
    try {
      const refused = await http('POST', '/v1/records', JSON.stringify({ value: 'AA==' }));
      assert.equal(refused.status, 503);
      assert.deepEqual(JSON.parse(refused.body), {
        error: 'this node is not the leader; the leader is n2 at b:8400',
        reason: 'NOT_LEADER',
        metadata: { leader_id: 'n2', leader_addr: 'b:8400' },
      });
    } finally {
      log.refuse = undefined;
    }
  });

  it('refuses base64 that cannot encode whole bytes instead of storing a shorter value', async () => {
    for (const value of ['a', 'aaaaa', 'aa=a', 'aaa==']) {
      const res = await http('POST', '/v1/records', JSON.stringify({ value }));
      assert.equal(res.status, 400, `${value}: ${res.body}`);
      assert.match(res.body, /value (is not valid base64|must be a base64 string)/);
    }
    assert.equal((await http('POST', '/v1/records', '{"value":"YQ"}')).status, 200);
  });

  it('says precisely what is wrong with the book\'s {"record":…} body on /v1/records', async () => {
    const res = await http('POST', '/v1/records', JSON.stringify({ record: { value: 'YQ==' } }));
    assert.equal(res.status, 400);
    assert.match(res.body, /POST \/v1\/records takes \{\\"value\\":.*is for POST \//);
  });

  it('answers HEAD wherever GET works: status and headers, no body', async () => {
    for (const path of ['/v1/records/0', '/healthz', '/readyz', '/v1/records?from=0']) {
      const res = await http('HEAD', path);
      assert.equal(res.status, 200, path);
      assert.equal(res.body, '', path);
    }
    assert.equal((await http('HEAD', '/v1/records/99')).status, 404);
  });

  it('an SSE tail goes on after Last-Event-ID and sends heartbeat comments while idle', async () => {
    const first = log.records.length - 1;
    const text = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/records?from=0',
          headers: { accept: 'text/event-stream', 'last-event-id': String(first - 1) },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
            if (body.includes(': heartbeat')) {
              req.destroy();
              resolve(body);
            }
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(ids, [first], text);
  });

  it('names every route for metrics from the same rows', () => {
    for (const route of HTTP_ROUTES) {
      const path = 'path' in route.match ? route.match.path : `${route.match.prefix}42`;
      assert.equal(httpRoute(path), route.routeName);
    }
    assert.equal(httpRoute('/v1/other'), 'other');
  });
});

describe('HTTP tail', () => {
  it('ends with an error entry when the node shuts down, as the gRPC stream does', async () => {
    const log = new MemoryCommitLog();
    log.push(Buffer.from('a'));
    const shutdown = new AbortController();
    const server = createServer(
      createHttpHandler({
        log,
        appender: new Appender(log),
        errors: new ErrorTable(),
        logger: silentLogger,
        maxRecordBytes: 1024,
        isReady: () => true,
        shutdownSignal: shutdown.signal,
      }),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/v1/records?from=0' }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
            // The first record arrived: the tail is live; now the node stops.
            if (text.endsWith('\n') && !shutdown.signal.aborted) shutdown.abort();
          });
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      const lines = body
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown);
      assert.deepEqual(lines, [
        { value: Buffer.from('a').toString('base64'), offset: 0 },
        { error: 'the node is shutting down; retry on another node or later' },
      ]);
    } finally {
      server.close();
    }
  });
});
