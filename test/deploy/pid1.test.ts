// The command as PID 1, as a container runs it, without a container: `unshare --pid`
// makes node the first process of a new PID namespace, where the kernel drops every
// signal the process has no handler for. bin/commitlog.js must end on SIGTERM at any
// point of start-up, and hand SIGTERM to the agent once the agent handles it.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { ROOT, until } from './support.js';

const BIN = join(ROOT, 'bin', 'commitlog.js');
// unshare --pid needs root, or a user namespace of its own where those are allowed
// (CI runners); without either there is nothing to test.
const UNSHARE = [
  ['--pid', '--fork'],
  ['--user', '--map-root-user', '--pid', '--fork'],
].find((flags) => spawnSync('unshare', [...flags, 'true'], { stdio: 'ignore' }).status === 0);
const skip = UNSHARE
  ? false
  : 'unshare --pid is not available here (needs root or user namespaces)';

const work = mkdtempSync(join(tmpdir(), 'commitlog-pid1-'));
const started = new Set<ChildProcess>();
after(() => {
  for (const child of started) child.kill('SIGKILL'); // --kill-child takes node with it
  rmSync(work, { recursive: true, force: true });
});

interface Pid1 {
  /** stdout and stderr so far. */
  output(): string;
  /** Node's pid as this machine sees it (it is 1 inside its namespace). */
  nodePid(): Promise<number>;
  /** Settles with the exit status (unshare passes node's on). */
  exited: Promise<number | null>;
}

/** `commitlog agent <args>` as PID 1 of a new PID namespace. */
function pid1Agent(name: string, args: string[]): Pid1 {
  const child = spawn(
    'unshare',
    [...UNSHARE!, '--kill-child', process.execPath, BIN, 'agent', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COMMITLOG_LOG_FORMAT: 'json' } },
  );
  started.add(child);
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      started.delete(child);
      resolve(code);
    }),
  );
  return {
    output: () => out,
    exited,
    nodePid: () =>
      until(`${name}: node started under unshare`, 10_000, async () => {
        // unshare's only child is node, PID 1 of the namespace.
        const children = readFileSync(
          `/proc/${child.pid}/task/${child.pid}/children`,
          'utf8',
        ).trim();
        if (children === '') return undefined;
        return Number(children.split(' ')[0]);
      }),
  };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  process.kill(pid, sig);
}

describe('the command as PID 1', { skip }, () => {
  it('ends promptly on a SIGTERM that arrives while the agent is still starting', async () => {
    // A join address nobody answers: start-up waits in the join for many seconds.
    const node = pid1Agent('starting', [
      '--data-dir',
      join(work, 'starting'),
      '--bind-addr',
      '127.0.0.1:0',
      '--rpc-port',
      '0',
      '--http-port',
      '0',
      '--start-join-addrs',
      '127.0.0.1:9',
    ]);
    const pid = await node.nodePid();
    // The RPC port is open, the join has begun: well inside Agent.start.
    await until('the agent to be starting', 15_000, async () =>
      /RPC port \(gRPC and Raft\) on/.test(node.output()) ? true : undefined,
    );
    assert.doesNotMatch(node.output(), /commitlog agent .*: gRPC on/, 'still starting');
    const t0 = Date.now();
    signal(pid, 'SIGTERM');
    const timeout = setTimeout(() => signal(pid, 'SIGKILL'), 5000);
    const code = await node.exited;
    const ms = Date.now() - t0;
    clearTimeout(timeout);
    assert.equal(code, 143, `exit ${code} after ${ms} ms (SIGKILL at 5000):\n${node.output()}`);
    assert.match(node.output(), /SIGTERM before the command was ready/);
  });

  it('leaves SIGTERM to the agent once it runs: it drains and exits 0', async () => {
    const node = pid1Agent('running', [
      '--data-dir',
      join(work, 'running'),
      '--bind-addr',
      '127.0.0.1:0',
      '--rpc-port',
      '0',
      '--http-port',
      '0',
    ]);
    const pid = await node.nodePid();
    await until('the start-up line', 15_000, async () =>
      /commitlog agent .*: gRPC on/.test(node.output()) ? true : undefined,
    );
    signal(pid, 'SIGTERM');
    const timeout = setTimeout(() => signal(pid, 'SIGKILL'), 10_000);
    const code = await node.exited;
    clearTimeout(timeout);
    assert.equal(code, 0, node.output());
    assert.match(node.output(), /shutting down/);
    assert.doesNotMatch(node.output(), /before the command was ready/);
  });
});
