// StreamTransport over the port multiplexer and the TLS peer stream layer, on 127.0.0.1.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';

import {
  PlainPeerStreamLayer,
  PortMux,
  TlsPeerStreamLayer,
  type PeerStream,
} from '../src/net/index.js';
import type { WireMessage } from '../src/raft/index.js';
import { StreamTransport, type StreamTransportOptions } from '../src/raft/index.js';
import { Lines, makePki, until, type Pki } from './net-fixtures.js';

type Id = 'n1' | 'n2' | 'n3';

interface Node {
  id: string;
  port: number;
  transport: StreamTransport;
  received: WireMessage[];
  unreachable: string[];
  close(): Promise<void>;
}

const heartbeat = (from: string, to: string, term = 1): WireMessage => ({
  type: 'heartbeat',
  from,
  to,
  term,
  commit: 0,
  context: 0,
});

const append = (from: string, to: string, n: number, size: number): WireMessage => ({
  type: 'append',
  from,
  to,
  term: 1,
  prevIndex: 0,
  prevTerm: 0,
  commit: 0,
  entries: Array.from({ length: n }, (_, k) => ({
    index: k + 1,
    term: 1,
    type: 'normal' as const,
    data: new Uint8Array(size).fill(k & 0xff),
  })),
});

describe('StreamTransport', () => {
  let pki: Pki;
  const lines = new Lines();
  const book = new Map<string, string>();
  const nodes: Node[] = [];

  before(async () => {
    pki = await makePki();
  });
  after(async () => {
    for (const n of nodes) await n.close();
  });

  async function start(
    id: string,
    o: {
      cert?: Id | 'client' | 'intruder';
      port?: number;
      extra?: Partial<StreamTransportOptions>;
      plain?: boolean;
    } = {},
  ): Promise<Node> {
    const certOf = o.cert ?? (id as Id);
    const material =
      certOf === 'client' ? pki.client : certOf === 'intruder' ? pki.intruder : pki.nodes[certOf];
    const layer = o.plain
      ? new PlainPeerStreamLayer({ logger: lines })
      : new TlsPeerStreamLayer({
          cert: material.certPem,
          key: material.keyPem,
          ca: pki.ca,
          logger: lines,
          handshakeTimeoutMs: 2000,
        });
    const mux = new PortMux({
      mode: o.plain ? 'plain' : 'tls',
      routes: { raft: layer.sink },
      sniffTimeoutMs: 2000,
    });
    const { port } = await mux.listen('127.0.0.1', o.port ?? 0);
    book.set(id, `127.0.0.1:${port}`);
    const received: WireMessage[] = [];
    const unreachable: string[] = [];
    const transport = new StreamTransport({
      id,
      clusterId: 'c1',
      layer,
      addressOf: (peer) => book.get(peer),
      onUnreachable: (peer) => unreachable.push(peer),
      logger: lines,
      backoff: { minMs: 10, maxMs: 100 },
      handshakeTimeoutMs: 2000,
      ...o.extra,
    });
    transport.listen((m) => received.push(m));
    const node: Node = {
      id,
      port,
      transport,
      received,
      unreachable,
      close: async () => {
        await transport.close();
        await layer.close();
        await mux.close();
      },
    };
    nodes.push(node);
    return node;
  }

  it('delivers messages both ways over mutual TLS, with per-peer stats', async () => {
    const a = await start('n1');
    const b = await start('n2');
    a.transport.send(heartbeat('n1', 'n2'));
    a.transport.send(append('n1', 'n2', 100, 100));
    b.transport.send({ type: 'heartbeatResp', from: 'n2', to: 'n1', term: 1, context: 0 });
    await until(() => b.received.length === 2 && a.received.length === 1, 5000, 'delivery');
    const got = b.received.find((m) => m.type === 'append');
    assert.ok(got && got.type === 'append');
    assert.equal(got.entries.length, 100);
    assert.deepEqual(Buffer.from(got.entries[7]!.data), Buffer.alloc(100, 7));
    const sa = a.transport.stats().peers.n2!;
    assert.equal(sa.sentMessages, 2);
    assert.equal(b.transport.stats().peers.n1!.receivedMessages, 2);
    assert.equal(b.transport.stats().peers.n1!.receivedBytes, sa.sentBytes);
    await a.close();
    await b.close();
  });

  it('refuses a wrong cluster id and an incompatible version, each with a clear line', async () => {
    const b = await start('n2');
    const wrong = await start('n3', { extra: { clusterId: 'other' } });
    wrong.transport.send(heartbeat('n3', 'n2'));
    await lines.waitFor(/refused a connection from n3: wrong cluster id "other"/);
    await lines.waitFor(/handshake with n2 failed: .*wrong cluster id/);
    await until(() => wrong.transport.stats().peers.n2!.handshakeFailures > 0);
    await wrong.close();
    const future = await start('n3', { extra: { versions: { min: 2, max: 3 } } });
    future.transport.send(heartbeat('n3', 'n2'));
    await lines.waitFor(
      /refused a connection from n3: incompatible protocol version: we speak 1..1, the peer 2..3/,
    );
    assert.equal(b.received.length, 0);
    assert.ok(b.transport.stats().inboundRefused >= 2);
    await future.close();
    await b.close();
  });

  it('binds the certificate identity to the claimed id, and every `from` to it', async () => {
    const b = await start('n2');
    // Holds n3's certificate but claims to be n1.
    const liar = await start('n1', { cert: 'n3' });
    liar.transport.send(heartbeat('n1', 'n2'));
    await lines.waitFor(
      /refused a connection from n3: claims to be "n1", but its certificate names n3/,
    );
    await liar.close();
    assert.equal(b.received.length, 0);
    await b.close();
  });

  it('refuses an empty node id at construction', () => {
    const layer = new PlainPeerStreamLayer({});
    assert.throws(
      () => new StreamTransport({ id: '', clusterId: 'c1', layer, addressOf: () => undefined }),
      /non-empty node id/,
    );
    void layer.close();
  });

  it('reconnects after the peer is killed and restarted on its port', async () => {
    const a = await start('n1');
    let b = await start('n2');
    a.transport.send(heartbeat('n1', 'n2'));
    await until(() => b.received.length === 1, 5000, 'first delivery');
    const port = b.port;
    await b.close();
    // Sends while it is down fail: the transport reports it unreachable and drops. The
    // report comes first (the lost connection); a send queued after it is dropped only
    // when the next dial fails, so wait for that, or the restart below may win the race.
    await until(
      () => {
        a.transport.send(heartbeat('n1', 'n2'));
        return a.unreachable.includes('n2') && a.transport.stats().peers.n2!.drops >= 1;
      },
      5000,
      'a send to the stopped peer dropped',
    );
    b = await start('n2', { port });
    await until(
      () => {
        a.transport.send(heartbeat('n1', 'n2', 2));
        return b.received.some((m) => m.term === 2);
      },
      5000,
      'delivery after restart',
    );
    const s = a.transport.stats().peers.n2!;
    assert.ok(s.reconnects >= 1, JSON.stringify(s));
    assert.ok(s.drops >= 1, JSON.stringify(s));
    await a.close();
    await b.close();
  });

  it('a full queue drops and never blocks the sender', async () => {
    // A peer that accepts TCP and never answers: the dial hangs in the TLS handshake.
    const sink: Socket[] = [];
    const hole: Server = createServer((s) => sink.push(s.on('error', () => {})));
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    book.set('n3', `127.0.0.1:${(hole.address() as AddressInfo).port}`);
    const a = await start('n1', { extra: { maxControlQueue: 10, maxBulkQueueBytes: 100_000 } });
    const t0 = performance.now();
    for (let k = 0; k < 10_000; k++) a.transport.send(heartbeat('n1', 'n3'));
    for (let k = 0; k < 100; k++) a.transport.send(append('n1', 'n3', 10, 1000));
    const took = performance.now() - t0;
    const s = a.transport.stats().peers.n3!;
    assert.ok(s.queueDepth <= 10 + 10, JSON.stringify(s));
    assert.ok(s.drops >= 10_000 - 10 + 90, JSON.stringify(s));
    assert.ok(took < 2000, `sending took ${took} ms`);
    await a.close();
    for (const c of sink) c.destroy();
    hole.close();
  });

  it('heartbeats are not stuck behind megabytes of appends', async () => {
    const a = await start('n1');
    const b = await start('n2');
    a.transport.send(heartbeat('n1', 'n2'));
    await until(() => b.received.length === 1, 5000, 'warm-up');
    // ~40 MiB of appends, then one heartbeat: it arrives before the appends are through.
    for (let k = 0; k < 40; k++) a.transport.send(append('n1', 'n2', 64, 16 * 1024));
    a.transport.send(heartbeat('n1', 'n2', 9));
    await until(() => b.received.some((m) => m.term === 9), 10_000, 'heartbeat');
    const appendsBefore = b.received.filter((m) => m.type === 'append').length;
    assert.ok(appendsBefore < 40, `${appendsBefore} appends arrived first`);
    await until(() => b.received.filter((m) => m.type === 'append').length === 40, 20_000);
    await a.close();
    await b.close();
  });

  it('streams snapshot chunks in order on the bulk connection, paced by the socket', async () => {
    const a = await start('n1');
    const b = await start('n2');
    const chunk = 1 << 20;
    const count = 24;
    for (let k = 0; k < count; k++)
      a.transport.send({
        type: 'snapshotChunk',
        from: 'n1',
        to: 'n2',
        term: 1,
        meta: {
          lastIndex: 10,
          lastTerm: 1,
          config: { voters: ['n1', 'n2'], learners: [], addresses: {} },
        },
        offset: k * chunk,
        data: new Uint8Array(chunk).fill(k),
        done: k === count - 1,
      });
    a.transport.send(heartbeat('n1', 'n2', 5));
    await until(
      () => b.received.filter((m) => m.type === 'snapshotChunk').length === count,
      20_000,
    );
    const offsets = b.received.flatMap((m) => (m.type === 'snapshotChunk' ? [m.offset] : []));
    assert.deepEqual(
      offsets,
      Array.from({ length: count }, (_, k) => k * chunk),
    );
    const s = a.transport.stats().peers.n2!;
    assert.equal(s.drops, 0);
    assert.equal(s.queueDepth, 0);
    await a.close();
    await b.close();
  });

  it('works over plaintext layers (loopback development)', async () => {
    const a = await start('n1', { plain: true });
    const b = await start('n2', { plain: true });
    a.transport.send(heartbeat('n1', 'n2'));
    await until(() => b.received.length === 1, 5000, 'plain delivery');
    // With requirePeerIdentity, a plaintext peer is refused.
    const strict = await start('n3', { plain: true, extra: { requirePeerIdentity: true } });
    a.transport.send(heartbeat('n1', 'n3'));
    await lines.waitFor(/refused a connection from n1: no authenticated identity/);
    assert.equal(strict.received.length, 0);
    await a.close();
    await b.close();
    await strict.close();
  });
});

export type { PeerStream };
