// `commitlog dev-cluster`: a local cluster in one command, for trying things out. Each
// node is a real `commitlog agent` process on 127.0.0.1; the first bootstraps, the
// others join it. Ctrl-C stops them all (each leaves gracefully).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { InvalidArgumentError, type Command } from 'commander';

import { parseStartupLine, type StartupInfo } from '../agent/index.js';

const BIN = fileURLToPath(new URL('../../../bin/commitlog.js', import.meta.url));

export interface DevClusterOptions {
  nodes: number;
  dataDir: string;
  basePort: number;
  baseHttpPort: number;
}

/** The flags of node k (0-based) of a dev cluster. */
export function devNodeArgs(o: DevClusterOptions, k: number): string[] {
  const rpc = o.basePort + 10 * k;
  const args = [
    'agent',
    '--node-name',
    `n${k + 1}`,
    '--data-dir',
    join(o.dataDir, `n${k + 1}`),
    '--bind-addr',
    `127.0.0.1:${rpc + 1}`,
    '--rpc-port',
    String(rpc),
    '--http-port',
    String(o.baseHttpPort + 10 * k),
  ];
  if (k === 0) args.push('--bootstrap');
  else args.push('--start-join-addrs', `127.0.0.1:${o.basePort + 1}`);
  return args;
}

function positive(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`must be a whole number from 1 to ${max}`);
    return n;
  };
}

export function registerDevClusterCommand(program: Command): void {
  program
    .command('dev-cluster')
    .description(
      'run a local cluster of agent processes on 127.0.0.1 (the first bootstraps, the others join); ' +
        'Ctrl-C stops them all. Each node logs to <data-dir>/nK/agent.log',
    )
    .option('--nodes <n>', 'how many nodes', positive(9), 3)
    .option('--data-dir <dir>', "parent of the nodes' data directories", './data/cluster')
    .option(
      '--base-port <port>',
      'RPC port of n1; node k uses base + 10(k-1), gossip on RPC + 1',
      positive(65000),
      8400,
    )
    .option(
      '--base-http-port <port>',
      'HTTP port of n1; node k uses base + 10(k-1)',
      positive(65000),
      8080,
    )
    .action(async (o: DevClusterOptions) => {
      await runDevCluster({ ...o, dataDir: resolve(o.dataDir) });
    });
}

async function startNode(
  o: DevClusterOptions,
  k: number,
): Promise<{ child: ChildProcess; info: StartupInfo }> {
  const dir = join(o.dataDir, `n${k + 1}`);
  await mkdir(dir, { recursive: true });
  const logFile = await open(join(dir, 'agent.log'), 'a');
  const child = spawn(process.execPath, [BIN, ...devNodeArgs(o, k)], {
    stdio: ['ignore', logFile.fd, 'pipe'],
  });
  await logFile.close();
  const info = await new Promise<StartupInfo>((resolveInfo, reject) => {
    let text = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      text += chunk;
      const parsed = parseStartupLine(text);
      if (parsed) resolveInfo(parsed);
    });
    child.once('exit', (code) =>
      reject(
        new Error(`node n${k + 1} exited with code ${code} before it started:\n${text.trim()}`),
      ),
    );
  });
  child.stderr!.pipe(process.stderr);
  return { child, info };
}

export async function runDevCluster(o: DevClusterOptions): Promise<void> {
  const children: ChildProcess[] = [];
  const stopAll = (signal: NodeJS.Signals) => {
    for (const c of children) if (c.exitCode === null) c.kill(signal);
  };
  try {
    for (let k = 0; k < o.nodes; k++) {
      const { child, info } = await startNode(o, k);
      children.push(child);
      process.stdout.write(
        `n${k + 1}: rpc ${info.rpcAddr}  http http://${info.httpAddr}  data ${info.dataDir}\n`,
      );
    }
  } catch (err) {
    stopAll('SIGTERM');
    throw err;
  }
  process.stdout.write(
    `\n${o.nodes} nodes up. Try:\n` +
      `  commitlog produce --addr 127.0.0.1:${o.basePort} hello\n` +
      `  commitlog servers --addr 127.0.0.1:${o.basePort}\n` +
      'Ctrl-C stops the cluster.\n',
  );
  await new Promise<void>((done) => {
    let left = children.length;
    for (const c of children) c.once('exit', () => --left === 0 && done());
    process.once('SIGINT', () => stopAll('SIGTERM'));
    process.once('SIGTERM', () => stopAll('SIGTERM'));
  });
}
