// npm run bench:cluster: a fresh three-node cluster and a one-node baseline, measured in
// the same run with the same `commitlog bench` workloads, printed as ratios; then the
// failover time (leader kill -9 → next acknowledged produce) over several kills.
//
//   node dist/bench/cluster-bench.js [--runs 3] [--seconds 5] [--kills 10] [--json]
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { parseArgs, promisify } from 'node:util';

import { COMMITLOG_BIN } from '../test/support/agent-process.js';
import { ProcessCluster, type ClusterNode } from '../test/support/cluster.js';

const run = promisify(execFile);

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    kills: { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
const KILLS = Number(args.kills);

interface Workload {
  id: string;
  title: string;
  target: string;
  /** bench subcommand and flags; `addr` chosen per cluster. */
  argv: string[];
  /** Which node the workload talks to in the cluster. */
  on: 'leader' | 'follower';
  /** Passes when ratio/throughput meets it. */
  check: (rate: number, ratio: number) => boolean;
}

const WORKLOADS: Workload[] = [
  {
    id: 'stream',
    title: 'ProduceStream, window 1,000',
    target: '≥ 30,000 records/s',
    argv: ['produce', '--mode', 'stream', '--inflight', '1000'],
    on: 'leader',
    check: (rate) => rate >= 30_000,
  },
  {
    id: 'batch',
    title: 'ProduceBatch of 1,000, 4 in flight',
    target: '≥ 300,000 records/s',
    argv: ['produce', '--mode', 'batch', '--batch', '1000', '--inflight', '4'],
    on: 'leader',
    check: (rate) => rate >= 300_000,
  },
  {
    id: 'unary',
    title: 'unary Produce, 64 in flight',
    target: '≥ 0.5× one node',
    argv: ['produce', '--mode', 'unary', '--inflight', '64'],
    on: 'leader',
    check: (_rate, ratio) => ratio >= 0.5,
  },
  {
    id: 'consume',
    title: 'consume stream from a follower',
    target: '≥ 0.8× one node',
    argv: ['consume', '--mode', 'stream'],
    on: 'follower',
    check: (_rate, ratio) => ratio >= 0.8,
  },
];

/** CPU seconds a process has used (Linux /proc). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks
}

interface Measured {
  rate: number;
  /** CPU microseconds per record, per node (cluster: leader first). */
  cpuPerRecord: number[];
}

async function bench(w: Workload, addr: string, pids: number[]): Promise<Measured> {
  const before = await Promise.all(pids.map(cpuSeconds));
  const { stdout } = await run(
    process.execPath,
    [
      COMMITLOG_BIN,
      'bench',
      ...w.argv,
      '--addr',
      addr,
      '--duration',
      `${SECONDS}s`,
      '--runs',
      String(RUNS),
      '--json',
    ],
    { maxBuffer: 64 << 20 },
  );
  const after = await Promise.all(pids.map(cpuSeconds));
  const report = JSON.parse(stdout) as { recordsPerSecond: number; runs: { records: number }[] };
  const records = report.runs.reduce((a, r) => a + r.records, 0);
  return {
    rate: report.recordsPerSecond,
    cpuPerRecord: pids.map((_, k) => ((after[k]! - before[k]!) * 1e6) / Math.max(1, records)),
  };
}

async function failover(c: ProcessCluster): Promise<number[]> {
  const times: number[] = [];
  for (let k = 0; k < KILLS; k++) {
    const leader = await c.leader(30_000);
    const others = c.nodes.filter((n) => n !== leader && n.proc);
    // Warm connections to the survivors so the measured time is the cluster's, not a dial's.
    for (const n of others) await c.produce(n, `warm-${k}`);
    const t0 = performance.now();
    await leader.proc!.kill();
    leader.proc = undefined;
    let acked = false;
    for (let attempt = 0; !acked; attempt++) {
      const via = others[attempt % others.length]!;
      try {
        await c.produce(via, `after-kill-${k}`, 2000);
        acked = true;
      } catch {
        // not yet: no leader, or the call raced the election; try the next survivor
      }
      if (performance.now() - t0 > 30_000)
        throw new Error('no produce acknowledged within 30 s of the kill');
    }
    times.push((performance.now() - t0) / 1000);
    await c.startNode(leader);
    await c.waitForVoters(3);
  }
  return times;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const flags = ['--fsync', 'always', '--log-level', 'warn'];
  console.error('starting a one-node baseline and a three-node cluster (fsync always)');
  await using one = await ProcessCluster.start(1, { flags, spawn: { stdout: 'ignore' } });
  await using three = await ProcessCluster.start(3, { flags, spawn: { stdout: 'ignore' } });
  const rows: Record<string, unknown>[] = [];
  const workloads = args.only
    ? WORKLOADS.filter((w) => args.only!.split(',').includes(w.id))
    : WORKLOADS;
  for (const w of workloads) {
    const single = one.nodes[0]!;
    const leader = await three.leader();
    const follower = three.nodes.find((n) => n !== leader)!;
    const target: ClusterNode = w.on === 'leader' ? leader : follower;
    const ordered = [leader, ...three.nodes.filter((n) => n !== leader)];
    // Alternate which side goes first: the machine drifts during a run.
    const a = await bench(w, one.rpcAddr(single), [single.proc!.pid]);
    const b = await bench(
      w,
      three.rpcAddr(target),
      ordered.map((n) => n.proc!.pid),
    );
    const ratio = b.rate / a.rate;
    const row = {
      workload: w.title,
      target: w.target,
      oneNode: Math.round(a.rate),
      threeNodes: Math.round(b.rate),
      ratio: Number(ratio.toFixed(2)),
      cpuPerRecordMicros: {
        oneNode: Number(a.cpuPerRecord[0]!.toFixed(1)),
        leader: Number(b.cpuPerRecord[0]!.toFixed(1)),
        followers: b.cpuPerRecord.slice(1).map((x) => Number(x.toFixed(1))),
      },
      met: w.check(b.rate, ratio),
    };
    rows.push(row);
    console.error(
      `${w.title}: 1 node ${fmt(a.rate)}/s, 3 nodes ${fmt(b.rate)}/s (${ratio.toFixed(2)}×), ` +
        `CPU µs/record leader ${row.cpuPerRecordMicros.leader}, followers ${row.cpuPerRecordMicros.followers.join(', ')}; ` +
        `target ${w.target}: ${row.met ? 'met' : 'NOT met'}`,
    );
  }
  let times: number[] = [];
  if (KILLS > 0 && (!args.only || args.only.includes('failover'))) {
    times = await failover(three);
    console.error(
      `failover (kill -9 leader → next produce acknowledged) over ${times.length} kills: median ${median(times).toFixed(2)} s ` +
        `(min ${Math.min(...times).toFixed(2)}, max ${Math.max(...times).toFixed(2)}); target ≤ 1.0 s: ${median(times) <= 1 ? 'met' : 'NOT met'}`,
    );
  }
  if (args.json) console.log(JSON.stringify({ rows, failoverSeconds: times }));
  else {
    console.log(
      '| workload (100 B, fsync always) | 1 node | 3 nodes | ratio | CPU µs/record (leader; followers) | target | met |',
    );
    console.log('|---|---|---|---|---|---|---|');
    for (const r of rows as {
      workload: string;
      oneNode: number;
      threeNodes: number;
      ratio: number;
      cpuPerRecordMicros: { leader: number; followers: number[] };
      target: string;
      met: boolean;
    }[])
      console.log(
        `| ${r.workload} | ${fmt(r.oneNode)}/s | ${fmt(r.threeNodes)}/s | ${r.ratio}× | ${r.cpuPerRecordMicros.leader}; ${r.cpuPerRecordMicros.followers.join(', ')} | ${r.target} | ${r.met ? 'yes' : 'no'} |`,
      );
    if (times.length > 0)
      console.log(
        `| failover, median of ${times.length} kills | | ${median(times).toFixed(2)} s | | | ≤ 1.0 s | ${median(times) <= 1 ? 'yes' : 'no'} |`,
      );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
