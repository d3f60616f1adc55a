// The commit point (commitGated), appends at an expected offset, and snapshots bounded
// at the commit point: what Raft needs from its storage.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import {
  CommitOutOfRangeError,
  CommittedRecordsError,
  InvalidLogOptionError,
  Log,
  LogClosedError,
  OffsetConflictError,
  OffsetOutOfRangeError,
  type LogOptions,
} from './index.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-commit-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const value = (i: number | bigint): Buffer => Buffer.from(`record-${i}`);
const gated: LogOptions = { commitGated: true, maxStoreBytes: 200 };

async function appendN(log: Log, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) await log.append(value(i));
}

describe('commit point', () => {
  it('follows durability by default; commit() is refused on such a log', async () => {
    await using log = await Log.open(await tempDir());
    await appendN(log, 3);
    assert.equal(log.committedEnd, 3n);
    assert.equal(log.nextOffset, 3n);
    assert.throws(() => log.commit(2n), InvalidLogOptionError);
  });

  it('gated: readers stop at the commit point, Raft reads the uncommitted tail', async () => {
    await using log = await Log.open(await tempDir(), gated);
    await appendN(log, 5);
    assert.equal(log.committedEnd, 0n);
    assert.equal(log.highestOffset, -1n);
    assert.equal(log.nextOffset, 5n);
    await assert.rejects(log.read(0n), OffsetOutOfRangeError);
    const tail = await log.readBatch(0n, { uncommitted: true, maxRecords: 10 });
    assert.deepEqual(
      tail.map((r) => r.offset),
      [0n, 1n, 2n, 3n, 4n],
    );
    await assert.rejects(log.readBatch(5n, { uncommitted: true }), OffsetOutOfRangeError);

    log.commit(3n);
    assert.equal(log.committedEnd, 3n);
    assert.equal(log.highestOffset, 2n);
    assert.equal((await log.read(2n)).toString(), 'record-2');
    await assert.rejects(log.read(3n), OffsetOutOfRangeError);
    const batch = await log.readBatch(0n, { maxRecords: 10 });
    assert.deepEqual(
      batch.map((r) => r.offset),
      [0n, 1n, 2n],
    );
    log.commit(1n); // lower: nothing changes
    assert.equal(log.committedEnd, 3n);
    assert.throws(
      () => log.commit(6n),
      (err: unknown) => {
        assert.ok(err instanceof CommitOutOfRangeError);
        assert.equal(err.end, 6n);
        assert.equal(err.durableEnd, 5n);
        return true;
      },
    );
    log.commit(5n);
    assert.equal(log.highestOffset, 4n);
  });

  it('gated: waiting readers wait at and after the commit point, and wake on commit', async () => {
    await using log = await Log.open(await tempDir(), gated);
    await appendN(log, 4);
    log.commit(1n);
    const seen: bigint[] = [];
    const waiters: { n: number; resolve(): void }[] = [];
    const seenAtLeast = (n: number): Promise<void> =>
      new Promise((resolve) => {
        if (seen.length >= n) resolve();
        else waiters.push({ n, resolve });
      });
    const ac = new AbortController();
    const reader = (async () => {
      for await (const r of log.readFrom(0n, { signal: ac.signal })) {
        seen.push(r.offset);
        for (const w of waiters) if (seen.length >= w.n) w.resolve();
      }
    })();
    await seenAtLeast(1);
    assert.deepEqual(seen, [0n]); // offsets 1..3 are durable but not committed: it waits
    let waited = false;
    const waiting = log.waitFor(2n).then(() => (waited = true));
    log.commit(2n);
    await seenAtLeast(2);
    assert.deepEqual(seen, [0n, 1n]);
    assert.equal(waited, false);
    log.commit(4n);
    await waiting;
    await seenAtLeast(4);
    assert.deepEqual(seen, [0n, 1n, 2n, 3n]);
    ac.abort();
    await reader;
  });

  it('gated: refuses to truncate committed records; an uncommitted tail goes even under a snapshot', async () => {
    const dir = await tempDir();
    const log = await Log.open(dir, gated);
    await appendN(log, 30);
    log.commit(20n);
    const snap = log.snapshot();
    assert.equal(snap.highestOffset, 19n);
    await assert.rejects(log.truncateSuffix(19n), (err: unknown) => {
      assert.ok(err instanceof CommittedRecordsError);
      assert.equal(err.from, 19n);
      assert.equal(err.committedEnd, 20n);
      return true;
    });
    await log.truncateSuffix(20n); // no SnapshotConflictError: the snapshot ends at the commit point
    assert.equal(log.nextOffset, 20n);
    assert.equal(await log.append(Buffer.from('new-20')), 20n);
    const all: string[] = [];
    for await (const r of snap.records()) all.push(r.value.toString());
    assert.equal(all.length, 20);
    assert.equal(all[19], 'record-19');
    snap.release();
    // Retention never drops uncommitted records.
    await log.truncatePrefix(1000n);
    assert.ok(log.lowestOffset <= 20n, `lowest ${log.lowestOffset}`);
    await log.close();
    assert.throws(() => log.commit(21n), LogClosedError);

    // Reopened, a gated log has nothing committed above its lowest offset.
    await using again = await Log.open(dir, gated);
    assert.equal(again.nextOffset, 21n);
    assert.equal(again.committedEnd, again.lowestOffset);
    again.commit(21n);
    assert.equal((await again.read(20n)).toString(), 'new-20');
  });
});

describe('appends at an expected offset', () => {
  it('rejects a conflicting append inside the writer and writes nothing for it', async () => {
    await using log = await Log.open(await tempDir(), { fsync: 'never' });
    // Both are queued before either is written: the writer decides.
    const first = log.append(value(0), { expectFirst: 0n });
    const second = log.appendBatch([value(1), value(2)], { expectFirst: 0n });
    assert.equal(await first, 0n);
    await assert.rejects(second, (err: unknown) => {
      assert.ok(err instanceof OffsetConflictError);
      assert.equal(err.expected, 0n);
      assert.equal(err.actual, 1n);
      return true;
    });
    assert.equal(log.nextOffset, 1n);
    assert.equal(await log.appendBatch([value(1), value(2)], { expectFirst: 1n }), 1n);
    assert.equal(await log.append(value(3)), 3n); // without expectFirst: anywhere
    assert.equal((await log.read(2n)).toString(), 'record-2');
    assert.equal(log.nextOffset, 4n);
  });

  it('checks each append of a group against the offsets chosen before it', async () => {
    await using log = await Log.open(await tempDir());
    const results = await Promise.allSettled([
      log.appendBatch([value(0), value(1)], { expectFirst: 0n }),
      log.append(value(2), { expectFirst: 2n }),
      log.append(value(9), { expectFirst: 2n }), // conflicts with the one before
      log.append(value(3), { expectFirst: 3n }),
    ]);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).name)),
      [0n, 2n, 'OffsetConflictError', 3n],
    );
    const batch = await log.readBatch(0n);
    assert.deepEqual(
      batch.map((r) => r.value.toString()),
      ['record-0', 'record-1', 'record-2', 'record-3'],
    );
  });
});
