// Security end to end: a node with mutual TLS and the book's ACL, driven over gRPC (the
// typed client) and HTTPS, with root, nobody, no certificate, another CA's certificate
// and an expired one; policy reloads; and the start-up refusals. Certificates are made
// here, never committed.
import assert from 'node:assert/strict';
import { access, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { ConfigError, resolveConfig } from '../src/agent/index.js';
import {
  AclLoadError,
  DEFAULT_POLICY_CSV,
  TlsConfigError,
  createCa,
  issueClientCertificate,
  loadCa,
  writeBookFileSet,
} from '../src/auth/index.js';
import {
  channelCredentials,
  CommitLogClient,
  CommitLogError,
  type TlsFiles,
} from '../src/client/index.js';
import { runCli, spawnAgent } from './support/agent-process.js';
import { startNode, tempDir, within, type NodeFlags, type TestNode } from './support/node.js';

const DAY = 24 * 60 * 60 * 1000;

type Who = 'root' | 'nobody' | 'none' | 'stranger' | 'expired';

/** Makes the book's set in `dir`, plus a certificate from another CA and an expired one. */
async function makeCertificates(dir: string): Promise<Record<Who, TlsFiles>> {
  await writeBookFileSet(dir);
  const other = await createCa({ commonName: 'another CA' });
  const stranger = await issueClientCertificate(other, { commonName: 'root' });
  const ca = await loadCa(
    await readFile(join(dir, 'ca.pem'), 'utf8'),
    await readFile(join(dir, 'ca-key.pem'), 'utf8'),
  );
  const expired = await issueClientCertificate(ca, {
    commonName: 'root',
    notBefore: new Date(Date.now() - 10 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  for (const [name, cert] of [
    ['stranger', stranger],
    ['expired', expired],
  ] as const) {
    await writeFile(join(dir, `${name}.pem`), cert.certPem);
    await writeFile(join(dir, `${name}-key.pem`), cert.keyPem, { mode: 0o600 });
  }
  const caFile = join(dir, 'ca.pem');
  const files = (base: string) => ({
    caFile,
    certFile: join(dir, `${base}.pem`),
    keyFile: join(dir, `${base}-key.pem`),
  });
  return {
    root: files('root-client'),
    nobody: files('nobody-client'),
    none: { caFile },
    stranger: files('stranger'),
    expired: files('expired'),
  };
}

function secureConfig(dir: string) {
  return {
    'server-tls-cert-file': join(dir, 'server.pem'),
    'server-tls-key-file': join(dir, 'server-key.pem'),
    'server-tls-ca-file': join(dir, 'ca.pem'),
    'acl-model-file': join(dir, 'model.conf'),
    'acl-policy-file': join(dir, 'policy.csv'),
    fsync: 'never',
  };
}

interface HttpResult {
  status: number;
  body: string;
}

/** One HTTPS request to the node, as `who`. */
async function https(
  addr: string,
  files: TlsFiles,
  method: string,
  path: string,
  body?: string,
): Promise<HttpResult> {
  const [host, port] = [
    addr.slice(0, addr.lastIndexOf(':')),
    Number(addr.slice(addr.lastIndexOf(':') + 1)),
  ];
  const read = async (f?: string) => (f ? readFile(f) : undefined);
  const [ca, cert, key] = await Promise.all([
    read(files.caFile),
    read(files.certFile),
    read(files.keyFile),
  ]);
  return within(
    5000,
    `${method} ${path}`,
    new Promise<HttpResult>((resolve, reject) => {
      const req = request(
        {
          host,
          port,
          method,
          path,
          ca,
          cert,
          key,
          servername: 'localhost',
          agent: false,
          // A GET with a body (the book's consume) needs its length: Node would not frame it.
          headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    }),
  );
}

/** The gRPC status code and message of a call that must fail. */
async function failure(promise: Promise<unknown>): Promise<{ code: grpc.status; message: string }> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof CommitLogError, `expected CommitLogError, got ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  assert.fail('the call succeeded');
}

describe('mutual TLS and ACL over gRPC and HTTP', () => {
  let dir: string;
  let node: TestNode;
  let ids: Record<Who, TlsFiles>;
  const clients = new Map<Who, CommitLogClient>();

  async function client(who: Who): Promise<CommitLogClient> {
    let c = clients.get(who);
    if (!c) {
      c = new CommitLogClient(node.agent.rpcAddr, {
        credentials: await channelCredentials(ids[who], node.agent.rpcAddr),
      });
      clients.set(who, c);
    }
    return c;
  }

  before(async () => {
    dir = await tempDir('security');
    ids = await makeCertificates(dir);
    node = await startNode({ ...secureConfig(dir) });
  });
  after(async () => {
    for (const c of clients.values()) c.close();
    await node.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('gRPC: root produces and consumes, every way', async () => {
    const root = await client('root');
    const offset = await root.produce(Buffer.from('by root'));
    assert.deepEqual((await root.consume(offset)).value, Buffer.from('by root'));
    const batch = await root.produceBatch([Buffer.from('b1'), Buffer.from('b2')]);
    assert.equal(batch.count, 2);
    const streamed: bigint[] = [];
    for await (const o of root.produceStream([Buffer.from('s1'), Buffer.from('s2')]))
      streamed.push(o);
    assert.equal(streamed.length, 2);
    assert.equal((await root.getServers()).length, 1);
    const controller = new AbortController();
    for await (const r of root.consumeStream(offset, { signal: controller.signal })) {
      assert.deepEqual(r.value, Buffer.from('by root'));
      controller.abort();
    }
  });

  it('gRPC: nobody is denied produce and consume, naming subject and action', async () => {
    const nobody = await client('nobody');
    assert.deepEqual(await failure(nobody.produce(Buffer.from('x'))), {
      code: grpc.status.PERMISSION_DENIED,
      message: 'nobody is not permitted to produce',
    });
    assert.deepEqual(await failure(nobody.produceBatch([Buffer.from('x')])), {
      code: grpc.status.PERMISSION_DENIED,
      message: 'nobody is not permitted to produce',
    });
    assert.deepEqual(await failure(nobody.consume(0n)), {
      code: grpc.status.PERMISSION_DENIED,
      message: 'nobody is not permitted to consume',
    });
    assert.deepEqual(await failure(nobody.getServers()), {
      code: grpc.status.PERMISSION_DENIED,
      message: 'nobody is not permitted to consume',
    });
    const stream = (async () => {
      for await (const _ of nobody.produceStream([Buffer.from('x')])) assert.fail('acknowledged');
    })();
    assert.equal((await failure(stream)).code, grpc.status.PERMISSION_DENIED);
  });

  const refused: [Who, RegExp][] = [
    ['none', /^no client certificate$/],
    ['stranger', /not signed by a trusted CA/],
    ['expired', /client certificate has expired/],
  ];
  for (const [who, reason] of refused) {
    it(`gRPC: ${who === 'none' ? 'no certificate' : `a ${who} certificate`} is UNAUTHENTICATED, with the reason`, async () => {
      const c = await client(who);
      for (const call of [c.produce(Buffer.from('x')), c.consume(0n)]) {
        const { code, message } = await failure(call);
        assert.equal(code, grpc.status.UNAUTHENTICATED);
        assert.match(message, reason);
      }
    });

    it(`HTTP: ${who === 'none' ? 'no certificate' : `a ${who} certificate`} gets 401, with the reason`, async () => {
      for (const [method, path, body] of [
        ['POST', '/', '{"record":{"value":"eA=="}}'],
        ['GET', '/v1/records/0', undefined],
        ['GET', '/metrics', undefined],
      ] as const) {
        const res = await https(node.agent.httpAddr, ids[who], method, path, body);
        assert.equal(res.status, 401, res.body);
        assert.match((JSON.parse(res.body) as { error: string }).error, reason);
      }
    });
  }

  it('HTTP: root produces and consumes over HTTPS, the book way and the REST way', async () => {
    const produced = await https(
      node.agent.httpAddr,
      ids.root,
      'POST',
      '/',
      '{"record":{"value":"TGV0J3MgR28gIzEK"}}',
    );
    assert.equal(produced.status, 200, produced.body);
    const { offset } = JSON.parse(produced.body) as { offset: number };
    const book = await https(node.agent.httpAddr, ids.root, 'GET', '/', JSON.stringify({ offset }));
    assert.equal(book.status, 200, book.body);
    assert.match(book.body, /"value":"TGV0J3MgR28gIzEK"/);
    const rest = await https(node.agent.httpAddr, ids.root, 'GET', `/v1/records/${offset}`);
    assert.equal(rest.status, 200, rest.body);
  });

  it('HTTP: nobody gets 403 naming subject and action', async () => {
    const produce = await https(
      node.agent.httpAddr,
      ids.nobody,
      'POST',
      '/v1/records',
      '{"value":"eA=="}',
    );
    assert.deepEqual(
      { status: produce.status, body: JSON.parse(produce.body) as unknown },
      { status: 403, body: { error: 'nobody is not permitted to produce' } },
    );
    const consume = await https(node.agent.httpAddr, ids.nobody, 'GET', '/v1/records/0');
    assert.deepEqual(
      { status: consume.status, body: JSON.parse(consume.body) as unknown },
      { status: 403, body: { error: 'nobody is not permitted to consume' } },
    );
  });

  it('HTTP: /metrics takes any client certificate the CA signed, whatever the ACL says', async () => {
    for (const who of ['root', 'nobody'] as const) {
      const res = await https(node.agent.httpAddr, ids[who], 'GET', '/metrics');
      assert.equal(res.status, 200, `${who}: ${res.body}`);
      assert.match(res.body, /commitlog_produced_records_total/);
    }
  });

  it('probes stay open: gRPC health and HTTP /healthz without a certificate', async () => {
    const health = await https(node.agent.httpAddr, ids.none, 'GET', '/healthz');
    assert.equal(health.status, 200);
    const Health = grpc.makeGenericClientConstructor(
      {
        Check: {
          path: '/grpc.health.v1.Health/Check',
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      'Health',
    );
    const probe = new Health(node.agent.rpcAddr, await channelCredentials(ids.none), {
      'grpc.ssl_target_name_override': 'localhost',
    });
    try {
      // An empty HealthCheckRequest; the answer is field 1 = SERVING (1).
      const answer = await new Promise<Buffer>((resolve, reject) =>
        probe.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          (err: grpc.ServiceError | null, res?: Buffer) =>
            res ? resolve(res) : reject(err ?? new Error('no health answer')),
        ),
      );
      assert.deepEqual(answer, Buffer.from([0x08, 0x01]));
    } finally {
      probe.close();
    }
  });

  it('a policy change is picked up after reload, and open streams survive it', async () => {
    const root = await client('root');
    const nobody = await client('nobody');
    const first = await root.produce(Buffer.from('before reload'));
    // A live stream opened under the old policy.
    const controller = new AbortController();
    const stream = root.consumeStream(first, { signal: controller.signal });
    const seen = await stream.next();
    assert.ok(!seen.done);
    assert.deepEqual(seen.value.value, Buffer.from('before reload'));

    await writeFile(join(dir, 'policy.csv'), `${DEFAULT_POLICY_CSV}p, nobody, *, consume\n`);
    assert.deepEqual(await node.agent.reloadAcl(), { rules: 3 });

    assert.deepEqual((await nobody.consume(first)).value, Buffer.from('before reload'));
    const viaHttp = await https(node.agent.httpAddr, ids.nobody, 'GET', `/v1/records/${first}`);
    assert.equal(viaHttp.status, 200, viaHttp.body);
    assert.equal(
      (await failure(nobody.produce(Buffer.from('x')))).code,
      grpc.status.PERMISSION_DENIED,
    );

    await root.produce(Buffer.from('after reload'));
    const next = await within(5000, 'the old stream sees a new record', stream.next());
    assert.ok(!next.done);
    assert.deepEqual(next.value.value, Buffer.from('after reload'));
    controller.abort();
    await stream.return(undefined);

    // A broken policy is refused and the last good one stays.
    await writeFile(join(dir, 'policy.csv'), 'p, nobody, *\n');
    await assert.rejects(node.agent.reloadAcl(), AclLoadError);
    assert.deepEqual((await nobody.consume(first)).value, Buffer.from('before reload'));
    await writeFile(join(dir, 'policy.csv'), DEFAULT_POLICY_CSV);
    await node.agent.reloadAcl();
    assert.equal((await failure(nobody.consume(first))).code, grpc.status.PERMISSION_DENIED);
  });
});

describe('without ACL files, TLS on: every authenticated client is allowed', () => {
  it('lets nobody produce, still refuses no certificate', async () => {
    const dir = await tempDir('security-open');
    const ids = await makeCertificates(dir);
    const { 'acl-model-file': _m, 'acl-policy-file': _p, ...tlsOnly } = secureConfig(dir);
    const node = await startNode(tlsOnly);
    const nobody = new CommitLogClient(node.agent.rpcAddr, {
      credentials: await channelCredentials(ids.nobody, node.agent.rpcAddr),
    });
    const none = new CommitLogClient(node.agent.rpcAddr, {
      credentials: await channelCredentials(ids.none, node.agent.rpcAddr),
    });
    try {
      assert.equal(await nobody.produce(Buffer.from('x')), 0n);
      assert.equal(
        (await failure(none.produce(Buffer.from('x')))).code,
        grpc.status.UNAUTHENTICATED,
      );
    } finally {
      nobody.close();
      none.close();
      await node.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('start-up refusals', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('security-refusals');
    await makeCertificates(dir);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Starting must fail with `check`, before the log is created. */
  async function refuses(overrides: NodeFlags, check: (err: unknown) => boolean) {
    const dataDir = join(dir, `data-${Math.random().toString(16).slice(2)}`);
    await assert.rejects(startNode({ 'data-dir': dataDir, ...overrides }), check);
    await assert.rejects(
      access(join(dataDir, 'log')),
      { code: 'ENOENT' },
      'the log was not opened',
    );
  }

  it('a non-loopback bind without TLS, unless --insecure, says exactly that', async () => {
    const message =
      'bind-addr: 0.0.0.0 is not a loopback address; serving it without TLS needs --insecure';
    await assert.rejects(resolveConfig({ flags: { 'bind-addr': '0.0.0.0:8401' } }), { message });
    await refuses(
      { 'bind-addr': '0.0.0.0:8401' },
      (err) => err instanceof ConfigError && err.message === message,
    );
  });

  it('a missing certificate file, naming it', async () => {
    const certFile = join(dir, 'missing.pem');
    await refuses(
      { ...secureConfig(dir), 'server-tls-cert-file': certFile },
      (err) =>
        err instanceof TlsConfigError &&
        err.file === certFile &&
        /does not exist/.test(err.message),
    );
  });

  it('a key that does not match the certificate, naming the key', async () => {
    const keyFile = join(dir, 'root-client-key.pem');
    await refuses(
      { ...secureConfig(dir), 'server-tls-key-file': keyFile },
      (err) =>
        err instanceof TlsConfigError &&
        err.file === keyFile &&
        /does not match the certificate/.test(err.message),
    );
  });

  it('a bad peer certificate too', async () => {
    const peerTlsCertFile = join(dir, 'nope.pem');
    await refuses(
      {
        ...secureConfig(dir),
        'peer-tls-cert-file': peerTlsCertFile,
        'peer-tls-key-file': join(dir, 'server-key.pem'),
        'peer-tls-ca-file': join(dir, 'ca.pem'),
      },
      (err) => err instanceof TlsConfigError && err.file === peerTlsCertFile,
    );
  });

  it('an unreadable ACL file, naming it', async () => {
    const aclPolicyFile = join(dir, 'no-policy.csv');
    await refuses(
      { ...secureConfig(dir), 'acl-policy-file': aclPolicyFile },
      (err) => err instanceof AclLoadError && err.file === aclPolicyFile,
    );
  });
});

describe('commitlog agent with TLS, as a process', () => {
  const cli = (args: string[]) => runCli(args);

  it('stops with a message naming a missing TLS file', async () => {
    const dir = await tempDir('security-cli-missing');
    try {
      const res = await cli([
        'agent',
        '--data-dir',
        join(dir, 'data'),
        '--server-tls-cert-file',
        join(dir, 'nope.pem'),
        '--server-tls-key-file',
        join(dir, 'nope-key.pem'),
        '--server-tls-ca-file',
        join(dir, 'ca.pem'),
      ]);
      assert.equal(res.code, 1);
      assert.ok(
        res.stderr.includes(`TLS file ${join(dir, 'nope.pem')}: does not exist`),
        res.stderr,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serves the cert set from `commitlog cert init` and reloads the policy on SIGHUP', async () => {
    const dir = await tempDir('security-cli');
    const certs = join(dir, 'certs');
    try {
      const init = await cli(['cert', 'init', '--dir', certs]);
      assert.equal(init.code, 0, init.stderr);
      const agent = await spawnAgent([
        '--data-dir',
        join(dir, 'data'),
        '--rpc-port',
        '0',
        '--http-port',
        '0',
        '--fsync',
        'never',
        '--server-tls-cert-file',
        join(certs, 'server.pem'),
        '--server-tls-key-file',
        join(certs, 'server-key.pem'),
        '--server-tls-ca-file',
        join(certs, 'ca.pem'),
        '--acl-model-file',
        join(certs, 'model.conf'),
        '--acl-policy-file',
        join(certs, 'policy.csv'),
      ]);
      assert.ok(agent.tls, 'the start-up line says mutual TLS');
      const { rpcAddr } = agent;
      const as = (who: string) => [
        '--addr',
        rpcAddr,
        '--ca-file',
        join(certs, 'ca.pem'),
        '--cert-file',
        join(certs, `${who}-client.pem`),
        '--key-file',
        join(certs, `${who}-client-key.pem`),
      ];
      const ok = await cli(['produce', ...as('root'), 'hello']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, '0\n');
      assert.ok(!ok.stderr.includes('DEP0123'), ok.stderr);
      // The rest in-process: a CLI process per call costs seconds on a busy machine.
      const nobody = new CommitLogClient(rpcAddr, {
        credentials: await channelCredentials(
          {
            caFile: join(certs, 'ca.pem'),
            certFile: join(certs, 'nobody-client.pem'),
            keyFile: join(certs, 'nobody-client-key.pem'),
          },
          rpcAddr,
        ),
      });
      try {
        assert.deepEqual(await failure(nobody.produce(Buffer.from('x'))), {
          code: grpc.status.PERMISSION_DENIED,
          message: 'nobody is not permitted to produce',
        });
        await writeFile(join(certs, 'policy.csv'), `${DEFAULT_POLICY_CSV}p, nobody, *, produce\n`);
        agent.child.kill('SIGHUP');
        // The SIGHUP reload is logged.
        await agent.logged(/^(?=.*"rules":3)(?=.*"signal":"SIGHUP")(?=.*ACL policy reloaded).*$/m);
        // The same channel, not reconnected: the policy changed under a live connection.
        assert.equal(await nobody.produce(Buffer.from('again')), 1n);
      } finally {
        nobody.close();
      }
      assert.match(agent.stdout(), /^(?=.*"subject":"nobody")(?=.*permission denied).*$/m);

      assert.equal(await within(8000, 'the agent exits', agent.stop('SIGTERM')), 0);
      assert.deepEqual(await agent.exited, { code: 0, signal: null });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
