// Fault injectors and the seeded schedule that drives them. Each fault is applied,
// held for a while and healed; the timeline records all three moments so a failure
// can be read against it. Network faults act inside the nodes' namespaces.
import { open, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';

import { sh, type Topology } from './hosts.js';
import type { NodeProcess } from './nodes.js';
import { pause, type Rng } from './rng.js';

export const FAULT_KINDS = [
  'kill',
  'pause',
  'partition',
  'loss',
  'slow',
  'disk',
  'clock',
  'churn',
  'wipe',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A fault kind was asked for that this run cannot inject. */
export class UnsupportedFaultError extends Error {
  override readonly name = 'UnsupportedFaultError';
}

export interface FaultEvent {
  kind: FaultKind;
  detail: string;
  /** Milliseconds since the run started. */
  at: number;
  healedAt?: number;
  error?: string;
}

/** How a node comes back with an empty data directory: as a new member, or under its old name. */
export type Fresh = 'new-name' | 'same-name';

/** One member of the Raft configuration, as GetServers lists it. */
export interface Member {
  id: string;
  raftId: string;
  rpcAddr: string;
  suffrage: string;
}

/** What the injector needs from the run: its nodes, and how to (re)start and locate them. */
export interface ClusterControl {
  nodes: NodeProcess[];
  /** (Re)starts node i; `fresh`: its data is deleted first. */
  restart(i: number, opts?: { fresh?: Fresh }): Promise<void>;
  /** Stops node i gracefully (SIGTERM; the nodes run with --leave-on-terminate). */
  leave(i: number): Promise<void>;
  /** Index of the node that says it leads, if any answers. */
  leader(): Promise<number | undefined>;
  /** The configuration, from a running node other than `except`. */
  members(except?: number): Promise<Member[] | undefined>;
  /** Polls the configuration until `ok` holds; false if it did not within `ms`. */
  waitMembers(ok: (m: Member[]) => boolean, ms: number, except?: number): Promise<boolean>;
  /** Removes a member by Raft id (`commitlog servers remove`) through a node other than `except`. */
  removeServer(raftId: string, except?: number): Promise<void>;
  /** Moves node i's clock forward by `seconds`; resolves with how far ahead it now is. */
  jumpClock(i: number, seconds: number): Promise<number>;
  elapsed(): number;
}

/** A churn step did not happen within its bound. */
export class ChurnError extends Error {
  override readonly name = 'ChurnError';
}

interface NetRules {
  dropFrom: string[];
  lossPct?: number;
}

const TABLE = 'clc';

export async function applyRules(topo: Topology, ns: string, rules: NetRules): Promise<void> {
  if (topo.caps.firewall === 'nft') {
    const lines = rules.dropFrom.map((a) => `ip saddr ${a} drop;`);
    if (rules.lossPct)
      lines.push(rules.lossPct >= 100 ? 'drop;' : `numgen random mod 100 < ${rules.lossPct} drop;`);
    await clearRules(topo, ns);
    await sh(
      'ip',
      ['netns', 'exec', ns, 'nft', '-f', '-'],
      `table inet ${TABLE} {\n chain in {\n  type filter hook input priority 0; policy accept;\n  ${lines.join('\n  ')}\n }\n}\n`,
    );
  } else if (topo.caps.firewall === 'iptables') {
    await clearRules(topo, ns);
    for (const a of rules.dropFrom)
      await sh('ip', ['netns', 'exec', ns, 'iptables', '-A', 'INPUT', '-s', a, '-j', 'DROP']);
    if (rules.lossPct) {
      await sh('ip', [
        'netns',
        'exec',
        ns,
        'iptables',
        '-A',
        'INPUT',
        '-m',
        'statistic',
        '--mode',
        'random',
        '--probability',
        String(rules.lossPct / 100),
        '-j',
        'DROP',
      ]);
    }
  } else throw new UnsupportedFaultError('no firewall tool');
}

export async function clearRules(topo: Topology, ns: string): Promise<void> {
  if (topo.caps.firewall === 'nft')
    await sh('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', TABLE]).catch(() => '');
  else if (topo.caps.firewall === 'iptables')
    await sh('ip', ['netns', 'exec', ns, 'iptables', '-F', 'INPUT']).catch(() => '');
}

interface Active {
  event: FaultEvent;
  heal: () => Promise<void>;
}

export interface InjectorOptions {
  kinds: FaultKind[];
  rng: Rng;
  /** Pause between faults and how long each is held, in ms ranges. */
  gapMs: [number, number];
  holdMs: [number, number];
  log?: (line: string) => void;
}

export class FaultInjector {
  readonly timeline: FaultEvent[] = [];
  private active?: Active;
  readonly skipped = new Map<FaultKind, string>();
  readonly usable: FaultKind[];

  constructor(
    private readonly topo: Topology,
    private readonly cluster: ClusterControl,
    private readonly opts: InjectorOptions,
  ) {
    this.usable = opts.kinds.filter((k) => {
      const why = this.unsupported(k);
      if (why) this.skipped.set(k, why);
      return why === undefined;
    });
  }

  /** Why `kind` cannot run here, or undefined. */
  unsupported(kind: FaultKind): string | undefined {
    const n = this.topo.hosts.length;
    const net = this.topo.mode === 'netns';
    switch (kind) {
      case 'kill':
      case 'pause':
        return undefined;
      case 'partition':
        if (!net || !this.topo.caps.firewall) return 'needs namespaces and nft/iptables';
        return n < 2 ? 'needs 2 or more nodes' : undefined;
      case 'loss':
        return net && this.topo.caps.firewall ? undefined : 'needs namespaces and nft/iptables';
      case 'slow':
        return net && this.topo.caps.tbf ? undefined : 'needs namespaces and tc tbf';
      case 'disk':
        return this.topo.hosts.every((h) => h.tmpfs) ? undefined : 'needs root for tmpfs data dirs';
      case 'churn':
        return n < 3 ? 'needs 3 or more nodes' : undefined;
      case 'wipe':
        return undefined;
      case 'clock':
        return this.topo.caps.faketime
          ? undefined
          : 'needs libfaketime (apt-get install libfaketime)';
    }
  }

  /** Injects faults one after another until `signal` aborts, then heals the last one. */
  async run(signal: AbortSignal): Promise<void> {
    if (this.usable.length === 0) return;
    while (!signal.aborted) {
      await pause(this.opts.rng.int(...this.opts.gapMs), signal);
      if (signal.aborted) break;
      const kind = this.opts.rng.pick(this.usable);
      await this.inject(kind);
      await pause(this.opts.rng.int(...this.opts.holdMs), signal);
      await this.healActive();
    }
    await this.healActive();
  }

  private say(line: string): void {
    this.opts.log?.(line);
  }

  async inject(kind: FaultKind): Promise<void> {
    const event: FaultEvent = { kind, detail: '', at: this.cluster.elapsed() };
    this.timeline.push(event);
    try {
      const heal = await this.apply(kind, event);
      this.active = { event, heal };
      this.say(`fault +${(event.at / 1000).toFixed(1)}s ${kind} ${event.detail}`);
    } catch (err) {
      event.error = err instanceof Error ? err.message : String(err);
      event.healedAt = this.cluster.elapsed();
      this.say(
        `fault +${(event.at / 1000).toFixed(1)}s ${kind} ${event.detail} failed: ${event.error}`,
      );
    }
  }

  async healActive(): Promise<void> {
    const a = this.active;
    if (!a) return;
    this.active = undefined;
    try {
      await a.heal();
    } catch (err) {
      a.event.error = `heal: ${err instanceof Error ? err.message : String(err)}`;
      this.say(`heal of ${a.event.kind} failed: ${a.event.error}`);
    }
    a.event.healedAt = this.cluster.elapsed();
  }

  private pickNode(): number {
    return this.opts.rng.int(0, this.cluster.nodes.length - 1);
  }

  private async apply(kind: FaultKind, event: FaultEvent): Promise<() => Promise<void>> {
    const rng = this.opts.rng;
    const nodes = this.cluster.nodes;
    const hosts = this.topo.hosts;
    switch (kind) {
      case 'kill': {
        const i = this.pickNode();
        event.detail = `kill -9 ${hosts[i]!.name} (pid ${nodes[i]!.pid})`;
        await nodes[i]!.kill9();
        const down = rng.int(0, 2000);
        return async () => {
          await pause(down);
          await this.cluster.restart(i);
        };
      }
      case 'pause': {
        const i = this.pickNode();
        event.detail = `SIGSTOP ${hosts[i]!.name}`;
        nodes[i]!.pause();
        return async () => nodes[i]!.resume();
      }
      case 'partition': {
        const groups = await this.partitionGroups(event);
        const touched = new Set<number>();
        for (const [a, dropFromIdx] of groups) {
          touched.add(a);
          await applyRules(this.topo, hosts[a]!.netns!, {
            dropFrom: dropFromIdx.map((j) => hosts[j]!.address),
          });
        }
        return async () => {
          for (const a of touched) await clearRules(this.topo, hosts[a]!.netns!);
        };
      }
      case 'loss': {
        const targets = hosts.map((_, i) => i).filter(() => rng.chance(0.5));
        if (targets.length === 0) targets.push(this.pickNode());
        const pct = rng.int(5, 40);
        event.detail = `drop ${pct}% of packets into ${targets.map((i) => hosts[i]!.name).join(',')}`;
        for (const i of targets)
          await applyRules(this.topo, hosts[i]!.netns!, { dropFrom: [], lossPct: pct });
        return async () => {
          for (const i of targets) await clearRules(this.topo, hosts[i]!.netns!);
        };
      }
      case 'slow': {
        const i = this.pickNode();
        const kbit = rng.pick([64, 256, 1024]);
        event.detail = `tbf ${kbit}kbit out of ${hosts[i]!.name}`;
        const ns = hosts[i]!.netns!;
        await sh('ip', [
          'netns',
          'exec',
          ns,
          'tc',
          'qdisc',
          'replace',
          'dev',
          'eth0',
          'root',
          'tbf',
          'rate',
          `${kbit}kbit`,
          'burst',
          '16kb',
          'latency',
          '300ms',
        ]);
        return async () => {
          await sh('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']).catch(
            () => '',
          );
        };
      }
      case 'disk': {
        const i = this.pickNode();
        const path = join(hosts[i]!.dataDir, 'chaos-filler');
        const filled = await fillDisk(hosts[i]!.dataDir, path);
        event.detail = `disk full on ${hosts[i]!.name} (${(filled / 2 ** 20).toFixed(1)} MiB filler)`;
        return async () => {
          await rm(path, { force: true });
          // A Raft write that met the full disk stopped the node (exit 1, by design): its
          // supervisor brings it back, as a Kubernetes pod's restart policy would.
          if (this.cluster.nodes[i]!.state === 'stopped') await this.cluster.restart(i);
        };
      }
      case 'clock': {
        // Forward only: moving a preloaded monotonic clock back would stall the node's
        // timers until it caught up. The node stays ahead; the jump is the event.
        const i = this.pickNode();
        const jump = rng.pick([1, 5, 30, 120, 600]);
        const ahead = await this.cluster.jumpClock(i, jump);
        event.detail = `clock of ${hosts[i]!.name} jumps +${jump} s (now ${ahead} s ahead)`;
        return async () => undefined;
      }
      case 'wipe': {
        // Unsafe on purpose: the node forgets what it acknowledged and comes back under
        // the same name. On one node the run must then fail (the suite's own proof that
        // a real loss is caught end to end).
        const i = this.pickNode();
        event.detail = `kill -9 ${hosts[i]!.name}, delete its data, restart it as if nothing happened`;
        await nodes[i]!.kill9();
        await rm(join(hosts[i]!.dataDir, 'data'), { recursive: true, force: true });
        return async () => this.cluster.restart(i);
      }
      case 'churn':
        return this.churn(event);
    }
  }

  /**
   * Membership churn, one of four shapes:
   *   leave    the node leaves gracefully (SIGTERM, --leave-on-terminate) and is out of
   *            the configuration; healed by a new member (empty data, new name) in its place
   *   replace  kill -9, then `commitlog servers remove`; healed likewise
   *   lost     kill -9 and never back: a new member takes its place and the dead voter
   *            is reaped (--reap-after-ms; four voters, so reaping leaves three)
   *   return   kill -9, data deleted, back under the same name: it joins under a new Raft
   *            id and the operator removes the stale one (`servers remove`)
   * Each step is checked in the configuration; one that does not happen in time is the
   * fault's error (shown in the timeline), and the heal still leaves three voters.
   */
  private async churn(event: FaultEvent): Promise<() => Promise<void>> {
    const rng = this.opts.rng;
    const i = this.pickNode();
    const node = this.cluster.nodes[i]!;
    const name = this.topo.hosts[i]!.name;
    const shape = rng.pick(['leave', 'replace', 'lost', 'return'] as const);
    const before = await this.cluster.members(i);
    const self = before?.find((m) => m.rpcAddr === node.rpcAddr);
    if (!before || !self) throw new ChurnError(`${name} is not in a configuration any node lists`);
    const gone = (m: Member[]) => !m.some((x) => x.raftId === self.raftId);
    const voters = (m: Member[]) => m.filter((x) => x.suffrage === 'voter').length;
    // Churn takes a voter away: with one still a learner that could be the quorum.
    if (voters(before) < this.cluster.nodes.length)
      throw new ChurnError(`only ${voters(before)} voters: a member is still catching up`);
    const rejoined = (m: Member[]) =>
      m.some(
        (x) => x.rpcAddr === node.rpcAddr && x.raftId !== self.raftId && x.suffrage === 'voter',
      );
    const joinBack = async (fresh: Fresh) => {
      await this.cluster.restart(i, { fresh });
      if (!(await this.cluster.waitMembers(rejoined, 60_000, i)))
        throw new ChurnError(`${name} (${node.nodeName}) did not become a voter within 60 s`);
    };
    /** The stale id must leave the configuration; the operator steps in if it did not. */
    const staleGone = async (how: string) => {
      if (await this.cluster.waitMembers((m) => gone(m) && voters(m) === 3, 30_000)) return;
      await this.cluster.removeServer(self.raftId, i).catch(() => undefined);
      throw new ChurnError(`the stale id ${self.raftId} was not ${how} within 30 s`);
    };
    /** A step failed with the node down: it comes back on its data, and the fault is an error. */
    const undo = async (why: string): Promise<never> => {
      await this.cluster.restart(i).catch(() => undefined);
      throw new ChurnError(why);
    };
    switch (shape) {
      case 'leave':
        event.detail = `${name} (${self.raftId}) leaves gracefully; a new member takes its place`;
        await this.cluster.leave(i);
        if (!(await this.cluster.waitMembers(gone, 15_000, i)))
          return undo(`${self.raftId} left but is still in the configuration after 15 s`);
        return () => joinBack('new-name');
      case 'replace': {
        // Killed first: a member removed while it still runs is alive in the gossip, and
        // the leader's membership loop adds it straight back.
        event.detail = `${name} (${self.raftId}) killed and removed; a new member takes its place`;
        await node.kill9();
        // A removal is refused while another configuration change is under way: retried.
        let refused = '';
        for (let attempt = 0; attempt < 5; attempt++) {
          refused = await this.cluster.removeServer(self.raftId, i).then(
            () => '',
            (err: unknown) => (err instanceof Error ? err.message : String(err)),
          );
          if (!refused) break;
          await pause(1000);
        }
        if (refused) return undo(`servers remove ${self.raftId} refused: ${refused}`);
        if (!(await this.cluster.waitMembers(gone, 15_000, i)))
          return undo(`${self.raftId} still in the configuration 15 s after its removal`);
        return () => joinBack('new-name');
      }
      case 'lost':
        event.detail = `${name} (${self.raftId}) killed for good; a new member takes its place, the dead one is reaped`;
        await node.kill9();
        return async () => {
          await joinBack('new-name');
          await staleGone('reaped');
        };
      case 'return':
        event.detail = `${name} (${self.raftId}) killed, wiped, back under the same name; the leader drops the stale id`;
        await node.kill9();
        return async () => {
          await joinBack('same-name');
          // The leader replaces the superseded id itself once the new one votes.
          await staleGone('replaced by the leader');
        };
    }
  }

  /** Pairs (node, nodes whose packets it drops) for one random partition shape. */
  private async partitionGroups(event: FaultEvent): Promise<Array<[number, number[]]>> {
    const rng = this.opts.rng;
    const n = this.cluster.nodes.length;
    const all = [...Array(n).keys()];
    const names = (xs: number[]) => xs.map((i) => this.topo.hosts[i]!.name).join(',');
    const cut = (a: number[], b: number[]): Array<[number, number[]]> => [
      ...a.map((i): [number, number[]] => [i, b]),
      ...b.map((i): [number, number[]] => [i, a]),
    ];
    const shape = rng.pick(
      n >= 3 ? ['halves', 'leader', 'one-way', 'bridge'] : ['halves', 'one-way'],
    );
    if (shape === 'leader') {
      const l = (await this.cluster.leader()) ?? this.pickNode();
      const rest = all.filter((i) => i !== l);
      event.detail = `isolate the leader ${names([l])} from ${names(rest)}`;
      return cut([l], rest);
    }
    if (shape === 'one-way') {
      const a = this.pickNode();
      const b = rng.pick(all.filter((i) => i !== a));
      event.detail = `one-way: ${names([a])} hears nothing from ${names([b])}`;
      return [[a, [b]]];
    }
    const shuffled = [...all].sort(() => rng.next() - 0.5);
    if (shape === 'bridge') {
      const [bridge, ...rest] = shuffled;
      const half = Math.ceil(rest.length / 2);
      const a = rest.slice(0, half);
      const b = rest.slice(half);
      event.detail = `bridge: ${names(a)} | ${names(b)}, only ${names([bridge!])} sees both`;
      return cut(a, b);
    }
    const minority = shuffled.slice(0, Math.max(1, Math.floor((n - 1) / 2)));
    const majority = shuffled.filter((i) => !minority.includes(i));
    event.detail = `minority ${names(minority)} | majority ${names(majority)}`;
    return cut(minority, majority);
  }
}

/** Writes zeros into `path` until the file system holding `dir` is full. */
export async function fillDisk(dir: string, path: string): Promise<number> {
  const fs = await statfs(dir);
  const chunk = Buffer.alloc(1 << 20);
  let written = 0;
  const fh = await open(path, 'w');
  try {
    for (let left = fs.bavail * fs.bsize + chunk.length; left > 0; left -= chunk.length) {
      try {
        written += (await fh.write(chunk)).bytesWritten;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
    // The last partial page, byte runs until ENOSPC.
    for (let size = 4096; size >= 1; size >>= 1) {
      try {
        while (true) written += (await fh.write(chunk.subarray(0, size))).bytesWritten;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    await fh.close();
  }
  return written;
}
