// One chaos run: hosts, nodes, clients, faults, then recovery, the final logs of every
// replica, and the checker's verdict.
import { spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';

import { LogClient, type GetServersResponse } from '../../src/api/index.js';
import { check, formatVerdict, type Verdict } from './checker.js';
import {
  FaultInjector,
  type ClusterControl,
  type FaultEvent,
  type FaultKind,
  type Fresh,
  type Member,
} from './faults.js';
import type { History, Replica } from './history.js';
import { createTopology, sh, trackPid, type Topology } from './hosts.js';
import { agentArgs, NodeProcess, NodeStartError, type ClusterShape } from './nodes.js';
import { pause, Rng } from './rng.js';
import { now, readAll, Workload, type Target } from './workload.js';

const BIN = fileURLToPath(new URL('../../../bin/commitlog.js', import.meta.url));
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export interface ChaosOptions {
  nodes: number;
  durationMs: number;
  seed: number;
  faults: FaultKind[];
  mode?: 'auto' | 'netns' | 'loopback';
  producers?: number;
  consumersPerNode?: number;
  /** Bound on recovery after the faults stop. */
  recoveryMs?: number;
  gapMs?: [number, number];
  holdMs?: [number, number];
  callTimeoutMs?: number;
  thinkMs?: number;
  tmpfsMb?: number;
  log?: (line: string) => void;
  /**
   * Pass the cluster flags (--bootstrap, --start-join-addrs, --advertise-host).
   * Default: with more than one node. Off, N nodes are N separate logs: a dry run of
   * the harness that the checker must fail with divergent replicas.
   */
  clusterFlags?: boolean;
  /** Aborts the run early (Ctrl-C): faults stop, the run still checks what it has. */
  signal?: AbortSignal;
}

export interface ChaosResult {
  seed: number;
  mode: 'netns' | 'loopback';
  notes: string[];
  operations: number;
  faults: number;
  lost: number;
  violations: number;
  verdict: Verdict;
  timeline: FaultEvent[];
  skipped: Map<FaultKind, string>;
  /** Folder with the nodes' logs (kept when the run fails). */
  logDir: string;
  summary: string;
}

/** The line the run ends with. */
export function summaryLine(
  r: Pick<ChaosResult, 'operations' | 'faults' | 'lost' | 'violations'>,
): string {
  return `chaos: ${r.operations} operations, ${r.faults} faults, ${r.lost} lost, ${r.violations} violations`;
}

export function formatTimeline(t: FaultEvent[]): string {
  return t
    .map((e) => {
      const end =
        e.healedAt === undefined ? 'not healed' : `healed +${(e.healedAt / 1000).toFixed(1)}s`;
      return `  +${(e.at / 1000).toFixed(1)}s ${e.kind}: ${e.detail} (${end})${e.error ? ` ERROR ${e.error}` : ''}`;
    })
    .join('\n');
}

/** A detached watcher that cleans the run up if this process dies without doing so. */
function startReaper(run: string): () => void {
  const child = spawn(
    process.execPath,
    [MAIN, 'reap', '--run', run, '--pid', String(process.pid)],
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  child.unref();
  return () => {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  };
}

class Cluster implements ClusterControl {
  readonly nodes: NodeProcess[];
  private readonly started = now();
  private readonly shape: ClusterShape;
  private wipes = 0;

  private readonly ahead = new Map<number, number>();

  constructor(
    private readonly topo: Topology,
    clustered: boolean,
    faketime: boolean,
  ) {
    this.shape = { hosts: topo.hosts, clustered };
    this.nodes = topo.hosts.map((h) => {
      const n = new NodeProcess(h, topo.root, h.name);
      // Best effort: an untracked pid only means a crashed run's cleanup misses it.
      n.onPid = (pid) => void trackPid(topo, pid).catch(() => undefined);
      if (faketime && topo.caps.faketime) {
        n.env = {
          LD_PRELOAD: topo.caps.faketime,
          FAKETIME_TIMESTAMP_FILE: this.clockFile(h.name),
          // Re-read the offset once a second rather than on every clock read.
          FAKETIME_CACHE_DURATION: '1',
        };
      }
      return n;
    });
  }

  private clockFile(name: string): string {
    return join(this.topo.root, `${name}.faketime`);
  }

  async prepareClocks(): Promise<void> {
    for (const n of this.nodes)
      if (n.env.FAKETIME_TIMESTAMP_FILE) await writeFile(n.env.FAKETIME_TIMESTAMP_FILE, '+0\n');
  }

  async jumpClock(i: number, seconds: number): Promise<number> {
    const n = this.nodes[i]!;
    if (!n.env.FAKETIME_TIMESTAMP_FILE) throw new Error(`${n.host.name} runs without a fake clock`);
    const ahead = (this.ahead.get(i) ?? 0) + seconds;
    this.ahead.set(i, ahead);
    await writeFile(n.env.FAKETIME_TIMESTAMP_FILE, `+${ahead}\n`);
    return ahead;
  }

  elapsed(): number {
    return now() - this.started;
  }

  targets(): Target[] {
    return this.nodes.map((n) => ({ name: n.host.name, rpcAddr: n.rpcAddr }));
  }

  async startAll(): Promise<void> {
    const [first, ...rest] = this.nodes;
    await first!.start(
      agentArgs(first!.host, this.shape, { bootstrap: true, nodeName: first!.nodeName }),
    );
    await Promise.all(
      rest.map((n) =>
        n.start(agentArgs(n.host, this.shape, { bootstrap: false, nodeName: n.nodeName })),
      ),
    );
  }

  /**
   * Restarts a node that ended by itself (a Raft storage failure exits 1 on purpose) a
   * second later, as a supervisor would, until `unsupervise`.
   */
  supervise(say: (line: string) => void): void {
    this.nodes.forEach((n, i) => {
      n.onUnexpectedExit = (status) => {
        say(`chaos: ${n.host.name} exited by itself (${status}); restarting it in 1 s`);
        setTimeout(() => {
          if (!this.supervising || n.state !== 'stopped') return;
          this.restart(i).catch((err: unknown) =>
            say(`chaos: supervised restart of ${n.host.name} failed: ${String(err)}`),
          );
        }, 1000);
      };
    });
  }

  unsupervise(): void {
    this.supervising = false;
  }

  private supervising = true;

  async restart(i: number, opts: { fresh?: Fresh } = {}): Promise<void> {
    const n = this.nodes[i]!;
    if (n.state === 'paused') n.resume();
    await n.kill9();
    if (opts.fresh) {
      await rm(join(n.host.dataDir, 'data'), { recursive: true, force: true });
      if (opts.fresh === 'new-name') n.nodeName = `${n.host.name}w${++this.wipes}`;
    }
    // A restart never bootstraps: the node's data (or the cluster) already exists.
    const bootstrap = !this.shape.clustered;
    const args = agentArgs(n.host, this.shape, { bootstrap, nodeName: n.nodeName });
    // A wiped node under its old name is refused while the others still see the old
    // one alive (a duplicate name): it starts once they have marked that one failed.
    const deadline = now() + (opts.fresh === 'same-name' ? 30_000 : 0);
    for (;;) {
      try {
        return await n.start(args);
      } catch (err) {
        if (!(err instanceof NodeStartError) || now() > deadline) throw err;
        await pause(1000);
      }
    }
  }

  /** SIGTERM: with --leave-on-terminate the node hands over leadership and leaves. */
  async leave(i: number): Promise<void> {
    await this.nodes[i]!.stop(15_000);
  }

  /** The configuration as a running node other than `except` reports it. */
  async members(except?: number): Promise<Member[] | undefined> {
    for (const [j, n] of this.nodes.entries()) {
      if (j === except || n.state !== 'running') continue;
      const res = await this.servers(n);
      if (res) return res.servers;
    }
    return undefined;
  }

  /** Polls the configuration until `ok` holds for it; false at the deadline. */
  async waitMembers(ok: (m: Member[]) => boolean, ms: number, except?: number): Promise<boolean> {
    const deadline = now() + ms;
    while (now() < deadline) {
      const m = await this.members(except);
      if (m && ok(m)) return true;
      await pause(250);
    }
    return false;
  }

  private async servers(n: NodeProcess): Promise<GetServersResponse | undefined> {
    const c = new LogClient(n.rpcAddr, grpc.credentials.createInsecure());
    try {
      return await new Promise<GetServersResponse>((resolve, reject) =>
        c.getServers({}, new grpc.Metadata(), { deadline: Date.now() + 2000 }, (err, r) =>
          err ? reject(err) : resolve(r),
        ),
      );
    } catch {
      return undefined;
    } finally {
      c.close();
    }
  }

  async leader(): Promise<number | undefined> {
    for (const n of this.nodes) {
      if (n.state !== 'running') continue;
      const res = await this.servers(n);
      const l = res?.servers.find((s) => s.isLeader);
      if (!l) continue;
      const i = this.nodes.findIndex((m) => m.rpcAddr === l.rpcAddr || m.nodeName === l.id);
      if (i >= 0) return i;
    }
    return undefined;
  }

  /**
   * Resolves once a leader is known and lists every node as a voter: a learner does not
   * vote, and wiping the only voter of a young cluster would end it.
   */
  async waitFormed(deadline: number): Promise<void> {
    while (now() < deadline) {
      const l = await this.leader();
      if (l !== undefined) {
        const res = await this.servers(this.nodes[l]!);
        const voters = res?.servers.filter((s) => s.suffrage === 'voter').length ?? 0;
        if (voters >= this.nodes.length) return;
      }
      await pause(250);
    }
    throw new Error(`no leader listing ${this.nodes.length} voters before the deadline`);
  }

  /** Removes a member by its Raft id with `commitlog servers remove`, through another node. */
  async removeServer(raftId: string, except?: number): Promise<void> {
    const others = this.nodes.filter((n, j) => j !== except && n.state === 'running');
    if (others.length === 0) throw new Error('no running node to remove a member through');
    await sh(process.execPath, [
      BIN,
      'servers',
      'remove',
      raftId,
      '--addr',
      others.map((n) => n.rpcAddr).join(','),
    ]);
  }
}

/** Polls `offset` on one node until it answers with `value`, or the deadline passes. */
async function servesRecord(
  client: LogClient,
  offset: bigint,
  value: Buffer,
  deadline: number,
): Promise<boolean> {
  while (now() < deadline) {
    try {
      const r = await new Promise<{ record?: { value: Uint8Array } }>((resolve, reject) =>
        client.consume(
          { offset },
          new grpc.Metadata(),
          { deadline: Date.now() + 2000 },
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      );
      if (r.record && Buffer.from(r.record.value).equals(value)) return true;
    } catch {
      // not there yet, or the node is still coming back
    }
    await pause(100);
  }
  return false;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const say = opts.log ?? (() => {});
  const rng = new Rng(opts.seed);
  const topo = await createTopology({ nodes: opts.nodes, mode: opts.mode, tmpfsMb: opts.tmpfsMb });
  const stopReaper = startReaper(topo.run);
  let keep = false;
  const clustered = opts.clusterFlags ?? opts.nodes > 1;
  const cluster = new Cluster(topo, clustered, opts.faults.includes('clock'));
  try {
    say(
      `chaos: seed ${opts.seed}, ${opts.nodes} node(s), ${topo.mode === 'netns' ? `network namespaces (${topo.hosts.map((h) => h.address).join(', ')})` : 'loopback (no namespaces: process faults only)'}, run ${topo.run}`,
    );
    for (const note of topo.caps.notes) say(`chaos: note: ${note}`);
    const setupDeadline = now() + 60_000;
    await cluster.prepareClocks();
    await cluster.startAll();
    cluster.supervise(say);
    if (clustered) await cluster.waitFormed(setupDeadline);
    else if (opts.nodes > 1)
      say(
        'chaos: note: nodes started without cluster flags: independent logs, replicas will diverge',
      );

    const workload = new Workload({
      targets: () => cluster.targets(),
      producers: opts.producers ?? 6,
      consumersPerNode: opts.consumersPerNode ?? 1,
      rng: rng.fork(),
      callTimeoutMs: opts.callTimeoutMs ?? 5000,
      thinkMs: opts.thinkMs ?? 40,
      maxBatch: 8,
    });
    const injector = new FaultInjector(topo, cluster, {
      kinds: opts.faults,
      rng: rng.fork(),
      gapMs: opts.gapMs ?? [500, 3000],
      holdMs: opts.holdMs ?? [500, 4000],
      log: say,
    });
    for (const [k, why] of injector.skipped) say(`chaos: fault ${k} skipped: ${why}`);
    workload.start();

    const faultsDone = new AbortController();
    const timer = setTimeout(() => faultsDone.abort(), opts.durationMs);
    const onAbort = () => faultsDone.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    await injector.run(faultsDone.signal);
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
    // Everything healed: every node that is down comes back.
    for (let i = 0; i < cluster.nodes.length; i++) {
      const n = cluster.nodes[i]!;
      if (n.state === 'paused') n.resume();
      if (n.state === 'stopped')
        await cluster
          .restart(i)
          .catch((err: unknown) => say(`chaos: restart of ${n.host.name} failed: ${String(err)}`));
    }
    const faultsStoppedAt = now();
    const boundMs = opts.recoveryMs ?? 30_000;
    say(
      `chaos: faults stopped after ${injector.timeline.length}; recovering (bound ${boundMs} ms)`,
    );
    await pause(1000);
    await workload.stopProducing();

    // Recovery: a fence record acknowledged, then served by every node.
    const deadline = faultsStoppedAt + boundMs;
    let recoveredAt: number | undefined;
    let fenceOffset: bigint | undefined;
    const fenceValue = Buffer.from(`fence-${topo.run}`);
    for (let attempt = 0; now() < deadline && fenceOffset === undefined; attempt++) {
      const targets = cluster.targets();
      const op = await workload.produceOne('fence', targets[attempt % targets.length]!, fenceValue);
      if (op.outcome.type === 'ok') fenceOffset = op.outcome.offset;
      else await pause(250);
    }
    const replicas: Replica[] = [];
    if (fenceOffset !== undefined) {
      let servedBy = 0;
      const behind = new Set<string>();
      for (const t of cluster.targets()) {
        if (await servesRecord(workload.client(t.rpcAddr), fenceOffset, fenceValue, deadline)) {
          servedBy++;
        } else {
          behind.add(t.name);
          say(`chaos: ${t.name} did not serve the fence at ${fenceOffset} within the bound`);
        }
      }
      if (servedBy === cluster.nodes.length) {
        recoveredAt = now();
        say(
          `chaos: recovered ${(recoveredAt - faultsStoppedAt).toFixed(0)} ms after the faults stopped (fence at offset ${fenceOffset} on every node)`,
        );
      }
      try {
        await workload.consumersReach(fenceOffset, Math.max(now() + 5000, deadline));
      } catch (err) {
        say(`chaos: ${String(err)}`);
      }
      // The final logs, read once everything is quiet.
      for (const t of cluster.targets()) {
        try {
          // A node that never served the fence is read as far as it goes, without waiting.
          const through = behind.has(t.name) ? -1n : fenceOffset;
          const records = await readAll(workload.client(t.rpcAddr), through, 120_000);
          replicas.push({
            node: t.name,
            records: records.map((r) => ({ offset: r.offset, value: r.value })),
          });
        } catch (err) {
          say(`chaos: could not read the final log of ${t.name}: ${String(err)}`);
          replicas.push({ node: t.name, records: [] });
        }
      }
    } else {
      say('chaos: no fence record was acknowledged: the final logs cannot be read');
    }
    await workload.stopConsuming();

    const history: History = {
      operations: workload.operations,
      replicas,
      recovery: { faultsStoppedAt, recoveredAt, boundMs },
    };
    const verdict = check(history, { maxPerKind: 8 });
    const errors = new Map<string, number>();
    for (const op of workload.operations) {
      if (op.outcome.type === 'ok') continue;
      const key = `${op.kind} ${op.outcome.type}: ${op.outcome.error.replace(/\d+/g, 'N').slice(0, 90)}`;
      errors.set(key, (errors.get(key) ?? 0) + 1);
    }
    for (const [e, n] of [...errors].sort((a, b) => b[1] - a[1]).slice(0, 6))
      say(`chaos: ${n} × ${e}`);
    const result: ChaosResult = {
      seed: opts.seed,
      mode: topo.mode,
      notes: topo.caps.notes,
      operations: workload.operations.length,
      faults: injector.timeline.filter((e) => !e.error).length,
      lost: verdict.lost,
      violations: verdict.total,
      verdict,
      timeline: injector.timeline,
      skipped: injector.skipped,
      logDir: topo.root,
      summary: '',
    };
    result.summary = summaryLine(result);
    keep = !verdict.valid;
    say(formatVerdict(verdict));
    if (!verdict.valid) {
      say(
        `chaos: FAILED with seed ${opts.seed}; fault timeline:\n${formatTimeline(injector.timeline)}`,
      );
      say(`chaos: node logs kept in ${topo.root}`);
    }
    return result;
  } catch (err) {
    keep = true;
    say(`chaos: node logs kept in ${topo.root}`);
    throw err;
  } finally {
    cluster.unsupervise();
    for (const n of cluster.nodes) {
      await n.stop(3000).catch(() => undefined);
      n.closeLog();
    }
    await topo.close({ keepFiles: keep });
    stopReaper();
  }
}
