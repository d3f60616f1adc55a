// Runs every compiled test file with node:test. Node 20's runner takes files, not
// globs, so we find them here. Extra arguments are passed to `node --test`
// (e.g. `--test-name-pattern=recovery`); bare paths filter the files. After the spec
// output it lists the slowest files (scripts/test-durations.mjs).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function walk(dir, out) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else if (entry.name.endsWith('.test.js') || entry.name.endsWith('.test.mjs')) out.push(path);
  }
  return out;
}

const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
const filters = args.filter((a) => !a.startsWith('--'));
const files = [...walk(join(root, 'dist'), []), ...walk(join(root, 'scripts'), [])]
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((p) => f.includes(p)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// A reporter given on the command line replaces both of ours.
const reporters = flags.some((f) => f.startsWith('--test-reporter'))
  ? []
  : [
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      `--test-reporter=${join(root, 'scripts', 'test-durations.mjs')}`,
      '--test-reporter-destination=stdout',
    ];
const result = spawnSync(
  process.execPath,
  ['--enable-source-maps', '--test', ...reporters, ...flags, ...files],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
