// Model-based test: random sequences of operations on the real log and on an
// in-memory array must agree after every step, across reopens and truncations.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import {
  CommitOutOfRangeError,
  CommittedRecordsError,
  Log,
  OffsetConflictError,
  OffsetOutOfRangeError,
  type LogOptions,
} from './index.js';

interface Model {
  lowest: bigint;
  values: Buffer[]; // values[i] is the record at lowest + i
}
interface Real {
  log: Log;
  dir: string;
  options: LogOptions;
}
type Cmd = fc.AsyncCommand<Model, Real>;

async function agree(m: Model, r: Real): Promise<void> {
  assert.equal(r.log.lowestOffset, m.lowest);
  assert.equal(r.log.highestOffset, m.lowest + BigInt(m.values.length) - 1n);
  // Read everything back in batches: every record byte-identical.
  let next = m.lowest;
  while (next <= r.log.highestOffset) {
    const batch = await r.log.readBatch(next, { maxRecords: 7, maxBytes: 64 });
    for (const rec of batch) {
      assert.equal(rec.offset, next);
      assert.deepEqual(rec.value, m.values[Number(next - m.lowest)]);
      next++;
    }
  }
  await assert.rejects(r.log.read(next), OffsetOutOfRangeError);
}

const payload = fc.uint8Array({ minLength: 0, maxLength: 40 }).map((a) => Buffer.from(a));

class Append implements Cmd {
  constructor(readonly value: Buffer) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const offset = await r.log.append(this.value);
    assert.equal(offset, m.lowest + BigInt(m.values.length));
    m.values.push(this.value);
    await agree(m, r);
  }
  toString = (): string => `append(${this.value.length}B)`;
}

class AppendConcurrently implements Cmd {
  constructor(readonly values: Buffer[]) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const first = m.lowest + BigInt(m.values.length);
    const offsets = await Promise.all(this.values.map((v) => r.log.append(v)));
    assert.deepEqual(
      offsets,
      this.values.map((_, i) => first + BigInt(i)),
    );
    m.values.push(...this.values);
    await agree(m, r);
  }
  toString = (): string => `appendConcurrently(${this.values.length})`;
}

class AppendBatch implements Cmd {
  constructor(readonly values: Buffer[]) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const first = await r.log.appendBatch(this.values);
    assert.equal(first, m.lowest + BigInt(m.values.length));
    m.values.push(...this.values);
    await agree(m, r);
  }
  toString = (): string => `appendBatch(${this.values.length})`;
}

class Reopen implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    await r.log.close();
    r.log = await Log.open(r.dir, r.options);
    assert.equal(r.log.recovery.truncated, undefined);
    await agree(m, r);
  }
  toString = (): string => 'reopen';
}

class TruncatePrefix implements Cmd {
  constructor(readonly fraction: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const upTo = m.lowest + BigInt(Math.floor(m.values.length * this.fraction));
    await r.log.truncatePrefix(upTo);
    const lowest = r.log.lowestOffset;
    // Whole segments only: never past upTo, never backwards.
    assert.ok(lowest >= m.lowest && lowest <= upTo, `lowest ${lowest} for upTo ${upTo}`);
    m.values.splice(0, Number(lowest - m.lowest));
    m.lowest = lowest;
    await agree(m, r);
  }
  toString = (): string => `truncatePrefix(${this.fraction.toFixed(2)})`;
}

class TruncateSuffix implements Cmd {
  constructor(readonly fraction: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const keep = Math.floor(m.values.length * this.fraction);
    await r.log.truncateSuffix(m.lowest + BigInt(keep));
    m.values.length = keep;
    await agree(m, r);
  }
  toString = (): string => `truncateSuffix(${this.fraction.toFixed(2)})`;
}

class ResetTo implements Cmd {
  constructor(readonly shift: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    // Anywhere from the lowest offset to a little past the end.
    const span = m.values.length + 5;
    const base = m.lowest + BigInt(Math.floor(span * this.shift));
    await r.log.resetTo(base);
    m.lowest = base;
    m.values = [];
    await agree(m, r);
  }
  toString = (): string => `resetTo(${this.shift.toFixed(2)})`;
}

const commands = [
  payload.map((v) => new Append(v)),
  fc.array(payload, { minLength: 1, maxLength: 12 }).map((vs) => new AppendConcurrently(vs)),
  fc.array(payload, { minLength: 0, maxLength: 20 }).map((vs) => new AppendBatch(vs)),
  fc.constant(new Reopen()),
  fc.double({ min: 0, max: 1, noNaN: true }).map((f) => new TruncatePrefix(f)),
  fc.double({ min: 0, max: 1, noNaN: true }).map((f) => new TruncateSuffix(f)),
  fc.double({ min: 0, max: 1, noNaN: true }).map((f) => new ResetTo(f)),
];

it('the log behaves like an array under random operations', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        maxStoreBytes: fc.integer({ min: 16, max: 400 }),
        maxIndexBytes: fc.integer({ min: 8, max: 160 }),
        fsync: fc.constantFrom('always' as const, 'never' as const),
      }),
      fc.commands(commands, { maxCommands: 25 }),
      async (options, cmds) => {
        const dir = await mkdtemp(join(tmpdir(), 'commitlog-prop-'));
        const real: Real = { log: await Log.open(dir, options), dir, options };
        try {
          await fc.asyncModelRun(() => ({ model: { lowest: 0n, values: [] }, real }), cmds);
        } finally {
          await real.log.close();
          await rm(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 60 },
  );
});

// The commit-gated log against a model with three bounds: lowest <= committed <= durable.
interface GatedModel {
  lowest: bigint;
  committed: bigint;
  values: Buffer[]; // values[i] is the record at lowest + i; the durable end follows
}
type GatedCmd = fc.AsyncCommand<GatedModel, Real>;

const end = (m: GatedModel): bigint => m.lowest + BigInt(m.values.length);

async function gatedAgree(m: GatedModel, r: Real): Promise<void> {
  assert.equal(r.log.lowestOffset, m.lowest);
  assert.equal(r.log.committedEnd, m.committed);
  assert.equal(r.log.nextOffset, end(m));
  for (const uncommitted of [false, true]) {
    const stop = uncommitted ? end(m) : m.committed;
    let next = m.lowest;
    while (next < stop) {
      const batch = await r.log.readBatch(next, { maxRecords: 5, uncommitted });
      for (const rec of batch) {
        assert.equal(rec.offset, next);
        assert.deepEqual(rec.value, m.values[Number(next - m.lowest)]);
        next++;
      }
    }
    assert.equal(next, stop);
    await assert.rejects(r.log.readBatch(next, { uncommitted }), OffsetOutOfRangeError);
  }
  const snap = r.log.snapshot();
  assert.equal(snap.highestOffset, m.committed - 1n);
  snap.release();
}

class GatedAppend implements GatedCmd {
  constructor(
    readonly values: Buffer[],
    readonly conflict: boolean,
  ) {}
  check = (): boolean => true;
  async run(m: GatedModel, r: Real): Promise<void> {
    const expectFirst = end(m) + (this.conflict ? 1n : 0n);
    const result = r.log.appendBatch(this.values, { expectFirst });
    if (this.conflict) {
      await assert.rejects(result, OffsetConflictError);
    } else {
      assert.equal(await result, expectFirst);
      m.values.push(...this.values);
    }
    await gatedAgree(m, r);
  }
  toString = (): string => `append(${this.values.length}${this.conflict ? ', conflict' : ''})`;
}

class Commit implements GatedCmd {
  constructor(readonly fraction: number) {}
  check = (): boolean => true;
  async run(m: GatedModel, r: Real): Promise<void> {
    const to = m.lowest + BigInt(Math.floor(m.values.length * this.fraction));
    r.log.commit(to);
    if (to > m.committed) m.committed = to;
    assert.throws(() => r.log.commit(end(m) + 1n), CommitOutOfRangeError);
    await gatedAgree(m, r);
  }
  toString = (): string => `commit(${this.fraction.toFixed(2)})`;
}

class GatedTruncateSuffix implements GatedCmd {
  constructor(readonly fraction: number) {}
  check = (): boolean => true;
  async run(m: GatedModel, r: Real): Promise<void> {
    const from = m.lowest + BigInt(Math.floor(m.values.length * this.fraction));
    if (from < m.committed) {
      await assert.rejects(r.log.truncateSuffix(from), CommittedRecordsError);
    } else {
      await r.log.truncateSuffix(from);
      m.values.length = Number(from - m.lowest);
    }
    await gatedAgree(m, r);
  }
  toString = (): string => `truncateSuffix(${this.fraction.toFixed(2)})`;
}

class GatedResetTo implements GatedCmd {
  constructor(readonly shift: number) {}
  check = (): boolean => true;
  async run(m: GatedModel, r: Real): Promise<void> {
    const base = m.lowest + BigInt(Math.floor((m.values.length + 5) * this.shift));
    if (base < m.committed) {
      await assert.rejects(r.log.resetTo(base), CommittedRecordsError);
    } else {
      await r.log.resetTo(base);
      m.lowest = base;
      m.committed = base;
      m.values = [];
    }
    await gatedAgree(m, r);
  }
  toString = (): string => `resetTo(${this.shift.toFixed(2)})`;
}

class GatedReopen implements GatedCmd {
  check = (): boolean => true;
  async run(m: GatedModel, r: Real): Promise<void> {
    await r.log.close();
    r.log = await Log.open(r.dir, r.options);
    m.committed = m.lowest; // the commit point is the owner's to restore
    await gatedAgree(m, r);
  }
  toString = (): string => 'reopen';
}

const fraction = fc.double({ min: 0, max: 1, noNaN: true });
const gatedCommands = [
  fc
    .tuple(fc.array(payload, { minLength: 0, maxLength: 12 }), fc.boolean())
    .map(([vs, conflict]) => new GatedAppend(vs, conflict)),
  fraction.map((f) => new Commit(f)),
  fraction.map((f) => new GatedTruncateSuffix(f)),
  fraction.map((f) => new GatedResetTo(f)),
  fc.constant(new GatedReopen()),
];

it('the commit-gated log keeps lowest <= committed <= durable under random operations', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        maxStoreBytes: fc.integer({ min: 16, max: 400 }),
        fsync: fc.constantFrom('always' as const, 'never' as const),
        commitGated: fc.constant(true),
      }),
      fc.commands(gatedCommands, { maxCommands: 25 }),
      async (options, cmds) => {
        const dir = await mkdtemp(join(tmpdir(), 'commitlog-prop-gated-'));
        const real: Real = { log: await Log.open(dir, options), dir, options };
        try {
          await fc.asyncModelRun(
            () => ({ model: { lowest: 0n, committed: 0n, values: [] }, real }),
            cmds,
          );
        } finally {
          await real.log.close();
          await rm(dir, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 40 },
  );
});
