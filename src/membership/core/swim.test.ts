import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePacket, encodePacket, type PacketMessage } from './codec.js';
import { membershipDefaults } from './config.js';
import { SwimCore, type MemberEvent } from './swim.js';

const config = membershipDefaults.lan();

function started(name = 'a'): SwimCore {
  const core = new SwimCore({ name, address: `${name}:1`, config, seed: 1 });
  core.start(0);
  core.takeOutput();
  return core;
}

function deliver(core: SwimCore, now: number, ...messages: PacketMessage[]): MemberEvent[] {
  core.handlePacket('x:1', encodePacket(messages), now);
  return core.takeOutput().events;
}

const alive = (name: string, incarnation: number, tags = {}): PacketMessage => ({
  type: 'alive',
  incarnation,
  name,
  address: `${name}:1`,
  tags,
});
const summary = (events: MemberEvent[]): string[] =>
  events.map((e) => `${e.type} ${e.member.name}${e.local ? ' (local)' : ''}`);

/** Runs the core's timers up to `until`, collecting every output. */
function runTimers(core: SwimCore, from: number, until: number) {
  const packets: { to: string; messages: PacketMessage[] }[] = [];
  const events: MemberEvent[] = [];
  let now = from;
  while (core.nextDeadline() <= until) {
    now = Math.max(now, core.nextDeadline());
    core.tick(now);
    const out = core.takeOutput();
    for (const p of out.packets) packets.push({ to: p.to, messages: decodePacket(p.data) });
    events.push(...out.events);
  }
  return { packets, events };
}

describe('SwimCore state rules', () => {
  it('emits its own join, marked local', () => {
    const core = new SwimCore({ name: 'a', address: 'a:1', tags: { k: 'v' }, config, seed: 1 });
    core.start(0);
    assert.deepEqual(core.takeOutput().events, [
      { type: 'join', member: { name: 'a', address: 'a:1', tags: { k: 'v' } }, local: true },
    ]);
  });

  it('orders news about a member by incarnation', () => {
    const core = started();
    assert.deepEqual(summary(deliver(core, 1, alive('b', 1))), ['join b']);
    assert.deepEqual(deliver(core, 2, alive('b', 1)), [], 'same incarnation is old news');
    assert.deepEqual(summary(deliver(core, 3, alive('b', 2, { r: '1' }))), ['update b']);
    assert.deepEqual(deliver(core, 4, alive('b', 1, { r: 'old' })), []);
    deliver(core, 5, { type: 'suspect', incarnation: 1, name: 'b', from: 'c' });
    assert.equal(core.memberViews().find((m) => m.name === 'b')?.status, 'alive');
    deliver(core, 6, { type: 'suspect', incarnation: 2, name: 'b', from: 'c' });
    assert.equal(core.memberViews().find((m) => m.name === 'b')?.status, 'suspect');
    assert.deepEqual(
      summary(deliver(core, 7, alive('b', 3, { r: '1' }))),
      [],
      'refuted: alive again, no event',
    );
    assert.equal(core.memberViews().find((m) => m.name === 'b')?.status, 'alive');
  });

  it('tells a leave from a failure, and records a leave after a failure', () => {
    const core = started();
    deliver(core, 1, alive('b', 1), alive('c', 1));
    assert.deepEqual(deliver(core, 2, { type: 'dead', incarnation: 1, name: 'b', from: 'c' }), []);
    assert.equal(
      core.memberViews().find((m) => m.name === 'b')?.status,
      'suspect',
      "another member's verdict is a suspicion here until our own timer runs out",
    );
    core.tick(core.nextDeadline());
    while (core.memberViews().find((m) => m.name === 'b')?.status === 'suspect') {
      core.tick(core.nextDeadline());
    }
    assert.deepEqual(
      summary(core.takeOutput().events).filter((e) => e.endsWith(' b')),
      ['failed b'],
    );
    assert.deepEqual(
      summary(deliver(core, 3, { type: 'dead', incarnation: 1, name: 'b', from: 'b' })),
      ['leave b'],
    );
    assert.deepEqual(
      summary(deliver(core, 4, { type: 'dead', incarnation: 1, name: 'c', from: 'c' })),
      ['leave c'],
    );
    assert.deepEqual(
      summary(deliver(core, 5, alive('c', 2))),
      ['join c'],
      'a member may come back',
    );
  });

  it('refutes suspicion and death of itself with a higher incarnation', () => {
    const core = started();
    deliver(core, 1, alive('b', 1));
    assert.deepEqual(
      deliver(core, 2, { type: 'suspect', incarnation: 1, name: 'a', from: 'b' }),
      [],
    );
    assert.equal(core.localMember().incarnation, 2);
    deliver(core, 3, { type: 'dead', incarnation: 5, name: 'a', from: 'b' });
    assert.equal(core.localMember().incarnation, 6);
    assert.equal(core.localMember().status, 'alive');
    assert.equal(core.stats.refutations, 2);
    assert.equal(core.healthScore(), 2, 'each accusation counts against local health');
    const { packets } = runTimers(core, 3, 1000);
    const sent = packets.flatMap((p) => p.messages);
    assert.ok(sent.some((m) => m.type === 'alive' && m.name === 'a' && m.incarnation === 6));
  });

  it('re-sends its refutation to a member still spreading the old accusation', () => {
    const core = started();
    deliver(core, 1, alive('b', 1));
    deliver(core, 2, { type: 'suspect', incarnation: 1, name: 'a', from: 'b' });
    runTimers(core, 2, 5000); // the refutation goes out and leaves the queue
    assert.equal(core.pendingBroadcasts(), 0);
    core.handlePacket(
      'b:1',
      encodePacket([
        { type: 'suspect', incarnation: 1, name: 'a', from: 'b' },
        { type: 'ping', seq: 9, target: 'a', sourceName: 'b', sourceAddress: 'b:1' },
      ]),
      5001,
    );
    const [ack] = core.takeOutput().packets.map((p) => decodePacket(p.data));
    assert.deepEqual(ack?.[0], { type: 'ack', seq: 9 });
    assert.ok(ack?.some((m) => m.type === 'alive' && m.name === 'a' && m.incarnation === 2));
  });

  it('pings a suspect once more before declaring it dead', () => {
    const core = started();
    deliver(core, 0, alive('b', 1), alive('c', 1));
    deliver(core, 1, { type: 'suspect', incarnation: 1, name: 'b', from: 'c' });
    const deadline = core.nextDeadline();
    let now = 1;
    let lastChance: PacketMessage[] | undefined;
    while (!lastChance) {
      now = core.nextDeadline();
      core.tick(now);
      for (const p of core.takeOutput().packets) {
        const messages = decodePacket(p.data);
        if (p.to === 'b:1' && messages[0]?.type === 'suspect') lastChance = messages;
      }
    }
    assert.ok(now >= deadline);
    assert.equal(core.memberViews().find((m) => m.name === 'b')?.status, 'suspect');
    // b answers with its refutation on the ack: no failure.
    const seq = lastChance.find((m) => m.type === 'ping')?.seq ?? -1;
    core.handlePacket('b:1', encodePacket([{ type: 'ack', seq }, alive('b', 2)]), now + 1);
    assert.deepEqual(core.takeOutput().events, []);
    assert.equal(core.memberViews().find((m) => m.name === 'b')?.status, 'alive');
  });

  it('ignores a known name from another address', () => {
    const core = started();
    deliver(core, 1, alive('b', 1));
    deliver(core, 2, { type: 'alive', incarnation: 9, name: 'b', address: 'evil:1', tags: {} });
    assert.equal(core.memberViews().find((m) => m.name === 'b')?.address, 'b:1');
    assert.equal(core.stats.addressConflicts, 1);
  });

  it('probes, asks others to probe, suspects, then declares failed', () => {
    const core = started();
    deliver(core, 0, alive('b', 1), alive('c', 1));
    // Nobody answers anything: b and c are both unreachable.
    const { packets, events } = runTimers(core, 0, 60_000);
    const types = packets.flatMap((p) => p.messages.map((m) => m.type));
    assert.ok(types.includes('ping'));
    assert.ok(types.includes('indirect-ping'));
    assert.ok(types.includes('suspect'));
    assert.deepEqual(summary(events).sort(), ['failed b', 'failed c']);
    assert.ok(core.healthScore() > 0, 'unanswered probes lower local health');
  });

  it('keeps a member alive while it acks', () => {
    const core = started();
    deliver(core, 0, alive('b', 1));
    let now = 0;
    while (now < 60_000) {
      now = core.nextDeadline();
      core.tick(now);
      for (const p of core.takeOutput().packets) {
        for (const m of decodePacket(p.data)) {
          if (m.type === 'ping')
            core.handlePacket('b:1', encodePacket([{ type: 'ack', seq: m.seq }]), now + 1);
        }
      }
      assert.deepEqual(core.takeOutput().events, []);
    }
    assert.equal(core.memberViews().find((m) => m.name === 'b')?.status, 'alive');
  });

  it('announces its leave and reports when it went out', () => {
    const core = started();
    deliver(core, 0, alive('b', 1));
    core.leave(1);
    assert.deepEqual(summary(core.takeOutput().events), ['leave a (local)']);
    assert.equal(core.leaveSent(), false);
    const { packets } = runTimers(core, 1, 5000);
    assert.ok(
      packets.some((p) =>
        p.messages.some((m) => m.type === 'dead' && m.name === 'a' && m.from === 'a'),
      ),
    );
    assert.equal(core.leaveSent(), true);
  });
});
