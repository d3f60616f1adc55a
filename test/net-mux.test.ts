// gRPC (plain and mutual TLS), Raft peer streams and strangers on one port at once.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';

import * as grpc from '@grpc/grpc-js';

import {
  PlainPeerStreamLayer,
  PortMux,
  RAFT_ALPN,
  TlsPeerStreamLayer,
  type PeerStream,
  type Refusal,
} from '../src/net/index.js';
import { echo, echoClient, echoServer, Lines, makePki, until, type Pki } from './net-fixtures.js';

function closedWithin(socket: Socket, ms: number): Promise<void> {
  if (socket.destroyed || socket.readableEnded) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function stranger(port: number, bytes?: Buffer): Socket {
  const s = netConnect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  s.on('data', () => {});
  if (bytes) s.write(bytes);
  return s;
}

async function firstAccepted(it: AsyncIterator<PeerStream>): Promise<PeerStream> {
  const r = await it.next();
  assert.equal(r.done, false);
  return r.value;
}

async function roundTrip(a: PeerStream, b: PeerStream, text: string): Promise<string> {
  a.stream.write(text);
  const [chunk] = (await once(b.stream, 'data')) as [Buffer];
  return String(chunk);
}

describe('PortMux', () => {
  let pki: Pki;
  before(async () => {
    pki = await makePki();
  });

  describe('TLS mode', () => {
    const lines = new Lines();
    const refusals: Refusal[] = [];
    let mux: PortMux;
    let grpcServer: grpc.Server;
    let raft: TlsPeerStreamLayer;
    let accepted: AsyncIterator<PeerStream>;
    let port = 0;

    before(async () => {
      grpcServer = echoServer();
      const injector = grpcServer.createConnectionInjector(
        grpc.ServerCredentials.createSsl(
          Buffer.from(pki.ca),
          [
            {
              private_key: Buffer.from(pki.nodes.n1.keyPem),
              cert_chain: Buffer.from(pki.nodes.n1.certPem),
            },
          ],
          true,
        ),
      );
      raft = new TlsPeerStreamLayer({
        cert: pki.nodes.n1.certPem,
        key: pki.nodes.n1.keyPem,
        ca: pki.ca,
        logger: lines,
        handshakeTimeoutMs: 2000,
      });
      accepted = raft.accept()[Symbol.asyncIterator]();
      mux = new PortMux({
        mode: 'tls',
        routes: { grpc: (s) => injector.injectConnection(s), raft: raft.sink },
        sniffTimeoutMs: 400,
        maxPerSource: 100,
        logger: lines,
        logIntervalMs: 60_000,
        onRefused: (r) => refusals.push(r),
      });
      ({ port } = await mux.listen('127.0.0.1', 0));
    });

    after(async () => {
      await mux.close();
      await raft.close();
      grpcServer.forceShutdown();
    });

    it('serves mTLS gRPC with the client certificate visible to grpc-js', async () => {
      const client = echoClient(
        `127.0.0.1:${port}`,
        grpc.credentials.createSsl(
          Buffer.from(pki.ca),
          Buffer.from(pki.client.keyPem),
          Buffer.from(pki.client.certPem),
        ),
      );
      try {
        assert.equal(await echo(client, 'hi'), 'alice hi');
      } finally {
        client.close();
      }
      assert.equal(mux.stats().routed.grpc, 1);
    });

    it('carries gRPC, Raft and strangers at once; strangers are closed by the deadline', async () => {
      const client = echoClient(
        `127.0.0.1:${port}`,
        grpc.credentials.createSsl(
          Buffer.from(pki.ca),
          Buffer.from(pki.client.keyPem),
          Buffer.from(pki.client.certPem),
        ),
      );
      const peer = new TlsPeerStreamLayer({
        cert: pki.nodes.n2.certPem,
        key: pki.nodes.n2.keyPem,
        ca: pki.ca,
      });
      const before = refusals.length;
      const silent = stranger(port);
      const garbage = stranger(port, Buffer.from('\x00\xffgarbage garbage'));
      const http1 = stranger(port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      const slow = stranger(port, Buffer.from([0x16, 0x03]));
      const otherAlpn = tlsConnect({
        host: '127.0.0.1',
        port,
        ALPNProtocols: ['http/1.1'],
        rejectUnauthorized: false,
        servername: 'stranger.example',
      });
      otherAlpn.on('error', () => {});
      try {
        const [dialed, reply] = await Promise.all([
          peer.dial(`127.0.0.1:${port}`),
          echo(client, 'during'),
        ]);
        assert.equal(reply, 'alice during');
        assert.equal(dialed.peerId, 'n1');
        const inbound = await firstAccepted(accepted);
        assert.equal(inbound.peerId, 'n2');
        assert.equal(await roundTrip(dialed, inbound, 'append'), 'append');
        assert.equal(await roundTrip(inbound, dialed, 'ack'), 'ack');
        await Promise.all(
          [silent, garbage, http1, slow, otherAlpn].map((s) => closedWithin(s, 3000)),
        );
        const reasons = refusals.slice(before).map((r) => r.reason);
        for (const r of ['timeout', 'unknown-protocol', 'not-tls', 'unknown-alpn'] as const) {
          if (r === 'unknown-protocol') continue; // plain-mode reason
          assert.ok(reasons.includes(r), `${r} in ${reasons.join(',')}`);
        }
        assert.ok(reasons.filter((r) => r === 'timeout').length >= 2, reasons.join(','));
        // Still serving both after the strangers.
        assert.equal(await echo(client, 'after'), 'alice after');
        dialed.stream.destroy();
      } finally {
        client.close();
        await peer.close();
        for (const s of [silent, garbage, http1, slow, otherAlpn]) s.destroy();
      }
      // One line for several refusals: the log is rate limited.
      const refusalLines = lines.lines.filter((l) => l.message.startsWith('rpc port:'));
      assert.ok(refusalLines.length >= 1);
      assert.ok(refusalLines.length < refusals.length, `${refusalLines.length} lines`);
    });

    it('bounds connections per source and recovers once they are gone', async () => {
      const refused0 = mux.stats().refused;
      let maxPending = 0;
      const counted = (): { limited: number; timedOut: number } => {
        const s = mux.stats();
        maxPending = Math.max(maxPending, s.pending);
        return {
          limited: s.refused['source-limit'] - refused0['source-limit'],
          timedOut: s.refused.timeout - refused0.timeout,
        };
      };
      // A thousand half-open connections from one address: at most 100 at a time wait
      // for the deadline, the rest are refused at once by the per-source bound.
      const flood = Array.from({ length: 1000 }, () => stranger(port));
      try {
        await until(() => counted().limited > 0, 5000, 'the per-source bound');
        // Meanwhile a peer from another address is served (127.0.0.2 is loopback too).
        const peer = tlsConnect({
          socket: netConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }),
          servername: 'commitlog-peer',
          ALPNProtocols: [RAFT_ALPN],
          cert: pki.nodes.n3.certPem,
          key: pki.nodes.n3.keyPem,
          ca: pki.ca,
          checkServerIdentity: () => undefined,
        });
        peer.on('error', () => {});
        const inbound = await firstAccepted(accepted);
        assert.equal(inbound.peerId, 'n3');
        peer.destroy();
        inbound.stream.destroy();
        await until(
          () => {
            const c = counted();
            return c.limited + c.timedOut === 1000;
          },
          10_000,
          'every flood connection refused',
        );
        assert.ok(maxPending <= 101, `${maxPending} pending at once`); // 100 + the peer
        await Promise.all(flood.map((s) => closedWithin(s, 5000)));
        await until(() => mux.stats().pending === 0, 2000, 'no pending');
      } finally {
        for (const s of flood) s.destroy();
      }
      const client = echoClient(
        `127.0.0.1:${port}`,
        grpc.credentials.createSsl(
          Buffer.from(pki.ca),
          Buffer.from(pki.client.keyPem),
          Buffer.from(pki.client.certPem),
        ),
      );
      try {
        assert.equal(await echo(client, 'x'), 'alice x');
      } finally {
        client.close();
      }
    });

    it('refuses a peer certificate from another CA, logged with its subject', async () => {
      const intruder = new TlsPeerStreamLayer({
        cert: pki.intruder.certPem,
        key: pki.intruder.keyPem,
        ca: pki.ca,
      });
      try {
        // TLS 1.3 finishes the client side first; the acceptor then refuses and closes.
        const s = await intruder.dial(`127.0.0.1:${port}`).catch(() => undefined);
        s?.stream.on('data', () => {});
        const line = await lines.waitFor(/refused a peer connection.*CN=n2.*not signed/);
        assert.match(line.message, /subject CN=n2/);
        if (s) await closedWithin(s.stream as Socket, 3000);
      } finally {
        await intruder.close();
      }
    });

    it('refuses a client certificate trying to speak Raft', async () => {
      const alice = new TlsPeerStreamLayer({
        cert: pki.client.certPem,
        key: pki.client.keyPem,
        ca: pki.ca,
      });
      try {
        const s = await alice.dial(`127.0.0.1:${port}`).catch(() => undefined);
        s?.stream.on('data', () => {});
        const line = await lines.waitFor(/CN=alice.*client certificate cannot speak Raft/);
        assert.equal(line.fields.subject, 'CN=alice');
        if (s) await closedWithin(s.stream as Socket, 3000);
      } finally {
        await alice.close();
      }
    });

    it('a dialer refuses a node whose certificate is from another CA', async () => {
      const honest = new TlsPeerStreamLayer({
        cert: pki.nodes.n3.certPem,
        key: pki.nodes.n3.keyPem,
        ca: pki.otherCa, // trusts only the other CA: n1's certificate fails
      });
      try {
        await assert.rejects(honest.dial(`127.0.0.1:${port}`), /not signed by the peer CA/);
      } finally {
        await honest.close();
      }
    });

    it('routes by ALPN only: a Raft hello without a certificate is refused by the layer', async () => {
      const s = tlsConnect({
        host: '127.0.0.1',
        port,
        ALPNProtocols: [RAFT_ALPN],
        rejectUnauthorized: false,
        servername: 'stranger.example',
      });
      s.on('error', () => {});
      s.on('data', () => {});
      await lines.waitFor(/no certificate presented/);
      await closedWithin(s, 3000);
    });
  });

  it('bounds the connections being classified, all sources together', async () => {
    const mux = new PortMux({
      mode: 'plain',
      routes: {},
      sniffTimeoutMs: 300,
      maxPending: 5,
      maxPerSource: 1000,
    });
    const { port } = await mux.listen('127.0.0.1', 0);
    const silent = Array.from({ length: 20 }, () => stranger(port));
    try {
      await until(() => mux.stats().refused['pending-limit'] > 0, 5000, 'the pending bound');
      await Promise.all(silent.map((s) => closedWithin(s, 5000)));
      const r = mux.stats().refused;
      assert.equal(r['pending-limit'] + r.timeout, 20, JSON.stringify(r));
      assert.ok(r.timeout >= 5, JSON.stringify(r));
    } finally {
      for (const s of silent) s.destroy();
      await mux.close();
    }
  });

  it("routes a hello offering both protocols by the client's first choice", async () => {
    const routed: string[] = [];
    const mux = new PortMux({
      mode: 'tls',
      routes: {
        grpc: (s) => {
          routed.push('grpc');
          s.destroy();
        },
        raft: (s) => {
          routed.push('raft');
          s.destroy();
        },
      },
    });
    const { port } = await mux.listen('127.0.0.1', 0);
    try {
      for (const alpn of [
        ['h2', RAFT_ALPN],
        [RAFT_ALPN, 'h2'],
        ['x', 'h2'],
      ]) {
        const s = tlsConnect({
          host: '127.0.0.1',
          port,
          ALPNProtocols: alpn,
          rejectUnauthorized: false,
          servername: 'x.example',
        });
        s.on('error', () => {});
        await closedWithin(s, 3000);
      }
      assert.deepEqual(routed, ['grpc', 'raft', 'grpc']);
    } finally {
      await mux.close();
    }
  });

  describe('plain mode', () => {
    it('serves plaintext gRPC, Raft and refuses strangers on one port', async () => {
      const lines = new Lines();
      const grpcServer = echoServer();
      const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
      const raft = new PlainPeerStreamLayer({ logger: lines });
      const accepted = raft.accept()[Symbol.asyncIterator]();
      const mux = new PortMux({
        mode: 'plain',
        routes: { grpc: (s) => injector.injectConnection(s), raft: raft.sink },
        sniffTimeoutMs: 300,
        logger: lines,
      });
      const { port } = await mux.listen('127.0.0.1', 0);
      const client = echoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const peer = new PlainPeerStreamLayer({});
      const tlsStranger = tlsConnect({
        host: '127.0.0.1',
        port,
        rejectUnauthorized: false,
        servername: 'stranger.example',
      });
      tlsStranger.on('error', () => {});
      const http1 = stranger(port, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
      try {
        const [dialed, reply] = await Promise.all([
          peer.dial(`127.0.0.1:${port}`),
          echo(client, 'plain'),
        ]);
        assert.equal(reply, '- plain');
        assert.equal(dialed.peerId, undefined);
        const inbound = await firstAccepted(accepted);
        assert.equal(await roundTrip(dialed, inbound, 'frames'), 'frames');
        await closedWithin(http1, 3000);
        await closedWithin(tlsStranger, 3000);
        assert.ok(mux.stats().refused['unknown-protocol'] >= 2, JSON.stringify(mux.stats()));
        assert.equal(await echo(client, 'again'), '- again');
        dialed.stream.destroy();
        inbound.stream.destroy();
      } finally {
        client.close();
        http1.destroy();
        tlsStranger.destroy();
        await peer.close();
        await raft.close();
        await mux.close();
        grpcServer.forceShutdown();
      }
    });
  });
});
