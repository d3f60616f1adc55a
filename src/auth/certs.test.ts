import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  createCa,
  issueClientCertificate,
  issueServerCertificate,
  loadCa,
  mutualTlsServerOptions,
  verifyTlsPeer,
  type CertificateAuthority,
  type IssuedCertificate,
} from './index.js';

const DAY = 24 * 60 * 60 * 1000;

/**
 * A mutual-TLS server that greets each verified client by its subject. By default it
 * lets the handshake finish and refuses unverified peers itself, recording why (as our
 * servers log it); with `rejectAtHandshake` Node refuses them inside the handshake.
 */
async function startServer(
  ca: CertificateAuthority,
  server: IssuedCertificate,
  rejectAtHandshake = false,
) {
  const material = {
    cert: Buffer.from(server.certPem),
    key: Buffer.from(server.keyPem),
    ca: Buffer.from(ca.certPem),
  };
  const refusals: string[] = [];
  const srv = tls.createServer(
    mutualTlsServerOptions(material, { rejectAtHandshake }),
    (socket) => {
      const peer = verifyTlsPeer(socket);
      if (peer.verified) {
        socket.end(`hello ${peer.subject}`);
        return;
      }
      refusals.push(peer.reason);
      socket.destroy();
      srv.emit('refused', peer.reason);
    },
  );
  srv.on('tlsClientError', (err) => {
    refusals.push(err.message);
    srv.emit('refused', err.message);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { srv, port: (srv.address() as AddressInfo).port, refusals };
}

/** Connects and resolves to what the server said, or to the error that ended it. */
function attempt(
  port: number,
  ca: string,
  client?: IssuedCertificate,
  host = '127.0.0.1',
): Promise<{ said?: string; error?: Error }> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port,
      ca,
      servername: 'localhost',
      ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
    });
    let said = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('timed out')));
    socket.on('data', (d: Buffer) => (said += d.toString()));
    socket.on('error', (error: Error) => resolve({ error }));
    socket.on('close', () =>
      resolve(said ? { said } : { error: new Error('closed, nothing said') }),
    );
  });
}

describe('certificates over a real TLS handshake', () => {
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let server: IssuedCertificate;
  let root: IssuedCertificate;
  let stranger: IssuedCertificate;
  let expired: IssuedCertificate;
  let running: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    ca = await createCa();
    otherCa = await createCa({ commonName: 'another CA' });
    server = await issueServerCertificate(ca, { commonName: 'server', hosts: ['node-1.test'] });
    root = await issueClientCertificate(ca, { commonName: 'root' });
    stranger = await issueClientCertificate(otherCa, { commonName: 'root' });
    expired = await issueClientCertificate(ca, {
      commonName: 'root',
      notBefore: new Date(Date.now() - 10 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    running = await startServer(ca, server);
  });
  after(() => running.srv.close());

  it('accepts a client signed by the CA and sees its CN', async () => {
    assert.deepEqual(await attempt(running.port, ca.certPem, root), { said: 'hello root' });
  });

  it('verifies the server by localhost, 127.0.0.1 and ::1', async () => {
    const cert = new X509Certificate(server.certPem);
    assert.match(cert.subjectAltName ?? '', /DNS:localhost/);
    assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    assert.match(cert.subjectAltName ?? '', /IP Address:0:0:0:0:0:0:0:1/);
    assert.match(cert.subjectAltName ?? '', /DNS:node-1\.test/);
    assert.equal(cert.checkHost('node-1.test'), 'node-1.test');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
  });

  async function refusedWith(
    target: Awaited<ReturnType<typeof startServer>>,
    client: IssuedCertificate | undefined,
    reason: RegExp,
  ) {
    const before = target.refusals.length;
    const refused = once(target.srv, 'refused');
    const result = await attempt(target.port, ca.certPem, client);
    assert.equal(result.said, undefined, 'the server must not talk to this client');
    assert.ok(result.error);
    await Promise.race([
      refused,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no refusal seen')), 5000)),
    ]);
    assert.equal(target.refusals.length, before + 1);
    assert.match(target.refusals.at(-1) ?? '', reason);
  }

  it('refuses a client without a certificate, saying so', async () => {
    await refusedWith(running, undefined, /^no client certificate$/);
  });

  it('refuses a certificate from another CA, even with an allowed CN', async () => {
    await refusedWith(running, stranger, /not signed by a trusted CA/);
  });

  it('refuses an expired certificate', async () => {
    await refusedWith(running, expired, /has expired \(CERT_HAS_EXPIRED\)/);
  });

  it('with rejectAtHandshake, Node refuses all three inside the handshake', async () => {
    const strict = await startServer(ca, server, true);
    try {
      assert.deepEqual(await attempt(strict.port, ca.certPem, root), { said: 'hello root' });
      for (const client of [undefined, stranger, expired]) {
        await refusedWith(strict, client, /./);
      }
    } finally {
      strict.srv.close();
    }
  });

  it('a client refuses a server certificate from another CA', async () => {
    const result = await attempt(running.port, otherCa.certPem, root);
    assert.equal(result.said, undefined);
    assert.match(result.error?.message ?? '', /local issuer|self.signed|verify/i);
  });

  it('a server certificate also works as a client identity (peer use)', async () => {
    assert.deepEqual(await attempt(running.port, ca.certPem, server), { said: 'hello server' });
  });

  it('signs with a CA loaded back from its PEM files', async () => {
    const reloaded = await loadCa(ca.certPem, ca.keyPem);
    const alice = await issueClientCertificate(reloaded, { commonName: 'alice' });
    assert.deepEqual(await attempt(running.port, ca.certPem, alice), { said: 'hello alice' });
  });

  it('refuses a CA key that does not match the CA certificate', async () => {
    await assert.rejects(loadCa(ca.certPem, otherCa.keyPem), /does not match/);
    await assert.rejects(loadCa(root.certPem, root.keyPem), /not marked as a CA/);
  });

  it('rejects bad names and inverted validity', async () => {
    await assert.rejects(
      issueClientCertificate(ca, { commonName: 'a,b=c' }),
      /invalid common name/,
    );
    await assert.rejects(issueClientCertificate(ca, { commonName: ' ' }), /invalid common name/);
    await assert.rejects(
      issueServerCertificate(ca, { commonName: 's', hosts: ['bad host!'] }),
      /invalid host/,
    );
    await assert.rejects(
      issueClientCertificate(ca, {
        commonName: 'x',
        notBefore: new Date(),
        notAfter: new Date(Date.now() - DAY),
      }),
      /must be after/,
    );
  });
});

const openssl = spawnSync('openssl', ['version']).status === 0;

describe('interoperability with openssl', { skip: !openssl && 'openssl is not installed' }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-openssl-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  function run(...args: string[]) {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  it('openssl verifies our chain and reads our PKCS#8 keys', async () => {
    const ca = await createCa();
    const leaf = await issueServerCertificate(ca, { commonName: 'server' });
    await writeFile(join(dir, 'ca.pem'), ca.certPem);
    await writeFile(join(dir, 'leaf.pem'), leaf.certPem);
    await writeFile(join(dir, 'leaf-key.pem'), leaf.keyPem);
    assert.match(run('verify', '-CAfile', 'ca.pem', 'leaf.pem'), /leaf\.pem: OK/);
    run('pkey', '-in', 'leaf-key.pem', '-noout');
  });

  it('signs leaves with an RSA CA made by openssl', async () => {
    run(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'rsa-ca-key.pem',
      '-out',
      'rsa-ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=openssl CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    );
    const ca = await loadCa(
      await readFile(join(dir, 'rsa-ca.pem'), 'utf8'),
      await readFile(join(dir, 'rsa-ca-key.pem'), 'utf8'),
    );
    const server = await issueServerCertificate(ca, { commonName: 'server' });
    const client = await issueClientCertificate(ca, { commonName: 'root' });
    const running = await startServer(ca, server);
    try {
      assert.deepEqual(await attempt(running.port, ca.certPem, client), { said: 'hello root' });
    } finally {
      running.srv.close();
    }
  });

  it('accepts a client certificate made by openssl from an EC CA made by openssl', async () => {
    run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec-ca-key.pem');
    run(
      'req',
      '-x509',
      '-key',
      'ec-ca-key.pem',
      '-out',
      'ec-ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=openssl EC CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
    );
    run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'c-key.pem');
    run('req', '-new', '-key', 'c-key.pem', '-out', 'c.csr', '-subj', '/CN=root');
    run(
      'x509',
      '-req',
      '-in',
      'c.csr',
      '-CA',
      'ec-ca.pem',
      '-CAkey',
      'ec-ca-key.pem',
      '-CAcreateserial',
      '-out',
      'c.pem',
      '-days',
      '2',
    );
    // SEC1 ("EC PRIVATE KEY") as openssl writes it, not PKCS#8.
    const ca = await loadCa(
      await readFile(join(dir, 'ec-ca.pem'), 'utf8'),
      await readFile(join(dir, 'ec-ca-key.pem'), 'utf8'),
    );
    const server = await issueServerCertificate(ca, { commonName: 'server' });
    const running = await startServer(ca, server);
    try {
      const client = {
        certPem: await readFile(join(dir, 'c.pem'), 'utf8'),
        keyPem: await readFile(join(dir, 'c-key.pem'), 'utf8'),
      };
      assert.deepEqual(await attempt(running.port, ca.certPem, client), { said: 'hello root' });
    } finally {
      running.srv.close();
    }
  });
});
