// Storage-engine benchmark: appends/s and MB/s for single appends (1 and 64 concurrent
// appenders) and batches of 1,000, under each fsync policy, for 100-byte and 1-KiB
// records, and sequential reads. Medians of --runs runs. `--json` prints JSON.
//   npm run bench:log [-- --runs 3 --seconds 1 --json]
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Log, parseFsyncPolicy, type FsyncPolicy } from '../src/log/index.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    sizes: { type: 'string', default: '100,1024' },
    policies: { type: 'string', default: 'always,interval:100,never' },
  },
});
const runs = Number(args.runs);
const seconds = Number(args.seconds);

interface Result {
  workload: string;
  size: number;
  fsync: string;
  recordsPerSec: number;
  mbPerSec: number;
  runs: number[];
}

async function withLog<T>(fsync: FsyncPolicy, fn: (log: Log) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-bench-'));
  const log = await Log.open(dir, { fsync });
  try {
    return await fn(log);
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Appends from `concurrency` loops for the duration; returns records/s. */
async function appendRate(
  log: Log,
  value: Buffer,
  concurrency: number,
  batch: number,
): Promise<number> {
  const values = Array.from({ length: batch }, () => value);
  const deadline = performance.now() + seconds * 1000;
  let records = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        if (batch === 1) await log.append(value);
        else await log.appendBatch(values);
        records += batch;
      }
    }),
  );
  return records / ((performance.now() - started) / 1000);
}

async function readRate(log: Log, value: Buffer): Promise<number> {
  const total = 1_000_000;
  const values = Array.from({ length: 1000 }, () => value);
  for (let i = 0; i < total; i += 1000) await log.appendBatch(values);
  const started = performance.now();
  let read = 0;
  for (let next = log.lowestOffset; next <= log.highestOffset;) {
    const batch = await log.readBatch(next, { maxRecords: 10_000, maxBytes: 4 * 1024 * 1024 });
    read += batch.length;
    next += BigInt(batch.length);
  }
  return read / ((performance.now() - started) / 1000);
}

/** Baseline measured in the same run: Node's best case of one write + fdatasync per record. */
async function rawFsyncRate(value: Buffer): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-bench-'));
  const fd = openSync(join(dir, 'raw.dat'), 'a');
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let n = 0;
  while (performance.now() < deadline) {
    writeSync(fd, value);
    fdatasyncSync(fd);
    n++;
  }
  const rate = n / ((performance.now() - started) / 1000);
  closeSync(fd);
  await rm(dir, { recursive: true, force: true });
  return rate;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const workloads: { name: string; concurrency: number; batch: number }[] = [
  { name: 'append, 1 appender', concurrency: 1, batch: 1 },
  { name: 'append, 64 appenders', concurrency: 64, batch: 1 },
  { name: 'appendBatch 1000, 1 appender', concurrency: 1, batch: 1000 },
];

const results: Result[] = [];
{
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) rates.push(await rawFsyncRate(Buffer.alloc(100, 'x')));
  const rate = median(rates);
  results.push({
    workload: 'baseline: writeSync+fdatasyncSync each',
    size: 100,
    fsync: 'always',
    recordsPerSec: rate,
    mbPerSec: (rate * 100) / 1e6,
    runs: rates,
  });
  if (!args.json)
    console.error(
      `${'baseline: write+fdatasync each'.padEnd(30)}   100 B  always       ${fmt(rate)} records/s`,
    );
}
for (const size of args.sizes.split(',').map(Number)) {
  const value = Buffer.alloc(size, 'x');
  for (const policyText of args.policies.split(',')) {
    const policy = parseFsyncPolicy(policyText);
    for (const w of workloads) {
      const rates: number[] = [];
      for (let r = 0; r < runs; r++)
        rates.push(await withLog(policy, (log) => appendRate(log, value, w.concurrency, w.batch)));
      const rate = median(rates);
      results.push({
        workload: w.name,
        size,
        fsync: policyText,
        recordsPerSec: rate,
        mbPerSec: (rate * size) / 1e6,
        runs: rates,
      });
      if (!args.json)
        console.error(
          `${w.name.padEnd(30)} ${String(size).padStart(5)} B  ${policyText.padEnd(12)} ${fmt(rate)} records/s`,
        );
    }
  }
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) rates.push(await withLog('never', (log) => readRate(log, value)));
  const rate = median(rates);
  results.push({
    workload: 'sequential read',
    size,
    fsync: '-',
    recordsPerSec: rate,
    mbPerSec: (rate * size) / 1e6,
    runs: rates,
  });
  if (!args.json)
    console.error(
      `${'sequential read'.padEnd(30)} ${String(size).padStart(5)} B  ${'-'.padEnd(12)} ${fmt(rate)} records/s`,
    );
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US').padStart(12);
}

if (args.json) {
  console.log(JSON.stringify({ runs, seconds, node: process.version, results }, null, 2));
} else {
  console.log(`\n| workload | record | fsync | records/s | MB/s |\n|---|---:|---|---:|---:|`);
  for (const r of results) {
    console.log(
      `| ${r.workload} | ${r.size} B | ${r.fsync} | ${fmt(r.recordsPerSec).trim()} | ${r.mbPerSec.toFixed(1)} |`,
    );
  }
  console.log(`\nmedian of ${runs} runs of ${seconds}s each; node ${process.version}`);
}
