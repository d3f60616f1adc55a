// Certificate rotation on a running agent process: its certificate files are replaced,
// SIGHUP, and new TLS connections to the RPC port (gRPC, ALPN h2) and the HTTPS port
// present the new certificate while produce and consume keep working; a bad set of files
// leaves the last good certificate in force and is logged naming the file.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';

import { channelCredentials, CommitLogClient } from '../src/client/index.js';
import { runCli, spawnAgent, type AgentProcess } from './support/agent-process.js';
import { tempDir } from './support/node.js';
import { within } from './support/wait.js';

function splitAddr(addr: string): { host: string; port: number } {
  const k = addr.lastIndexOf(':');
  return { host: addr.slice(0, k), port: Number(addr.slice(k + 1)) };
}

interface ClientSet {
  ca: string;
  cert: string;
  key: string;
}

/** The serial number of the certificate a NEW TLS connection to `addr` is shown. */
async function presentedSerial(addr: string, alpn: string, client: ClientSet): Promise<string> {
  const { host, port } = splitAddr(addr);
  const socket = connect({
    host,
    port,
    ALPNProtocols: [alpn],
    servername: 'localhost',
    ca: await readFile(client.ca),
    cert: await readFile(client.cert),
    key: await readFile(client.key),
    // Looked at, not trusted: the test compares serial numbers.
    rejectUnauthorized: false,
  });
  try {
    await within(
      5000,
      `TLS handshake with ${addr} (${alpn})`,
      new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      }),
    );
    return socket.getPeerCertificate().serialNumber;
  } finally {
    socket.destroy();
  }
}

async function serialOfFile(file: string): Promise<string> {
  return new X509Certificate(await readFile(file)).serialNumber;
}

async function httpsGet(addr: string, path: string, client: ClientSet): Promise<string> {
  const { host, port } = splitAddr(addr);
  const [ca, cert, key] = await Promise.all([
    readFile(client.ca),
    readFile(client.cert),
    readFile(client.key),
  ]);
  return within(
    5000,
    `GET ${path}`,
    new Promise<string>((resolve, reject) => {
      const req = request(
        { host, port, path, ca, cert, key, servername: 'localhost', agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () =>
            res.statusCode === 200
              ? resolve(body)
              : reject(new Error(`${res.statusCode}: ${body}`)),
          );
        },
      );
      req.on('error', reject);
      req.end();
    }),
  );
}

describe('agent process: TLS certificates rotate on SIGHUP', () => {
  let dir: string;
  let node: AgentProcess;
  let nodeDir: string;
  let certs: string;
  let oldClient: ClientSet;
  let serial: string; // the serial in force, as the test expects it
  let reloads = 0;

  const cli = async (args: string[]) => {
    const res = await runCli(args, { ms: 20_000 });
    assert.equal(res.code, 0, `commitlog ${args.join(' ')}: ${res.stderr}`);
    return res;
  };
  /** Issues a node certificate with `cn` from the CA in `caDir` over the node's files. */
  const reissue = (caDir: string, cn = 'server') =>
    cli([
      'cert',
      'server',
      '--cn',
      cn,
      '--ca-dir',
      caDir,
      '--out',
      nodeDir,
      '--name',
      'server',
      '--force',
    ]);

  /** SIGHUP, then the n-th reload line (success or failure) of this run. */
  async function sighup(): Promise<string> {
    reloads++;
    const want = reloads;
    node.child.kill('SIGHUP');
    await node.logged(
      new RegExp(`(?:[\\s\\S]*?TLS (?:certificates reloaded|reload failed)[^\\n]*\\n){${want}}`),
      10_000,
    );
    const lines = node
      .stdout()
      .split('\n')
      .filter((l) => /TLS (certificates reloaded|reload failed)/.test(l));
    return lines[want - 1] ?? '';
  }

  /** Through a new client (a new connection): produce one record, read it back. */
  async function producesAndConsumes(client: ClientSet, value: string): Promise<void> {
    const c = new CommitLogClient(node.rpcAddr, {
      credentials: await channelCredentials({
        caFile: client.ca,
        certFile: client.cert,
        keyFile: client.key,
      }),
    });
    try {
      const offset = await within(5000, `produce ${value}`, c.produce(Buffer.from(value)));
      const record = await within(5000, `consume ${offset}`, c.consume(offset));
      assert.equal(record.value.toString(), value);
    } finally {
      c.close();
    }
  }

  async function presents(want: string, client: ClientSet = oldClient): Promise<void> {
    assert.equal(await presentedSerial(node.rpcAddr, 'h2', client), want, 'RPC port (gRPC)');
    assert.equal(await presentedSerial(node.httpAddr, 'http/1.1', client), want, 'HTTPS port');
  }

  before(async () => {
    dir = await tempDir('tls-reload');
    certs = join(dir, 'certs');
    nodeDir = join(dir, 'node');
    await cli(['cert', 'init', '--dir', certs]);
    await cli(['cert', 'init', '--dir', join(dir, 'ca2')]);
    await cli([
      'cert',
      'server',
      '--cn',
      'server',
      '--ca-dir',
      certs,
      '--out',
      nodeDir,
      '--name',
      'server',
    ]);
    await copyFile(join(certs, 'ca.pem'), join(nodeDir, 'ca.pem'));
    oldClient = {
      ca: join(certs, 'ca.pem'),
      cert: join(certs, 'root-client.pem'),
      key: join(certs, 'root-client-key.pem'),
    };
    const tlsFlags = (prefix: string) => [
      ...[`--${prefix}-cert-file`, join(nodeDir, 'server.pem')],
      ...[`--${prefix}-key-file`, join(nodeDir, 'server-key.pem')],
      ...[`--${prefix}-ca-file`, join(nodeDir, 'ca.pem')],
    ];
    node = await spawnAgent([
      ...['--data-dir', join(dir, 'data'), '--rpc-port', '0', '--http-port', '0'],
      ...['--node-name', 'server', '--fsync', 'never'],
      ...tlsFlags('server-tls'),
      ...tlsFlags('peer-tls'),
      ...['--acl-model-file', join(certs, 'model.conf')],
      ...['--acl-policy-file', join(certs, 'policy.csv')],
    ]);
    serial = await serialOfFile(join(nodeDir, 'server.pem'));
  });
  after(async () => {
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the certificate it started with', async () => {
    await presents(serial);
    await producesAndConsumes(oldClient, 'before');
  });

  it('a new certificate with the same CN (new serial): new connections present it', async () => {
    await reissue(certs);
    const next = await serialOfFile(join(nodeDir, 'server.pem'));
    assert.notEqual(next, serial);
    const line = await sighup();
    assert.match(
      line,
      new RegExp(`TLS certificates reloaded: server CN server serial ${next} notAfter \\S+Z; peer`),
    );
    serial = next;
    await presents(serial);
    await producesAndConsumes(oldClient, 'after a new serial');
    const metrics = await httpsGet(node.httpAddr, '/metrics', oldClient);
    const notAfter = new X509Certificate(await readFile(join(nodeDir, 'server.pem'))).validTo;
    const seconds = Math.floor(new Date(notAfter).getTime() / 1000);
    for (const use of ['server', 'peer']) {
      assert.match(
        metrics,
        new RegExp(
          `commitlog_tls_certificate_expiry_timestamp_seconds\\{[^}]*use="${use}"[^}]*\\} ${seconds}\\b`,
        ),
      );
    }
  });

  it('a certificate from a new CA, the CA file holding old and new: both CAs verify clients', async () => {
    const ca2 = join(dir, 'ca2');
    await reissue(ca2);
    await writeFile(
      join(nodeDir, 'ca.pem'),
      (await readFile(join(certs, 'ca.pem'), 'utf8')) +
        (await readFile(join(ca2, 'ca.pem'), 'utf8')),
    );
    const next = await serialOfFile(join(nodeDir, 'server.pem'));
    assert.match(
      await sighup(),
      new RegExp(`TLS certificates reloaded: server CN server serial ${next}`),
    );
    serial = next;
    await presents(serial);
    // The server's certificate now chains to the new CA: clients trust it through that.
    const viaNewCa = { ...oldClient, ca: join(ca2, 'ca.pem') };
    await producesAndConsumes(viaNewCa, 'an old-CA client');
    const newClient = {
      ca: join(ca2, 'ca.pem'),
      cert: join(ca2, 'root-client.pem'),
      key: join(ca2, 'root-client-key.pem'),
    };
    await producesAndConsumes(newClient, 'a new-CA client');
  });

  it('a key that does not match: the last good certificate stays, the error names the file', async () => {
    const keyFile = join(nodeDir, 'server-key.pem');
    await copyFile(join(certs, 'server-key.pem'), keyFile);
    const line = await sighup();
    assert.match(line, /TLS reload failed; the previous certificates stay in force/);
    assert.ok(line.includes(`TLS file ${keyFile}: does not match the certificate`), line);
    await presents(serial, { ...oldClient, ca: join(dir, 'ca2', 'ca.pem') });
    await producesAndConsumes(
      { ...oldClient, ca: join(dir, 'ca2', 'ca.pem') },
      'after a bad reload',
    );
  });

  it('a certificate for another CN is refused: the node keeps its identity', async () => {
    await reissue(join(dir, 'ca2'), 'someone-else');
    const line = await sighup();
    assert.match(line, /TLS reload failed/);
    assert.match(line, /CN \\"someone-else\\" is not the running certificate's CN \\"server\\"/);
    await presents(serial, { ...oldClient, ca: join(dir, 'ca2', 'ca.pem') });
  });

  it('a certificate expiring within 30 days is warned about after the reload', async () => {
    await cli([
      ...['cert', 'server', '--cn', 'server', '--ca-dir', join(dir, 'ca2')],
      ...['--out', nodeDir, '--name', 'server', '--force', '--days', '10'],
    ]);
    assert.match(await sighup(), /TLS certificates reloaded/);
    await node.logged(
      /"level":"warn"[^\n]*server TLS certificate \S+ \(CN server\) expires \S+, in 9 day\(s\) \(less than 30\)/,
    );
  });

  it('a certificate expiring within 30 days is warned about at start', async () => {
    const short = join(dir, 'short');
    await cli([
      ...['cert', 'server', '--cn', 'short', '--ca-dir', certs, '--out', short, '--name', 'node'],
      '--days',
      '5',
    ]);
    const other = await spawnAgent([
      ...['--data-dir', join(dir, 'data-short'), '--rpc-port', '0', '--http-port', '0'],
      ...['--server-tls-cert-file', join(short, 'node.pem')],
      ...['--server-tls-key-file', join(short, 'node-key.pem')],
      ...['--server-tls-ca-file', join(certs, 'ca.pem')],
    ]);
    try {
      await other.logged(
        /"level":"warn"[^\n]*server TLS certificate \S+ \(CN short\) expires \S+, in 4 day/,
      );
    } finally {
      await other.stop();
    }
  });
});
