// The web console in a real headless Chromium (Debian's package, driven by
// playwright-core): against a 3-node cluster of agent processes, and against a node with
// mutual TLS. Screenshots of each view go to dist/artifacts/console/ (not committed);
// CONSOLE_UPDATE_DOCS=1 also refreshes docs/console.png. Without Chromium (see
// scripts/install-chromium.sh) or playwright-core these tests skip, saying why.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { BrowserContext, Page } from 'playwright-core';

import { writeBookFileSet } from '../src/auth/index.js';
import { ProcessCluster, type ClusterNode } from './support/cluster.js';
import { startNode, tempDir, type TestNode } from './support/node.js';

// The functions handed to page.evaluate run in the page; Node's types lack its globals,
// so the little they touch is declared here (module scope, not global).
interface PageElement {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
  classList: { contains(name: string): boolean };
}
declare const document: {
  documentElement: { scrollWidth: number; clientWidth: number };
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
};
declare const window: { __pwned?: number };

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const REPO = new URL('../..', import.meta.url).pathname;
const ARTIFACTS = process.env.CONSOLE_ARTIFACTS_DIR ?? join(REPO, 'dist', 'artifacts', 'console');

async function playwright(): Promise<typeof import('playwright-core') | undefined> {
  try {
    return await import('playwright-core');
  } catch {
    return undefined;
  }
}

const pw = await playwright();
const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is not installed (run scripts/install-chromium.sh as root)`
  : pw === undefined
    ? 'playwright-core is not installed (npm install)'
    : false;

/** A fresh browser profile; `extra` adds context options (client certificates, TLS). */
async function launch(
  extra: Parameters<typeof import('playwright-core').chromium.launchPersistentContext>[1] = {},
): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = await mkdtemp(join(tmpdir(), 'commitlog-chromium-'));
  const context = await pw!.chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport: { width: 1280, height: 900 },
    ...extra,
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Console errors and uncaught exceptions of a page, collected as they happen. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  return errors;
}

async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** The member names of the table's rows, and the one marked leader. */
async function table(page: Page): Promise<{ members: string[]; leader: string | undefined }> {
  return page.evaluate(() => {
    const rows = [...document.querySelectorAll('#servers tbody tr')];
    return {
      members: rows.map((r) => r.dataset.member ?? ''),
      leader: rows.find((r) => r.classList.contains('leader'))?.dataset.member,
    };
  });
}

describe('web console in Chromium, against a 3-node cluster', { skip }, () => {
  let cluster: ProcessCluster;
  let browser: Awaited<ReturnType<typeof launch>>;
  let page: Page;
  let errors: string[];
  let leader: ClusterNode;
  let viewer: ClusterNode;

  before(async () => {
    cluster = await ProcessCluster.start(3);
    leader = await cluster.leader();
    // Watched from a follower, so that the page outlives the leader it shows.
    viewer = cluster.nodes.find((n) => n !== leader)!;
    browser = await launch();
    page = await browser.context.newPage();
    errors = watchErrors(page);
  });
  after(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it('opens from / with no console errors and shows three members and the leader', async () => {
    await page.goto(`http://127.0.0.1:${viewer.httpPort}/`);
    assert.equal(new URL(page.url()).pathname, '/ui');
    await page.waitForFunction(
      () =>
        document.querySelectorAll('#servers tbody tr').length === 3 &&
        document.querySelector('#servers tr.leader') !== null &&
        document.querySelector('#quorum')?.textContent === 'quorum 3/3',
      undefined,
      { timeout: 10_000 },
    );
    const shown = await table(page);
    assert.deepEqual(shown.members.sort(), ['n1', 'n2', 'n3']);
    assert.equal(shown.leader, leader.name);
    assert.match(
      (await page.textContent('#quorum')) ?? '',
      /^quorum 3\/3$/,
      `banner: ${await page.textContent('#banner')}`,
    );
    await screenshot(page, 'cluster');
    assert.deepEqual(errors, []);
  });

  it('fits a phone-sized screen without sideways scrolling of the page', async () => {
    const phone = await browser.context.newPage();
    try {
      const phoneErrors = watchErrors(phone);
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(`http://127.0.0.1:${viewer.httpPort}/ui`);
      await phone.waitForFunction(
        () => document.querySelectorAll('#servers tbody tr').length === 3,
        undefined,
        { timeout: 10_000 },
      );
      const widths = await phone.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        view: document.documentElement.clientWidth,
      }));
      assert.ok(widths.page <= widths.view, `page ${widths.page} px wide in ${widths.view} px`);
      await screenshot(phone, 'phone');
      assert.deepEqual(phoneErrors, []);
    } finally {
      await phone.close();
    }
  });

  it('shows a produced record in the live tail, HTML as text', async () => {
    await page.click('#tail-toggle');
    await page.waitForFunction(
      () => document.querySelector('#tail-status')?.textContent?.startsWith('following'),
      undefined,
      { timeout: 5000 },
    );
    const value = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
    await page.fill('#produce-value', value);
    await page.click('#produce-form button[type=submit]');
    await page.waitForFunction(
      () =>
        /^produced at offset \d+$/.test(
          document.querySelector('#produce-status')?.textContent ?? '',
        ),
      undefined,
      { timeout: 10_000 },
    );
    const item = page.locator('#tail-list li pre', { hasText: '<script>' });
    await item.waitFor({ timeout: 10_000 });
    assert.equal(await item.textContent(), value);
    assert.equal(await page.locator('#tail-list script, #tail-list img').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    await screenshot(page, 'tail');
    assert.deepEqual(errors, []);
  });

  it('browses records as JSON, text and hex', async () => {
    await cluster.produce(viewer, '{"user":"ada","n":[1,2]}');
    const last = await cluster.produce(viewer, Buffer.from([0x00, 0xff, 0x10, 0x80]));
    // "Latest" pages back from the end the status last reported: wait until it is this one.
    await page.waitForFunction(
      (end) => document.querySelector('#raft')?.textContent?.includes(`…${end};`),
      String(last + 1n),
      { timeout: 10_000 },
    );
    await page.click('#browse-latest');
    await page.waitForFunction(
      () => document.querySelectorAll('#browse-list li').length >= 3,
      undefined,
      { timeout: 10_000 },
    );
    const texts = (selector: string) =>
      page.evaluate(
        (sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent ?? ''),
        selector,
      );
    const kinds = await texts('#browse-list li .kind');
    assert.deepEqual(kinds.slice(-3), ['text', 'json', 'hex']);
    const values = await texts('#browse-list li pre');
    assert.equal(values.at(-2), '{\n  "user": "ada",\n  "n": [\n    1,\n    2\n  ]\n}');
    assert.match(values.at(-1) ?? '', /^00000000 {2}00 ff 10 80/);
    await screenshot(page, 'records');
    if (process.env.CONSOLE_UPDATE_DOCS === '1') await docsScreenshot(last + 1n);
    assert.deepEqual(errors, []);
  });

  /** docs/console.png: the leader's console (it alone knows match and lag) under traffic. */
  async function docsScreenshot(end: bigint): Promise<void> {
    const shot = await browser.context.newPage();
    try {
      await shot.goto(`http://127.0.0.1:${leader.httpPort}/ui`);
      await shot.waitForFunction(
        (e) => document.querySelector('#raft')?.textContent?.includes(`…${e};`),
        String(end),
        { timeout: 10_000 },
      );
      await shot.click('#tail-toggle');
      const stopAt = Date.now() + 8000;
      let n = 0;
      while (Date.now() < stopAt) {
        await Promise.all(
          Array.from({ length: 8 }, () =>
            cluster.produce(viewer, JSON.stringify({ event: 'click', n: n++ })),
          ),
        );
      }
      await shot.waitForFunction(
        (e) => document.querySelector('#raft')?.textContent?.includes(`…${e};`),
        String(end + BigInt(n)),
        { timeout: 10_000 },
      );
      await shot.click('#browse-latest');
      await shot.waitForFunction(
        (k) => document.querySelector('#browse-list li pre')?.textContent?.includes(`"n": ${k}`),
        n - 20,
        { timeout: 10_000 },
      );
      await shot.screenshot({ path: join(REPO, 'docs', 'console.png') });
    } finally {
      await shot.close();
    }
  }

  it('shows the new leader within a few seconds of killing the old one', async () => {
    const killedAt = Date.now();
    await leader.proc!.kill();
    const handle = await page.waitForFunction(
      (old) => {
        const row = document.querySelector('#servers tr.leader');
        return row && row.dataset.member !== old ? row.dataset.member : undefined;
      },
      leader.name,
      { timeout: 15_000, polling: 100 },
    );
    const newLeader = (await handle.jsonValue()) as string;
    const seconds = (Date.now() - killedAt) / 1000;
    assert.notEqual(newLeader, leader.name);
    assert.ok(seconds < 15, `the table changed after ${seconds} s`);
    console.log(`# the table showed leader ${newLeader} ${seconds.toFixed(1)} s after the kill`);
    await screenshot(page, 'leader-killed');
    assert.deepEqual(errors, []);
  });
});

describe('web console in Chromium, against a node with mutual TLS', { skip }, () => {
  let dir: string;
  let node: TestNode;
  let origin: string;

  before(async () => {
    dir = await tempDir('console-tls');
    await writeBookFileSet(dir);
    node = await startNode({
      'server-tls-cert-file': join(dir, 'server.pem'),
      'server-tls-key-file': join(dir, 'server-key.pem'),
      'server-tls-ca-file': join(dir, 'ca.pem'),
      'acl-model-file': join(dir, 'model.conf'),
      'acl-policy-file': join(dir, 'policy.csv'),
      fsync: 'never',
    });
    origin = `https://${node.agent.httpAddr}`;
  });
  after(async () => {
    await node?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses the data calls of a browser without a client certificate', async () => {
    const browser = await launch({ ignoreHTTPSErrors: true });
    try {
      const page = await browser.context.newPage();
      await page.goto(`${origin}/ui`);
      await page.waitForFunction(
        () => /401/.test(document.querySelector('#banner')?.textContent ?? ''),
        undefined,
        { timeout: 10_000 },
      );
      const statuses = await page.evaluate(async () => {
        const calls = [
          fetch('/v1/status'),
          fetch('/v1/records/0'),
          fetch('/v1/records', { method: 'POST', body: JSON.stringify({ value: 'eA==' }) }),
        ];
        return (await Promise.all(calls)).map((r) => r.status);
      });
      assert.deepEqual(statuses, [401, 401, 401]);
      await page.fill('#produce-value', 'not allowed');
      await page.click('#produce-form button[type=submit]');
      await page.waitForFunction(
        () => /^refused: 401/.test(document.querySelector('#produce-status')?.textContent ?? ''),
        undefined,
        { timeout: 5000 },
      );
      await screenshot(page, 'tls-no-certificate');
    } finally {
      await browser.close();
    }
  });

  it('serves the data to a browser with a permitted client certificate', async () => {
    const browser = await launch({
      ignoreHTTPSErrors: true,
      clientCertificates: [
        {
          origin,
          certPath: join(dir, 'root-client.pem'),
          keyPath: join(dir, 'root-client-key.pem'),
        },
      ],
    });
    try {
      const page = await browser.context.newPage();
      const errors = watchErrors(page);
      await page.goto(`${origin}/ui`);
      await page.fill('#produce-value', 'with a certificate');
      await page.click('#produce-form button[type=submit]');
      await page.waitForFunction(
        () =>
          /^produced at offset 0$/.test(
            document.querySelector('#produce-status')?.textContent ?? '',
          ),
        undefined,
        { timeout: 10_000 },
      );
      await page.waitForFunction(
        () => document.querySelectorAll('#servers tbody tr').length === 1,
        undefined,
        { timeout: 10_000 },
      );
      await screenshot(page, 'tls-client-certificate');
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
