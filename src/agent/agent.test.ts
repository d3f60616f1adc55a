import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Agent } from './agent.js';
import { AGENT_STEPS, parseStartupLine, startupLine, type Step } from './steps.js';
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
    const defaults = defaultConfig();
    return {
      ...defaults,
      nodeName: name,
      dataDir: join(root, name),
      rpcPort: 0,
      httpPort: 0,
      telemetry: { ...defaults.telemetry, logLevel: 'silent' },
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

describe('Agent steps', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'commitlog-steps-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('a failed step unwinds the steps before it in reverse; shutdown unwinds them all', async () => {
    const defaults = defaultConfig();
    const config: AgentConfig = {
      ...defaults,
      nodeName: 'steps',
      dataDir: join(root, 'steps'),
      rpcPort: 0,
      httpPort: 0,
      telemetry: { ...defaults.telemetry, logLevel: 'silent' },
    };
    const undone: string[] = [];
    const marker = (name: string): Step => ({
      name,
      async run(_ctx, teardown) {
        teardown.defer(() => undone.push(name));
      },
    });
    const boom: Step = {
      name: 'boom',
      run: () => Promise.reject(new Error('step failed')),
    };
    const [first, ...rest] = AGENT_STEPS;
    assert.ok(first);
    await assert.rejects(
      Agent.start(config, {}, [marker('a'), first, ...rest, marker('b'), boom, marker('c')]),
      /step failed/,
    );
    assert.deepEqual(undone, ['b', 'a']);
    // The log was closed by the unwind: the same directory opens again.
    undone.length = 0;
    const agent = await Agent.start(config, {}, [marker('a'), ...AGENT_STEPS, marker('b')]);
    assert.deepEqual(undone, []);
    await agent.shutdown();
    await agent.shutdown();
    assert.deepEqual(undone, ['b', 'a']);
  });

  it('prints a start-up line that reads back', async () => {
    const line = startupLine({
      nodeName: 'n1',
      rpcAddr: '127.0.0.1:1',
      httpAddr: '127.0.0.1:2',
      dataDir: '/tmp/with space',
      tls: true,
    });
    assert.deepEqual(parseStartupLine(`noise\n${line}\nmore`), {
      nodeName: 'n1',
      rpcAddr: '127.0.0.1:1',
      httpAddr: '127.0.0.1:2',
      dataDir: '/tmp/with space',
      tls: true,
    });
    assert.equal(parseStartupLine('nothing here'), undefined);
  });
});
