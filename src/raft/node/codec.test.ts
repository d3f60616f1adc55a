import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ConfState, Entry, SnapshotMeta } from '../core/index.js';
import { CODEC_VERSION, RaftCodecError, decodeMessage, encodeMessage } from './codec.js';
import type { WireMessage } from './messages.js';

const uint = fc.oneof(fc.nat(1000), fc.maxSafeNat());
const id = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== '__proto__');
const bytes = fc.uint8Array({ maxLength: 64 });
const entry: fc.Arbitrary<Entry> = fc.record({
  index: uint,
  term: uint,
  type: fc.constantFrom('normal' as const, 'noop' as const, 'config' as const),
  data: bytes,
});
// Ids are unique across voters and learners, as in any valid configuration.
const conf: fc.Arbitrary<ConfState> = fc
  .tuple(fc.uniqueArray(id, { maxLength: 8 }), fc.nat(8))
  .chain(([ids, cut]) =>
    fc.record({
      voters: fc.constant(ids.slice(0, cut)),
      learners: fc.constant(ids.slice(cut)),
      addresses: fc.dictionary(id, fc.string({ maxLength: 20 }), { maxKeys: 4 }),
    }),
  );
const meta: fc.Arbitrary<SnapshotMeta> = fc.record({
  lastIndex: uint,
  lastTerm: uint,
  config: conf,
});
const env = { from: id, to: id, term: uint };

const message: fc.Arbitrary<WireMessage> = fc.oneof(
  fc.record({
    type: fc.constant('vote' as const),
    ...env,
    pre: fc.boolean(),
    lastIndex: uint,
    lastTerm: uint,
    force: fc.boolean(),
  }),
  fc.record({
    type: fc.constant('voteResp' as const),
    ...env,
    pre: fc.boolean(),
    reject: fc.boolean(),
  }),
  fc.record({
    type: fc.constant('append' as const),
    ...env,
    prevIndex: uint,
    prevTerm: uint,
    entries: fc.array(entry, { maxLength: 5 }),
    commit: uint,
  }),
  fc.record({
    type: fc.constant('appendResp' as const),
    ...env,
    index: uint,
    reject: fc.boolean(),
    hintIndex: uint,
    hintTerm: uint,
  }),
  fc.record({ type: fc.constant('heartbeat' as const), ...env, commit: uint, context: uint }),
  fc.record({ type: fc.constant('heartbeatResp' as const), ...env, context: uint }),
  fc.record({ type: fc.constant('timeoutNow' as const), ...env }),
  fc.record({
    type: fc.constant('snapshotChunk' as const),
    ...env,
    meta,
    offset: uint,
    data: bytes,
    done: fc.boolean(),
  }),
  fc.record({
    type: fc.constant('snapshotAck' as const),
    ...env,
    lastIndex: uint,
    offset: uint,
    done: fc.boolean(),
  }),
);

describe('raft message codec', () => {
  it('round-trips every message', () => {
    fc.assert(
      fc.property(message, (m) => {
        // structuredClone: fast-check builds null-prototype objects.
        assert.deepEqual(decodeMessage(encodeMessage(m)), structuredClone(m));
      }),
      { numRuns: 2000, seed: 20261122 },
    );
  });

  it('rejects truncated or padded input with RaftCodecError, never anything else', () => {
    fc.assert(
      fc.property(message, fc.nat(), (m, cut) => {
        const buf = encodeMessage(m);
        const short = buf.subarray(0, cut % buf.length);
        assert.throws(() => decodeMessage(short), RaftCodecError);
        const long = new Uint8Array(buf.length + 1);
        long.set(buf);
        assert.throws(() => decodeMessage(long), RaftCodecError);
      }),
      { numRuns: 500, seed: 7 },
    );
  });

  it('refuses an unknown version and numbers beyond 2^53 - 1', () => {
    const buf = encodeMessage({ type: 'timeoutNow', from: 'a', to: 'b', term: 1 });
    const other = buf.slice();
    other[0] = CODEC_VERSION + 1;
    assert.throws(() => decodeMessage(other), /unknown message version/);
    assert.throws(
      () => encodeMessage({ type: 'timeoutNow', from: 'a', to: 'b', term: 2 ** 53 }),
      RaftCodecError,
    );
    assert.throws(
      () => encodeMessage({ type: 'timeoutNow', from: 'a', to: 'b', term: -1 }),
      RaftCodecError,
    );
    // term = 2^53 encoded by hand: eight varint bytes.
    const big = [1, 6, 1, 97, 1, 98, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
    assert.throws(() => decodeMessage(Uint8Array.from(big)), RaftCodecError);
  });

  it('refuses empty node ids on both sides', () => {
    assert.throws(
      () => encodeMessage({ type: 'timeoutNow', from: '', to: 'b', term: 1 }),
      RaftCodecError,
    );
    // from = '' written by hand: version, type timeoutNow (6), from "", to "b", term 1.
    const forged = Uint8Array.from([CODEC_VERSION, 6, 0, 1, 98, 1]);
    assert.throws(() => decodeMessage(forged), /empty node id/);
    const ok = Uint8Array.from([CODEC_VERSION, 6, 1, 97, 1, 98, 1]);
    assert.equal(decodeMessage(ok).from, 'a');
  });

  it('is compact: an append of 100 small entries costs little beyond the data', () => {
    const entries: Entry[] = Array.from({ length: 100 }, (_, k) => ({
      index: 1_000_000 + k,
      term: 7,
      type: 'normal',
      data: new Uint8Array(10),
    }));
    const buf = encodeMessage({
      type: 'append',
      from: 'n1',
      to: 'n2',
      term: 7,
      prevIndex: 999_999,
      prevTerm: 7,
      entries,
      commit: 999_999,
    });
    assert.ok(buf.length < 100 * (10 + 6) + 32, `${buf.length} bytes`);
  });
});
