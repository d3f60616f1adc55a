// Where the nodes run. With root and `ip`, each node gets its own network namespace
// (a veth into one bridge, an address in 198.18.0.0/15, the benchmarking range), so
// faults can cut and slow links with nftables/iptables and tc inside a namespace.
// Without them the nodes share 127.0.0.1 and only process faults are possible.
//
// Every resource is named `clc…` with the run's id, and listed in a state file under
// the run's folder, so `cleanup` (or the reaper process that outlives a crashed
// harness) finds and deletes whatever a run left behind.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A command the harness ran failed. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly command: string,
    readonly stderr: string,
    options?: ErrorOptions,
  ) {
    super(`${command}: ${stderr.trim() || 'failed'}`, options);
  }
}

export function sh(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err)
        reject(new CommandError(`${cmd} ${args.join(' ')}`, stderr || err.message, { cause: err }));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function shOk(cmd: string, args: string[]): Promise<boolean> {
  try {
    await sh(cmd, args);
    return true;
  } catch {
    return false;
  }
}

export const PREFIX = 'clc';

const FAKETIME_LIBS = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
];
export const RUN_DIR_PREFIX = 'commitlog-chaos-';

export interface Host {
  name: string;
  /** What clients and peers dial. */
  address: string;
  rpcPort: number;
  httpPort: number;
  gossipPort: number;
  dataDir: string;
  /** The node's network namespace, its interface there, and its host-side veth. */
  netns?: string;
  iface?: string;
  /** True when dataDir is a small tmpfs of its own (the disk-full fault needs it). */
  tmpfs: boolean;
}

export type FirewallTool = 'nft' | 'iptables';

export interface Capabilities {
  netns: boolean;
  firewall?: FirewallTool;
  tbf: boolean;
  tmpfs: boolean;
  /** libfaketime's path: a preloaded clock that a file can move (the clock fault). */
  faketime?: string;
  /** Why a capability is missing, for the run's output. */
  notes: string[];
}

export interface Topology {
  run: string;
  root: string;
  mode: 'netns' | 'loopback';
  caps: Capabilities;
  hosts: Host[];
  /** Kills the run's processes, removes its namespaces, links and mounts, and its folder unless `keepFiles`. */
  close(opts?: { keepFiles?: boolean }): Promise<void>;
}

interface RunState {
  harnessPid: number;
  pids: number[];
  netns: string[];
  links: string[];
  mounts: string[];
}

export function newRunId(): string {
  return Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, '0');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

export async function probeCapabilities(
  run: string,
  want: 'auto' | 'netns' | 'loopback',
): Promise<Capabilities> {
  const notes: string[] = [];
  const caps: Capabilities = { netns: false, tbf: false, tmpfs: false, notes };
  const root = process.getuid?.() === 0;
  if (!root) notes.push('not root: no namespaces, no tmpfs data dirs');
  caps.tmpfs = root && process.platform === 'linux';
  caps.faketime = FAKETIME_LIBS.find((p) => existsSync(p));
  if (want === 'loopback') {
    notes.push('loopback chosen: process faults only');
    return caps;
  }
  if (root && (await shOk('ip', ['-V']))) {
    const probe = `${PREFIX}${run}probe`;
    caps.netns = await shOk('ip', ['netns', 'add', probe]);
    if (caps.netns) {
      if (await shOk('nft', ['--version'])) caps.firewall = 'nft';
      else if (await shOk('iptables', ['--version'])) caps.firewall = 'iptables';
      else notes.push('no nft or iptables (apt-get install nftables): no partitions or loss');
      caps.tbf = await shOk('ip', [
        'netns',
        'exec',
        probe,
        'tc',
        'qdisc',
        'add',
        'dev',
        'lo',
        'root',
        'tbf',
        'rate',
        '1mbit',
        'burst',
        '32kb',
        'latency',
        '100ms',
      ]);
      if (!caps.tbf) notes.push('tc tbf unavailable: no slow links');
      await shOk('ip', ['netns', 'del', probe]);
    } else notes.push('ip netns add failed: process faults only');
  } else if (root) notes.push('no `ip` command (apt-get install iproute2): process faults only');
  if (want === 'netns' && !caps.netns)
    throw new Error(`network namespaces unavailable: ${notes.join('; ')}`);
  return caps;
}

async function saveState(root: string, state: RunState): Promise<void> {
  await writeFile(join(root, 'state.json'), JSON.stringify(state));
}

export async function createTopology(opts: {
  nodes: number;
  run?: string;
  mode?: 'auto' | 'netns' | 'loopback';
  tmpfsMb?: number;
}): Promise<Topology> {
  const run = opts.run ?? newRunId();
  const root = join(tmpdir(), `${RUN_DIR_PREFIX}${run}`);
  await mkdir(root, { recursive: true });
  const caps = await probeCapabilities(run, opts.mode ?? 'auto');
  const state: RunState = { harnessPid: process.pid, pids: [], netns: [], links: [], mounts: [] };
  await saveState(root, state);
  const topo: Topology = {
    run,
    root,
    mode: caps.netns ? 'netns' : 'loopback',
    caps,
    hosts: [],
    close: (o) => removeRun(root, state, o?.keepFiles ?? false),
  };
  try {
    // One /24 per run inside 198.18.0.0/15, so two runs side by side do not collide.
    let octet = 1 + (parseInt(run, 36) % 254);
    if (caps.netns) {
      const inUse = await sh('ip', ['-o', '-4', 'addr', 'show']);
      while (inUse.includes(`198.18.${octet}.`)) octet = 1 + (octet % 254);
    }
    const subnet = `198.18.${octet}`;
    const bridge = `${PREFIX}${run}br`;
    if (caps.netns) {
      await sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
      state.links.push(bridge);
      await saveState(root, state);
      await sh('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
      await sh('ip', ['link', 'set', bridge, 'up']);
    }
    for (let i = 0; i < opts.nodes; i++) {
      const name = `n${i}`;
      const dataDir = join(root, name);
      await mkdir(dataDir, { recursive: true });
      let tmpfs = false;
      if (caps.tmpfs) {
        const source = `${PREFIX}${run}${name}`;
        tmpfs = await shOk('mount', [
          '-t',
          'tmpfs',
          '-o',
          `size=${opts.tmpfsMb ?? 256}m`,
          source,
          dataDir,
        ]);
        if (tmpfs) {
          state.mounts.push(dataDir);
          await saveState(root, state);
        }
      }
      if (caps.netns) {
        const ns = `${PREFIX}-${run}-${name}`;
        const veth = `${PREFIX}${run}${name}`;
        const address = `${subnet}.${10 + i}`;
        await sh('ip', ['netns', 'add', ns]);
        state.netns.push(ns);
        await sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
        state.links.push(veth);
        await saveState(root, state);
        await sh('ip', ['link', 'set', `${veth}p`, 'netns', ns]);
        await sh('ip', ['-n', ns, 'link', 'set', `${veth}p`, 'name', 'eth0']);
        await sh('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
        await sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
        await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        await sh('ip', ['link', 'set', veth, 'master', bridge]);
        await sh('ip', ['link', 'set', veth, 'up']);
        topo.hosts.push({
          name,
          address,
          rpcPort: 8400,
          httpPort: 8080,
          gossipPort: 8401,
          dataDir,
          netns: ns,
          iface: 'eth0',
          tmpfs,
        });
      } else {
        topo.hosts.push({
          name,
          address: '127.0.0.1',
          rpcPort: await freePort(),
          httpPort: await freePort(),
          gossipPort: await freePort(),
          dataDir,
          tmpfs,
        });
      }
    }
  } catch (err) {
    await topo.close();
    throw err;
  }
  return topo;
}

/** Updates of each run's state file, one after another. */
const stateWrites = new Map<string, Promise<void>>();

/**
 * Records a process of this run, so that a cleanup after a crash can kill it. Nodes
 * start in parallel: the read-modify-write is serialized per file, and the file is
 * replaced by a rename, so no reader ever sees it half written.
 */
export function trackPid(topo: Topology, pid: number): Promise<void> {
  const path = join(topo.root, 'state.json');
  const next = (stateWrites.get(path) ?? Promise.resolve()).then(async () => {
    const state = JSON.parse(await readFile(path, 'utf8')) as RunState;
    if (!state.pids.includes(pid)) state.pids.push(pid);
    await writeFile(`${path}.tmp`, JSON.stringify(state));
    await rename(`${path}.tmp`, path);
  });
  stateWrites.set(
    path,
    next.catch(() => undefined),
  );
  return next;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function removeRun(root: string, state: RunState, keepFiles = false): Promise<void> {
  let saved: RunState = state;
  try {
    saved = JSON.parse(await readFile(join(root, 'state.json'), 'utf8')) as RunState;
  } catch {
    // no state file: use what this process knows
  }
  for (const pid of saved.pids) {
    if (pid !== process.pid && alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // it died between the check and the kill
      }
    }
  }
  for (const ns of saved.netns) await shOk('ip', ['netns', 'del', ns]);
  for (const link of [...saved.links].reverse()) await shOk('ip', ['link', 'del', link]);
  for (const m of saved.mounts) await shOk('umount', ['-l', m]);
  if (keepFiles) await rm(join(root, 'state.json'), { force: true });
  else await rm(root, { recursive: true, force: true });
}

/**
 * Deletes what chaos runs left behind: namespaces, links and mounts named with the
 * prefix, processes and folders of runs whose harness is gone. With `all`, runs whose
 * harness is still alive too. Returns what it removed.
 */
export async function cleanupLeftovers(
  opts: { all?: boolean; run?: string } = {},
): Promise<string[]> {
  const removed: string[] = [];
  const live = new Set<string>();
  for (const entry of await readdir(tmpdir())) {
    if (!entry.startsWith(RUN_DIR_PREFIX)) continue;
    const run = entry.slice(RUN_DIR_PREFIX.length);
    if (opts.run !== undefined && run !== opts.run) continue;
    const root = join(tmpdir(), entry);
    let state: RunState | undefined;
    try {
      state = JSON.parse(await readFile(join(root, 'state.json'), 'utf8')) as RunState;
    } catch {
      state = undefined;
    }
    if (state && alive(state.harnessPid) && state.harnessPid !== process.pid && !opts.all) {
      live.add(run);
      continue;
    }
    await removeRun(root, state ?? { harnessPid: 0, pids: [], netns: [], links: [], mounts: [] });
    removed.push(`run ${run} (${root})`);
  }
  const owned = (name: string) => {
    for (const run of live) if (name.includes(run)) return false;
    return opts.run === undefined || name.includes(opts.run);
  };
  if (await shOk('ip', ['-V'])) {
    const netns = (await sh('ip', ['netns', 'list']).catch(() => ''))
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter(
        (n) => n.startsWith(`${PREFIX}-`) || (n.startsWith(`${PREFIX}`) && n.endsWith('probe')),
      );
    for (const ns of netns.filter(owned))
      if (await shOk('ip', ['netns', 'del', ns])) removed.push(`netns ${ns}`);
    const links = (await sh('ip', ['-o', 'link', 'show']).catch(() => ''))
      .split('\n')
      .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '')
      .filter((n) => n.startsWith(PREFIX));
    for (const link of links.filter(owned))
      if (await shOk('ip', ['link', 'del', link])) removed.push(`link ${link}`);
  }
  if (existsSync('/proc/mounts')) {
    for (const line of (await readFile('/proc/mounts', 'utf8')).split('\n')) {
      const [source, target] = line.split(' ');
      if (source?.startsWith(PREFIX) && target && owned(source)) {
        if (await shOk('umount', ['-l', target])) removed.push(`mount ${target}`);
      }
    }
  }
  return removed;
}
