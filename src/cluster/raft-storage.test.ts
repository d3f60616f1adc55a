import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { encodeConfState, type Entry, type EntryType } from '../raft/index.js';

import { encodeProposal } from './entry-codec.js';
import { RaftStorage } from './raft-storage.js';
import { BodyWriter, writeStateFile } from './state-file.js';

async function dir(t: TestContext): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'raft-storage-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

function open(d: string): Promise<RaftStorage> {
  return RaftStorage.open({ dir: d, fsync: 'never', maxRecordBytes: 1024, maxStoreBytes: 512 });
}

function entries(from: number, to: number, term: number, type: EntryType = 'normal'): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, k) => ({
    index: from + k,
    term,
    type,
    data: type === 'normal' ? encodeProposal(Buffer.from(`e${from + k}`)) : new Uint8Array(),
  }));
}

/** Writes a `base` file as an install that crashed right after it would leave it. */
async function writeBase(
  d: string,
  lastIndex: number,
  lastTerm: number,
  baseOffset: bigint,
): Promise<void> {
  const body = new BodyWriter()
    .u64(lastIndex)
    .u64(lastTerm)
    .bytes(encodeConfState({ voters: ['a'], learners: [], addresses: {} }))
    .u64(baseOffset)
    .bytes(new BodyWriter().u64(baseOffset).done())
    .done();
  await writeStateFile(join(d, 'base'), 'CLBS', 2, body, { sync: false });
}

test('entries, terms and offsets survive a reopen; a cut suffix stays cut', async (t) => {
  const d = await dir(t);
  let s = await open(d);
  await s.append(entries(1, 1, 1, 'noop'));
  await s.append(entries(2, 40, 1));
  await s.append(entries(41, 41, 2, 'noop'));
  await s.append(entries(42, 60, 2));
  await s.truncateSuffix(55);
  await s.append(entries(55, 58, 3));
  await s.close();
  s = await open(d);
  const stored = await s.load();
  assert.equal(stored.lastIndex, 58);
  assert.deepEqual(stored.termRuns, [
    [1, 1],
    [41, 2],
    [55, 3],
  ]);
  const got = await s.entries(50, 59);
  assert.deepEqual(
    got.map((e) => [e.index, e.term]),
    [50, 51, 52, 53, 54, 55, 56, 57, 58].map((i) => [i, i >= 55 ? 3 : 2]),
  );
  assert.equal(s.translator.offsetOf(2), 0n);
  assert.equal(s.translator.offsetOf(42), 39n);
  assert.equal(s.translator.indexOf(39n), 42);
  await s.close();
});

test('a damaged translator checkpoint is rebuilt from the log', async (t) => {
  const d = await dir(t);
  let s = await open(d);
  await s.append(entries(1, 1, 1, 'noop'));
  await s.append(entries(2, 30, 1));
  await s.checkpoint(30);
  await s.close();
  await writeFile(join(d, 'translator'), 'garbage');
  s = await open(d);
  assert.equal(s.translator.offsetOf(30), 28n);
  assert.equal(s.translator.lastIndex, 30);
  await s.close();
});

test('an install that crashed after writing its base resets the log at start-up', async (t) => {
  const d = await dir(t);
  let s = await open(d);
  await s.append(entries(1, 10, 1));
  await s.close();
  // Crash: the base says the log starts after 20, the old log still ends at 10.
  await writeBase(d, 20, 3, 17n);
  s = await open(d);
  const stored = await s.load();
  assert.equal(stored.snapshot.lastIndex, 20);
  assert.equal(stored.lastIndex, 20);
  assert.equal(s.translator.baseOffset, 17n);
  await s.append(entries(21, 22, 3));
  assert.equal(s.translator.offsetOf(22), 18n);
  await s.close();
});

test('a base that conflicts with the stored entry at its index resets the log; a matching one keeps the rest', async (t) => {
  const conflicting = await dir(t);
  let s = await open(conflicting);
  await s.append(entries(1, 10, 1));
  await s.close();
  await writeBase(conflicting, 5, 9, 5n);
  s = await open(conflicting);
  assert.equal((await s.load()).lastIndex, 5);
  await s.close();

  const matching = await dir(t);
  s = await open(matching);
  await s.append(entries(1, 10, 1));
  await s.close();
  await writeBase(matching, 5, 1, 5n);
  s = await open(matching);
  const stored = await s.load();
  assert.equal(stored.lastIndex, 10);
  assert.deepEqual(
    (await s.entries(6, 11)).map((e) => e.index),
    [6, 7, 8, 9, 10],
  );
  assert.equal(s.translator.offsetOf(6), 5n);
  await s.close();
});

test('term and vote are written durably; a commit-only change is not written', async (t) => {
  const d = await dir(t);
  let s = await open(d);
  await s.hardStates.save({ term: 2, vote: 'a', commit: 0 });
  await s.hardStates.save({ term: 2, vote: 'a', commit: 7 });
  // Read beside it, without closing (closing writes the latest state): the second save
  // must not have touched the file.
  const first = s;
  s = await open(d);
  assert.deepEqual(await s.hardStates.load(), { term: 2, vote: 'a', commit: 0 });
  await first.log.close();
  await s.hardStates.save({ term: 3, vote: '', commit: 9 });
  await s.close();
  s = await open(d);
  assert.deepEqual(await s.hardStates.load(), { term: 3, vote: '', commit: 9 });
  await s.close();
});
