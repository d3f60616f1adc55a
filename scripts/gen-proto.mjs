// Generates src/api/gen/ from proto/ with buf + ts-proto (buf.gen.yaml), both from
// node_modules, so `npm ci` is the whole toolchain. `--check` regenerates into a
// temporary directory and fails when the committed code differs (stale or edited),
// after `buf lint` (buf.yaml: the book's names are kept where they break its rules).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const GEN = join('src', 'api', 'gen');
// buf's npm shim picks the platform binary package (an optional dependency), so it
// runs without the install script that npm 11 skips.
const buf = join(root, 'node_modules', '@bufbuild', 'buf', 'bin', 'buf');

function generate(outputBase) {
  execFileSync(process.execPath, [buf, 'generate', '--output', outputBase], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

function listFiles(dir, base = dir, out = new Map()) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return out;
    throw err;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) listFiles(p, base, out);
    else out.set(relative(base, p), readFileSync(p, 'utf8'));
  }
  return out;
}

if (process.argv.includes('--check')) {
  execFileSync(process.execPath, [buf, 'lint'], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const tmp = mkdtempSync(join(tmpdir(), 'commitlog-gen-'));
  try {
    generate(tmp);
    const fresh = listFiles(join(tmp, GEN));
    const committed = listFiles(join(root, GEN));
    const problems = [];
    for (const [file, text] of fresh) {
      if (!committed.has(file)) problems.push(`missing: ${join(GEN, file)}`);
      else if (committed.get(file) !== text) problems.push(`stale: ${join(GEN, file)}`);
    }
    for (const file of committed.keys()) {
      if (!fresh.has(file)) problems.push(`not generated from proto/: ${join(GEN, file)}`);
    }
    if (problems.length > 0) {
      for (const p of problems) console.error(p);
      console.error('gen-proto: generated code is out of date; run `npm run gen`');
      process.exit(1);
    }
    console.log(`gen-proto: ${fresh.size} generated files are up to date`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  rmSync(join(root, GEN), { recursive: true, force: true });
  generate('.');
  console.log(`gen-proto: wrote ${listFiles(join(root, GEN)).size} files under ${GEN}`);
}
