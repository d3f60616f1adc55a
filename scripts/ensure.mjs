// Makes a fresh clone runnable with nothing but Node and npm: installs the locked
// dependencies when they are missing or older than the lockfile, then compiles.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const installed = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');

function run(cmd, args) {
  execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}

// `npm install` rather than `npm ci`: it installs exactly the locked versions too, but
// tolerates optional platform packages (such as buf's binaries for other systems) that
// a registry mirror does not carry, where `npm ci` refuses the whole install.
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  console.error('commitlog: installing dependencies (npm install)…');
  run(npm, ['install', '--no-audit', '--no-fund']);
}
run(process.execPath, [
  join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
  '-p',
  'tsconfig.json',
]);
