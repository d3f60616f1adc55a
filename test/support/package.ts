// The package as a user receives it: `npm pack` of this checkout, and an empty ES-module
// project beside the tarball to install it into.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const ROOT = new URL('../../..', import.meta.url).pathname;
export const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

export interface PackedProject {
  /** The packed .tgz. */
  tarball: string;
  /** A new project (package.json only) to install it into. */
  app: string;
}

/** Packs this checkout into `dir` and makes `dir/app`, an empty project. */
export async function packIntoNewProject(dir: string): Promise<PackedProject> {
  // The build is the test run's (`npm test` builds first); no prepare script here.
  const { stdout } = await run(
    NPM,
    ['pack', '--ignore-scripts', '--json', '--pack-destination', dir],
    { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
  );
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  const app = join(dir, 'app');
  await mkdir(app);
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', private: true, type: 'module' }),
  );
  return { tarball: join(dir, filename), app };
}
