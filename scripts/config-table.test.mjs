import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

test('docs/configuration.md is the table the configuration rows print', () => {
  execFileSync(process.execPath, [join(root, 'scripts', 'config-table.mjs'), '--check'], {
    cwd: root,
    stdio: 'pipe',
  });
});
