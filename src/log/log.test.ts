import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import {
  InvalidLogOptionError,
  Log,
  LogClosedError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
  SnapshotConflictError,
  parseFsyncPolicy,
  type LogOptions,
} from './index.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-log-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const value = (i: number | bigint): Buffer => Buffer.from(`record-${i}`);
const small: LogOptions = { maxStoreBytes: 200 }; // ~11 records of 10 bytes per segment

async function appendN(log: Log, n: number, from = 0): Promise<bigint[]> {
  const offsets: bigint[] = [];
  for (let i = from; i < from + n; i++) offsets.push(await log.append(value(i)));
  return offsets;
}

describe('Log', () => {
  it('appends and reads records at dense offsets', async () => {
    await using log = await Log.open(await tempDir());
    assert.equal(log.highestOffset, -1n);
    assert.deepEqual(await appendN(log, 3), [0n, 1n, 2n]);
    assert.equal((await log.read(1n)).toString(), 'record-1');
    assert.equal(log.lowestOffset, 0n);
    assert.equal(log.highestOffset, 2n);
    assert.equal(await log.appendBatch([value(3), value(4), value(5)]), 3n);
    assert.equal((await log.read(5n)).toString(), 'record-5');
    assert.equal(await log.append(Buffer.alloc(0)), 6n);
    assert.equal((await log.read(6n)).length, 0);
  });

  it('rejects reads outside the range with the offset in the message', async () => {
    await using log = await Log.open(await tempDir());
    await appendN(log, 2);
    await assert.rejects(log.read(2n), (err: unknown) => {
      assert.ok(err instanceof OffsetOutOfRangeError);
      assert.equal(err.offset, 2n);
      assert.equal(err.message, "The requested offset is outside the log's range: 2");
      return true;
    });
    await assert.rejects(log.read(-1n), OffsetOutOfRangeError);
  });

  it('refuses records over maxRecordBytes and keeps going', async () => {
    await using log = await Log.open(await tempDir(), { maxRecordBytes: 10 });
    await assert.rejects(log.append(Buffer.alloc(11)), RecordTooLargeError);
    await assert.rejects(log.appendBatch([Buffer.alloc(1), Buffer.alloc(11)]), RecordTooLargeError);
    assert.equal(await log.append(Buffer.alloc(10)), 0n);
  });

  it('groups concurrent appends: offsets unique and dense, fewer fsyncs than appends', async () => {
    let syncs = 0;
    let writes = 0;
    await using log = await Log.open(await tempDir(), {
      observer: { synced: () => syncs++, appended: () => writes++ },
    });
    const offsets = await Promise.all(Array.from({ length: 500 }, (_, i) => log.append(value(i))));
    assert.deepEqual(
      [...offsets].sort((a, b) => Number(a - b)),
      Array.from({ length: 500 }, (_, i) => BigInt(i)),
    );
    for (const [i, off] of offsets.entries())
      assert.equal((await log.read(off)).toString(), `record-${i}`);
    assert.ok(syncs < 500, `expected group commit, got ${syncs} fsyncs for 500 appends`);
    assert.ok(writes <= syncs + 1);
  });

  it('rolls segments at maxStoreBytes and maxIndexBytes, with zero-padded names', async () => {
    const dir = await tempDir();
    await using log = await Log.open(dir, small);
    await appendN(log, 40);
    const names = (await readdir(dir)).filter((n) => n.endsWith('.store'));
    assert.ok(names.length >= 3, `expected several segments, got ${names.join(',')}`);
    assert.ok(names.every((n) => /^\d{20}\.store$/.test(n)));
    assert.equal(log.stats().segments, names.length);
    for (let i = 0; i < 40; i++)
      assert.equal((await log.read(BigInt(i))).toString(), `record-${i}`);

    const dir2 = await tempDir();
    await using byIndex = await Log.open(dir2, { maxIndexBytes: 8 * 4 });
    await appendN(byIndex, 10);
    assert.equal(byIndex.stats().segments, 3); // 4 + 4 + 2
  });

  it('reopens with every record and continues the offsets', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, small);
    await appendN(log, 30);
    await log.close();
    await log.close(); // idempotent
    await using again = await Log.open(dir, small);
    assert.deepEqual(again.recovery.indexesRebuilt, []);
    assert.equal(again.recovery.truncated, undefined);
    assert.equal(again.highestOffset, 29n);
    assert.equal(await again.append(value(30)), 30n);
    for (let i = 0; i <= 30; i++)
      assert.equal((await again.read(BigInt(i))).toString(), `record-${i}`);
  });

  it('starts at initialOffset', async () => {
    await using log = await Log.open(await tempDir(), { initialOffset: 1000n });
    assert.equal(log.lowestOffset, 1000n);
    assert.equal(log.highestOffset, 999n);
    assert.equal(await log.append(value(0)), 1000n);
  });

  it('reads batches bounded by records and bytes, at least one record', async () => {
    await using log = await Log.open(await tempDir(), small);
    await appendN(log, 30);
    const batch = await log.readBatch(0n, { maxRecords: 5 });
    assert.deepEqual(
      batch.map((r) => r.offset),
      [0n, 1n, 2n, 3n, 4n],
    );
    const tiny = await log.readBatch(3n, { maxBytes: 1 });
    assert.equal(tiny.length, 1);
    assert.equal(tiny[0]?.value.toString(), 'record-3');
    // A batch never crosses a segment: reading on continues in the next one.
    let next = 0n;
    while (next <= log.highestOffset) {
      const b = await log.readBatch(next, { maxRecords: 100 });
      for (const r of b) assert.equal(r.value.toString(), `record-${r.offset}`);
      next += BigInt(b.length);
    }
    assert.equal(next, 30n);
  });

  it('truncatePrefix drops whole segments only', async () => {
    const dir = await tempDir();
    await using log = await Log.open(dir, small);
    await appendN(log, 40);
    const before = log.stats().segments;
    await log.truncatePrefix(15n);
    assert.ok(log.lowestOffset <= 15n && log.lowestOffset > 0n, `lowest ${log.lowestOffset}`);
    assert.ok(log.stats().segments < before);
    await assert.rejects(log.read(log.lowestOffset - 1n), OffsetOutOfRangeError);
    assert.equal((await log.read(15n)).toString(), 'record-15');
    await log.truncatePrefix(10_000n); // never drops the active segment
    assert.equal(log.stats().segments, 1);
    assert.equal(log.highestOffset, 39n);
    await log.close();
    await using again = await Log.open(dir, small);
    assert.equal(again.lowestOffset, log.lowestOffset);
    assert.equal(again.highestOffset, 39n);
  });

  it('truncateSuffix drops a tail within and across segments, durably', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, small);
    await appendN(log, 40);
    await log.truncateSuffix(35n);
    assert.equal(log.highestOffset, 34n);
    await assert.rejects(log.read(35n), OffsetOutOfRangeError);
    await log.truncateSuffix(12n); // crosses segment boundaries
    assert.equal(log.highestOffset, 11n);
    assert.equal(await log.append(Buffer.from('new-12')), 12n);
    await log.close();
    await using again = await Log.open(dir, small);
    assert.equal(again.highestOffset, 12n);
    assert.equal((await again.read(12n)).toString(), 'new-12');
    assert.equal((await again.read(11n)).toString(), 'record-11');
    await again.truncateSuffix(0n);
    assert.equal(again.highestOffset, -1n);
    assert.equal(await again.append(value(0)), 0n);
    await assert.rejects(again.truncateSuffix(-5n), OffsetOutOfRangeError);
  });

  it('readFrom streams existing records, then waits for new ones, and stops on abort', async () => {
    await using log = await Log.open(await tempDir(), small);
    await appendN(log, 3);
    const ac = new AbortController();
    const seen: string[] = [];
    let caughtUp!: () => void;
    const waiting = new Promise<void>((r) => (caughtUp = r));
    const reader = (async () => {
      for await (const r of log.readFrom(1n, { signal: ac.signal })) {
        seen.push(`${r.offset}:${r.value.toString()}`);
        if (r.offset === 2n) caughtUp();
        if (r.offset === 4n) ac.abort();
      }
    })();
    await waiting;
    await appendN(log, 2, 3);
    await reader;
    assert.deepEqual(seen, ['1:record-1', '2:record-2', '3:record-3', '4:record-4']);
  });

  it('readFrom ends when the log closes; waitFor rejects on abort', async () => {
    const log = await Log.open(await tempDir());
    const ac = new AbortController();
    const waiting = log.waitFor(5n, ac.signal);
    ac.abort(new Error('gave up'));
    await assert.rejects(waiting, /gave up/);
    let readFirst!: () => void;
    const firstRead = new Promise<void>((r) => (readFirst = r));
    const reader = (async () => {
      const got: bigint[] = [];
      for await (const r of log.readFrom(0n)) {
        got.push(r.offset);
        readFirst();
      }
      return got;
    })();
    await log.append(value(0));
    await firstRead; // the reader is now waiting for offset 1, which never comes
    await log.close();
    assert.deepEqual(await reader, [0n]);
    await assert.rejects(log.append(value(1)), LogClosedError);
  });

  it('snapshots are consistent, survive retention and block conflicting truncation', async () => {
    await using log = await Log.open(await tempDir(), small);
    await appendN(log, 30);
    const snap = log.snapshot();
    await appendN(log, 10, 30);
    assert.equal(snap.highestOffset, 29n);
    await log.truncatePrefix(25n);
    const all: string[] = [];
    for await (const r of snap.records()) all.push(r.value.toString());
    assert.equal(all.length, 30);
    assert.equal(all[0], 'record-0');
    await assert.rejects(snap.read(30n), OffsetOutOfRangeError);
    await assert.rejects(log.truncateSuffix(28n), SnapshotConflictError);
    await log.truncateSuffix(35n); // above the snapshot: fine
    snap.release();
    snap.release();
    await log.truncateSuffix(28n);
    assert.equal(log.highestOffset, 27n);
  });

  it('fsync policies: interval and never make records readable after the write', async () => {
    for (const fsync of [parseFsyncPolicy('interval:5'), parseFsyncPolicy('never')]) {
      const dir = await tempDir();
      const log = await Log.open(dir, { fsync });
      await appendN(log, 5);
      assert.equal(log.highestOffset, 4n);
      await log.close();
      await using again = await Log.open(dir);
      assert.equal(again.highestOffset, 4n);
    }
  });

  it('validates options with errors that name them', () => {
    assert.deepEqual(parseFsyncPolicy('interval:250'), { intervalMs: 250 });
    assert.throws(() => parseFsyncPolicy('sometimes'), InvalidLogOptionError);
    assert.throws(() => parseFsyncPolicy('interval:0'), /fsync/);
  });

  it('rejects bad options at open', async () => {
    const dir = await tempDir();
    await assert.rejects(Log.open(dir, { maxStoreBytes: 0 }), /maxStoreBytes/);
    await assert.rejects(Log.open(dir, { maxIndexBytes: 4 }), /maxIndexBytes/);
    await assert.rejects(Log.open(dir, { initialOffset: -1n }), /initialOffset/);
  });
});
