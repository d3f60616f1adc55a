import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BOOK_FILES,
  CertFilesExistError,
  DEFAULT_MODEL_CONF,
  DEFAULT_POLICY_CSV,
  loadTlsMaterial,
  writeBookFileSet,
} from './index.js';

describe('writeBookFileSet', () => {
  let base: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'commitlog-files-'));
  });
  after(() => rm(base, { recursive: true, force: true }));

  it("writes the book's files, keys 0600, everything loadable", async () => {
    const dir = join(base, 'set');
    const written = await writeBookFileSet(dir, { hosts: ['node-1.example', '10.1.2.3'] });
    assert.deepEqual((await readdir(dir)).sort(), Object.values(BOOK_FILES).sort());
    assert.equal(written.length, Object.values(BOOK_FILES).length);
    for (const name of Object.values(BOOK_FILES)) {
      const mode = (await stat(join(dir, name))).mode & 0o777;
      assert.equal(
        mode,
        name.endsWith('-key.pem') ? 0o600 : 0o644,
        `${name} mode ${mode.toString(8)}`,
      );
    }
    for (const who of ['server', 'root-client', 'nobody-client']) {
      const m = await loadTlsMaterial({
        certFile: join(dir, `${who}.pem`),
        keyFile: join(dir, `${who}-key.pem`),
        caFile: join(dir, 'ca.pem'),
      });
      const cert = new X509Certificate(m.cert);
      assert.ok(cert.verify(new X509Certificate(m.ca).publicKey), `${who} is signed by the CA`);
      // PKCS#8, which Node and openssl both read.
      assert.match(m.key.toString(), /^-----BEGIN PRIVATE KEY-----/);
      assert.equal(createPrivateKey(m.key).asymmetricKeyType, 'ec');
    }
    const server = new X509Certificate(await readFile(join(dir, 'server.pem')));
    assert.match(server.subjectAltName ?? '', /DNS:node-1\.example.*IP Address:10\.1\.2\.3/);
    const root = new X509Certificate(await readFile(join(dir, 'root-client.pem')));
    assert.equal(root.subject, 'CN=root');
    const nobody = new X509Certificate(await readFile(join(dir, 'nobody-client.pem')));
    assert.equal(nobody.subject, 'CN=nobody');
    assert.equal(await readFile(join(dir, 'model.conf'), 'utf8'), DEFAULT_MODEL_CONF);
    assert.equal(await readFile(join(dir, 'policy.csv'), 'utf8'), DEFAULT_POLICY_CSV);
  });

  it('never overwrites without force, and writes nothing at all then', async () => {
    const dir = join(base, 'keep');
    await writeBookFileSet(dir);
    const before = await readFile(join(dir, 'ca-key.pem'), 'utf8');
    await rm(join(dir, 'root-client.pem'));
    await writeFile(join(dir, 'policy.csv'), 'p, alice, *, consume\n');
    await assert.rejects(writeBookFileSet(dir), (err: unknown) => {
      assert.ok(err instanceof CertFilesExistError);
      assert.ok(err.files.includes(join(dir, 'ca-key.pem')));
      assert.match(err.message, /--force/);
      return true;
    });
    assert.equal(await readFile(join(dir, 'ca-key.pem'), 'utf8'), before);
    assert.equal(await readFile(join(dir, 'policy.csv'), 'utf8'), 'p, alice, *, consume\n');
    await assert.rejects(stat(join(dir, 'root-client.pem')), { code: 'ENOENT' });
  });

  it('replaces everything with force, keys still 0600', async () => {
    const dir = join(base, 'force');
    await writeBookFileSet(dir);
    const before = await readFile(join(dir, 'ca-key.pem'), 'utf8');
    await writeFile(join(dir, 'ca-key.pem'), 'x', { mode: 0o644 });
    await writeBookFileSet(dir, { force: true });
    const after = await readFile(join(dir, 'ca-key.pem'), 'utf8');
    assert.notEqual(after, before);
    assert.equal((await stat(join(dir, 'ca-key.pem'))).mode & 0o777, 0o600);
    assert.deepEqual(
      (await readdir(dir)).sort(),
      Object.values(BOOK_FILES).sort(),
      'no temp files left',
    );
  });
});
