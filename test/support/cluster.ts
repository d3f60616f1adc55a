// A cluster of `commitlog agent` processes on 127.0.0.1 for multi-process tests and
// benchmarks: the first node bootstraps, the others join it; each node's ports are
// chosen free up front (gossip needs a known port to join through).
import { createSocket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as grpc from '@grpc/grpc-js';

import { LogClient, type LogRecord } from '../../src/api/index.js';
import { spawnAgent, type AgentProcess, type SpawnAgentOptions } from './agent-process.js';
import { until } from './wait.js';

/** A port free for TCP and UDP on 127.0.0.1 (the gossip port needs both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
}

export interface ClusterNode {
  readonly name: string;
  readonly dataDir: string;
  readonly gossipAddr: string;
  readonly rpcPort: number;
  readonly httpPort: number;
  proc: AgentProcess | undefined;
}

export interface TestClusterOptions {
  /** Extra agent flags for every node. */
  readonly flags?: string[];
  readonly spawn?: SpawnAgentOptions;
}

export class ProcessCluster implements AsyncDisposable {
  readonly nodes: ClusterNode[] = [];
  private readonly clients = new Map<string, LogClient>();

  private constructor(
    readonly root: string,
    private readonly opts: TestClusterOptions,
  ) {}

  /** Starts `size` nodes: n1 bootstraps, the others join through n1's gossip address. */
  static async start(size: number, opts: TestClusterOptions = {}): Promise<ProcessCluster> {
    const c = new ProcessCluster(await mkdtemp(join(tmpdir(), 'commitlog-cluster-')), opts);
    try {
      for (let k = 0; k < size; k++) await c.add();
      await c.waitForVoters(size);
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  /** Adds a node (joining through n1, or bootstrapping when it is the first). */
  async add(name = `n${this.nodes.length + 1}`): Promise<ClusterNode> {
    for (let attempt = 1; ; attempt++) {
      const node: ClusterNode = {
        name,
        dataDir: join(this.root, name),
        gossipAddr: `127.0.0.1:${await freePort()}`,
        rpcPort: await freePort(),
        httpPort: await freePort(),
        proc: undefined,
      };
      this.nodes.push(node);
      try {
        await this.startNode(node);
        return node;
      } catch (err) {
        // A port found free can be taken before the agent binds it (by any process on
        // the machine, or an outgoing connection's local port): choose again.
        this.nodes.pop();
        if (attempt >= 5 || !/cannot listen on|EADDRINUSE/.test(String(err))) throw err;
        await rm(node.dataDir, { recursive: true, force: true });
      }
    }
  }

  private args(node: ClusterNode): string[] {
    const first = this.nodes[0]!;
    return [
      '--node-name',
      node.name,
      '--data-dir',
      node.dataDir,
      '--bind-addr',
      node.gossipAddr,
      '--rpc-port',
      String(node.rpcPort),
      '--http-port',
      String(node.httpPort),
      '--gossip-preset',
      'local',
      '--log-level',
      'info',
      ...(node === first ? ['--bootstrap'] : ['--start-join-addrs', first.gossipAddr]),
      ...(this.opts.flags ?? []),
    ];
  }

  /** (Re)starts a node with the flags it was first started with. */
  async startNode(node: ClusterNode): Promise<AgentProcess> {
    node.proc = await spawnAgent(this.args(node), { startTimeoutMs: 30_000, ...this.opts.spawn });
    return node.proc;
  }

  node(name: string): ClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new RangeError(`no node ${name}`);
    return n;
  }

  rpcAddr(node: ClusterNode): string {
    return `127.0.0.1:${node.rpcPort}`;
  }

  client(node: ClusterNode): LogClient {
    const addr = this.rpcAddr(node);
    let c = this.clients.get(addr);
    if (!c) {
      c = new LogClient(addr, grpc.credentials.createInsecure());
      this.clients.set(addr, c);
    }
    return c;
  }

  /** GetServers as `node` answers it. */
  servers(
    node: ClusterNode,
  ): Promise<
    { id: string; raftId: string; rpcAddr: string; isLeader: boolean; suffrage: string }[]
  > {
    return new Promise((resolve, reject) => {
      this.client(node).getServers(
        {},
        new grpc.Metadata(),
        { deadline: Date.now() + 3000 },
        (err, res) => (err ? reject(err) : resolve(res.servers)),
      );
    });
  }

  /** The running node that GetServers on every running node names as leader. */
  async leader(ms = 15_000): Promise<ClusterNode> {
    return until(
      async () => {
        const running = this.nodes.filter((n) => n.proc);
        const views = await Promise.all(running.map((n) => this.servers(n).catch(() => [])));
        const names = views.map((v) => v.find((s) => s.isLeader)?.rpcAddr);
        const addr = names[0];
        if (!addr || names.some((a) => a !== addr)) return undefined;
        return running.find((n) => this.rpcAddr(n) === addr);
      },
      { ms, what: 'every running node to agree on a leader', everyMs: 50 },
    );
  }

  async waitForVoters(n: number, ms = 30_000): Promise<void> {
    await until(
      async () => {
        const leader = await this.leader(ms);
        const servers = await this.servers(leader);
        return servers.length === n && servers.every((s) => s.suffrage === 'voter');
      },
      { ms, what: `${n} voters in GetServers`, everyMs: 100 },
    );
  }

  produce(node: ClusterNode, value: string | Buffer, ms = 10_000): Promise<bigint> {
    return new Promise((resolve, reject) => {
      this.client(node).produce(
        { record: { value: Buffer.from(value), offset: 0n, term: 0n, type: 0 } },
        new grpc.Metadata(),
        { deadline: Date.now() + ms },
        (err, res) => (err ? reject(err) : resolve(res.offset)),
      );
    });
  }

  /** Every committed record `node` serves, from offset 0 to its current end. */
  async readAll(node: ClusterNode, expect?: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    for (;;) {
      const rec = await new Promise<LogRecord | undefined>((resolve, reject) => {
        this.client(node).consume(
          { offset: BigInt(out.length) },
          new grpc.Metadata(),
          { deadline: Date.now() + 5000 },
          (err, res) => {
            if (err?.code === grpc.status.OUT_OF_RANGE) resolve(undefined);
            else if (err) reject(err);
            else resolve(res.record);
          },
        );
      });
      if (!rec) {
        if (expect === undefined || out.length >= expect) return out;
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      out.push(rec);
    }
  }

  /** The last lines each node logged (for a failing test's report). */
  logTail(lines = 40): string {
    return this.nodes
      .map((n) => {
        const out = n.proc ? n.proc.stdout() + n.proc.stderr() : '(not running)';
        return `--- ${n.name}\n${out.split('\n').slice(-lines).join('\n')}`;
      })
      .join('\n');
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    await Promise.all(this.nodes.map((n) => n.proc?.kill() ?? Promise.resolve()));
    await rm(this.root, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
