import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  TlsConfigError,
  createCa,
  issueClientCertificate,
  issueServerCertificate,
  loadTlsMaterial,
  type TlsFiles,
} from './index.js';

const DAY = 24 * 60 * 60 * 1000;

describe('loadTlsMaterial', () => {
  let dir: string;
  let files: TlsFiles;
  const path = (name: string) => join(dir, name);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-tls-'));
    const ca = await createCa();
    const server = await issueServerCertificate(ca, { commonName: 'server' });
    const other = await issueClientCertificate(ca, { commonName: 'other' });
    const expired = await issueClientCertificate(ca, {
      commonName: 'old',
      notBefore: new Date(Date.now() - 3 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    await writeFile(path('ca.pem'), ca.certPem);
    await writeFile(path('server.pem'), server.certPem);
    await writeFile(path('server-key.pem'), server.keyPem);
    await writeFile(path('other-key.pem'), other.keyPem);
    await writeFile(path('expired.pem'), expired.certPem);
    await writeFile(path('expired-key.pem'), expired.keyPem);
    await writeFile(path('garbage.pem'), 'hello, not a certificate\n');
    await writeFile(
      path('broken.pem'),
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    );
    await writeFile(path('unreadable.pem'), server.certPem, { mode: 0o000 });
    files = {
      certFile: path('server.pem'),
      keyFile: path('server-key.pem'),
      caFile: path('ca.pem'),
    };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function failsNaming(overrides: Partial<TlsFiles>, file: string, reason: RegExp) {
    await assert.rejects(loadTlsMaterial({ ...files, ...overrides }), (err: unknown) => {
      assert.ok(err instanceof TlsConfigError, `expected TlsConfigError, got ${String(err)}`);
      assert.equal(err.file, file);
      assert.ok(err.message.includes(file), 'the message names the file');
      assert.match(err.reason, reason);
      return true;
    });
  }

  it('loads a matching certificate, key and CA into buffers', async () => {
    const m = await loadTlsMaterial(files);
    assert.ok(Buffer.isBuffer(m.cert) && Buffer.isBuffer(m.key) && Buffer.isBuffer(m.ca));
    assert.equal(m.commonName, 'server');
    assert.ok(m.notAfter.getTime() > Date.now());
  });

  it('names a missing file', async () => {
    await failsNaming({ certFile: path('nope.pem') }, path('nope.pem'), /does not exist/);
    await failsNaming({ caFile: path('nope-ca.pem') }, path('nope-ca.pem'), /does not exist/);
  });

  it(
    'names an unreadable file',
    { skip: process.getuid?.() === 0 && 'root reads every file' },
    async () => {
      await failsNaming(
        { certFile: path('unreadable.pem') },
        path('unreadable.pem'),
        /not readable/,
      );
    },
  );

  it('names a directory given as a file', async () => {
    await failsNaming({ keyFile: dir }, dir, /directory/);
  });

  it('names a file that is not PEM', async () => {
    await failsNaming({ certFile: path('garbage.pem') }, path('garbage.pem'), /no PEM certificate/);
    await failsNaming({ keyFile: path('garbage.pem') }, path('garbage.pem'), /no PEM private key/);
    await failsNaming({ caFile: path('garbage.pem') }, path('garbage.pem'), /no PEM certificate/);
    await failsNaming({ certFile: path('broken.pem') }, path('broken.pem'), /cannot be parsed/);
  });

  it('names the key that does not match the certificate', async () => {
    await failsNaming(
      { keyFile: path('other-key.pem') },
      path('other-key.pem'),
      /does not match the certificate in .*server\.pem/,
    );
  });

  it('refuses an expired certificate, and a CA file without a CA', async () => {
    await failsNaming(
      { certFile: path('expired.pem'), keyFile: path('expired-key.pem') },
      path('expired.pem'),
      /expired on/,
    );
    await failsNaming({ caFile: path('server.pem') }, path('server.pem'), /no CA certificate/);
  });
});
