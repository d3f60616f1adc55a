// The package as a user installs it: `npm pack`, then a scratch project that depends on
// the tarball imports every entry point (at run time, and through its type declarations).
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { tempDir } from './support/node.js';
import { NPM, packIntoNewProject, ROOT, run } from './support/package.js';

/** Each entry point and names it must export at run time. */
const ENTRY_POINTS: Record<string, string[]> = {
  commitlog: ['CommitLogClient', 'Agent', 'VERSION', 'resolveConfig'],
  'commitlog/log': ['Log', 'parseFsyncPolicy', 'OffsetOutOfRangeError'],
  'commitlog/raft': ['RaftNode', 'RaftCore'],
  'commitlog/raft/testing': ['MemoryLogStorage', 'TestCluster'],
  'commitlog/membership': ['Membership', 'SwimCore'],
  'commitlog/membership/testing': ['SimCluster', 'runScenario'],
  'commitlog/client': ['CommitLogClient', 'channelCredentials'],
  'commitlog/auth': ['Authorizer', 'loadTlsMaterial'],
};

describe('the packed package', () => {
  let dir: string;
  let app: string;
  let installedWith: string;

  before(async () => {
    dir = await tempDir('package');
    let tarball: string;
    ({ tarball, app } = await packIntoNewProject(dir));
    try {
      // As a user would; offline, so it needs every dependency in the npm cache.
      await run(NPM, ['install', '--offline', '--no-audit', '--no-fund', tarball], {
        cwd: app,
        timeout: 120_000,
      });
      installedWith = 'npm install';
    } catch {
      // No cache (an offline machine): unpack the tarball as npm would, and let its
      // dependencies resolve to this checkout's node_modules.
      const modules = join(app, 'node_modules');
      await mkdir(modules);
      await run('tar', ['-xzf', tarball, '-C', modules]);
      const target = join(modules, 'commitlog');
      await run('mv', [join(modules, 'package'), target]);
      for (const name of await readdir(join(ROOT, 'node_modules'))) {
        if (name.startsWith('.') || name === 'commitlog') continue;
        await symlink(join(ROOT, 'node_modules', name), join(modules, name));
      }
      installedWith = 'unpacked tarball';
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('imports every entry point from the installed tarball', async () => {
    const script = `
      const expected = ${JSON.stringify(ENTRY_POINTS)};
      const missing = [];
      for (const [spec, names] of Object.entries(expected)) {
        const mod = await import(spec);
        for (const n of names) if (!(n in mod)) missing.push(spec + ': ' + n);
      }
      const { default: pkg } = await import('commitlog/package.json', { with: { type: 'json' } });
      const { VERSION } = await import('commitlog');
      if (VERSION !== pkg.version) missing.push('VERSION ' + VERSION + ' != ' + pkg.version);
      console.log(JSON.stringify(missing));
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: app,
    });
    assert.deepEqual(JSON.parse(stdout), [], `installed with ${installedWith}`);
    console.log(`# installed with ${installedWith}`);
  });

  it('resolves every entry point to its type declarations', async () => {
    // Distinct local names per import: alias each name with its entry point's index.
    const source = Object.entries(ENTRY_POINTS)
      .map(
        ([spec, names], i) =>
          `import { ${names.map((n) => `${n} as ${n}${i}`).join(', ')} } from '${spec}';\n` +
          `export const e${i} = [${names.map((n) => `${n}${i}`).join(', ')}];`,
      )
      .join('\n');
    await writeFile(join(app, 'use.ts'), source);
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: [],
        },
        files: ['use.ts'],
      }),
    );
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], { cwd: app }).catch(
      (err: Error & { stdout?: string }) => assert.fail(`tsc: ${err.stdout ?? err.message}`),
    );
  });
});
