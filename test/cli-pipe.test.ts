// `commitlog … | head`: a reader that closes the pipe early is not a crash.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';

import { COMMITLOG_BIN } from './support/agent-process.js';
import { within } from './support/wait.js';

test('output into a closed pipe ends quietly with exit code 0', async () => {
  const child = spawn(process.execPath, [COMMITLOG_BIN, 'agent', '--help'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Closed before the command writes a byte, so its first write meets EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await within(15_000, 'the CLI to exit', once(child, 'exit'))) as [number];
  assert.equal(stderr, '');
  assert.equal(code, 0);
});
