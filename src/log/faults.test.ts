// Write faults injected through the file-system port: after each one the log refuses
// further writes (LogFailedError, with the I/O error as its cause), reports the failure
// when it happens, loses nothing acknowledged, and reopens with every acknowledged record.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { DiskFullError, Log, LogFailedError, type LogOptions } from './index.js';
import { faultyFs, type FaultRule } from './testing/index.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'commitlog-faults-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const value = (i: number): Buffer => Buffer.from(`record-${i}`.padEnd(100, '.'));
const STORE = /\.store$/;

interface Outcome {
  dir: string;
  acked: number;
  failures: Error[];
  errors: unknown[];
}

/** Appends `n` records one by one through a log whose fs has `rules`; never throws. */
async function appendThroughFaults(
  rules: FaultRule[],
  n: number,
  options: LogOptions = {},
): Promise<Outcome> {
  const dir = await tempDir();
  const fs = faultyFs();
  const failures: Error[] = [];
  const log = await Log.open(dir, {
    ...options,
    fs,
    observer: { failed: (e) => failures.push(e) },
  });
  for (const rule of rules) fs.fail(rule);
  let acked = 0;
  const errors: unknown[] = [];
  for (let i = 0; i < n; i++) {
    try {
      assert.equal(await log.append(value(i)), BigInt(i), 'acknowledged offsets stay dense');
      acked++;
    } catch (err) {
      errors.push(err);
    }
  }
  await log.close();
  return { dir, acked, failures, errors };
}

/** Reopens on the real fs and checks that exactly the acknowledged records are there. */
async function expectRecovered(dir: string, acked: number, options: LogOptions = {}): Promise<Log> {
  const log = await Log.open(dir, options);
  assert.equal(log.highestOffset, BigInt(acked - 1));
  for (let i = 0; i < acked; i++) {
    assert.equal((await log.read(BigInt(i))).toString(), value(i).toString());
  }
  assert.equal(await log.append(value(acked)), BigInt(acked), 'the reopened log takes appends');
  return log;
}

function causeCode(err: unknown): string | undefined {
  assert.ok(err instanceof LogFailedError, `expected LogFailedError, got ${String(err)}`);
  return (err.cause as NodeJS.ErrnoException).code;
}

describe('write faults', () => {
  it('EIO on the nth write: the append fails, every later one is refused, reopen recovers', async () => {
    const out = await appendThroughFaults([{ op: 'write', path: STORE, nth: 4 }], 8);
    assert.equal(out.acked, 3);
    assert.equal(out.errors.length, 5);
    for (const err of out.errors) assert.equal(causeCode(err), 'EIO');
    assert.match((out.errors[0] as Error).message, /failed write: EIO.*reopen it to recover/);
    assert.equal(out.failures.length, 1, 'reported once, when it happened');
    assert.equal(out.failures[0], out.errors[0]);
    await using log = await expectRecovered(out.dir, 3);
    assert.equal(log.recovery.truncated, undefined);
  });

  it('a failing fsync fails its group and stops the log (the page cache cannot be trusted)', async () => {
    const out = await appendThroughFaults([{ op: 'datasync', path: STORE, nth: 3 }], 5);
    assert.equal(out.acked, 2);
    assert.equal(out.errors.length, 3);
    for (const err of out.errors) assert.equal(causeCode(err), 'EIO');
    assert.equal(((out.errors[0] as Error).cause as NodeJS.ErrnoException).syscall, 'datasync');
    await (await expectRecovered(out.dir, 2)).close();
  });

  it('a failing background fsync is reported when it happens, and refuses the next append', async () => {
    const dir = await tempDir();
    const fs = faultyFs().fail({ op: 'datasync', path: STORE });
    let reported!: (err: Error) => void;
    const failed = new Promise<Error>((r) => (reported = r));
    const log = await Log.open(dir, {
      fs,
      fsync: { intervalMs: 5 },
      observer: { failed: (err) => reported(err) },
    });
    assert.equal(await log.append(value(0)), 0n); // acknowledged once written
    const err = await within(failed, 5000, 'observer.failed');
    assert.equal(causeCode(err), 'EIO');
    await assert.rejects(log.append(value(1)), (e) => e === err);
    await assert.rejects(log.truncateSuffix(0n), (e) => e === err);
    await log.close();
    await (await expectRecovered(dir, 1)).close();
  });

  it('keeps both errors when cutting back a failed write fails too', async () => {
    const out = await appendThroughFaults(
      [
        { op: 'write', path: STORE, nth: 2 },
        { op: 'truncate', path: STORE },
      ],
      3,
    );
    assert.equal(out.acked, 1);
    const err = out.errors[0];
    assert.ok(err instanceof LogFailedError);
    assert.ok(err.cause instanceof AggregateError);
    assert.deepEqual(
      err.cause.errors.map((e: NodeJS.ErrnoException) => e.syscall),
      ['write', 'truncate'],
    );
    assert.match(err.message, /write.*truncate/);
    // The uncut record was never acknowledged; a reopen may bring it back, but nothing is lost.
    await using log = await Log.open(out.dir);
    assert.ok(log.highestOffset >= 0n);
    assert.equal((await log.read(0n)).toString(), value(0).toString());
  });

  it('a failed truncation stops the log instead of leaving memory and files apart', async () => {
    const dir = await tempDir();
    const fs = faultyFs();
    const failures: Error[] = [];
    const log = await Log.open(dir, { fs, observer: { failed: (e) => failures.push(e) } });
    for (let i = 0; i < 4; i++) await log.append(value(i));
    fs.fail({ op: 'truncate', path: STORE });
    await assert.rejects(log.truncateSuffix(2n), LogFailedError);
    assert.equal(failures.length, 1);
    await assert.rejects(log.append(value(9)), LogFailedError);
    await log.close();
    await using again = await Log.open(dir);
    assert.equal(again.highestOffset, 3n); // the cut never happened; nothing was lost
  });
});

describe('sealed segments', () => {
  for (const fsync of ['never', { intervalMs: 60_000 }, 'always'] as const) {
    it(`are fsynced before their successor exists (fsync ${JSON.stringify(fsync)})`, async () => {
      const dir = await tempDir();
      const fs = faultyFs();
      const log = await Log.open(dir, { fs, fsync, maxStoreBytes: 600 });
      for (let i = 0; i < 23; i++) await log.append(value(i));
      assert.equal(log.stats().segments, 5);
      const created = fs.calls
        .map((c, i) => ({ ...c, i }))
        .filter((c) => c.op === 'open' && c.flags === 'wx+');
      assert.equal(created.length, 5); // the first segment, then one per roll
      let previous = join(dir, '00000000000000000000.store');
      assert.equal(created[0]?.path, previous);
      for (const next of created.slice(1)) {
        const synced = fs.calls.findIndex((c) => c.op === 'datasync' && c.path === previous);
        assert.ok(synced >= 0 && synced < next.i, `${previous} synced before ${next.path}`);
        previous = next.path;
      }
      await log.close();
    });
  }
});

describe('power loss', () => {
  const small: LogOptions = { maxStoreBytes: 600 }; // 5 records of 108 bytes per segment

  it('under fsync never, every sealed segment survives whole and the log reopens', async () => {
    const dir = await tempDir();
    const fs = faultyFs(undefined, { trackDurability: true });
    const log = await Log.open(dir, { ...small, fs, fsync: 'never' });
    for (let i = 0; i < 23; i++) await log.append(value(i));
    assert.equal(log.stats().segments, 5); // 20 records in sealed segments
    fs.crashAfter(0);
    await log.close().catch(() => undefined);
    await fs.simulatePowerLoss();
    await using again = await Log.open(dir, small);
    assert.ok(again.highestOffset >= 19n, `highest ${again.highestOffset}`);
    for (let i = 0; i <= Number(again.highestOffset); i++) {
      assert.equal((await again.read(BigInt(i))).toString(), value(i).toString());
    }
  });

  /** Appends in rounds through a fs that crashes after `step` calls, then loses power. */
  async function appendThenLosePower(
    options: LogOptions,
    step: number,
  ): Promise<{ dir: string; calls: number; results: PromiseSettledResult<bigint>[] }> {
    const dir = await tempDir();
    const fs = faultyFs(undefined, { trackDurability: true });
    const log = await Log.open(dir, { ...options, fs });
    const opened = fs.calls.length;
    fs.crashAfter(step);
    // Rounds of concurrent appends: groups of several records, acknowledged as they go.
    const results: PromiseSettledResult<bigint>[] = [];
    for (let round = 0; round < 6; round++) {
      const appends = Array.from({ length: 5 }, (_, j) => log.append(value(round * 5 + j)));
      results.push(...(await Promise.allSettled(appends)));
    }
    await log.close().catch(() => undefined);
    await fs.simulatePowerLoss();
    return { dir, calls: fs.calls.length - opened, results };
  }

  for (const [name, options] of [
    ['rolling segments', small],
    ['one segment', {}],
  ] as const) {
    it(`under fsync always, a power loss at any moment keeps every acknowledged record (${name})`, async () => {
      const { calls } = await appendThenLosePower(options, Infinity);
      const stride = Math.max(1, Math.floor(calls / 15));
      for (let step = 0; step < calls; step += stride) {
        const { dir, results } = await appendThenLosePower(options, step);
        await using again = await Log.open(dir, options);
        for (const [i, r] of results.entries()) {
          if (r.status === 'rejected') continue;
          assert.equal(r.value, BigInt(i), 'offsets follow the order of the calls');
          assert.equal(
            (await again.read(r.value)).toString(),
            value(i).toString(),
            `crash after ${step} calls: acknowledged offset ${r.value}`,
          );
        }
      }
    });
  }
});

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('a full disk', () => {
  const small: LogOptions = { maxStoreBytes: 600 }; // 5 records of 108 bytes per segment

  /** Opens a log over a FaultyFs, reporting stops in `failures`. */
  async function open(options: LogOptions = {}) {
    const dir = await tempDir();
    const fs = faultyFs();
    const failures: Error[] = [];
    const log = await Log.open(dir, {
      ...options,
      fs,
      observer: { failed: (e) => failures.push(e) },
    });
    return { dir, fs, log, failures };
  }

  it('refuses appends with DiskFullError while full, cuts the torn bytes, and takes appends once space returns', async () => {
    const { dir, fs, log, failures } = await open();
    assert.equal(await log.append(value(0)), 0n);
    fs.fail({ op: 'write', path: STORE, code: 'ENOSPC', partial: true, sticky: true });
    for (let i = 1; i <= 2; i++) {
      await assert.rejects(log.append(value(i)), (err: unknown) => {
        assert.ok(err instanceof DiskFullError, String(err));
        assert.match(
          err.message,
          /no space left on the device holding .*: the records were not written/,
        );
        assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOSPC');
        return true;
      });
    }
    assert.deepEqual(failures, [], 'a full disk does not stop the log');
    fs.clear(); // space returns
    assert.equal(await log.append(value(1)), 1n);
    await log.close();
    await using again = await Log.open(dir);
    assert.equal(again.recovery.truncated, undefined, 'nothing torn was left');
    assert.equal(again.highestOffset, 1n);
    assert.equal((await again.read(1n)).toString(), value(1).toString());
  });

  it('a roll that cannot create the next segment refuses the append, and rolls later', async () => {
    const { dir, fs, log, failures } = await open(small);
    for (let i = 0; i < 5; i++) await log.append(value(i));
    fs.fail({ op: 'open', path: /00000000000000000005\.store$/, code: 'ENOSPC' });
    await assert.rejects(log.append(value(5)), DiskFullError);
    assert.equal(await log.append(value(5)), 5n);
    assert.deepEqual(failures, []);
    await log.close();
    await using again = await Log.open(dir, small);
    assert.equal(again.highestOffset, 5n);
  });

  it('a write that fails in a segment the append just rolled to drops that segment', async () => {
    const { dir, fs, log, failures } = await open(small);
    for (let i = 0; i < 5; i++) await log.append(value(i));
    fs.fail({ op: 'write', path: /00000000000000000005\.store$/, code: 'ENOSPC', sticky: true });
    await assert.rejects(log.appendBatch([value(5), value(6)]), DiskFullError);
    assert.equal(log.nextOffset, 5n);
    fs.clear();
    assert.equal(await log.appendBatch([value(5), value(6)]), 5n);
    assert.deepEqual(failures, []);
    await log.close();
    await using again = await Log.open(dir, small);
    assert.equal(again.highestOffset, 6n);
    assert.equal((await again.read(6n)).toString(), value(6).toString());
  });

  it('ENOSPC from an fsync still stops the log (the page cache cannot be trusted)', async () => {
    const { log, fs, failures } = await open();
    fs.fail({ op: 'datasync', path: STORE, code: 'ENOSPC' });
    await assert.rejects(log.append(value(0)), LogFailedError);
    assert.equal(failures.length, 1);
    await log.close();
  });
});
