import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkFile, importsOf } from './check-imports.mjs';

const root = '/repo';
const check = (file, src) => checkFile(root, `${root}/${file}`, src);

test('importsOf finds static, re-export, side-effect and dynamic imports, not comments', () => {
  const src = [
    "import { a } from './a.js';",
    "export * from '../b/index.js';",
    "import 'reflect-metadata';",
    "const c = await import('./c.js');",
    "// import { x } from '../x/index.js';",
    "import type {\n  T,\n} from '../t/index.js';",
  ].join('\n');
  assert.deepEqual(importsOf(src).sort(), [
    '../b/index.js',
    '../t/index.js',
    './a.js',
    './c.js',
    'reflect-metadata',
  ]);
});

test('a library may not import another of ours', () => {
  const errs = check('src/log/log.ts', "import { X } from '../raft/index.js';");
  assert.equal(errs.length, 1);
  assert.match(errs[0], /src\/log may not import src\/raft/);
});

test('an allowed direction passes only through the index', () => {
  assert.deepEqual(check('src/cluster/x.ts', "import { Log } from '../log/index.js';"), []);
  const deep = check('src/cluster/x.ts', "import { Segment } from '../log/segment.js';");
  assert.equal(deep.length, 1);
  assert.match(deep[0], /through its index/);
});

test('pure cores import neither node:* nor sibling folders', () => {
  assert.equal(check('src/raft/core/raft.ts', "import { x } from 'node:fs';").length, 1);
  assert.equal(check('src/raft/core/raft.ts', "import { x } from '../node/driver.js';").length, 1);
  assert.deepEqual(check('src/raft/core/raft.ts', "import { x } from './log.js';"), []);
  assert.deepEqual(check('src/raft/node/driver.ts', "import { x } from '../core/index.js';"), []);
});

test('tests outside src reach src only through index files', () => {
  assert.deepEqual(check('test/e2e.test.ts', "import { Log } from '../src/log/index.js';"), []);
  assert.equal(check('test/e2e.test.ts', "import { Store } from '../src/log/store.js';").length, 1);
});

test('testing folders are for tests, benchmarks and other testing folders', () => {
  const doubles = "import { MemoryLogStorage } from '../raft/testing/index.js';";
  const prod = check('src/cluster/replicated-log.ts', doubles);
  assert.equal(prod.length, 1);
  assert.match(prod[0], /test doubles \(raft\/testing\) are for tests/);
  assert.deepEqual(check('src/cluster/replicated-log.test.ts', doubles), []);
  assert.deepEqual(
    check('src/cluster/testing/harness.ts', "import { X } from '../../raft/testing/index.js';"),
    [],
  );
  assert.deepEqual(
    check('bench/raft-bench.ts', "import { X } from '../src/raft/testing/index.js';"),
    [],
  );
});
