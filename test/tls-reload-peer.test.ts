// Certificate rotation on the Raft peer layer: after stageTls()() a new dial presents the
// new certificate and the accepting side verifies with the new CA bundle, while a stream
// opened before keeps working.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';

import {
  createCa,
  issueServerCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../src/auth/index.js';
import { PortMux, TlsPeerStreamLayer, type PeerStream } from '../src/net/index.js';
import { Lines } from './net-fixtures.js';
import { within } from './support/wait.js';

interface Peer {
  layer: TlsPeerStreamLayer;
  addr: string;
  accepted: AsyncIterator<PeerStream>;
  lines: Lines;
  close(): Promise<void>;
}

const serialOf = (c: IssuedCertificate) => new X509Certificate(c.certPem).serialNumber;

/** The serial number the other side of a TLS stream presented. */
const presented = (s: PeerStream) => (s.stream as TLSSocket).getPeerCertificate().serialNumber;

describe('TLS peer layer: certificate rotation', () => {
  let oldCa: CertificateAuthority;
  let newCa: CertificateAuthority;
  const peers: Peer[] = [];
  /** Every stream a test opened or accepted: destroyed after the tests, failed ones too. */
  const streams: PeerStream[] = [];
  const keep = (s: PeerStream): PeerStream => {
    streams.push(s);
    return s;
  };

  before(async () => {
    [oldCa, newCa] = await Promise.all([
      createCa({ commonName: 'old peer CA' }),
      createCa({ commonName: 'new peer CA' }),
    ]);
  });
  after(async () => {
    for (const s of streams) s.stream.destroy();
    await Promise.all(peers.map((p) => p.close()));
  });

  async function peer(cert: IssuedCertificate, ca: string): Promise<Peer> {
    const lines = new Lines();
    const layer = new TlsPeerStreamLayer({
      cert: cert.certPem,
      key: cert.keyPem,
      ca,
      logger: lines,
      handshakeTimeoutMs: 2000,
      logIntervalMs: 0,
    });
    const mux = new PortMux({ mode: 'tls', routes: { raft: layer.sink } });
    const { port } = await mux.listen('127.0.0.1', 0);
    const p: Peer = {
      layer,
      addr: `127.0.0.1:${port}`,
      accepted: layer.accept()[Symbol.asyncIterator](),
      lines,
      close: async () => {
        await layer.close();
        await mux.close();
      },
    };
    peers.push(p);
    return p;
  }

  async function nextAccepted(p: Peer): Promise<PeerStream> {
    const r = await within(5000, 'an accepted peer stream', p.accepted.next());
    if (r.done === true) assert.fail('the layer closed its accept stream');
    const stream: PeerStream = r.value;
    return keep(stream);
  }

  it('a new dial presents the new certificate; an open stream stays up', async () => {
    const [a1, a2, b] = await Promise.all([
      issueServerCertificate(oldCa, { commonName: 'a' }),
      issueServerCertificate(oldCa, { commonName: 'a' }),
      issueServerCertificate(oldCa, { commonName: 'b' }),
    ]);
    const pa = await peer(a1, oldCa.certPem);
    const pb = await peer(b, oldCa.certPem);

    const old = keep(await pa.layer.dial(pb.addr));
    const oldAccepted = await nextAccepted(pb);
    assert.equal(presented(oldAccepted), serialOf(a1));

    pa.layer.stageTls({ cert: a2.certPem, key: a2.keyPem, ca: oldCa.certPem })();

    const afterDial = keep(await pa.layer.dial(pb.addr));
    const afterAccepted = await nextAccepted(pb);
    assert.equal(afterDial.peerId, 'b');
    assert.equal(afterAccepted.peerId, 'a');
    assert.equal(presented(afterAccepted), serialOf(a2), 'the new dial presents the new one');
    // Accepting side too: b dialling a now meets a's new certificate.
    const back = keep(await pb.layer.dial(pa.addr));
    assert.equal(presented(back), serialOf(a2));
    await nextAccepted(pa);

    // The stream opened before the switch still carries bytes both ways.
    old.stream.write('still here');
    const [chunk] = (await within(
      2000,
      'bytes on the old stream',
      once(oldAccepted.stream, 'data'),
    )) as [Buffer];
    assert.equal(chunk.toString(), 'still here');
  });

  it('after the CA bundle gains a new CA, a peer with a certificate from it is admitted', async () => {
    const [a, aNew, c] = await Promise.all([
      issueServerCertificate(oldCa, { commonName: 'a' }),
      issueServerCertificate(newCa, { commonName: 'a' }),
      issueServerCertificate(newCa, { commonName: 'c' }),
    ]);
    const bundle = oldCa.certPem + newCa.certPem;
    const pa = await peer(a, oldCa.certPem);
    const pc = await peer(c, bundle);

    // Before: a does not know the new CA, so c is refused (and logged).
    // (c's own handshake may complete before a cuts it: the refusal is a's, in its log.)
    const early = await pc.layer.dial(pa.addr).catch((err: unknown) => {
      assert.ok(err instanceof Error);
      return undefined;
    });
    await pa.lines.waitFor(/refused a peer connection .*not signed by the peer CA/);
    if (early) keep(early);

    // a's CA file now holds the old and the new CA; its own certificate is from the new one.
    pa.layer.stageTls({ cert: aNew.certPem, key: aNew.keyPem, ca: bundle })();

    const fromC = keep(await pc.layer.dial(pa.addr));
    assert.equal(fromC.peerId, 'a');
    assert.equal(presented(fromC), serialOf(aNew));
    const atA = await nextAccepted(pa);
    assert.equal(atA.peerId, 'c');
    assert.equal(presented(atA), serialOf(c));
    // And a dials c presenting the new-CA certificate, which c admits.
    const fromA = keep(await pa.layer.dial(pc.addr));
    assert.equal(fromA.peerId, 'c');
    const atC = await nextAccepted(pc);
    assert.equal(presented(atC), serialOf(aNew));
  });

  it('material that cannot be used is refused before anything switches', async () => {
    const [a, other] = await Promise.all([
      issueServerCertificate(oldCa, { commonName: 'a' }),
      issueServerCertificate(oldCa, { commonName: 'a' }),
    ]);
    const pa = await peer(a, oldCa.certPem);
    const pb = await peer(other, oldCa.certPem);
    // A key that is not the certificate's: OpenSSL refuses the context.
    assert.throws(() =>
      pa.layer.stageTls({ cert: a.certPem, key: other.keyPem, ca: oldCa.certPem }),
    );
    keep(await pa.layer.dial(pb.addr));
    assert.equal(presented(await nextAccepted(pb)), serialOf(a));
  });
});
