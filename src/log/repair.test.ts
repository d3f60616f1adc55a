// The offline repair: a plan read from the files (a dry run changes nothing), then the
// cut it describes, after which the log opens.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';

import {
  CorruptSegmentError,
  InvalidLogDirectoryError,
  Log,
  applyRepair,
  planRepair,
} from './index.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const MAX = 1024 * 1024;
const small = { maxStoreBytes: 200 };
const value = (i: number): Buffer => Buffer.from(`record-${i}`);

async function logWith(n: number): Promise<{ dir: string; stores: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-repair-'));
  dirs.push(dir);
  const log = await Log.open(dir, small);
  for (let i = 0; i < n; i++) await log.append(value(i));
  await log.close();
  const stores = (await readdir(dir)).filter((f) => f.endsWith('.store')).sort();
  return { dir, stores: stores.map((s) => join(dir, s)) };
}

async function flipByte(file: string, position: number): Promise<void> {
  const data = await readFile(file);
  data[position] = (data[position] as number) ^ 0x40;
  await writeFile(file, data);
}

async function snapshot(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).sort();
  return Promise.all(names.map(async (n) => `${n}:${(await stat(join(dir, n))).size}`));
}

describe('planRepair / applyRepair', () => {
  it('finds nothing to do in a healthy log', async () => {
    const { dir } = await logWith(40);
    const plan = await planRepair(dir, { maxRecordBytes: MAX });
    assert.equal(plan.cut, undefined);
    assert.deepEqual(plan.remove, []);
    assert.equal(plan.endOffset, 40n);
  });

  it('cuts a sealed segment at its damage and drops the segments after it', async () => {
    const { dir, stores } = await logWith(40);
    assert.ok(stores.length >= 4);
    await rm((stores[1] as string).replace(/\.store$/, '.index'));
    await flipByte(stores[1] as string, 30);
    await assert.rejects(Log.open(dir, small), CorruptSegmentError);
    const before = await snapshot(dir);
    const plan = await planRepair(dir, { maxRecordBytes: MAX });
    assert.deepEqual(await snapshot(dir), before, 'a plan changes nothing');
    const first = BigInt(Number(/(\d+)\.store$/.exec(stores[1] as string)?.[1]));
    assert.equal(plan.cut?.file, stores[1]);
    assert.equal(plan.cut?.fromOffset, first + 1n); // the damage is in the segment's 2nd record
    assert.equal(plan.endOffset, 40n);
    assert.deepEqual(
      plan.remove.filter((f) => f.endsWith('.store')),
      stores.slice(2),
    );
    await applyRepair(plan);
    await using log = await Log.open(dir, small);
    assert.equal(log.nextOffset, first + 1n);
    assert.equal((await log.read(first)).toString(), `record-${first}`);
    assert.equal(await log.append(Buffer.from('after')), first + 1n);
  });

  it('cuts at an emptied sealed segment, naming it', async () => {
    const { dir, stores } = await logWith(40);
    await truncate(stores[1] as string, 0);
    await assert.rejects(Log.open(dir, small), InvalidLogDirectoryError);
    const plan = await planRepair(dir, { maxRecordBytes: MAX });
    assert.equal(plan.cut?.file, stores[1]);
    assert.equal(plan.cut?.position, 0);
    assert.match(plan.cut?.reason ?? '', /holds no records/);
    await applyRepair(plan);
    await using log = await Log.open(dir, small);
    assert.equal(log.nextOffset, BigInt(Number(/(\d+)\.store$/.exec(stores[1] as string)?.[1])));
  });

  it('cuts damage followed by intact records in the last segment', async () => {
    const { dir, stores } = await logWith(3);
    await flipByte(stores[0] as string, 10);
    await assert.rejects(Log.open(dir), CorruptSegmentError);
    const plan = await planRepair(dir, { maxRecordBytes: MAX });
    assert.equal(plan.cut?.fromOffset, 0n);
    await applyRepair(plan);
    await using log = await Log.open(dir);
    assert.equal(log.nextOffset, 0n);
  });
});
