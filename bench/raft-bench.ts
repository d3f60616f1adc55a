// `npm run bench:raft [-- --runs R --seconds S]`: committed proposals per second on
// 3 and 5 in-memory nodes (zero-latency transport; 1 node as the baseline without
// replication), with 1 and 1,000 proposals in
// flight, and the CPU time per committed entry. Prints the median of R runs.
import { parseArgs } from 'node:util';
import { TestCluster } from '../src/raft/testing/index.js';

const HELP = `usage: bench:raft [--runs R] [--seconds S] [--size BYTES]

Runs each case R times (default 5) for S seconds (default 2) and prints the median
committed entries per second and CPU microseconds per committed entry (user+system
of this one process, which hosts every node). Entries carry BYTES of data (default 100).`;

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '2' },
    size: { type: 'string', default: '100' },
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

interface Sample {
  perSecond: number;
  cpuMicros: number;
}

async function runCase(nodes: number, inFlight: number): Promise<Sample> {
  await using cluster = await TestCluster.create({ size: nodes, tickMs: 50 });
  const leader = await cluster.waitForLeader(10_000);
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

console.log(
  `raft-bench: ${payload.byteLength}-byte entries, ${runs} runs x ${seconds} s per case, median`,
);
for (const nodes of [1, 3, 5]) {
  for (const inFlight of [1, 1000]) {
    const samples: Sample[] = [];
    for (let r = 0; r < runs; r++) samples.push(await runCase(nodes, inFlight));
    const rate = median(samples.map((s) => s.perSecond));
    const cpu = median(samples.map((s) => s.cpuMicros));
    const spread = samples.map((s) => Math.round(s.perSecond)).join(' ');
    console.log(
      `${nodes} nodes, ${String(inFlight).padStart(4)} in flight: ${Math.round(rate).toLocaleString('en-US').padStart(9)} entries/s, ${cpu.toFixed(2)} us CPU/entry  (runs: ${spread})`,
    );
  }
}
