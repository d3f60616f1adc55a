import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { connect } from 'node:tls';

import fc from 'fast-check';

import { fuzzClientHello } from './client-hello-fuzz.js';
import { buildClientHello, readClientHello } from './client-hello.js';

const alpnName = fc.string({ minLength: 1, maxLength: 40, unit: 'binary-ascii' });
const hello = fc.record({
  alpn: fc.array(alpnName, { maxLength: 6 }),
  sni: fc.option(fc.domain(), { nil: undefined }),
  extensions: fc.array(
    fc.tuple(
      fc.integer({ min: 0x0017, max: 0xff00 }).filter((t) => t !== 0x0010),
      fc.uint8Array({ maxLength: 50 }),
    ),
    { maxLength: 4 },
  ),
  recordSize: fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }),
});
type Spec = typeof hello extends fc.Arbitrary<infer T> ? T : never;

function build(spec: Spec): Uint8Array {
  // Extension types must be distinct, or the hello is malformed by design.
  const seen = new Set<number>();
  const extensions = spec.extensions.filter(([t]) => !seen.has(t) && seen.add(t));
  return buildClientHello({ ...spec, extensions });
}

describe('readClientHello', () => {
  it('reads back the ALPN list and SNI of any well-formed hello, split over any records', () => {
    fc.assert(
      fc.property(hello, (spec) => {
        const got = readClientHello(build(spec));
        assert.notEqual(typeof got, 'string');
        assert.deepEqual(got, {
          alpn: spec.alpn,
          ...(spec.sni !== undefined ? { sni: spec.sni } : {}),
        });
      }),
    );
  });

  it('answers incomplete for every strict prefix of a hello', () => {
    fc.assert(
      fc.property(hello, fc.double({ min: 0, max: 1, maxExcluded: true }), (spec, f) => {
        const bytes = build(spec);
        const cut = Math.floor(f * bytes.length);
        assert.equal(readClientHello(bytes.subarray(0, cut)), 'incomplete');
      }),
    );
  });

  it('ignores what follows a complete hello', () => {
    fc.assert(
      fc.property(hello, fc.uint8Array({ maxLength: 100 }), (spec, tail) => {
        const bytes = build(spec);
        const joined = Buffer.concat([bytes, tail]);
        assert.deepEqual(readClientHello(joined), readClientHello(bytes));
      }),
    );
  });

  it('never throws on arbitrary bytes, and a first byte other than 0x16 is not TLS', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const got = readClientHello(bytes);
        if (bytes.length > 0 && bytes[0] !== 0x16) assert.equal(got, 'not-tls');
        if (typeof got !== 'string') assert.ok(Array.isArray(got.alpn));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses HTTP/1, the HTTP/2 preface, a TLS alert and an oversized hello', () => {
    assert.equal(readClientHello(Buffer.from('GET / HTTP/1.1\r\n')), 'not-tls');
    assert.equal(readClientHello(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'not-tls');
    assert.equal(readClientHello(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 2, 40])), 'not-tls');
    // A handshake message claiming 1 MiB: refused from its header, not awaited.
    assert.equal(readClientHello(Buffer.from([0x16, 3, 1, 0, 4, 1, 0x10, 0, 0])), 'not-tls');
    // A ServerHello (type 2) is not a ClientHello.
    assert.equal(readClientHello(Buffer.from([0x16, 3, 3, 0, 4, 2, 0, 0, 0])), 'not-tls');
    assert.equal(readClientHello(new Uint8Array(0)), 'incomplete');
    assert.equal(readClientHello(Buffer.from([0x16])), 'incomplete');
    assert.equal(readClientHello(Buffer.from([0x16, 0x02])), 'not-tls');
  });

  it("reads Node's own ClientHello (ALPN and SNI) as sent on a real socket", async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect({
      host: '127.0.0.1',
      port,
      servername: 'node-1.example',
      ALPNProtocols: ['commitlog-raft/1', 'h2'],
      rejectUnauthorized: false,
    });
    client.on('error', () => {});
    const [sock] = await accepted;
    try {
      let bytes = Buffer.alloc(0);
      let got = readClientHello(bytes);
      while (got === 'incomplete') {
        const [chunk] = (await once(sock, 'data')) as [Buffer];
        bytes = Buffer.concat([bytes, chunk]);
        got = readClientHello(bytes);
      }
      assert.deepEqual(got, { alpn: ['commitlog-raft/1', 'h2'], sni: 'node-1.example' });
    } finally {
      client.destroy();
      sock.destroy();
      server.close();
    }
  });

  it('survives a bounded fuzz run of random and mutated inputs', () => {
    const report = fuzzClientHello({ iterations: 20_000, seed: 12345 });
    assert.equal(report.iterations, 20_000);
    // The mutations must reach all three answers, or the fuzzer tests too little.
    assert.ok(report.counts.tls > 0, JSON.stringify(report.counts));
    assert.ok(report.counts.incomplete > 0, JSON.stringify(report.counts));
    assert.ok(report.counts.notTls > 0, JSON.stringify(report.counts));
  });
});
