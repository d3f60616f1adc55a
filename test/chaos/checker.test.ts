// The checker must be able to fail: each test starts from a valid history and breaks
// it in one way, and the verdict must name exactly that kind of violation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { check, formatVerdict, type ViolationKind } from './checker.js';
import type { ConsumeOp, History, ProduceOp, Replica, StoredRecord } from './history.js';

const v = (s: string) => Buffer.from(s);

/** Three producers, ten records, two consumers that read everything, three equal replicas. */
function validHistory(): History {
  const produces: ProduceOp[] = [];
  const log: StoredRecord[] = [];
  for (let i = 0; i < 10; i++) {
    const value = v(`p${i % 3}-${i}`);
    produces.push({
      kind: 'produce',
      process: `p${i % 3}`,
      api: (['unary', 'stream', 'batch'] as const)[i % 3]!,
      node: 'n0',
      invoke: i * 10,
      complete: i * 10 + 5,
      value,
      outcome: { type: 'ok', offset: BigInt(i) },
    });
    log.push({ offset: BigInt(i), value });
  }
  produces.push({
    kind: 'produce',
    process: 'p0',
    api: 'unary',
    node: 'n0',
    invoke: 200,
    complete: 300,
    value: v('p0-unknown'),
    outcome: { type: 'unknown', error: 'DEADLINE_EXCEEDED' },
  });
  produces.push({
    kind: 'produce',
    process: 'p1',
    api: 'unary',
    node: 'n0',
    invoke: 200,
    complete: 210,
    value: v('p1-failed'),
    outcome: { type: 'failed', error: 'INVALID_ARGUMENT' },
  });
  const consumes: ConsumeOp[] = [];
  for (const c of ['c0', 'c1']) {
    // c1 loses its stream after offset 4 and resumes from 5.
    for (const r of log) {
      if (c === 'c1' && r.offset === 5n) {
        consumes.push({
          kind: 'consume',
          process: c,
          node: 'n1',
          from: 0n,
          invoke: 0,
          complete: 60,
          value: new Uint8Array(),
          outcome: { type: 'unknown', error: 'UNAVAILABLE' },
        });
      }
      consumes.push({
        kind: 'consume',
        process: c,
        node: 'n1',
        from: c === 'c1' && r.offset >= 5n ? 5n : 0n,
        invoke: 0,
        complete: Number(r.offset) * 10 + 6,
        value: r.value,
        outcome: { type: 'ok', offset: r.offset },
      });
    }
  }
  const replicas: Replica[] = ['n0', 'n1', 'n2'].map((node) => ({
    node,
    records: log.map((r) => ({ ...r })),
  }));
  return {
    operations: [...produces, ...consumes],
    replicas,
    recovery: { faultsStoppedAt: 1000, recoveredAt: 1500, boundMs: 10_000 },
  };
}

function kinds(h: History): ViolationKind[] {
  return Object.keys(check(h).counts).sort() as ViolationKind[];
}

function replica(h: History, node: string): Replica {
  return h.replicas.find((r) => r.node === node)!;
}

describe('chaos checker', () => {
  it('accepts a valid history (with unknown and failed produces, a resumed consumer)', () => {
    const verdict = check(validHistory());
    assert.equal(verdict.valid, true, formatVerdict(verdict));
    assert.equal(verdict.lost, 0);
    assert.equal(verdict.stats.acknowledged, 10);
    assert.equal(verdict.stats.unknown, 1);
    assert.equal(verdict.stats.consumed, 20);
    assert.match(verdict.summary, /: valid$/);
  });

  it('accepts an unknown produce that did take effect, once', () => {
    const h = validHistory();
    for (const r of h.replicas) r.records.push({ offset: 10n, value: v('p0-unknown') });
    const verdict = check(h);
    assert.equal(verdict.valid, true, formatVerdict(verdict));
    assert.equal(verdict.stats.unknownPresent, 1);
  });

  it('finds a lost write on every replica', () => {
    const h = validHistory();
    for (const r of h.replicas) r.records.pop(); // offset 9 acknowledged, gone
    for (const op of h.operations)
      if (op.kind === 'consume' && op.outcome.type === 'ok' && op.outcome.offset === 9n)
        op.outcome = { type: 'unknown', error: 'x' };
    const verdict = check(h);
    assert.deepEqual(kinds(h), ['lost']);
    assert.equal(verdict.lost, 1);
    assert.match(formatVerdict(verdict), /p0-9/);
  });

  it('finds a write lost on one replica only (and the divergence it makes)', () => {
    const h = validHistory();
    replica(h, 'n2').records.pop();
    assert.deepEqual(kinds(h), ['divergent', 'lost', 'vanished']);
    assert.equal(check(h).lost, 1);
  });

  it('finds a duplicated record', () => {
    const h = validHistory();
    for (const r of h.replicas) r.records.push({ offset: 10n, value: v('p1-4') });
    assert.deepEqual(kinds(h), ['duplicate']);
  });

  it('finds an unknown produce applied twice', () => {
    const h = validHistory();
    for (const r of h.replicas) {
      r.records.push(
        { offset: 10n, value: v('p0-unknown') },
        { offset: 11n, value: v('p0-unknown') },
      );
    }
    assert.deepEqual(kinds(h), ['duplicate']);
  });

  it('finds a record whose produce failed', () => {
    const h = validHistory();
    for (const r of h.replicas) r.records.push({ offset: 10n, value: v('p1-failed') });
    assert.deepEqual(kinds(h), ['phantom']);
  });

  it('finds a record no one produced', () => {
    const h = validHistory();
    for (const r of h.replicas) r.records.push({ offset: 10n, value: v('from-nowhere') });
    assert.deepEqual(kinds(h), ['phantom']);
  });

  it('finds a changed record (bytes differ everywhere from what was acknowledged and read)', () => {
    const h = validHistory();
    for (const r of h.replicas) r.records[3] = { offset: 3n, value: v('p0-3-CHANGED') };
    // the acknowledged value is gone (lost), an unknown value sits there (phantom), and
    // both consumers read bytes that the log no longer holds (changed).
    assert.deepEqual(kinds(h), ['changed', 'lost', 'phantom']);
  });

  it('finds a record acknowledged at one offset but stored at another', () => {
    const h = validHistory();
    for (const r of h.replicas) {
      const a = r.records[2]!.value;
      r.records[2] = { offset: 2n, value: r.records[7]!.value };
      r.records[7] = { offset: 7n, value: a };
    }
    assert.ok(kinds(h).includes('moved'));
    assert.ok(kinds(h).includes('changed'));
    assert.equal(check(h).lost, 2);
  });

  it('finds a stale read: a consumer saw a record that later vanished', () => {
    const h = validHistory();
    h.operations.push({
      kind: 'consume',
      process: 'c0',
      node: 'n2',
      from: 0n,
      invoke: 0,
      complete: 500,
      value: v('p2-uncommitted'),
      outcome: { type: 'ok', offset: 10n },
    });
    h.operations.push({
      kind: 'produce',
      process: 'p2',
      api: 'unary',
      node: 'n2',
      invoke: 400,
      complete: 600,
      value: v('p2-uncommitted'),
      outcome: { type: 'unknown', error: 'UNAVAILABLE' },
    });
    assert.deepEqual(kinds(h), ['vanished']);
  });

  it('finds a consumer gap and a consumer repeat', () => {
    const gap = validHistory();
    gap.operations = gap.operations.filter(
      (o) =>
        !(
          o.kind === 'consume' &&
          o.process === 'c0' &&
          o.outcome.type === 'ok' &&
          o.outcome.offset === 4n
        ),
    );
    assert.deepEqual(kinds(gap), ['gap']);

    const repeat = validHistory();
    const again = repeat.operations.find(
      (o): o is ConsumeOp =>
        o.kind === 'consume' &&
        o.process === 'c1' &&
        o.outcome.type === 'ok' &&
        o.outcome.offset === 4n,
    )!;
    const at = repeat.operations.lastIndexOf(again);
    repeat.operations.splice(at + 2, 0, { ...again, from: 4n });
    assert.deepEqual(kinds(repeat), ['repeat']);
  });

  it('finds replica divergence in bytes', () => {
    const h = validHistory();
    replica(h, 'n1').records[6] = { offset: 6n, value: v('p0-6x') };
    const verdict = check(h);
    assert.ok(kinds(h).includes('divergent'), formatVerdict(verdict));
    assert.match(formatVerdict(verdict), /n0 and n1 differ at record 6/);
  });

  it('finds offsets that are not dense', () => {
    const h = validHistory();
    for (const r of h.replicas) r.records[5] = { ...r.records[5]!, offset: 50n };
    assert.ok(kinds(h).includes('sparse'));
  });

  it('finds two acknowledgements of one offset', () => {
    const h = validHistory();
    const op = h.operations[4]!;
    assert.equal(op.kind, 'produce');
    op.outcome = { type: 'ok', offset: 3n };
    assert.ok(kinds(h).includes('conflict'));
  });

  it('finds an order that contradicts real time', () => {
    const h = validHistory();
    // offset 8 said to complete before the produce given offset 2 began
    const op8 = h.operations[8]!;
    op8.invoke = 0;
    op8.complete = 1;
    assert.deepEqual(kinds(h), ['realtime']);
  });

  it('finds a slow or missing recovery', () => {
    const slow = validHistory();
    slow.recovery = { faultsStoppedAt: 0, recoveredAt: 20_000, boundMs: 10_000 };
    assert.deepEqual(kinds(slow), ['recovery']);
    const never = validHistory();
    never.recovery = { faultsStoppedAt: 0, boundMs: 10_000 };
    assert.deepEqual(kinds(never), ['recovery']);
  });

  it('keeps a bounded number of violations per kind but counts them all', () => {
    const h = validHistory();
    for (const r of h.replicas) r.records = [];
    for (const op of h.operations)
      if (op.kind === 'consume') op.outcome = { type: 'unknown', error: 'x' };
    const verdict = check(h, { maxPerKind: 2 });
    assert.equal(verdict.counts.lost, 30);
    assert.equal(verdict.violations.length, 2);
    assert.equal(verdict.lost, 10);
    assert.match(formatVerdict(verdict), /… and 28 more/);
  });
});
