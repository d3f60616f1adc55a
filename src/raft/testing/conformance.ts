// A conformance suite for the storage ports, shared by every implementation: the
// in-memory ones here and the cluster's adapter over the storage engine. Each check
// runs on a fresh fixture; "crash" closes the open instance without a goodbye and
// reopens from the same backing state, which must then hold everything written
// durably (and, for the log, everything written at all: log writes are synced).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodeConfState,
  type ConfState,
  type Entry,
  type HardState,
  type SnapshotMeta,
} from '../core/index.js';
import type { HardStateStorage, LogStorage, StoredLog } from '../node/ports.js';

/** One backing state (a directory, a memory object) and a way to open it. */
export interface StorageFixture<T> {
  /** Opens the storage over this fixture's backing state. */
  open(): Promise<T>;
  /**
   * Simulates a crash of an open instance: afterwards open() sees only what a real
   * crash would leave. Default: the instance is simply abandoned.
   */
  crash?(storage: T): Promise<void>;
  /** Releases the backing state (temporary directories). */
  dispose?(): Promise<void>;
}

export interface LogConformanceOptions {
  /** The storage keeps the blob of installSnapshot(meta, blob) and returns it from load(). */
  readonly snapshotData?: boolean;
}

type Make<T> = () => StorageFixture<T> | Promise<StorageFixture<T>>;

const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [], addresses: { a: 'h:1' } };
const CONF2: ConfState = { voters: ['a', 'b'], learners: ['d'], addresses: { d: 'h:4' } };

function entry(index: number, term: number, type: Entry['type'] = 'normal'): Entry {
  if (type === 'config') return { index, term, type, data: encodeConfState(CONF2) };
  const data = new Uint8Array(8 + (index % 5));
  new DataView(data.buffer).setUint32(0, index);
  new DataView(data.buffer).setUint32(4, term);
  return { index, term, type, data };
}

function range(lo: number, hi: number, term: number | ((i: number) => number)): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i < hi; i++) out.push(entry(i, typeof term === 'number' ? term : term(i)));
  return out;
}

function plain(es: readonly Entry[]): unknown[] {
  return es.map((e) => ({ index: e.index, term: e.term, type: e.type, data: [...e.data] }));
}

/** What a log must report: the expected model of its state. */
interface Model {
  snapshot: SnapshotMeta;
  entries: Entry[];
}

const ZERO: SnapshotMeta = {
  lastIndex: 0,
  lastTerm: 0,
  config: { voters: [], learners: [], addresses: {} },
};

function termRuns(es: readonly Entry[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const e of es) {
    if (runs.length === 0 || runs[runs.length - 1]![1] !== e.term) runs.push([e.index, e.term]);
  }
  return runs;
}

/** The storage's state equals the model (a compaction may have kept more: `atMost`). */
async function expectState(s: LogStorage, model: Model, what: string): Promise<StoredLog> {
  const stored = await s.load();
  const last =
    model.entries.length > 0
      ? model.entries[model.entries.length - 1]!.index
      : model.snapshot.lastIndex;
  assert.equal(stored.lastIndex, last, `${what}: lastIndex`);
  assert.ok(
    stored.snapshot.lastIndex <= model.snapshot.lastIndex,
    `${what}: compacted to ${stored.snapshot.lastIndex}, asked ${model.snapshot.lastIndex}`,
  );
  const kept = model.entries.filter((e) => e.index > stored.snapshot.lastIndex);
  if (stored.snapshot.lastIndex === model.snapshot.lastIndex) {
    assert.deepEqual(stored.snapshot, model.snapshot, `${what}: snapshot`);
  }
  assert.deepEqual(stored.termRuns, termRuns(kept), `${what}: term runs`);
  assert.deepEqual(
    stored.configs.map((c) => c.index),
    kept.filter((e) => e.type === 'config').map((e) => e.index),
    `${what}: configuration entries`,
  );
  for (const c of stored.configs)
    assert.deepEqual(c.config, CONF2, `${what}: config at ${c.index}`);
  if (kept.length > 0) {
    const got = await s.entries(kept[0]!.index, last + 1);
    assert.deepEqual(plain(got), plain(kept), `${what}: entries`);
  }
  return stored;
}

/**
 * Checks a LogStorage: append, ranged and byte-bounded reads, truncateSuffix,
 * compactPrefix, installSnapshot, and a reload after a crash following every step.
 */
export function runLogStorageConformance(
  name: string,
  make: Make<LogStorage>,
  options: LogConformanceOptions = {},
): void {
  async function withFixture(fn: (fx: StorageFixture<LogStorage>) => Promise<void>): Promise<void> {
    const fx = await make();
    try {
      await fn(fx);
    } finally {
      await fx.dispose?.();
    }
  }

  async function reopen(fx: StorageFixture<LogStorage>, s: LogStorage): Promise<LogStorage> {
    await fx.crash?.(s);
    return fx.open();
  }

  void describe(`LogStorage conformance: ${name}`, () => {
    void it('starts empty', () =>
      withFixture(async (fx) => {
        const s = await fx.open();
        const stored = await s.load();
        assert.equal(stored.lastIndex, 0);
        assert.equal(stored.snapshot.lastIndex, 0);
        assert.deepEqual(stored.termRuns, []);
        assert.deepEqual(stored.configs, []);
      }));

    void it('appends and reads back any range, bounded by maxBytes', () =>
      withFixture(async (fx) => {
        const s = await fx.open();
        const es = range(1, 21, (i) => (i <= 10 ? 1 : 2));
        await s.append(es.slice(0, 7), { sync: true });
        await s.append(es.slice(7), { sync: true });
        await expectState(s, { snapshot: ZERO, entries: es }, 'after two appends');
        assert.deepEqual(plain(await s.entries(5, 9)), plain(es.slice(4, 8)));
        assert.deepEqual(plain(await s.entries(20, 21)), plain(es.slice(19)));
        assert.deepEqual(await s.entries(7, 7), []);
        const bounded = await s.entries(1, 21, { maxBytes: 30 });
        assert.ok(bounded.length >= 1 && bounded.length < 20, `${bounded.length} entries`);
        assert.deepEqual(plain(bounded), plain(es.slice(0, bounded.length)));
        let bytes = 0;
        for (const e of bounded.slice(0, -1)) bytes += e.data.byteLength;
        assert.ok(bytes <= 30, 'stops once over the bound');
        const one = await s.entries(3, 21, { maxBytes: 1 });
        assert.deepEqual(plain(one), plain(es.slice(2, 3)), 'at least one entry');
      }));

    void it('refuses an append that leaves a gap, and reads outside the log', () =>
      withFixture(async (fx) => {
        const s = await fx.open();
        await s.append(range(1, 4, 1), { sync: true });
        await assert.rejects(s.append(range(6, 7, 1), { sync: true }));
        await assert.rejects(s.entries(2, 6));
        await assert.rejects(s.entries(0, 2));
      }));

    void it('reports configuration entries and term runs', () =>
      withFixture(async (fx) => {
        const s = await fx.open();
        const es = [
          entry(1, 1),
          entry(2, 1, 'config'),
          entry(3, 2, 'noop'),
          entry(4, 2),
          entry(5, 4),
        ];
        await s.append(es, { sync: true });
        const stored = await expectState(s, { snapshot: ZERO, entries: es }, 'mixed entries');
        assert.deepEqual(stored.termRuns, [
          [1, 1],
          [3, 2],
          [5, 4],
        ]);
      }));

    void it('truncates a suffix and continues with new terms', () =>
      withFixture(async (fx) => {
        const s = await fx.open();
        await s.append(range(1, 11, 1), { sync: true });
        await s.truncateSuffix(6);
        const next = range(6, 9, 3);
        await s.append(next, { sync: true });
        await expectState(
          s,
          { snapshot: ZERO, entries: [...range(1, 6, 1), ...next] },
          'truncated',
        );
        await s.truncateSuffix(20); // beyond the end: nothing to drop
        await expectState(s, { snapshot: ZERO, entries: [...range(1, 6, 1), ...next] }, 'no-op');
      }));

    void it('compacts a prefix (possibly keeping more) and keeps everything above it', () =>
      withFixture(async (fx) => {
        const s = await fx.open();
        const es = range(1, 31, (i) => (i < 15 ? 1 : 2));
        await s.append(es, { sync: true });
        const meta: SnapshotMeta = { lastIndex: 20, lastTerm: 2, config: CONF };
        await s.compactPrefix(meta);
        const stored = await expectState(s, { snapshot: meta, entries: es.slice(20) }, 'compacted');
        assert.deepEqual(plain(await s.entries(21, 31)), plain(es.slice(20)));
        await assert.rejects(s.entries(stored.snapshot.lastIndex, 31), 'the compacted index');
        await s.append(range(31, 33, 2), { sync: true });
        assert.equal((await s.load()).lastIndex, 32);
      }));

    void it('installs a snapshot as one step: empty log continuing after it', () =>
      withFixture(async (fx) => {
        const s = await fx.open();
        await s.append(range(1, 11, 1), { sync: true });
        const meta: SnapshotMeta = { lastIndex: 50, lastTerm: 3, config: CONF2 };
        const blob = Uint8Array.from([1, 2, 3]);
        await s.installSnapshot(meta, blob);
        const stored = await expectState(s, { snapshot: meta, entries: [] }, 'installed');
        assert.deepEqual(stored.snapshot, meta, 'exactly the installed snapshot');
        if (options.snapshotData) {
          assert.deepEqual([...(stored.snapshotData ?? [])], [1, 2, 3]);
        }
        await assert.rejects(s.append(range(5, 6, 3), { sync: true }));
        await s.append(range(51, 54, 3), { sync: true });
        await expectState(
          s,
          { snapshot: meta, entries: range(51, 54, 3) },
          'appended after install',
        );
        // Installing behind the log (a follower's old snapshot) also empties it.
        const older: SnapshotMeta = { lastIndex: 52, lastTerm: 3, config: CONF2 };
        await s.installSnapshot(older);
        await expectState(s, { snapshot: older, entries: [] }, 'reinstalled');
      }));

    void it('keeps a configuration installed at index 0 (a bootstrap) across a crash', () =>
      withFixture(async (fx) => {
        // RaftNode records a new cluster's founding configuration this way, on empty
        // storage, before anything else is written.
        let s = await fx.open();
        const meta: SnapshotMeta = { lastIndex: 0, lastTerm: 0, config: CONF };
        await s.installSnapshot(meta);
        s = await reopen(fx, s);
        const stored = await expectState(s, { snapshot: meta, entries: [] }, 'bootstrapped');
        assert.deepEqual(stored.snapshot, meta, 'the configuration at index 0');
        await s.append(range(1, 4, 1), { sync: true });
        s = await reopen(fx, s);
        await expectState(s, { snapshot: meta, entries: range(1, 4, 1) }, 'appended after it');
      }));

    void it('reloads the same state after a crash following every step', () =>
      withFixture(async (fx) => {
        let s = await fx.open();
        const model: Model = { snapshot: ZERO, entries: [] };
        const steps: [string, () => Promise<void>][] = [
          [
            'append 1-5',
            async () => {
              const es = [
                entry(1, 1),
                entry(2, 1),
                entry(3, 1, 'config'),
                entry(4, 2),
                entry(5, 2),
              ];
              await s.append(es, { sync: true });
              model.entries.push(...es);
            },
          ],
          [
            'append 6-12',
            async () => {
              const es = range(6, 13, 2);
              await s.append(es, { sync: true });
              model.entries.push(...es);
            },
          ],
          [
            'truncate from 9, append 9-10 of term 3',
            async () => {
              await s.truncateSuffix(9);
              const es = range(9, 11, 3);
              await s.append(es, { sync: true });
              model.entries = [...model.entries.slice(0, 8), ...es];
            },
          ],
          [
            'compact to 4',
            async () => {
              const meta = { lastIndex: 4, lastTerm: 2, config: CONF2 };
              await s.compactPrefix(meta);
              model.snapshot = meta;
              model.entries = model.entries.filter((e) => e.index > 4);
            },
          ],
          [
            'install at 40',
            async () => {
              const meta = { lastIndex: 40, lastTerm: 5, config: CONF };
              await s.installSnapshot(meta, Uint8Array.from([9]));
              model.snapshot = meta;
              model.entries = [];
            },
          ],
          [
            'append 41-43',
            async () => {
              const es = range(41, 44, 5);
              await s.append(es, { sync: true });
              model.entries.push(...es);
            },
          ],
        ];
        for (const [what, step] of steps) {
          await step();
          await expectState(s, model, what);
          s = await reopen(fx, s);
          await expectState(s, model, `${what}, then a crash`);
        }
      }));
  });
}

export interface HardStateConformanceOptions {
  /**
   * The fixture's crash() really loses unsynced saves (a model of the page cache).
   * Without it, unsynced saves may survive or not; both are checked as allowed.
   */
  readonly losesUnsynced?: boolean;
}

/** Checks a HardStateStorage: atomic saves, sync semantics, reload after a crash. */
export function runHardStateConformance(
  name: string,
  make: Make<HardStateStorage>,
  options: HardStateConformanceOptions = {},
): void {
  async function withFixture(
    fn: (fx: StorageFixture<HardStateStorage>) => Promise<void>,
  ): Promise<void> {
    const fx = await make();
    try {
      await fn(fx);
    } finally {
      await fx.dispose?.();
    }
  }

  void describe(`HardStateStorage conformance: ${name}`, () => {
    void it('starts empty, and saves term, vote and commit together', () =>
      withFixture(async (fx) => {
        const s = await fx.open();
        assert.equal(await s.load(), undefined);
        const hs: HardState = { term: 3, vote: 'b', commit: 17 };
        await s.save(hs, { sync: true });
        assert.deepEqual(await s.load(), hs);
        await s.save({ term: 4, vote: '', commit: 18 }, { sync: true });
        assert.deepEqual(await s.load(), { term: 4, vote: '', commit: 18 });
      }));

    void it('keeps a synced save across a crash (no options means synced)', () =>
      withFixture(async (fx) => {
        let s = await fx.open();
        await s.save({ term: 2, vote: 'a', commit: 5 }, { sync: true });
        await fx.crash?.(s);
        s = await fx.open();
        assert.deepEqual(await s.load(), { term: 2, vote: 'a', commit: 5 });
        await s.save({ term: 3, vote: 'c', commit: 6 });
        await fx.crash?.(s);
        s = await fx.open();
        assert.deepEqual(await s.load(), { term: 3, vote: 'c', commit: 6 });
      }));

    void it('an unsynced commit-only save survives a crash whole or not at all', () =>
      withFixture(async (fx) => {
        let s = await fx.open();
        const synced: HardState = { term: 5, vote: 'a', commit: 10 };
        await s.save(synced, { sync: true });
        const later: HardState = { term: 5, vote: 'a', commit: 12 };
        await s.save(later, { sync: false });
        assert.deepEqual(await s.load(), later, 'visible before a crash');
        await fx.crash?.(s);
        s = await fx.open();
        const got = await s.load();
        if (options.losesUnsynced) assert.deepEqual(got, synced);
        else
          assert.ok([synced.commit, later.commit].includes(got!.commit), `commit ${got?.commit}`);
        assert.equal(got!.term, 5);
        assert.equal(got!.vote, 'a');
      }));

    void it('a synced save after unsynced ones makes the latest durable', () =>
      withFixture(async (fx) => {
        let s = await fx.open();
        await s.save({ term: 1, vote: 'a', commit: 1 }, { sync: true });
        await s.save({ term: 1, vote: 'a', commit: 2 }, { sync: false });
        await s.save({ term: 2, vote: '', commit: 3 }, { sync: true });
        await fx.crash?.(s);
        s = await fx.open();
        assert.deepEqual(await s.load(), { term: 2, vote: '', commit: 3 });
      }));
  });
}
