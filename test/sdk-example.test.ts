// The SDK example of the docs, as a user meets it: `npm pack`, a new project that
// installs the tarball (with TypeScript and Node's types, from the npm cache or the
// registry), the example block copied from the Markdown verbatim, compiled by tsc and
// run against a node this test starts. Every ```ts block that follows a
// `<!-- sdk-example -->` line in README.md or docs/client.md is run; the only change
// made to it is the address (`127.0.0.1:8400` becomes the test node's).
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { startNode, tempDir, type TestNode } from './support/node.js';
import { NPM, packIntoNewProject, ROOT, run } from './support/package.js';

const MARKER = '<!-- sdk-example -->';
const EXAMPLE_ADDR = '127.0.0.1:8400';

/** The marked ```ts blocks of a Markdown file. */
function examples(markdown: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`^${MARKER}\\s*\\n\`\`\`ts\\n([\\s\\S]*?)^\`\`\`$`, 'gm');
  for (const m of markdown.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The exact version of a dependency in this checkout's package.json. */
async function devVersion(name: string): Promise<string> {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
    devDependencies: Record<string, string>;
  };
  const v = pkg.devDependencies[name];
  if (!v) throw new Error(`no devDependency ${name}`);
  return v;
}

describe('the SDK example from the docs, in a project that installs the packed package', () => {
  let dir: string;
  let app: string;
  let node: TestNode;

  before(async () => {
    dir = await tempDir('sdk-example');
    let tarball: string;
    ({ tarball, app } = await packIntoNewProject(dir));
    // The cache first, the registry for what it lacks (CI reaches the registry).
    await run(
      NPM,
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        tarball,
        `typescript@${await devVersion('typescript')}`,
        `@types/node@${await devVersion('@types/node')}`,
      ],
      { cwd: app, timeout: 150_000 },
    );
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          skipLibCheck: true,
          types: ['node'],
        },
        include: ['*.ts'],
      }),
    );
    node = await startNode({ fsync: 'never' });
  });
  after(async () => {
    await node?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs every marked example as written', { timeout: 120_000 }, async () => {
    const blocks: { source: string; code: string }[] = [];
    for (const file of ['README.md', 'docs/client.md']) {
      const text = await readFile(join(ROOT, file), 'utf8');
      for (const code of examples(text)) blocks.push({ source: file, code });
    }
    assert.ok(
      blocks.some((b) => b.source === 'docs/client.md'),
      'docs/client.md has a marked example',
    );
    for (const [i, { code }] of blocks.entries()) {
      assert.ok(code.includes(EXAMPLE_ADDR), `example ${i} dials ${EXAMPLE_ADDR}`);
      await writeFile(
        join(app, `example${i}.ts`),
        code.replaceAll(EXAMPLE_ADDR, node.agent.rpcAddr),
      );
    }
    await run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', app], {
      cwd: app,
    }).catch((err: Error & { stdout?: string }) =>
      assert.fail(`tsc: ${err.stdout ?? err.message}`),
    );
    for (const [i, { source }] of blocks.entries()) {
      const { stdout } = await run(process.execPath, [`example${i}.js`], {
        cwd: app,
        timeout: 30_000,
      });
      // The records it produced, read back in order, each at the offset after the last.
      const records = stdout.split('\n').flatMap((line) => {
        const m = /^(\d+): (.*)$/.exec(line);
        return m ? [{ offset: Number(m[1]), value: m[2] }] : [];
      });
      // docs/client.md's is known; the README's shorter one starts with `hello` too.
      const values = records.map((r) => r.value);
      if (source === 'docs/client.md')
        assert.deepEqual(values, ['hello', 'a', 'b', 'x', 'y', 'z'], `${source}: ${stdout}`);
      else assert.equal(values[0], 'hello', `${source}: ${stdout}`);
      records.forEach((r, k) => assert.equal(r.offset, records[0]!.offset + k));
    }
  });
});
