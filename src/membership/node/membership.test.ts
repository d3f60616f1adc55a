import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { membershipDefaults } from '../core/config.js';
import type { MemberEvent } from '../core/swim.js';
import { MembershipJoinError, MembershipKeyError } from '../core/errors.js';
import {
  Membership,
  parseAddress,
  type MembershipDiagnostic,
  type MembershipOptions,
} from './membership.js';
import { parseKey } from './cipher.js';

const started: Membership[] = [];
after(async () => {
  await Promise.all(started.map((m) => m.close()));
});

async function member(name: string, extra: Partial<MembershipOptions> = {}): Promise<Membership> {
  const m = new Membership({
    name,
    bindPort: 0,
    protocol: { ...membershipDefaults.local(), joinMaxAttempts: 2 },
    ...extra,
  });
  started.push(m);
  await m.start();
  return m;
}

/** Resolves with the first event matching `match`, or rejects after `ms`. */
function nextEvent(
  m: Membership,
  match: (e: MemberEvent) => boolean,
  ms = 5000,
): Promise<MemberEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      m.off('event', on);
      reject(new Error(`${m.name}: no matching event within ${ms} ms`));
    }, ms);
    const on = (e: MemberEvent): void => {
      if (!match(e)) return;
      clearTimeout(timer);
      m.off('event', on);
      resolve(e);
    };
    m.on('event', on);
  });
}

/** Polls a condition driven by socket traffic, with a deadline. */
async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const key = (byte: number): string => Buffer.alloc(32, byte).toString('base64');

describe('Membership on real sockets', () => {
  it('joins, propagates tags, and tells leave from failure', async () => {
    const a = await member('a', { tags: { rpc_addr: '127.0.0.1:1' } });
    const b = await member('b');
    const c = await member('c');
    const events: MemberEvent[] = [];
    const iterate = (async () => {
      for await (const e of a.events()) events.push(e);
    })();
    const aSeesC = nextEvent(a, (e) => e.type === 'join' && e.member.name === 'c');
    assert.equal(await b.join([a.address]), 1);
    assert.equal(await c.join([a.address]), 1);
    const joined = await aSeesC;
    assert.equal(joined.member.address, c.address);
    assert.equal(joined.local, false);
    await until('c to see a and b', () => c.liveMembers().length === 3);
    assert.equal(
      c.members().find((m) => m.name === 'a')?.tags.rpc_addr,
      '127.0.0.1:1',
      'tags travel with the join',
    );

    // Wait for the update on a as well: a's event list is asserted below, and a leave
    // that overtook the update would supersede it there.
    const isUpdateOfB = (e: MemberEvent): boolean => e.type === 'update' && e.member.name === 'b';
    const update = nextEvent(c, isUpdateOfB);
    const updateOnA = nextEvent(a, isUpdateOfB);
    b.setTags({ rpc_addr: '127.0.0.1:2' });
    assert.deepEqual((await update).member.tags, { rpc_addr: '127.0.0.1:2' });
    assert.deepEqual((await updateOnA).member.tags, { rpc_addr: '127.0.0.1:2' });

    const left = nextEvent(a, (e) => e.member.name === 'b' && e.type !== 'update');
    await b.leave();
    assert.equal((await left).type, 'leave');

    const failed = nextEvent(a, (e) => e.member.name === 'c' && e.type !== 'update', 10_000);
    await c.close();
    assert.equal((await failed).type, 'failed');

    await a.close();
    await iterate;
    const seen = events.map((e) => `${e.type} ${e.member.name}`);
    assert.deepEqual(seen, ['join b', 'join c', 'update b', 'leave b', 'failed c']);
  });

  it('reports its own events marked local, and keeps delivering after them', async () => {
    const x = new Membership({ name: 'x', bindPort: 0, protocol: membershipDefaults.local() });
    started.push(x);
    const own: MemberEvent[] = [];
    x.on('event', (e) => own.push(e));
    await x.start();
    const y = await member('y');
    const seesY = nextEvent(x, (e) => e.member.name === 'y');
    await y.join([x.address]);
    await seesY;
    x.setTags({ role: 'z' });
    await x.leave();
    assert.deepEqual(
      own.map((e) => `${e.type} ${e.member.name} ${e.local}`),
      ['join x true', 'join y false', 'update x true', 'leave x true'],
    );
  });

  it('drops gossip sealed with another key, counts it and explains it', async () => {
    const diagnostics: MembershipDiagnostic[] = [];
    const k1 = await member('k1', {
      encryptionKey: key(1),
      onDiagnostic: (d) => diagnostics.push(d),
    });
    const k2 = await member('k2', { encryptionKey: key(1) });
    const stranger = await member('k3', { encryptionKey: key(2) });
    const plain = await member('k4');
    assert.equal(await k2.join([k1.address]), 1, 'members with the same key join');
    await assert.rejects(stranger.join([k1.address]), MembershipJoinError);
    await assert.rejects(plain.join([k1.address]), MembershipJoinError);
    // Probes of the stranger's UDP socket reach k1 too; send one packet directly as well.
    const { host, port } = parseAddress(k1.address);
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.send(Buffer.from('not sealed'), port, host, () => r()));
    udp.close();
    await until('decrypt failures on k1', () => k1.stats().decryptFailures >= 3);
    assert.equal(k1.liveMembers().length, 2, 'neither stranger got in');
    assert.equal(k1.stats().packetsMalformed, 0, 'nothing unauthenticated reached the core');
    const decrypt = diagnostics.filter((d) => d.kind === 'decryptFailure');
    assert.ok(decrypt.length >= 3, JSON.stringify(diagnostics));
    assert.ok(
      decrypt.every((d) => d.peer !== undefined && /^127\.0\.0\.1:\d+$/.test(d.peer)),
      'each names the peer',
    );
  });

  it('survives malformed and oversized packets and frames, and explains each drop', async () => {
    const diagnostics: MembershipDiagnostic[] = [];
    const m = await member('target', { onDiagnostic: (d) => diagnostics.push(d) });
    const { host, port } = parseAddress(m.address);
    const udp = createSocket('udp4');
    const send = (b: Buffer): Promise<void> =>
      new Promise((r) => udp.send(b, port, host, () => r()));
    await send(Buffer.from([1, 1, 5, 0xff, 0xff])); // truncated alive message
    await send(Buffer.from([9, 1, 3, 0, 4, 0, 0, 0, 1])); // unknown protocol version
    await send(Buffer.alloc(4000, 1)); // larger than maxPacketBytes
    udp.close();
    await until('drops counted', () => {
      const s = m.stats();
      return s.packetsMalformed === 2 && s.packetsOversized === 1;
    });
    // A TCP frame announcing 4 GiB is refused without reading it.
    const socket = connect({ host, port });
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await new Promise<void>((r) => socket.once('close', () => r()));
    await until('stream failure counted', () => m.stats().streamFailures === 1);
    const peer = await member('peer');
    assert.equal(await peer.join([m.address]), 1, 'still serves a real join');
    const kinds = diagnostics.map((d) => d.kind).sort();
    assert.deepEqual(kinds, [
      'packetMalformed',
      'packetMalformed',
      'packetOversized',
      'streamFailure',
    ]);
    assert.match(diagnostics.find((d) => d.kind === 'packetOversized')!.message, /4000 bytes/);
    assert.ok(diagnostics.find((d) => d.kind === 'streamFailure')?.error instanceof Error);
  });

  it('detaches a diagnostic listener that throws, and keeps gossiping', async () => {
    const heard: string[] = [];
    const m = await member('fragile', {
      onDiagnostic: (d) => {
        heard.push(d.kind);
        if (d.kind !== 'diagnosticListenerFailed') throw new Error('logger broke');
      },
    });
    const { host, port } = parseAddress(m.address);
    const udp = createSocket('udp4');
    for (let k = 0; k < 3; k++) {
      await new Promise<void>((r) => udp.send(Buffer.from([1, 1, 5]), port, host, () => r()));
    }
    udp.close();
    await until('three drops counted', () => m.stats().packetsMalformed === 3);
    assert.deepEqual(heard, ['packetMalformed', 'diagnosticListenerFailed']);
    const peer = await member('peer2');
    assert.equal(await peer.join([m.address]), 1);
  });

  it('rejects keys of the wrong size', () => {
    assert.throws(() => parseKey(Buffer.alloc(20).toString('base64')), MembershipKeyError);
    assert.throws(() => parseKey('not base64!'), MembershipKeyError);
    assert.equal(parseKey(key(3)).length, 32);
  });
});
