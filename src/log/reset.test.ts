// resetTo: a crash-safe reset to an empty log at a new base offset.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { CommittedRecordsError, Log, LogFailedError, type LogOptions } from './index.js';
import { faultyFs } from './testing/index.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-reset-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const value = (i: number | bigint): Buffer => Buffer.from(`record-${i}`);
const small: LogOptions = { maxStoreBytes: 200 }; // ~11 records per segment

async function logWith(n: number, options: LogOptions = small): Promise<string> {
  const dir = await tempDir();
  const log = await Log.open(dir, options);
  for (let i = 0; i < n; i++) await log.append(value(i));
  await log.close();
  return dir;
}

async function stores(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.store')).sort();
}

describe('resetTo', () => {
  it('empties the log at a new base, forward or inside the old range, durably', async () => {
    for (const base of [100n, 11n, 0n]) {
      const dir = await logWith(30);
      const log = await Log.open(dir, small);
      assert.ok(log.stats().segments >= 3);
      await log.resetTo(base);
      assert.equal(log.lowestOffset, base);
      assert.equal(log.nextOffset, base);
      assert.equal(log.committedEnd, base);
      assert.equal(log.highestOffset, base - 1n);
      assert.equal(log.stats().segments, 1);
      assert.equal(await log.append(Buffer.from('after')), base);
      await log.close();
      assert.deepEqual(await readdir(dir), [
        `${base.toString().padStart(20, '0')}.index`,
        `${base.toString().padStart(20, '0')}.store`,
      ]);
      await using again = await Log.open(dir, small);
      assert.equal(again.lowestOffset, base);
      assert.equal(again.highestOffset, base);
      assert.equal((await again.read(base)).toString(), 'after');
    }
  });

  it('wakes readers past the new base; snapshots keep reading the old records', async () => {
    await using log = await Log.open(await logWith(30), small);
    const snap = log.snapshot();
    const waiting = log.waitFor(50n);
    await log.resetTo(40n);
    await log.appendBatch(Array.from({ length: 11 }, (_, i) => value(40 + i)));
    await waiting;
    assert.equal((await log.read(50n)).toString(), 'record-50');
    const old: string[] = [];
    for await (const r of snap.records()) old.push(r.value.toString());
    assert.equal(old.length, 30);
    assert.equal(old[29], 'record-29');
    await log.truncateSuffix(45n); // the snapshot reads other files: no conflict
    assert.equal(log.highestOffset, 44n);
    snap.release();
  });

  it('gated: refused below the commit point, and sets the commit point to the base', async () => {
    const dir = await logWith(30);
    await using log = await Log.open(dir, { ...small, commitGated: true });
    log.commit(20n);
    await assert.rejects(log.resetTo(19n), CommittedRecordsError);
    assert.equal(log.nextOffset, 30n);
    await log.resetTo(25n); // drops the uncommitted 25..29 with everything else
    assert.equal(log.committedEnd, 25n);
    assert.equal(log.nextOffset, 25n);
  });

  it('a crash at any step reopens as the old log or the new empty one', async () => {
    const outcomes = { old: 0, reset: 0 };
    for (let step = 0; ; step++) {
      const dir = await logWith(30);
      const fs = faultyFs();
      const log = await Log.open(dir, { ...small, fs });
      fs.crashAfter(step);
      let finished = true;
      try {
        await log.resetTo(7n);
      } catch (err) {
        assert.ok(err instanceof LogFailedError, String(err));
        assert.ok(fs.crashed);
        finished = false;
      }
      await log.close().catch(() => undefined); // after a crash the files are left as they are
      await using again = await Log.open(dir, small);
      if (again.lowestOffset === 0n) {
        assert.ok(!finished, `step ${step}: reset finished but the old log came back`);
        assert.equal(again.highestOffset, 29n);
        for (let i = 0; i < 30; i++)
          assert.equal((await again.read(BigInt(i))).toString(), `record-${i}`);
        outcomes.old++;
      } else {
        assert.equal(again.lowestOffset, 7n, `step ${step}`);
        assert.equal(again.nextOffset, 7n);
        assert.deepEqual(await stores(dir), ['00000000000000000007.store']);
        assert.ok((await readdir(dir)).every((n) => !n.startsWith('reset')));
        outcomes.reset++;
      }
      if (finished) break;
    }
    // Crashes before the marker is durable give the old log, after it the new one.
    assert.ok(outcomes.old > 0 && outcomes.reset > 1, JSON.stringify(outcomes));
  });
});
