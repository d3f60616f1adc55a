// `npm run bench:raft [-- --case throughput|sync|catchup|all ...]`:
//   throughput  committed proposals per second on 1, 3 and 5 in-memory nodes
//               (zero-latency transport), 1 and 1,000 in flight, CPU per entry;
//   sync        3 nodes whose storage takes --fsync-ms per synced write, with and
//               without leaderSendsBeforeSync (the leader sends before its own fsync);
//   catchup     a follower --entries behind (default 1,000,000) catching up from the
//               leader's storage: time and peak memory against the byte limits.
import { parseArgs } from 'node:util';
import type { ConfState, Entry, HardState, SnapshotMeta } from '../src/raft/index.js';
import { RaftNode } from '../src/raft/index.js';
import type { LogStorage, RaftNodeOptions, StoredLog, WriteOptions } from '../src/raft/index.js';
import {
  MemoryHardStateStorage,
  MemoryLogStorage,
  MemoryNetwork,
  TestCluster,
} from '../src/raft/testing/index.js';

const HELP = `usage: bench:raft [--case throughput|sync|catchup|all] [--runs R] [--seconds S]
                  [--size BYTES] [--fsync-ms MS] [--entries N] [--entry-bytes B]

throughput: each case R times (default 5) for S seconds (default 2); the median
committed entries per second and CPU microseconds per committed entry (user+system
of this one process, which hosts every node). Entries carry BYTES (default 100).
sync: 3 nodes, 1 and 1,000 in flight, every synced storage write takes MS (default 2) ms;
leaderSendsBeforeSync off and on.
catchup: a follower N entries (default 1,000,000) of B bytes (default 100) behind,
fed from the leader's storage; then 1,000 entries of 1 MiB. Prints the time and the
peak heap above the starting heap, next to the byte limits.`;

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'all' },
    runs: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '2' },
    size: { type: 'string', default: '100' },
    'fsync-ms': { type: 'string', default: '2' },
    entries: { type: 'string', default: '1000000' },
    'entry-bytes': { type: 'string', default: '100' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const runs = Number(values.runs);
const seconds = Number(values.seconds);
const payload = new Uint8Array(Number(values.size)).fill(7);
const fsyncMs = Number(values['fsync-ms']);
const MiB = 1024 * 1024;

interface Sample {
  perSecond: number;
  cpuMicros: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Proposes with `inFlight` workers for `seconds`; committed entries per second. */
async function drive(leader: RaftNode, inFlight: number): Promise<Sample> {
  await leader.propose(payload); // warm the pipeline
  let committed = 0;
  let stop = false;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  async function worker(): Promise<void> {
    while (!stop) {
      await leader.propose(payload);
      committed++;
      if ((committed & 255) === 0 && performance.now() > deadline) stop = true;
    }
  }
  await Promise.all(Array.from({ length: inFlight }, () => worker()));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: committed / elapsed, cpuMicros: (cpu.user + cpu.system) / committed };
}

function report(label: string, samples: Sample[]): void {
  const rate = median(samples.map((s) => s.perSecond));
  const cpu = median(samples.map((s) => s.cpuMicros));
  const spread = samples.map((s) => Math.round(s.perSecond)).join(' ');
  console.log(
    `${label}: ${Math.round(rate).toLocaleString('en-US').padStart(9)} entries/s, ${cpu.toFixed(2)} us CPU/entry  (runs: ${spread})`,
  );
}

async function throughput(): Promise<void> {
  console.log(
    `throughput: ${payload.byteLength}-byte entries, ${runs} runs x ${seconds} s per case, median`,
  );
  for (const nodes of [1, 3, 5]) {
    for (const inFlight of [1, 1000]) {
      const samples: Sample[] = [];
      for (let r = 0; r < runs; r++) {
        await using cluster = await TestCluster.create({ size: nodes, tickMs: 50 });
        samples.push(await drive(await cluster.waitForLeader(10_000), inFlight));
      }
      report(`${nodes} nodes, ${String(inFlight).padStart(4)} in flight`, samples);
    }
  }
}

/** The in-memory log, with every synced write taking `ms` (a model of fsync). */
class SlowSyncLog extends MemoryLogStorage {
  constructor(private readonly ms: number) {
    super();
  }

  override async append(entries: readonly Entry[], options?: WriteOptions): Promise<void> {
    await super.append(entries, options);
    if (options?.sync ?? true) await sleep(this.ms);
  }
}

class SlowSyncHardState extends MemoryHardStateStorage {
  constructor(private readonly ms: number) {
    super();
  }

  override async save(state: HardState, options?: WriteOptions): Promise<void> {
    await super.save(state, options);
    if (options?.sync ?? true) await sleep(this.ms);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function startNodes(
  ids: string[],
  ports: (
    id: string,
  ) => Pick<RaftNodeOptions, 'logStorage' | 'hardStateStorage' | 'apply' | 'applied'>,
  extra: Partial<RaftNodeOptions>,
  network = new MemoryNetwork(),
): Promise<RaftNode[]> {
  const conf: ConfState = { voters: ids, learners: [], addresses: {} };
  const nodes: RaftNode[] = [];
  for (const id of ids) {
    nodes.push(
      await RaftNode.start({
        id,
        ...ports(id),
        transport: network.transport(id),
        bootstrap: conf,
        tickMs: 20,
        ...extra,
      }),
    );
  }
  return nodes;
}

async function leaderOf(nodes: RaftNode[]): Promise<RaftNode> {
  nodes[0]!.campaign();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const l = nodes.find((n) => n.status().role === 'leader');
    if (l) return l;
    if (Date.now() > deadline) throw new Error('no leader within 10 s');
    await sleep(5);
  }
}

async function syncCase(): Promise<void> {
  console.log(
    `sync: 3 nodes, ${payload.byteLength}-byte entries, ${fsyncMs} ms per synced write, ${runs} runs x ${seconds} s, median`,
  );
  for (const inFlight of [1, 1000]) {
    for (const early of [false, true]) {
      const samples: Sample[] = [];
      for (let r = 0; r < runs; r++) {
        const nodes = await startNodes(
          ['n1', 'n2', 'n3'],
          () => ({
            logStorage: new SlowSyncLog(fsyncMs),
            hardStateStorage: new SlowSyncHardState(fsyncMs),
            apply: () => undefined,
          }),
          { leaderSendsBeforeSync: early },
        );
        try {
          samples.push(await drive(await leaderOf(nodes), inFlight));
        } finally {
          for (const n of nodes) await n.close();
        }
      }
      report(
        `${String(inFlight).padStart(4)} in flight, leaderSendsBeforeSync ${early ? 'on ' : 'off'}`,
        samples,
      );
    }
  }
}

/**
 * A log of `count` entries of `bytes` each, all of term 1, that holds no entry in
 * memory: entries() builds them on each read, as reading a file would allocate them.
 * Appends past the end keep only what load() and later reads need (term, type).
 */
class SyntheticLog implements LogStorage {
  private readonly tail: Entry[] = [];
  reads = 0;
  readBytes = 0;

  constructor(
    private readonly count: number,
    private readonly bytes: number,
    private readonly conf: ConfState,
  ) {}

  async load(): Promise<StoredLog> {
    const runs: [number, number][] = this.count > 0 ? [[1, 1]] : [];
    for (const e of this.tail)
      if (runs[runs.length - 1]?.[1] !== e.term) runs.push([e.index, e.term]);
    return {
      snapshot: { lastIndex: 0, lastTerm: 0, config: this.conf },
      lastIndex: this.count + this.tail.length,
      termRuns: runs,
      configs: [],
    };
  }

  async entries(lo: number, hi: number, options?: { maxBytes?: number }): Promise<Entry[]> {
    this.reads++;
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e =
        i <= this.count
          ? { index: i, term: 1, type: 'normal' as const, data: new Uint8Array(this.bytes) }
          : this.tail[i - this.count - 1]!;
      size += e.data.byteLength;
      if (size > (options?.maxBytes ?? Infinity) && out.length > 0) break;
      out.push(e);
    }
    this.readBytes += size;
    return out;
  }

  async append(entries: readonly Entry[]): Promise<void> {
    for (const e of entries) this.tail.push(e);
  }

  async truncateSuffix(from: number): Promise<void> {
    this.tail.length = Math.max(0, from - this.count - 1);
  }

  async compactPrefix(_meta: SnapshotMeta): Promise<void> {}

  async installSnapshot(_meta: SnapshotMeta): Promise<void> {
    throw new Error('the catch-up bench expects no snapshot');
  }
}

/** The follower's disk: checks that appends continue the log, keeps only the count. */
class CountingLog implements LogStorage {
  last = 0;
  bytes = 0;
  private start: SnapshotMeta = {
    lastIndex: 0,
    lastTerm: 0,
    config: { voters: [], learners: [], addresses: {} },
  };

  async load(): Promise<StoredLog> {
    return {
      snapshot: this.start,
      lastIndex: 0,
      termRuns: [],
      configs: [],
    };
  }

  async entries(lo: number, hi: number): Promise<Entry[]> {
    if (lo === hi) return [];
    throw new Error('the catching-up follower is never read from');
  }

  async append(entries: readonly Entry[]): Promise<void> {
    for (const e of entries) {
      if (e.index !== this.last + 1) throw new Error(`append of ${e.index} after ${this.last}`);
      this.last = e.index;
      this.bytes += e.data.byteLength;
    }
  }

  async truncateSuffix(from: number): Promise<void> {
    this.last = Math.min(this.last, from - 1);
  }

  async compactPrefix(_meta: SnapshotMeta): Promise<void> {}

  async installSnapshot(meta: SnapshotMeta): Promise<void> {
    // The bootstrap configuration, recorded at index 0 by the first start; nothing else.
    if (meta.lastIndex !== 0 || this.last !== 0)
      throw new Error('the catch-up bench expects no snapshot');
    this.start = meta;
  }
}

async function catchUp(count: number, bytes: number): Promise<void> {
  const raft = {
    electionTicks: 50,
    retainBytes: 16 * MiB,
    maxInflightBytes: 8 * MiB,
    maxMsgBytes: MiB,
    maxApplyBytes: 8 * MiB,
  };
  const hard = (): MemoryHardStateStorage => {
    const h = new MemoryHardStateStorage();
    h.state = { term: 1, vote: 'n1', commit: count };
    return h;
  };
  const follower = new CountingLog();
  let applied = 0;
  const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [], addresses: {} };
  const leaderLog = new SyntheticLog(count, bytes, conf);
  const nodes = await startNodes(
    ['n1', 'n2', 'n3'],
    (id) =>
      id === 'n3'
        ? {
            logStorage: follower,
            hardStateStorage: new MemoryHardStateStorage(),
            apply: (es) => void (applied = es[es.length - 1]!.index),
          }
        : {
            logStorage: id === 'n1' ? leaderLog : new SyntheticLog(count, bytes, conf),
            hardStateStorage: hard(),
            apply: () => undefined,
            applied: count,
          },
    { raft },
  );
  try {
    // Only n3 starts from scratch; it must not win an election before the others.
    // Memory = JS heap + ArrayBuffers (entry data lives outside the heap). Without
    // --expose-gc the peak includes garbage not yet collected; with it, every 3rd
    // sample forces a collection first, so its peak is live memory.
    const used = (): number => {
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    global.gc?.();
    const base = used();
    let peak = base;
    let peakLive = base;
    let samples = 0;
    const sampler = setInterval(() => {
      if (global.gc && ++samples % 3 === 0) {
        global.gc();
        peakLive = Math.max(peakLive, used());
      }
      peak = Math.max(peak, used());
    }, 10);
    const t0 = performance.now();
    const leader = await leaderOf(nodes);
    const target = leader.status().lastIndex;
    while (applied < target || follower.last < target) {
      await sleep(5);
      if (performance.now() - t0 > 600_000) throw new Error('catch-up took over 10 minutes');
    }
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const moved = follower.bytes;
    // What the limits allow in this process: each node's retained entries and its
    // entries waiting to be applied, and the leader's unacknowledged appends to its two
    // followers.
    const bound = 3 * (raft.retainBytes + raft.maxApplyBytes) + 2 * raft.maxInflightBytes;
    const within = (global.gc ? peakLive : peak) - base <= bound;
    if (!within) process.exitCode = 1;
    console.log(
      `catchup: ${count.toLocaleString('en-US')} entries of ${bytes} B (${(moved / MiB).toFixed(0)} MiB of data) in ${seconds.toFixed(2)} s = ${Math.round(count / seconds).toLocaleString('en-US')} entries/s, ${(moved / MiB / seconds).toFixed(0)} MiB/s; ${leaderLog.reads} storage reads; memory above the start: peak +${((peak - base) / MiB).toFixed(0)} MiB${global.gc ? `, peak live +${((peakLive - base) / MiB).toFixed(0)} MiB` : ' (run with node --expose-gc for live memory)'} (limits: retainBytes ${raft.retainBytes / MiB} MiB and maxApplyBytes ${raft.maxApplyBytes / MiB} MiB per node, maxInflightBytes ${raft.maxInflightBytes / MiB} MiB per peer, maxMsgBytes ${raft.maxMsgBytes / MiB} MiB; bound 3 x (retainBytes + maxApplyBytes) + 2 x maxInflightBytes = ${bound / MiB} MiB: ${within ? 'within' : 'EXCEEDED'})`,
    );
  } finally {
    for (const n of nodes) await n.close();
  }
}

declare const global: { gc?: () => void };

const which = values.case;
if (which === 'throughput' || which === 'all') await throughput();
if (which === 'sync' || which === 'all') await syncCase();
if (which === 'catchup' || which === 'all') {
  await catchUp(Number(values.entries), Number(values['entry-bytes']));
  await catchUp(1000, MiB);
}
