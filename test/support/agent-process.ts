// A `commitlog agent` as a child process: spawned, awaited until its start-up line says
// where it listens (stderr, whatever the log level), stopped by signal. Every child is
// SIGKILLed when the parent exits, so a failed test or benchmark leaves no node behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

import { parseStartupLine } from '../../src/agent/index.js';
import { within } from './wait.js';

/** bin/commitlog.js, from dist/test/support/ or dist/bench/… alike (package root relative). */
export const COMMITLOG_BIN = new URL('../../../bin/commitlog.js', import.meta.url).pathname;

export interface SpawnAgentOptions {
  /** Flags for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long start-up may take (default 10 s). */
  startTimeoutMs?: number;
  /** Copy the child's stderr to ours as it comes (benchmarks); it is captured either way. */
  echoStderr?: boolean;
  /** 'ignore': do not keep the log lines (long benchmark runs); default 'capture'. */
  stdout?: 'capture' | 'ignore';
  /** Start under this open-file limit (`ulimit -n` in a shell that then execs node). */
  openFileLimit?: number;
}

export interface AgentProcess {
  rpcAddr: string;
  httpAddr: string;
  /** True when the agent serves mutual TLS (its HTTP API is https). */
  tls: boolean;
  pid: number;
  child: ChildProcess;
  /** Settles with how the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM), waits for the exit (SIGKILL after `ms`), resolves with the exit code. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | null>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout (its log lines) matches `re`, within `ms` (default 5 s). */
  logged(re: RegExp, ms?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Tests run many agents at once: unless the caller chose a gossip address, the node
 * takes a free gossip port instead of the default 8401.
 */
function withFreeGossipPort(args: string[]): string[] {
  return args.includes('--bind-addr') ? args : [...args, '--bind-addr', '127.0.0.1:0'];
}

/** Runs `commitlog agent <args>`; resolves once it has printed its start-up line. */
export async function spawnAgent(
  args: string[],
  opts: SpawnAgentOptions = {},
): Promise<AgentProcess> {
  const argv = [...(opts.nodeArgs ?? []), COMMITLOG_BIN, 'agent', ...withFreeGossipPort(args)];
  // `exec` keeps the shell's pid, so `pid` is still the node's.
  const [command, commandArgs] =
    opts.openFileLimit === undefined
      ? [process.execPath, argv]
      : [
          '/bin/sh',
          ['-c', `ulimit -n ${opts.openFileLimit} && exec "$0" "$@"`, process.execPath, ...argv],
        ];
  const child = spawn(command, commandArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  const stdoutWaiters = new Set<[RegExp, () => void]>();
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
    for (const waiter of stdoutWaiters) {
      if (waiter[0].test(stdout)) {
        stdoutWaiters.delete(waiter);
        waiter[1]();
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  const started = new Promise<NonNullable<ReturnType<typeof parseStartupLine>>>(
    (resolve, reject) => {
      child.stderr?.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (opts.echoStderr) process.stderr.write(c);
        const info = parseStartupLine(stderr);
        if (info) resolve(info);
      });
      child.once('error', reject);
      void exited.then(({ code, signal }) =>
        reject(new Error(`agent exited (${signal ?? code}) before starting: ${stderr}${stdout}`)),
      );
    },
  );
  let info;
  try {
    info = await within(opts.startTimeoutMs ?? 10_000, 'agent prints its start-up line', started);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', ms = 10_000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    try {
      return (await exited).code;
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    rpcAddr: info.rpcAddr,
    httpAddr: info.httpAddr,
    tls: info.tls,
    pid: child.pid as number,
    child,
    exited,
    stop,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    stdout: () => stdout,
    stderr: () => stderr,
    logged(re, ms = 5000) {
      const seen = new Promise<void>((resolve) => {
        if (re.test(stdout)) resolve();
        else stdoutWaiters.add([re, resolve]);
      });
      return within(ms, `agent logs ${re}`, seen);
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `commitlog <args>` to completion (within `ms`, default 10 s), feeding `input` on stdin. */
export async function runCli(
  args: string[],
  opts: { input?: string; ms?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const child = spawn(process.execPath, [COMMITLOG_BIN, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(opts.input);
  try {
    const [code] = (await within(
      opts.ms ?? 10_000,
      `commitlog ${args.join(' ')}`,
      once(child, 'exit'),
    )) as [number | null];
    return { code, stdout, stderr };
  } finally {
    live.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
