import assert from 'node:assert/strict';
import {
  appendFile,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import {
  CorruptSegmentError,
  InvalidLogDirectoryError,
  Log,
  describeTruncation,
  type LogOptions,
} from './index.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-recovery-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const small: LogOptions = { maxStoreBytes: 200 };
const value = (i: number): Buffer => Buffer.from(`record-${i}`); // 8 + 8..9 bytes framed

/** Writes n records, closes the log, and returns the store files in order. */
async function logWith(
  n: number,
  options: LogOptions = small,
): Promise<{ dir: string; stores: string[] }> {
  const dir = await tempDir();
  const log = await Log.open(dir, options);
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

async function expectRecords(log: Log, n: number): Promise<void> {
  assert.equal(log.highestOffset, BigInt(n - 1));
  for (let i = 0; i < n; i++) assert.equal((await log.read(BigInt(i))).toString(), `record-${i}`);
}

describe('recovery', () => {
  it('cuts a torn tail (file truncated mid-record) back to the last whole record', async () => {
    const { dir, stores } = await logWith(5, {});
    const store = stores[0] as string;
    const size = (await stat(store)).size;
    await truncate(store, size - 3);
    await using log = await Log.open(dir);
    assert.equal(log.recovery.truncated?.file, store);
    assert.match(log.recovery.truncated?.reason ?? '', /torn tail/);
    const cut = log.recovery.truncated;
    assert.ok(cut);
    assert.equal(cut.fromOffset, 4n);
    assert.match(
      describeTruncation(cut),
      /^cut \d+ bytes off .*00000000000000000000\.store at byte \d+: offsets from 4 on dropped \(torn tail: /,
    );
    await expectRecords(log, 4);
    assert.equal(await log.append(Buffer.from('after')), 4n);
  });

  it('cuts garbage after the last record', async () => {
    const { dir, stores } = await logWith(5, {});
    await appendFile(stores[0] as string, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
    await using log = await Log.open(dir);
    assert.equal(log.recovery.truncated?.bytes, 11);
    await expectRecords(log, 5);
  });

  it('cuts a last record whose payload was flipped (indistinguishable from a torn write)', async () => {
    const { dir, stores } = await logWith(5, {});
    const store = stores[0] as string;
    await flipByte(store, (await stat(store)).size - 2);
    await using log = await Log.open(dir);
    assert.ok(log.recovery.truncated);
    await expectRecords(log, 4);
  });

  it('refuses damage followed by intact records in the last segment, naming the file', async () => {
    const { dir, stores } = await logWith(5, {});
    const store = stores[0] as string;
    await flipByte(store, 10); // inside record 0's payload
    await assert.rejects(Log.open(dir), (err: unknown) => {
      assert.ok(err instanceof CorruptSegmentError);
      assert.equal(err.file, store);
      assert.equal(err.position, 0);
      assert.match(err.message, /intact records/);
      return true;
    });
    // The files are untouched by the refusal, and repairTruncate cuts at the damage.
    await using log = await Log.open(dir, { repairTruncate: true });
    assert.equal(log.highestOffset, -1n);
    assert.match(log.recovery.truncated?.reason ?? '', /repairTruncate/);
  });

  it('refuses a flipped length field too (the scan resynchronises on the next frame)', async () => {
    const { dir, stores } = await logWith(5, {});
    const store = stores[0] as string;
    const recordBytes = 8 + value(0).length;
    await flipByte(store, recordBytes + 6); // record 1's length field, high byte
    await assert.rejects(Log.open(dir), CorruptSegmentError);
  });

  it('serves a clear error, not data, for a flipped byte in an early sealed record', async () => {
    const { dir, stores } = await logWith(40);
    assert.ok(stores.length >= 3);
    await flipByte(stores[0] as string, 12);
    await using log = await Log.open(dir, small);
    await assert.rejects(log.read(0n), (err: unknown) => {
      assert.ok(err instanceof CorruptSegmentError);
      assert.equal(err.file, stores[0]);
      return true;
    });
    assert.equal((await log.read(1n)).toString(), 'record-1');
    assert.equal((await log.read(39n)).toString(), 'record-39');
  });

  it('rebuilds a damaged or missing index of a sealed segment from its store', async () => {
    const { dir, stores } = await logWith(40);
    const index0 = (stores[0] as string).replace(/\.store$/, '.index');
    const index1 = (stores[1] as string).replace(/\.store$/, '.index');
    await flipByte(index0, 3);
    await rm(index1);
    await using log = await Log.open(dir, small);
    assert.deepEqual(log.recovery.indexesRebuilt.sort(), [index0, index1].sort());
    await expectRecords(log, 40);
  });

  it('refuses a sealed segment without index whose store is damaged', async () => {
    const { dir, stores } = await logWith(40);
    await rm((stores[1] as string).replace(/\.store$/, '.index'));
    await flipByte(stores[1] as string, 20);
    await assert.rejects(Log.open(dir, small), (err: unknown) => {
      assert.ok(err instanceof CorruptSegmentError);
      assert.equal(err.file, stores[1]);
      return true;
    });
  });

  it('notices an index that disagrees with the active store after a crash', async () => {
    const { dir, stores } = await logWith(5, {});
    const store = stores[0] as string;
    await truncate(store, (await stat(store)).size - 1); // the index now lists one record too many
    await using log = await Log.open(dir);
    assert.deepEqual(log.recovery.indexesRebuilt, [store.replace(/\.store$/, '.index')]);
    await expectRecords(log, 4);
  });

  it('refuses a gap between segments, naming the file after it', async () => {
    const { dir, stores } = await logWith(40);
    await rm(stores[1] as string);
    await rm((stores[1] as string).replace(/\.store$/, '.index'));
    await assert.rejects(Log.open(dir, small), (err: unknown) => {
      assert.ok(err instanceof InvalidLogDirectoryError);
      assert.equal(err.file, stores[2]);
      return true;
    });
  });

  it('names an emptied sealed segment itself, not the segment after it', async () => {
    const { dir, stores } = await logWith(40);
    await truncate(stores[1] as string, 0);
    await assert.rejects(Log.open(dir, small), (err: unknown) => {
      assert.ok(err instanceof InvalidLogDirectoryError);
      assert.equal(err.file, stores[1]);
      assert.match(err.message, /holds no records, but the next segment .* starts at offset \d+/);
      return true;
    });
  });

  it('refuses an index without its store, and stray segment-like names', async () => {
    const { dir, stores } = await logWith(40);
    await rm(stores[1] as string);
    await assert.rejects(Log.open(dir, small), /index file without its store/);
    const other = await logWith(3, {});
    await writeFile(join(other.dir, '12.store'), 'x');
    await assert.rejects(Log.open(other.dir), /not a segment file name/);
  });

  it('removes a leftover temporary index and ignores unrelated files', async () => {
    const { dir } = await logWith(3, {});
    await writeFile(join(dir, '00000000000000000000.index.tmp'), 'partial');
    await writeFile(join(dir, 'README'), 'not ours');
    await using log = await Log.open(dir);
    assert.equal(log.recovery.removedFiles.length, 1);
    await expectRecords(log, 3);
  });
});
