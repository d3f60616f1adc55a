// Test helpers: a real node on free ports with its data in a temporary directory,
// and deadlines for anything that waits.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  Agent,
  LOG_ERROR_STATUSES,
  LocalCommitLog,
  resolveConfig,
  type AgentOptions,
  type ConfigKey,
  type Raw,
} from '../../src/agent/index.js';

import type { Log } from '../../src/log/index.js';
import type { ApiServerOptions, ClusterView } from '../../src/server/index.js';

export { within } from './wait.js';

export interface TestNode {
  agent: Agent;
  dir: string;
  /** Shuts the node down (idempotent) and deletes its data. */
  cleanup(): Promise<void>;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `commitlog-${prefix}-`));
}

/** Configuration keys as flags would give them (`{ fsync: 'never', 'log-level': 'info' }`). */
export type NodeFlags = Partial<Record<ConfigKey, Raw>>;

/**
 * A node on free ports, configured through the same keys as the command line. Logs are
 * off unless `flags` sets a level (and `options` where they go).
 */
export async function startNode(
  flags: NodeFlags = {},
  options: AgentOptions = {},
): Promise<TestNode> {
  const dir = typeof flags['data-dir'] === 'string' ? flags['data-dir'] : await tempDir('node');
  const config = await resolveConfig({
    flags: {
      'node-name': 'test-node',
      'rpc-port': 0,
      'http-port': 0,
      'log-level': 'silent',
      ...flags,
      'data-dir': dir,
    },
  });
  const agent = await Agent.start(config, options);
  return {
    agent,
    dir,
    async cleanup() {
      await agent.shutdown();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function values(n: number, prefix = 'record'): Buffer[] {
  return Array.from({ length: n }, (_, i) => Buffer.from(`${prefix}-${i}`));
}

/** The ApiServer options that serve a storage engine as the agent does (adapter, error rows). */
export function serveLog(log: Log): Pick<ApiServerOptions, 'log' | 'cluster' | 'errorStatuses'> {
  return { log: new LocalCommitLog(log), cluster: NO_CLUSTER, errorStatuses: LOG_ERROR_STATUSES };
}

/** A cluster view with no servers and no leader (servers under test that never ask). */
export const NO_CLUSTER: ClusterView = { servers: async () => [], leader: () => undefined };
