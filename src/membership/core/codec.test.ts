import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodePacket,
  decodePushPull,
  encodePacket,
  encodePushPull,
  type PacketMessage,
  type PushPullMessage,
} from './codec.js';
import { MembershipCodecError } from './errors.js';

const messages: PacketMessage[] = [
  { type: 'ping', seq: 1, target: 'b', sourceName: 'a', sourceAddress: '10.0.0.1:8401' },
  {
    type: 'indirect-ping',
    seq: 2 ** 32 - 1,
    target: 'c',
    targetAddress: '[::1]:8401',
    wantNack: true,
    sourceName: 'a',
    sourceAddress: 'a:1',
  },
  { type: 'ack', seq: 7 },
  { type: 'nack', seq: 8 },
  { type: 'alive', incarnation: 3, name: 'né', address: 'h:1', tags: { rpc_addr: 'h:8400' } },
  { type: 'suspect', incarnation: 4, name: 'x', from: 'y' },
  { type: 'dead', incarnation: 5, name: 'x', from: 'x' },
];

describe('codec', () => {
  it('round-trips every message type in one packet', () => {
    assert.deepEqual(decodePacket(encodePacket(messages)), messages);
  });

  it('round-trips a state exchange', () => {
    const state: PushPullMessage = {
      join: true,
      members: [
        { name: 'a', address: 'a:1', tags: { k: 'v' }, incarnation: 9, status: 'left' },
        { name: 'b', address: 'b:1', tags: {}, incarnation: 1, status: 'suspect' },
      ],
    };
    assert.deepEqual(decodePushPull(encodePushPull(state), 1 << 20), state);
  });

  it('refuses oversized fields when encoding', () => {
    const tags = { big: 'x'.repeat(600) };
    assert.throws(
      () => encodePacket([{ type: 'alive', incarnation: 1, name: 'a', address: 'a:1', tags }]),
      MembershipCodecError,
    );
    assert.throws(() => encodePacket([]), MembershipCodecError);
  });

  it('refuses a state exchange larger than the limit', () => {
    const data = encodePushPull({ join: false, members: [] });
    assert.throws(() => decodePushPull(data, data.length - 1), MembershipCodecError);
  });

  it('throws only MembershipCodecError on any damaged packet', () => {
    const good = encodePacket(messages);
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const bad = Uint8Array.from(good);
        bad[at] = byte;
        try {
          decodePacket(bad);
        } catch (err) {
          assert.ok(err instanceof MembershipCodecError, String(err));
        }
        try {
          decodePacket(good.subarray(0, at));
        } catch (err) {
          assert.ok(err instanceof MembershipCodecError, String(err));
        }
      }),
      { seed: 42, numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodePacket(bytes);
          decodePushPull(bytes, 1 << 20);
        } catch (err) {
          assert.ok(err instanceof MembershipCodecError, String(err));
        }
      }),
      { seed: 7, numRuns: 2000 },
    );
  });
});
