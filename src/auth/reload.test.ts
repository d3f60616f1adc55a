import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';

import {
  TlsConfigError,
  TlsIdentityChangeError,
  TlsReloader,
  TlsUseNotConfiguredError,
  createCa,
  daysLeft,
  expiresSoon,
  issueServerCertificate,
  loadTlsMaterial,
  type CertificateAuthority,
  type IssuedCertificate,
  type TlsFiles,
  type TlsMaterial,
} from './index.js';

const DAY = 24 * 60 * 60 * 1000;

describe('TlsReloader', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let first: IssuedCertificate;
  let second: IssuedCertificate;
  let server: TlsFiles;
  let peer: TlsFiles;
  const path = (name: string) => join(dir, name);

  async function put(prefix: string, cert: IssuedCertificate): Promise<void> {
    await writeFile(path(`${prefix}.pem`), cert.certPem);
    await writeFile(path(`${prefix}-key.pem`), cert.keyPem);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-tls-reload-'));
    ca = await createCa();
    [first, second] = await Promise.all([
      issueServerCertificate(ca, { commonName: 'n1' }),
      issueServerCertificate(ca, { commonName: 'n1' }),
    ]);
    await writeFile(path('ca.pem'), ca.certPem);
    server = {
      certFile: path('server.pem'),
      keyFile: path('server-key.pem'),
      caFile: path('ca.pem'),
    };
    peer = { certFile: path('peer.pem'), keyFile: path('peer-key.pem'), caFile: path('ca.pem') };
  });
  beforeEach(async () => {
    await writeFile(path('ca.pem'), ca.certPem);
    await put('server', first);
    await put('peer', first);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** A reloader over the files as they are now, with a recording part per use. */
  async function started() {
    const reloader = new TlsReloader({
      server: await loadTlsMaterial(server),
      peer: await loadTlsMaterial(peer),
    });
    const staged: string[] = [];
    const committed: string[] = [];
    const part =
      (name: string, fail = false) =>
      (m: TlsMaterial) => {
        staged.push(`${name} ${m.serialNumber}`);
        if (fail) throw new Error(`${name} cannot use it`);
        return () => void committed.push(`${name} ${m.serialNumber}`);
      };
    return { reloader, staged, committed, part };
  }

  const serial = (c: IssuedCertificate) => new X509Certificate(c.certPem).serialNumber;

  it('a good reload switches every part of every use', async () => {
    const { reloader, committed, part } = await started();
    reloader.register('server', part('grpc+https'));
    reloader.register('server', part('forwarder'));
    reloader.register('peer', part('raft'));
    assert.equal(reloader.material('server')?.serialNumber, serial(first));
    await put('server', second);
    await put('peer', second);
    const entries = await reloader.reload();
    assert.deepEqual(
      entries.map((e) => [e.use, e.changed, e.previous.serialNumber, e.material.serialNumber]),
      [
        ['server', true, serial(first), serial(second)],
        ['peer', true, serial(first), serial(second)],
      ],
    );
    assert.deepEqual(committed.sort(), [
      `forwarder ${serial(second)}`,
      `grpc+https ${serial(second)}`,
      `raft ${serial(second)}`,
    ]);
    assert.equal(reloader.material('server')?.serialNumber, serial(second));
    assert.equal(reloader.material('peer')?.serialNumber, serial(second));
  });

  it('unchanged files switch nothing', async () => {
    const { reloader, staged, part } = await started();
    reloader.register('server', part('grpc+https'));
    const entries = await reloader.reload();
    assert.deepEqual(
      entries.map((e) => e.changed),
      [false, false],
    );
    assert.deepEqual(staged, []);
  });

  async function keepsOld(
    breakFiles: () => Promise<void>,
    check: (err: unknown) => boolean,
  ): Promise<void> {
    const { reloader, staged, committed, part } = await started();
    reloader.register('server', part('grpc+https'));
    reloader.register('peer', part('raft'));
    await put('server', second); // a good server change: must not be applied alone
    await breakFiles();
    await assert.rejects(reloader.reload(), check);
    assert.deepEqual(committed, [], 'nothing switched');
    assert.deepEqual(staged, [], 'no part was even asked: the files were refused first');
    assert.equal(reloader.material('server')?.serialNumber, serial(first));
    assert.equal(reloader.material('peer')?.serialNumber, serial(first));
  }

  const naming = (file: string, reason: RegExp) => (err: unknown) => {
    assert.ok(err instanceof TlsConfigError, `expected TlsConfigError, got ${String(err)}`);
    assert.equal(err.file, file);
    assert.match(err.reason, reason);
    return true;
  };

  it('a missing file keeps the old material everywhere', async () => {
    await keepsOld(() => unlink(peer.keyFile), naming(peer.keyFile, /does not exist/));
  });

  it('a key that does not match keeps the old material everywhere', async () => {
    await keepsOld(
      () => writeFile(peer.keyFile, second.keyPem),
      naming(peer.keyFile, /does not match the certificate/),
    );
  });

  it('an expired certificate keeps the old material everywhere', async () => {
    const expired = await issueServerCertificate(ca, {
      commonName: 'n1',
      notBefore: new Date(Date.now() - 3 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    await keepsOld(() => put('peer', expired), naming(peer.certFile, /expired/));
  });

  it('a CA file without a CA keeps the old material everywhere', async () => {
    await keepsOld(
      () => copyFile(path('server.pem'), path('ca.pem')),
      naming(path('ca.pem'), /holds no CA certificate/),
    );
  });

  it('a certificate for another CN is refused: a node cannot change its identity', async () => {
    const other = await issueServerCertificate(ca, { commonName: 'n2' });
    await keepsOld(
      () => put('peer', other),
      (err) => {
        assert.ok(err instanceof TlsIdentityChangeError, String(err));
        assert.equal(err.file, peer.certFile);
        assert.equal(err.running, 'n1');
        assert.equal(err.next, 'n2');
        assert.match(err.message, /CN "n2" is not the running certificate's CN "n1"/);
        return true;
      },
    );
  });

  it('a part that cannot use the material stops the switch of every part', async () => {
    const { reloader, staged, committed, part } = await started();
    reloader.register('server', part('grpc+https'));
    reloader.register('peer', part('raft', true));
    await put('server', second);
    await put('peer', second);
    await assert.rejects(reloader.reload(), /raft cannot use it/);
    assert.equal(staged.length, 2, 'both parts were asked');
    assert.deepEqual(committed, []);
    assert.equal(reloader.material('server')?.serialNumber, serial(first));
  });

  it('an unregistered part takes no part in later reloads', async () => {
    const { reloader, staged, part } = await started();
    const off = reloader.register('server', part('gone'));
    off();
    await put('server', second);
    await reloader.reload();
    assert.deepEqual(staged, []);
  });

  it('a part cannot register for a use without material', () => {
    const reloader = new TlsReloader({});
    assert.deepEqual(reloader.uses(), []);
    assert.throws(
      () => reloader.register('peer', () => () => undefined),
      (err) => err instanceof TlsUseNotConfiguredError && err.use === 'peer',
    );
  });

  it('reloads run one after the other', async () => {
    const { reloader, committed, part } = await started();
    reloader.register('server', part('grpc+https'));
    await put('server', second);
    const [a, b] = await Promise.all([reloader.reload(), reloader.reload()]);
    assert.equal(a[0]?.changed, true);
    assert.equal(b[0]?.changed, false, 'the second saw the first one applied');
    assert.deepEqual(committed, [`grpc+https ${serial(second)}`]);
  });

  it('says when a certificate expires within 30 days', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const at = (days: number) => ({ notAfter: new Date(now.getTime() + days * DAY) });
    assert.equal(expiresSoon(at(29.9), now), true);
    assert.equal(expiresSoon(at(30), now), false);
    assert.equal(daysLeft(at(12.5), now), 12);
  });
});
