// Enforces the import directions of the design brief: which folder under src/ may
// import which, that other folders are reached only through their index.ts, that
// the pure cores (raft/core, membership/core) import nothing at all, not even node:*,
// and that test doubles and simulators (a folder's `testing/`) reach other folders'
// code only from tests, benchmarks and other `testing/` folders.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** folder under src/ -> folders it may import (its own folder is always allowed). */
export const ALLOWED = {
  api: [],
  log: [],
  raft: [],
  membership: [],
  auth: [],
  telemetry: [],
  net: [],
  cluster: ['log', 'raft', 'membership'],
  server: ['api', 'auth', 'telemetry'],
  client: ['api'],
  agent: [
    'api',
    'log',
    'raft',
    'membership',
    'cluster',
    'auth',
    'telemetry',
    'net',
    'server',
    'client',
  ],
  cli: ['agent', 'client', 'auth'],
  // The web console runs in a browser and is bundled on its own: it imports nothing of ours.
  console: [],
};
/** Folders whose code may import nothing outside themselves (no node:*, no packages). */
export const PURE = ['raft/core', 'membership/core'];

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

export function importsOf(source) {
  const out = [];
  const text = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  for (const m of text.matchAll(IMPORT_RE)) out.push(m[1] ?? m[2]);
  return out;
}

/** Where a file sits: { area: 'src'|'test'|'bench'|'other', folder, sub }. */
export function locate(root, file) {
  const parts = relative(root, file).split(sep);
  if (parts[0] === 'src') {
    if (parts.length === 2) return { area: 'src', folder: '', sub: '' };
    return { area: 'src', folder: parts[1], sub: parts.length > 3 ? parts[2] : '' };
  }
  return { area: parts[0], folder: '', sub: '' };
}

/** Returns the violations of one file as strings. */
export function checkFile(root, file, source) {
  const errors = [];
  const here = locate(root, file);
  const pure = here.area === 'src' && PURE.includes(`${here.folder}/${here.sub}`);
  const isTest = file.endsWith('.test.ts');
  for (const spec of importsOf(source)) {
    const where = `${relative(root, file)}: import '${spec}'`;
    if (!spec.startsWith('.')) {
      if (pure && !isTest)
        errors.push(`${where}: ${here.folder}/${here.sub} is a pure core and imports nothing`);
      continue;
    }
    const target = locate(root, resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
    const targetPath = relative(root, resolve(dirname(file), spec));
    if (pure && !isTest && !(target.folder === here.folder && target.sub === here.sub)) {
      errors.push(
        `${where}: ${here.folder}/${here.sub} is a pure core and imports nothing outside it`,
      );
      continue;
    }
    if (here.area === 'src' && here.folder === '') continue; // src/index.ts: the package surface
    if (
      here.area === 'src' &&
      !isTest &&
      here.sub !== 'testing' &&
      target.area === 'src' &&
      target.sub === 'testing' &&
      target.folder !== here.folder
    ) {
      errors.push(
        `${where}: test doubles (${target.folder}/testing) are for tests, not for src/${here.folder}`,
      );
      continue;
    }
    const crossing = here.area !== 'src' || target.folder !== here.folder;
    if (!crossing || target.area !== 'src') continue;
    if (here.area === 'src') {
      const allowed = ALLOWED[here.folder];
      if (!allowed) {
        errors.push(`${where}: src/${here.folder} is not a known folder (add it to ALLOWED)`);
        continue;
      }
      if (!allowed.includes(target.folder) && target.folder !== '') {
        errors.push(`${where}: src/${here.folder} may not import src/${target.folder}`);
        continue;
      }
    }
    const base = targetPath.split(sep).pop();
    if (base !== 'index.js' && base !== 'index.ts') {
      errors.push(`${where}: reach another folder through its index.ts, not its internals`);
    }
  }
  return errors;
}

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'gen' && e.name !== 'node_modules') walk(p, out);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const files = ['src', 'test', 'bench'].flatMap((d) => walk(join(root, d), []));
  const errors = files.flatMap((f) => checkFile(root, f, readFileSync(f, 'utf8')));
  for (const e of errors) console.error(e);
  if (errors.length > 0) {
    console.error(`check-imports: ${errors.length} violation(s) of the import directions`);
    process.exit(1);
  }
  console.log(`check-imports: ${files.length} files, no violations`);
}
