import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CONF_ENCODING_VERSION,
  ConfEncodingError,
  decodeConfState,
  encodeConfState,
} from './conf.js';
import type { ConfState } from './types.js';

const conf: ConfState = {
  voters: ['n1', 'n2', 'nœud-3'],
  learners: ['n4'],
  addresses: { n1: 'h1:8400', n4: '[::1]:8400' },
};

/** Builds an encoding by hand: version, then the given parts (numbers are single bytes). */
function raw(...parts: (number | string)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else {
      const b = new TextEncoder().encode(p);
      out.push(b.length, ...b);
    }
  }
  return Uint8Array.from(out);
}

describe('configuration entry encoding', () => {
  it('round-trips, starting with its version byte', () => {
    const buf = encodeConfState(conf);
    assert.equal(buf[0], CONF_ENCODING_VERSION);
    assert.deepEqual(decodeConfState(buf), conf);
    const empty = { voters: [], learners: [], addresses: {} };
    assert.deepEqual(decodeConfState(encodeConfState(empty)), empty);
  });

  it('rejects every truncation and any trailing byte', () => {
    const buf = encodeConfState(conf);
    for (let n = 0; n < buf.length; n++) {
      assert.throws(() => decodeConfState(buf.subarray(0, n)), ConfEncodingError, `cut at ${n}`);
    }
    const long = new Uint8Array(buf.length + 1);
    long.set(buf);
    assert.throws(() => decodeConfState(long), /trailing/);
  });

  it('rejects other versions, including the old JSON form', () => {
    const buf = encodeConfState(conf).slice();
    buf[0] = CONF_ENCODING_VERSION + 1;
    assert.throws(() => decodeConfState(buf), /unknown version/);
    const json = new TextEncoder().encode(JSON.stringify(conf));
    assert.throws(() => decodeConfState(json), ConfEncodingError);
  });

  it('rejects empty, duplicate and doubly-placed ids and duplicate addresses', () => {
    const v = CONF_ENCODING_VERSION;
    assert.throws(() => decodeConfState(raw(v, 1, '', 0, 0)), /empty node id/);
    assert.throws(() => decodeConfState(raw(v, 2, 'a', 'a', 0, 0)), /twice/);
    assert.throws(() => decodeConfState(raw(v, 1, 'a', 1, 'a', 0)), /twice/);
    assert.throws(() => decodeConfState(raw(v, 1, 'a', 0, 2, 'a', 'x', 'a', 'y')), /twice/);
    assert.throws(() => decodeConfState(raw(v, 1, 'a', 0, 1, '', 'x')), /empty/);
    assert.throws(() => decodeConfState(raw(v, 1, 'a', 0, 1, '__proto__', 'x')), /reserved/);
    assert.throws(() => decodeConfState(raw(v, 1, '__proto__', 0, 0)), /reserved/);
    assert.deepEqual(decodeConfState(raw(v, 1, 'a', 0, 1, 'a', 'x')), {
      voters: ['a'],
      learners: [],
      addresses: { a: 'x' },
    });
  });

  it('rejects invalid UTF-8, absurd counts and overlong varints', () => {
    const v = CONF_ENCODING_VERSION;
    assert.throws(() => decodeConfState(Uint8Array.from([v, 1, 1, 0xff, 0, 0])), /UTF-8/);
    assert.throws(() => decodeConfState(Uint8Array.from([v, 0x7f, 0, 0])), /count/);
    const overlong = [v, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert.throws(() => decodeConfState(Uint8Array.from(overlong)), /varint/);
  });

  it('refuses to encode a configuration that would not decode', () => {
    assert.throws(
      () => encodeConfState({ voters: ['a', 'a'], learners: [], addresses: {} }),
      ConfEncodingError,
    );
    assert.throws(
      () => encodeConfState({ voters: [''], learners: [], addresses: {} }),
      ConfEncodingError,
    );
  });
});
