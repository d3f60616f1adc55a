// Test helpers: a real node on free ports with its data in a temporary directory,
// and deadlines for anything that waits.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  Agent,
  defaultConfig,
  type AgentConfig,
  type AgentOptions,
} from '../../src/agent/index.js';

export interface TestNode {
  agent: Agent;
  dir: string;
  /** Shuts the node down (idempotent) and deletes its data. */
  cleanup(): Promise<void>;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `commitlog-${prefix}-`));
}

/** Logs are off unless `overrides` sets a level (and `options` where they go). */
export async function startNode(
  overrides: Partial<AgentConfig> = {},
  options: AgentOptions = {},
): Promise<TestNode> {
  const dir = overrides.dataDir ?? (await tempDir('node'));
  const agent = await Agent.start(
    {
      ...defaultConfig(),
      nodeName: 'test-node',
      dataDir: dir,
      rpcPort: 0,
      httpPort: 0,
      bootstrap: true,
      logLevel: 'silent',
      ...overrides,
    },
    options,
  );
  return {
    agent,
    dir,
    async cleanup() {
      await agent.shutdown();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Rejects with a message naming `what` if `promise` takes longer than `ms`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function values(n: number, prefix = 'record'): Buffer[] {
  return Array.from({ length: n }, (_, i) => Buffer.from(`${prefix}-${i}`));
}
