// API benchmark: records/s through a `commitlog agent` process (spawned on free ports)
// for unary Produce (1 and 64 in flight), one pipelined ProduceStream, ProduceBatch of
// 100, and reading back with ConsumeStream and ConsumeBatchStream. Client and node run
// on the same machine. Medians of --runs runs.
//   npm run bench:api [-- --runs 3 --seconds 1 --fsync always --size 100]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { CommitLogClient } from '../src/client/index.js';
import { spawnAgent } from '../test/support/agent-process.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '1' },
    fsync: { type: 'string', default: 'always' },
    size: { type: 'string', default: '100' },
  },
});
const runs = Number(args.runs);
const seconds = Number(args.seconds);
const value = Buffer.alloc(Number(args.size), 120);

async function withAgent<T>(fn: (addr: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-api-bench-'));
  try {
    const agent = await spawnAgent(['--data-dir', dir, '--rpc-port', '0', '--http-port', '0'], {
      env: { ...process.env, COMMITLOG_FSYNC: args.fsync, COMMITLOG_LOG_LEVEL: 'warn' },
      echoStderr: true,
      stdout: 'ignore',
    });
    try {
      return await fn(agent.rpcAddr);
    } finally {
      await agent.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function timed(work: (deadline: number) => Promise<number>): Promise<number> {
  const started = performance.now();
  const records = await work(started + seconds * 1000);
  return records / ((performance.now() - started) / 1000);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

const workloads: Record<string, (c: CommitLogClient) => Promise<number>> = {
  'Produce, 1 in flight': (c) =>
    timed(async (deadline) => {
      let n = 0;
      while (performance.now() < deadline) {
        await c.produce(value);
        n++;
      }
      return n;
    }),
  'Produce, 64 in flight': (c) =>
    timed(async (deadline) => {
      let n = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (performance.now() < deadline) {
            await c.produce(value);
            n++;
          }
        }),
      );
      return n;
    }),
  'ProduceStream, 1 stream': (c) =>
    timed(async (deadline) => {
      let n = 0;
      function* values() {
        while (performance.now() < deadline) yield value;
      }
      for await (const _offset of c.produceStream(values())) n++;
      return n;
    }),
  'ProduceBatch of 100, 4 in flight': (c) =>
    timed(async (deadline) => {
      const batch = Array.from({ length: 100 }, () => value);
      let n = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (performance.now() < deadline) n += (await c.produceBatch(batch)).count;
        }),
      );
      return n;
    }),
  ConsumeStream: (c) =>
    timed(async (deadline) => {
      const stop = new AbortController();
      let n = 0;
      for await (const _r of c.consumeStream(0n, { signal: stop.signal })) {
        if (++n % 1000 === 0 && performance.now() >= deadline) stop.abort();
      }
      return n;
    }),
  ConsumeBatchStream: (c) =>
    timed(async (deadline) => {
      const stop = new AbortController();
      let n = 0;
      for await (const batch of c.consumeBatches(0n, { signal: stop.signal })) {
        n += batch.length;
        if (performance.now() >= deadline) stop.abort();
      }
      return n;
    }),
};

const results: Record<string, number[]> = {};
for (let run = 0; run < runs; run++) {
  await withAgent(async (addr) => {
    const client = new CommitLogClient(addr);
    try {
      // Fill the log first so that the consume workloads never catch up within a run.
      const fill = Array.from({ length: 1000 }, () => value);
      for (let i = 0; i < 1000; i++) await client.produceBatch(fill);
      for (const [name, work] of Object.entries(workloads)) {
        (results[name] ??= []).push(await work(client));
      }
    } finally {
      client.close();
    }
  });
}
console.log(`fsync=${args.fsync} size=${value.length} B, ${runs} runs of ${seconds} s, medians:`);
const base = median(results['Produce, 1 in flight'] ?? []);
for (const [name, xs] of Object.entries(results)) {
  const m = median(xs);
  console.log(
    `${name.padEnd(34)} ${Math.round(m).toLocaleString('en-US').padStart(12)} records/s  ×${(m / base).toFixed(1)}  (runs: ${xs.map((x) => Math.round(x)).join(', ')})`,
  );
}
