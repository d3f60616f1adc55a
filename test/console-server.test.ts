// The console's HTTP side on a real node: the page and its assets (headers, caching,
// compression, size), GET /v1/status, the link from /, and that the committed bundle
// is what the sources build to.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';

import { startNode, type TestNode } from './support/node.js';
import { until } from './support/wait.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request, with full control of headers (fetch adds its own Accept-Encoding). */
function call(
  addr: string,
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const url = new URL(`http://${addr}${path}`);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: o.method ?? 'GET',
        agent: false,
        headers: {
          ...o.headers,
          ...(o.body !== undefined ? { 'content-length': Buffer.byteLength(o.body) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('console over HTTP', () => {
  let node: TestNode;
  let addr: string;

  before(async () => {
    node = await startNode({ fsync: 'never' });
    addr = node.agent.httpAddr;
  });
  after(() => node?.cleanup());

  it('serves the page with a strict policy, revalidated on every load', async () => {
    const page = await call(addr, '/ui');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.doesNotMatch(String(page.headers['content-security-policy']), /unsafe/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    const html = page.body.toString();
    assert.doesNotMatch(html, /<script>|\son[a-z]+=/, 'no inline script or handler');
    const assets = [...html.matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.equal(assets.length, 3);
    let gzipped = page.body.byteLength;
    for (const path of assets) {
      const plain = await call(addr, path);
      assert.equal(plain.status, 200, path);
      assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
      const zipped = await call(addr, path, { headers: { 'accept-encoding': 'gzip, br' } });
      assert.equal(zipped.headers['content-encoding'], 'gzip');
      assert.deepEqual(gunzipSync(zipped.body), plain.body);
      gzipped += zipped.body.byteLength;
      const etag = String(plain.headers.etag);
      const again = await call(addr, path, { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304);
      assert.equal(again.body.byteLength, 0);
    }
    assert.ok(gzipped < 200 * 1024, `the console is ${gzipped} bytes gzipped`);
    console.log(`# console: ${gzipped} bytes gzipped (page without gzip + assets)`);
  });

  it('answers 404 for unknown assets and 405 for other methods', async () => {
    assert.equal((await call(addr, '/ui/assets/console.0000.js')).status, 404);
    assert.equal((await call(addr, '/ui/assets/')).status, 404);
    const post = await call(addr, '/ui', { method: 'POST', body: '{}' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    assert.equal((await call(addr, '/v1/status', { method: 'POST', body: '{}' })).status, 405);
  });

  it('sends a browser from / to the console; API calls to / are unchanged', async () => {
    const browser = await call(addr, '/', { headers: { accept: 'text/html,*/*;q=0.8' } });
    assert.equal(browser.status, 303);
    assert.equal(browser.headers.location, '/ui');
    const produced = await call(addr, '/', {
      method: 'POST',
      body: JSON.stringify({ record: { value: Buffer.from('hi').toString('base64') } }),
    });
    assert.equal(produced.status, 200);
    const { offset } = JSON.parse(produced.body.toString()) as { offset: number };
    const consumed = await call(addr, '/', {
      headers: { accept: 'text/html' },
      body: JSON.stringify({ offset }),
    });
    assert.equal(consumed.status, 200);
    assert.match(consumed.body.toString(), /"value":"aGk="/);
  });

  it('reports the node in GET /v1/status, with the throughput of each second', async () => {
    const status = await call(addr, '/v1/status');
    assert.equal(status.status, 200);
    assert.equal(status.headers['content-type'], 'application/json');
    const doc = JSON.parse(status.body.toString()) as {
      node: string;
      leader: { id: string } | null;
      servers: { id: string; isLeader: boolean }[];
      offsets: { start: string; end: string };
      quorum: { ok: boolean };
      throughput: { samples: { producedPerSec: number }[] };
    };
    assert.equal(doc.node, 'test-node');
    assert.deepEqual(
      doc.servers.map((s) => [s.id, s.isLeader]),
      [['test-node', true]],
    );
    assert.equal(doc.quorum.ok, true);
    assert.equal(BigInt(doc.offsets.end) >= 1n, true);
    // The sampler reads once a second: within a few, a sample exists.
    await until(
      async () => {
        const again = JSON.parse((await call(addr, '/v1/status')).body.toString()) as typeof doc;
        return again.throughput.samples.length > 0;
      },
      { ms: 5000, everyMs: 200, what: 'a throughput sample' },
    );
  });
});

describe('console bundle', () => {
  it('is what the sources in src/console build to', async (t) => {
    const script = new URL('../../scripts/build-console.mjs', import.meta.url).href;
    let build: { renderBundleModule(): Promise<string>; BUNDLE_MODULE: string };
    try {
      await import('esbuild');
      build = (await import(script)) as typeof build;
    } catch (err) {
      return t.skip(`esbuild is not installed (${(err as Error).message})`);
    }
    const { readFile } = await import('node:fs/promises');
    const committed = await readFile(build.BUNDLE_MODULE, 'utf8');
    assert.ok(
      (await build.renderBundleModule()) === committed,
      'src/server/console-bundle.ts is stale: run npm run build:console',
    );
  });
});
