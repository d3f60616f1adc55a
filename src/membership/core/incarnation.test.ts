import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePacket, encodePacket, type PacketMessage } from './codec.js';
import { membershipDefaults } from './config.js';
import {
  MAX_INCARNATION_STEP,
  incarnationNewer,
  incarnationOlder,
  latestIncarnation,
  nextIncarnation,
} from './incarnation.js';
import { SwimCore } from './swim.js';

const U32_MAX = 0xffffffff;
const config = membershipDefaults.lan();

describe('incarnation order (serial-number arithmetic)', () => {
  const cases: [number, number, boolean, boolean][] = [
    // a, b, a newer than b, a older than b
    [2, 1, true, false],
    [1, 2, false, true],
    [5, 5, false, false],
    [0, U32_MAX, true, false], // wrapped past the end: still newer
    [U32_MAX, 0, false, true],
    [1 + MAX_INCARNATION_STEP, 1, true, false], // the largest accepted step
    [1 + MAX_INCARNATION_STEP + 1, 1, false, true], // exactly 2^31 ahead: refused
    [U32_MAX, 1, false, true], // the forged accusation: older news
  ];
  for (const [a, b, newer, older] of cases) {
    it(`${a} vs ${b}: newer=${newer} older=${older}`, () => {
      assert.equal(incarnationNewer(a, b), newer);
      assert.equal(incarnationOlder(a, b), older);
    });
  }

  it('the next incarnation wraps at 2^32 and stays newer', () => {
    assert.equal(nextIncarnation(U32_MAX), 0);
    assert.ok(incarnationNewer(nextIncarnation(U32_MAX), U32_MAX));
    assert.equal(latestIncarnation(0, U32_MAX), 0);
    assert.equal(latestIncarnation(3, 9), 9);
  });
});

function started(name: string): SwimCore {
  const core = new SwimCore({ name, address: `${name}:1`, config, seed: 1 });
  core.start(0);
  core.takeOutput();
  return core;
}

/** Delivers messages to a core; returns the gossip it queues or sends right away. */
function deliver(core: SwimCore, now: number, ...messages: PacketMessage[]): void {
  core.handlePacket('x:1', encodePacket(messages), now);
}

const statusOf = (core: SwimCore, name: string) => core.memberViews().find((m) => m.name === name);

/** Everything `core` gossips about itself over the next few probe rounds. */
function gossipAbout(core: SwimCore, name: string, from: number): PacketMessage[] {
  const out: PacketMessage[] = [];
  let now = from;
  for (let k = 0; k < 20; k++) {
    now = Math.max(now, core.nextDeadline());
    core.tick(now);
    for (const p of core.takeOutput().packets) {
      for (const m of decodePacket(p.data)) {
        if ((m.type === 'alive' || m.type === 'suspect' || m.type === 'dead') && m.name === name)
          out.push(m);
      }
    }
  }
  return out;
}

describe('a forged incarnation cannot silence a member', () => {
  it('a bystander ignores a suspicion 2^31 or more ahead (the u32 wrap attack)', () => {
    const b = started('b');
    deliver(b, 1, { type: 'alive', incarnation: 1, name: 'a', address: 'a:1', tags: {} });
    deliver(b, 2, { type: 'suspect', incarnation: U32_MAX, name: 'a', from: 'evil' });
    assert.equal(statusOf(b, 'a')?.status, 'alive');
    assert.equal(statusOf(b, 'a')?.incarnation, 1);
    deliver(b, 3, { type: 'dead', incarnation: U32_MAX, name: 'a', from: 'evil' });
    assert.equal(statusOf(b, 'a')?.status, 'alive');
  });

  it('the accused does not jump to the forged incarnation', () => {
    const a = started('a');
    deliver(a, 1, { type: 'suspect', incarnation: U32_MAX, name: 'a', from: 'evil' });
    assert.equal(a.localMember().incarnation, 1, 'older news: reasserted, not refuted');
  });

  it('an accusation within the window is refuted, and the refutation wins everywhere', () => {
    const a = started('a');
    const b = started('b');
    deliver(a, 1, { type: 'alive', incarnation: 1, name: 'b', address: 'b:1', tags: {} });
    deliver(b, 1, { type: 'alive', incarnation: 1, name: 'a', address: 'a:1', tags: {} });
    const forged = 1 + MAX_INCARNATION_STEP;
    const accusation: PacketMessage = {
      type: 'suspect',
      incarnation: forged,
      name: 'a',
      from: 'evil',
    };
    deliver(b, 2, accusation);
    assert.equal(statusOf(b, 'a')?.status, 'suspect');
    deliver(a, 2, accusation);
    assert.equal(a.localMember().incarnation, nextIncarnation(forged));
    const refutations = gossipAbout(a, 'a', 3).filter((m) => m.type === 'alive');
    assert.ok(refutations.length > 0, 'a gossips its refutation');
    deliver(b, 100, refutations[0]!);
    assert.equal(statusOf(b, 'a')?.status, 'alive');
    assert.equal(statusOf(b, 'a')?.incarnation, nextIncarnation(forged));
  });

  it('a member at 0xFFFFFFFF refutes with 0, which others take as newer', () => {
    const a = started('a');
    const b = started('b');
    deliver(a, 1, { type: 'alive', incarnation: 1, name: 'b', address: 'b:1', tags: {} });
    // Both walk up to the end of the u32 range in steps inside the window.
    for (const inc of [2 ** 31, U32_MAX - 1]) {
      deliver(b, 1, { type: 'alive', incarnation: inc, name: 'a', address: 'a:1', tags: {} });
    }
    deliver(a, 1, { type: 'suspect', incarnation: 2 ** 31, name: 'a', from: 'c' });
    deliver(a, 1, { type: 'suspect', incarnation: U32_MAX - 1, name: 'a', from: 'c' });
    assert.equal(a.localMember().incarnation, U32_MAX);
    deliver(a, 2, { type: 'suspect', incarnation: U32_MAX, name: 'a', from: 'c' });
    assert.equal(a.localMember().incarnation, 0, 'wrapped');
    deliver(b, 3, { type: 'suspect', incarnation: U32_MAX, name: 'a', from: 'c' });
    assert.equal(statusOf(b, 'a')?.status, 'suspect');
    const refutation = gossipAbout(a, 'a', 4).find((m) => m.type === 'alive');
    assert.ok(refutation);
    deliver(b, 100, refutation);
    assert.equal(statusOf(b, 'a')?.status, 'alive');
    assert.equal(statusOf(b, 'a')?.incarnation, 0);
  });
});
