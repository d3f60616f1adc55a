// One `commitlog agent` process per host, started inside the host's namespace, with
// its output kept in a file. kill -9, SIGSTOP/SIGCONT and restarts act on the real pid
// (`ip netns exec` replaces itself with the node).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import type { Host } from './hosts.js';

const BIN = fileURLToPath(new URL('../../../bin/commitlog.js', import.meta.url));

/** The node did not print its start-up line in time, or exited first. */
export class NodeStartError extends Error {
  override readonly name = 'NodeStartError';
}

export type NodeState = 'stopped' | 'running' | 'paused';

export interface ClusterShape {
  hosts: readonly Host[];
  /** Flags of the cluster (--bootstrap, --start-join-addrs, …); a single node passes none of them. */
  clustered: boolean;
}

/**
 * A dead voter is reaped after this long, but never below the default three voters:
 * in a three-node run only the stale id of a node that came back wiped is ever reaped.
 */
export const REAP_AFTER_MS = 2000;

/** The agent's flags for `host`: the first node bootstraps once, every other start joins. */
export function agentArgs(
  host: Host,
  shape: ClusterShape,
  opts: { bootstrap: boolean; nodeName: string },
): string[] {
  const args = [
    'agent',
    '--node-name',
    opts.nodeName,
    '--data-dir',
    join(host.dataDir, 'data'),
    '--bind-addr',
    `${host.address}:${host.gossipPort}`,
    '--rpc-port',
    String(host.rpcPort),
    '--http-port',
    String(host.httpPort),
    '--log-format',
    'json',
    '--log-level',
    'info',
  ];
  if (host.address !== '127.0.0.1') args.push('--insecure');
  if (shape.clustered) {
    // SIGTERM is a graceful leave (the churn fault's); kill -9 stays a crash.
    args.push('--advertise-host', host.address, '--leave-on-terminate');
    args.push('--reap-after-ms', String(REAP_AFTER_MS));
    if (opts.bootstrap) args.push('--bootstrap');
    else {
      const others = shape.hosts
        .filter((h) => h !== host)
        .map((h) => `${h.address}:${h.gossipPort}`);
      args.push('--start-join-addrs', others.join(','));
    }
  }
  return args;
}

export class NodeProcess {
  state: NodeState = 'stopped';
  pid = 0;
  starts = 0;
  private child?: ChildProcess;
  private out?: WriteStream;
  private exited?: Promise<void>;
  /** Called once per start with the new pid (the harness records it for cleanup). */
  onPid: (pid: number) => void = () => {};
  /** Extra environment for the agent (the clock fault preloads libfaketime). */
  env: Record<string, string> = {};
  /** Called when the process ends by itself (not by kill9 or stop), with its status. */
  onUnexpectedExit: (status: number | string) => void = () => {};
  /** Set when the harness ends the process, so the exit is not a surprise. */
  private ending = false;

  constructor(
    readonly host: Host,
    private readonly logDir: string,
    public nodeName: string,
  ) {}

  get rpcAddr(): string {
    return `${this.host.address}:${this.host.rpcPort}`;
  }
  get httpAddr(): string {
    return `${this.host.address}:${this.host.httpPort}`;
  }
  get logFile(): string {
    return join(this.logDir, `${this.host.name}.log`);
  }

  /** Starts the agent and resolves once it prints its start-up line. */
  async start(args: string[], timeoutMs = 30_000): Promise<void> {
    if (this.state !== 'stopped') throw new NodeStartError(`${this.host.name} is ${this.state}`);
    this.starts++;
    const [cmd, argv] = this.host.netns
      ? ['ip', ['netns', 'exec', this.host.netns, process.execPath, BIN, ...args]]
      : [process.execPath, [BIN, ...args]];
    this.out ??= createWriteStream(this.logFile, { flags: 'a' });
    this.out.write(`--- start ${this.starts}: ${args.join(' ')}\n`);
    const child = spawn(cmd, argv, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.child = child;
    this.ending = false;
    this.pid = child.pid ?? 0;
    if (this.pid) this.onPid(this.pid);
    this.state = 'running';
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.out?.write(`--- exit ${code ?? signal}\n`);
        if (this.child === child) {
          const wasReady = this.state !== 'stopped';
          this.state = 'stopped';
          if (wasReady && !this.ending) this.onUnexpectedExit(code ?? signal ?? 'unknown');
        }
        resolve();
      });
    });
    child.stderr?.pipe(this.out, { end: false });
    const lines = createInterface({ input: child.stdout });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new NodeStartError(
              `${this.host.name} printed no start-up line in ${timeoutMs} ms (see ${this.logFile})`,
            ),
          ),
        timeoutMs,
      );
      lines.on('line', (line) => {
        this.out?.write(line + '\n');
        if (line.includes('commitlog agent ') && line.includes('gRPC on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void this.exited!.then(() => {
        clearTimeout(timer);
        reject(
          new NodeStartError(`${this.host.name} exited during start-up (see ${this.logFile})`),
        );
      });
    });
    try {
      await ready;
    } catch (err) {
      await this.kill9();
      throw err;
    }
  }

  /** SIGKILL; resolves when the process is gone. */
  async kill9(): Promise<void> {
    if (!this.child || this.state === 'stopped') return;
    this.ending = true;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  pause(): void {
    if (this.state !== 'running') return;
    this.child?.kill('SIGSTOP');
    this.state = 'paused';
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.child?.kill('SIGCONT');
    this.state = 'running';
  }

  /** SIGTERM (a graceful stop), then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.child || this.state === 'stopped') return;
    if (this.state === 'paused') this.resume();
    this.ending = true;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Resident set size in bytes from /proc, or undefined when not running. */
  rss(): number | undefined {
    return readRss(this.pid);
  }

  closeLog(): void {
    this.out?.end();
    this.out = undefined;
  }
}

export function readRss(pid: number): number | undefined {
  if (!pid) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}
