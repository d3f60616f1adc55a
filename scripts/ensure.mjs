// Makes a fresh clone runnable with nothing but Node and npm: installs the locked
// dependencies when they are missing or older than the lockfile, then compiles.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const modules = join(root, 'node_modules');
const installed = join(modules, '.package-lock.json');
const lock = join(root, 'package-lock.json');

function run(cmd, args) {
  execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}

function stale() {
  return !existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs;
}

// `npm ci` installs exactly the lockfile and never rewrites it, so a test run leaves
// the checkout clean; it refuses a lockfile that does not match package.json. The
// lockfile lists every platform's optional packages (buf's binaries), which `npm ci`
// needs even though it installs only this platform's.
if (existsSync(modules) && lstatSync(modules).isSymbolicLink()) {
  // Another checkout's packages: reinstalling would replace them under its feet.
  if (stale()) console.error('commitlog: node_modules is a link and older than the lockfile');
} else if (stale()) {
  console.error('commitlog: installing dependencies (npm ci)…');
  run(npm, ['ci', '--no-audit', '--no-fund']);
}
run(process.execPath, [
  join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
  '-p',
  'tsconfig.json',
]);
