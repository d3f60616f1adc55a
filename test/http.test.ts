// The HTTP/JSON API against a real node: the book's first-chapter session (including
// with curl itself when it is installed), REST routes, the live tail, and bad input.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { startNode, within, type TestNode } from './support/node.js';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One request; node's http.request, because fetch refuses GET with a body. */
function request(
  addr: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const [host, port] = addr.split(':');
  // As curl -d does: without content-length, node sends a GET's body with no framing.
  if (body !== undefined)
    headers = { 'content-length': String(Buffer.byteLength(body)), ...headers };
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port: Number(port), method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

/** Reads a streaming response line by line until `lines` lines arrived. */
function readLines(
  addr: string,
  path: string,
  lines: number,
  headers: Record<string, string> = {},
): { done: Promise<{ headers: IncomingHttpHeaders; lines: string[] }>; abort: () => void } {
  const [host, port] = addr.split(':');
  const controller = new AbortController();
  let enough = false;
  const done = new Promise<{ headers: IncomingHttpHeaders; lines: string[] }>((resolve, reject) => {
    const req = httpRequest(
      { host, port: Number(port), path, headers, signal: controller.signal },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
          const got = text.split('\n').filter((l) => l !== '');
          if (got.length >= lines && !enough) {
            enough = true;
            resolve({ headers: res.headers, lines: got });
            // Destroyed without an error: aborting the signal here raced the response's
            // own end and could surface an AbortError no listener was left to take.
            res.destroy();
          }
        });
        res.on('end', () =>
          resolve({ headers: res.headers, lines: text.split('\n').filter((l) => l !== '') }),
        );
        // Closing once enough lines came may cut the response before its end.
        res.on('error', (err) => {
          if (!enough && !controller.signal.aborted) reject(err);
        });
      },
    );
    req.on('error', (err) => {
      if (!enough && !controller.signal.aborted) reject(err);
    });
    req.end();
  });
  return { done, abort: () => controller.abort() };
}

describe('HTTP/JSON API', () => {
  let node: TestNode;
  let addr: string;

  before(async () => {
    node = await startNode({ fsync: 'never' });
    addr = node.agent.httpAddr;
  });
  after(async () => {
    await node?.cleanup();
  });

  it("serves the book's chapter-1 session on / (POST to produce, GET with a body to consume)", async () => {
    const sent = ["Let's Go #1\n", "Let's Go #2\n", "Let's Go #3\n"];
    assert.equal(b64(sent[0] ?? ''), 'TGV0J3MgR28gIzEK');
    for (const [i, text] of sent.entries()) {
      const res = await request(addr, 'POST', '/', `{"record":{"value":"${b64(text)}"}}`);
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.text), { offset: i });
    }
    for (const [i, text] of sent.entries()) {
      const res = await request(addr, 'GET', '/', `{"offset":${i}}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(res.text), { record: { value: b64(text), offset: i } });
    }
    const past = await request(addr, 'GET', '/', '{"offset":3}');
    assert.equal(past.status, 404);
    assert.deepEqual(JSON.parse(past.text), {
      error: "The requested offset is outside the log's range: 3",
    });
  });

  it('works with curl exactly as written in the docs (when curl is installed)', async (t) => {
    const run = promisify(execFile);
    const found = await run('curl', ['--version']).then(
      () => true,
      () => false,
    );
    if (!found) return t.skip('curl is not installed');
    const url = addr.replace('127.0.0.1', 'localhost');
    const posted = await run('curl', [
      '-s',
      '-X',
      'POST',
      url,
      '-d',
      '{"record":{"value":"TGV0J3MgR28gIzEK"}}',
    ]);
    const { offset } = JSON.parse(posted.stdout) as { offset: number };
    const got = await run('curl', ['-s', '-X', 'GET', url, '-d', `{"offset":${offset}}`]);
    assert.deepEqual(JSON.parse(got.stdout), { record: { value: 'TGV0J3MgR28gIzEK', offset } });
  });

  it('answers 400 with a JSON error for malformed JSON and bad fields', async () => {
    const cases: [string, string, string, RegExp][] = [
      ['POST', '/', '{"record":', /malformed JSON/],
      ['POST', '/', '', /request body must be JSON/],
      ['POST', '/', '{}', /record is required/],
      ['POST', '/', '{"record":{"value":"***"}}', /record\.value must be a base64 string/],
      ['POST', '/', '{"record":{"value":12}}', /record\.value must be a base64 string/],
      ['GET', '/', '{"offset":-1}', /offset must be a non-negative integer/],
      ['GET', '/', '{"offset":1.5}', /offset must be a non-negative integer/],
      ['GET', '/', '{"offset":9007199254740993}', /send larger offsets as strings/],
      [
        'GET',
        '/',
        '{"offset":"18446744073709551616"}',
        /offset must be an unsigned 64-bit integer/,
      ],
      ['GET', '/', '{"offset":"abc"}', /offset must be an unsigned 64-bit integer/],
      ['GET', '/', '[1]', /body must be an object/],
      ['GET', '/v1/records/nope', '', /offset must be an unsigned 64-bit integer/],
      ['GET', '/v1/records?from=x', '', /from must be an unsigned 64-bit integer/],
    ];
    for (const [method, path, body, message] of cases) {
      const res = await request(addr, method, path, body);
      assert.equal(res.status, 400, `${method} ${path} ${body}: ${res.text}`);
      assert.equal(res.headers['content-type'], 'application/json', `${method} ${path} ${body}`);
      assert.match((JSON.parse(res.text) as { error: string }).error, message);
    }
  });

  it('takes offsets as strings too, up to 2^64-1', async () => {
    const ok = await request(addr, 'GET', '/', '{"offset":"0"}');
    assert.equal(ok.status, 200);
    const max = await request(addr, 'GET', '/', '{"offset":"18446744073709551615"}');
    assert.equal(max.status, 404);
    assert.match(max.text, /range: 18446744073709551615"/);
  });

  it('answers 413 for a value over the record limit', async () => {
    const big = Buffer.alloc(1024 * 1024 + 1).toString('base64');
    const res = await request(addr, 'POST', '/v1/records', `{"value":"${big}"}`);
    assert.equal(res.status, 413);
    assert.match(res.text, /value is 1048577 bytes, more than the limit of 1048576 bytes/);
  });

  it('answers 404 for unknown routes and 405 for wrong methods', async () => {
    const missing = await request(addr, 'GET', '/nope');
    assert.equal(missing.status, 404);
    assert.match(missing.text, /no route for \/nope/);
    const wrong = await request(addr, 'DELETE', '/');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.allow, 'GET, POST, HEAD');
  });

  it('serves REST routes: POST /v1/records and GET /v1/records/{offset}', async () => {
    const posted = await request(addr, 'POST', '/v1/records', `{"value":"${b64('rest')}"}`);
    assert.equal(posted.status, 200);
    const { offset } = JSON.parse(posted.text) as { offset: number };
    const got = await request(addr, 'GET', `/v1/records/${offset}`);
    assert.equal(got.status, 200);
    assert.deepEqual(JSON.parse(got.text), { record: { value: b64('rest'), offset } });
    const past = await request(addr, 'GET', `/v1/records/${offset + 100}`);
    assert.equal(past.status, 404);
  });

  it('tails records as NDJSON from an offset, including ones written later', async () => {
    const first = JSON.parse(
      (await request(addr, 'POST', '/v1/records', `{"value":"${b64('t0')}"}`)).text,
    ) as {
      offset: number;
    };
    const tail = readLines(addr, `/v1/records?from=${first.offset}`, 3);
    await request(addr, 'POST', '/v1/records', `{"value":"${b64('t1')}"}`);
    await request(addr, 'POST', '/v1/records', `{"value":"${b64('t2')}"}`);
    const { headers, lines } = await within(5000, 'NDJSON tail', tail.done);
    assert.equal(headers['content-type'], 'application/x-ndjson');
    assert.deepEqual(
      lines.map((l) => JSON.parse(l) as unknown),
      ['t0', 't1', 't2'].map((v, i) => ({ value: b64(v), offset: first.offset + i })),
    );
  });

  it('tails as Server-Sent Events when asked, and stops after ?count', async () => {
    const tail = readLines(addr, '/v1/records?from=0&count=2', 4, { accept: 'text/event-stream' });
    const { headers, lines } = await within(5000, 'SSE tail', tail.done);
    assert.equal(headers['content-type'], 'text/event-stream');
    assert.equal(lines[0], 'id: 0');
    assert.deepEqual(JSON.parse((lines[1] ?? '').replace(/^data: /, '')), {
      value: 'TGV0J3MgR28gIzEK',
      offset: 0,
    });
    assert.equal(lines[2], 'id: 1');
    assert.equal(lines.length, 4, 'the response ends after count records');
  });

  it('answers a tail from far past the end at once: the end in a header, then waits', async () => {
    const posted = await request(addr, 'POST', '/v1/records', `{"value":"${b64('end')}"}`);
    const end = (JSON.parse(posted.text) as { offset: number }).offset + 1;
    // NDJSON: no record to send, but the status line and the end come at once.
    const ndjson = readLines(addr, '/v1/records?from=1000000', 1);
    const [host, port] = addr.split(':');
    const headers = await within(
      5000,
      'the headers of a tail past the end',
      new Promise<IncomingHttpHeaders>((resolve, reject) => {
        const req = httpRequest({ host, port: Number(port), path: '/v1/records?from=1000000' });
        req.on('response', (res) => {
          resolve(res.headers);
          req.destroy();
        });
        req.on('error', reject);
        req.end();
      }),
    );
    ndjson.abort();
    assert.equal(headers['commitlog-end-offset'], String(end));
    // SSE: a comment says so (EventSource ignores it; curl shows it).
    const sse = readLines(addr, '/v1/records?from=1000000', 1, { accept: 'text/event-stream' });
    const { headers: sseHeaders, lines } = await within(5000, 'SSE past the end', sse.done);
    assert.equal(sseHeaders['commitlog-end-offset'], String(end));
    assert.equal(
      lines[0],
      `: from 1000000 is past the end of the log (the next record gets offset ${end}); waiting`,
    );
  });

  it('answers /healthz and /readyz', async () => {
    const health = await request(addr, 'GET', '/healthz');
    assert.equal(health.status, 200);
    const ready = await request(addr, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.text), { status: 'ready' });
  });
});
