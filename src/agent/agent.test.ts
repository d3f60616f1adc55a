import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Agent } from './agent.js';
import { defaultConfig, type AgentConfig } from './config.js';

describe('Agent', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'commitlog-agent-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  function config(name: string, overrides: Partial<AgentConfig> = {}): AgentConfig {
    return {
      ...defaultConfig(),
      nodeName: name,
      dataDir: join(root, name),
      rpcPort: 0,
      httpPort: 0,
      logLevel: 'silent',
      ...overrides,
    };
  }

  it('shuts down at the end of an `await using` block, and shutdown is idempotent', async () => {
    let kept: Agent | undefined;
    {
      await using agent = await Agent.start(config('a'));
      kept = agent;
      assert.match(agent.rpcAddr, /^127\.0\.0\.1:\d+$/);
      assert.notEqual(agent.rpcAddr, '127.0.0.1:0');
    }
    await kept.shutdown();
    // The data directory is free again: a new node opens it.
    const again = await Agent.start(config('a'));
    await again.shutdown();
  });

  it('a failed start names the listener and leaves the data directory usable', async () => {
    const first = await Agent.start(config('b'));
    try {
      const port = Number(first.rpcAddr.split(':')[1]);
      await assert.rejects(
        Agent.start(config('c', { rpcPort: port })),
        /cannot listen for gRPC on 127\.0\.0\.1:\d+/,
      );
      const c = await Agent.start(config('c'));
      await c.shutdown();
    } finally {
      await first.shutdown();
    }
  });
});
