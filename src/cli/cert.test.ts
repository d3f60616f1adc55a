import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { CertFilesExistError, loadTlsMaterial } from '../auth/index.js';
import { registerCertCommands } from './cert.js';

function program(lines: string[]) {
  // Subcommands inherit both settings: errors are thrown, not printed and exited on.
  const p = new Command('commitlog').exitOverride().configureOutput({ writeErr: () => undefined });
  registerCertCommands(p, { log: (l) => lines.push(l) });
  return p;
}

async function run(...args: string[]) {
  const lines: string[] = [];
  await program(lines).parseAsync(['node', 'commitlog', ...args]);
  return lines;
}

describe('commitlog cert', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-cli-cert-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('init writes the set and says where', async () => {
    const lines = await run(
      'cert',
      'init',
      '--dir',
      join(dir, 'ca'),
      '--host',
      'a.example,10.0.0.7',
      '--host',
      'b.example',
    );
    assert.equal(lines.length, 10);
    assert.ok(lines.every((l) => l.startsWith(`wrote ${join(dir, 'ca')}`)));
    const server = new X509Certificate(await readFile(join(dir, 'ca', 'server.pem')));
    assert.match(server.subjectAltName ?? '', /a\.example.*10\.0\.0\.7.*b\.example/);
  });

  it('init warns when it writes keys inside a git work tree, and only then', async () => {
    const warnings: string[] = [];
    const make = () => {
      const p = new Command('commitlog').exitOverride();
      registerCertCommands(p, { log: () => {}, warn: (l) => warnings.push(l) });
      return p;
    };
    const outside = join(dir, 'plain', 'certs');
    await make().parseAsync(['node', 'commitlog', 'cert', 'init', '--dir', outside]);
    assert.deepEqual(warnings, []);
    const repo = join(dir, 'repo');
    await mkdir(join(repo, '.git'), { recursive: true });
    await make().parseAsync(['node', 'commitlog', 'cert', 'init', '--dir', join(repo, 'certs')]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', new RegExp(`inside the git work tree ${repo}:.*\\.gitignore`));
  });

  it('init refuses to overwrite without --force', async () => {
    await assert.rejects(run('cert', 'init', '--dir', join(dir, 'ca')), CertFilesExistError);
    await run('cert', 'init', '--dir', join(dir, 'ca'), '--force');
  });

  it('client issues <cn>-client.pem signed by the CA in --ca-dir', async () => {
    const ca = join(dir, 'ca');
    await run('cert', 'client', '--cn', 'alice', '--ca-dir', ca);
    const m = await loadTlsMaterial({
      certFile: join(ca, 'alice-client.pem'),
      keyFile: join(ca, 'alice-client-key.pem'),
      caFile: join(ca, 'ca.pem'),
    });
    assert.equal(m.commonName, 'alice');
    assert.equal((await stat(join(ca, 'alice-client-key.pem'))).mode & 0o777, 0o600);
    await assert.rejects(
      run('cert', 'client', '--cn', 'alice', '--ca-dir', ca),
      CertFilesExistError,
    );
  });

  it('server writes to --out under --name with --host and --days', async () => {
    const out = join(dir, 'node-1');
    await run(
      'cert',
      'server',
      '--cn',
      'node-1',
      '--host',
      'node-1.svc',
      '--ca-dir',
      join(dir, 'ca'),
      '--out',
      out,
      '--name',
      'peer',
      '--days',
      '30',
    );
    assert.deepEqual((await readdir(out)).sort(), ['peer-key.pem', 'peer.pem']);
    const cert = new X509Certificate(await readFile(join(out, 'peer.pem')));
    assert.match(cert.subjectAltName ?? '', /DNS:localhost.*DNS:node-1\.svc/);
    const days =
      (new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()) / 86_400_000;
    assert.equal(Math.round(days), 30);
  });

  it('names the CA files it cannot read, and rejects bad values', async () => {
    await assert.rejects(
      run('cert', 'client', '--cn', 'x', '--ca-dir', join(dir, 'nope')),
      new RegExp(
        `cannot read ${join(dir, 'nope', 'ca.pem')}: .*; cannot read ${join(dir, 'nope', 'ca-key.pem')}`,
      ),
    );
    await assert.rejects(
      run('cert', 'client', '--cn', 'x', '--ca-dir', join(dir, 'ca'), '--days', '0'),
      /days/,
    );
    await assert.rejects(run('cert', 'client', '--ca-dir', join(dir, 'ca')), /--cn/);
  });

  it('--help lists every option', () => {
    const p = program([]);
    const cert = p.commands.find((c) => c.name() === 'cert');
    assert.ok(cert);
    const help = (name: string) =>
      cert.commands.find((c) => c.name() === name)?.helpInformation() ?? '';
    for (const opt of ['--dir', '--host', '--force']) assert.ok(help('init').includes(opt), opt);
    for (const opt of ['--cn', '--ca-dir', '--out', '--name', '--days', '--host', '--force']) {
      assert.ok(help('server').includes(opt), opt);
    }
    assert.ok(!help('client').includes('--host'));
  });
});
