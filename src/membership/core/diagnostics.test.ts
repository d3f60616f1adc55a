import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodePacket } from './codec.js';
import { membershipDefaults } from './config.js';
import { SwimCore } from './swim.js';

const config = membershipDefaults.lan();

function started(): SwimCore {
  const core = new SwimCore({ name: 'a', address: 'a:1', config, seed: 1 });
  core.start(0);
  core.takeOutput();
  return core;
}

describe('SwimCore diagnostics', () => {
  it('explains each drop, naming the peer, beside the counter', () => {
    const core = started();
    core.handlePacket('p:1', new Uint8Array([1, 1, 5, 0xff]), 1);
    core.handlePacket('p:2', new Uint8Array(config.maxPacketBytes + 1), 2);
    core.handlePacket(
      'p:3',
      encodePacket([{ type: 'ping', seq: 1, target: 'zz', sourceName: 'q', sourceAddress: 'q:1' }]),
      3,
    );
    core.handlePacket(
      'p:4',
      encodePacket([{ type: 'alive', incarnation: 1, name: 'b', address: 'b:1', tags: {} }]),
      4,
    );
    core.handlePacket(
      'p:5',
      encodePacket([{ type: 'alive', incarnation: 2, name: 'b', address: 'other:1', tags: {} }]),
      5,
    );
    assert.equal(core.handleStreamRequest(new Uint8Array([7, 7, 7]), 6), undefined);
    const d = core.takeOutput().diagnostics;
    assert.deepEqual(
      d.map((x) => `${x.kind} ${x.peer ?? '-'}`),
      [
        'packetMalformed p:1',
        'packetOversized p:2',
        'pingMisdirected p:3',
        'addressConflict other:1',
        'streamMalformed -',
      ],
    );
    const s = core.stats;
    assert.equal(s.packetsMalformed + s.packetsOversized + s.pingsMisdirected, 3);
    assert.equal(s.addressConflicts, 1);
    assert.equal(s.streamsMalformed, 1);
    assert.match(d[3]!.message, /b announced at other:1, known at b:1/);
    assert.deepEqual(core.takeOutput().diagnostics, [], 'taken once');
  });
});
