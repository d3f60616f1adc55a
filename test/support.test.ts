// The shared test helpers: waits that fail with a reason, and an agent process that
// reports its addresses and never outlives a failed start.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';

import { runCli, spawnAgent } from './support/agent-process.js';
import { tempDir } from './support/node.js';
import { nextEvent, settled, until, within } from './support/wait.js';

describe('wait helpers', () => {
  it('until resolves with the first truthy value, or names what it waited for', async () => {
    let n = 0;
    assert.equal(await until(() => (++n >= 3 ? n : 0), { what: 'three calls' }), 3);
    await assert.rejects(
      until(() => false, { ms: 30, what: 'never' }),
      /after 30 ms: never/,
    );
  });

  it('nextEvent resolves with the arguments of the first matching event', async () => {
    const e = new EventEmitter();
    const got = nextEvent<[number]>(e, 'n', (x) => x > 1, 1000);
    e.emit('n', 1);
    e.emit('n', 2);
    assert.deepEqual(await got, [2]);
    assert.equal(e.listenerCount('n'), 0);
    await assert.rejects(
      nextEvent(e, 'n', () => true, 20),
      /event n/,
    );
  });

  it('within and settled have deadlines', async () => {
    await assert.rejects(
      within(20, 'a promise that never settles', new Promise(() => {})),
      /never settles/,
    );
    let v = 0;
    const timer = setInterval(() => v++, 5);
    try {
      await assert.rejects(
        settled(() => v, 200, { ms: 100 }),
        /still changing/,
      );
    } finally {
      clearInterval(timer);
    }
    assert.equal(await settled(() => 7, 30), 7);
  });
});

describe('spawnAgent', () => {
  it('returns the addresses of the start-up line, whatever the log level', async () => {
    const dir = await tempDir('spawn');
    const agent = await spawnAgent([
      '--data-dir',
      dir,
      '--rpc-port',
      '0',
      '--http-port',
      '0',
      '--log-level',
      'warn',
      '--node-name',
      'spawned',
    ]);
    assert.match(agent.rpcAddr, /^127\.0\.0\.1:\d+$/);
    assert.match(agent.httpAddr, /^127\.0\.0\.1:\d+$/);
    assert.equal(agent.tls, false);
    const servers = await runCli(['servers', '--addr', agent.rpcAddr]);
    assert.match(
      servers.stdout,
      new RegExp(
        `^spawned\\t${agent.rpcAddr}\\tleader\\tvoter\\tlag 0\\tspawned\\.[0-9a-f]{12}\\n$`,
      ),
    );
    assert.equal(await agent.stop(), 0);
    await rm(dir, { recursive: true, force: true });
  });

  it('rejects with the output of an agent that fails to start', async () => {
    await assert.rejects(
      spawnAgent(['--rpc-port', 'eighty']),
      /exited \(2\) before starting.*rpc-port/s,
    );
  });
});
