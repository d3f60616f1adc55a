import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';

import {
  Authorizer,
  DEFAULT_MODEL_CONF,
  DEFAULT_POLICY_CSV,
  createCa,
  issueClientCertificate,
  issueServerCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../auth/index.js';
import { createAuthInterceptor, mutualTlsServerCredentials } from './auth.js';

const DAY = 24 * 60 * 60 * 1000;

/** A byte-echo method at `path`, so the interceptor is tested without the real service. */
function method(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  const id = (b: Buffer) => b;
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: id,
    requestDeserialize: id,
    responseSerialize: id,
    responseDeserialize: id,
  };
}

const SERVICE = {
  Produce: method('/log.v1.Log/Produce'),
  Consume: method('/log.v1.Log/Consume'),
  Unmapped: method('/log.v1.Log/SomethingNew'),
};
const HEALTH = { Check: method('/grpc.health.v1.Health/Check') };

describe('the gRPC auth interceptor over mutual TLS', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let server: grpc.Server;
  let port: number;
  let handled = 0;
  let authorizer: Authorizer;
  const warnings: { fields: object; message: string }[] = [];
  const clients: Record<string, IssuedCertificate | undefined> = {};

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-interceptor-'));
    await writeFile(join(dir, 'model.conf'), DEFAULT_MODEL_CONF);
    await writeFile(join(dir, 'policy.csv'), DEFAULT_POLICY_CSV);
    authorizer = await Authorizer.open({
      modelFile: join(dir, 'model.conf'),
      policyFile: join(dir, 'policy.csv'),
    });
    ca = await createCa();
    const other = await createCa({ commonName: 'other' });
    const serverCert = await issueServerCertificate(ca, { commonName: 'server' });
    clients.root = await issueClientCertificate(ca, { commonName: 'root' });
    clients.nobody = await issueClientCertificate(ca, { commonName: 'nobody' });
    clients.stranger = await issueClientCertificate(other, { commonName: 'root' });
    clients.expired = await issueClientCertificate(ca, {
      commonName: 'root',
      notBefore: new Date(Date.now() - 3 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    clients.none = undefined;

    server = new grpc.Server({
      interceptors: [
        createAuthInterceptor({
          authorizer,
          logger: { warn: (fields, message) => warnings.push({ fields, message }) },
        }),
      ],
    });
    const echo: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
      handled++;
      callback(null, call.request);
    };
    server.addService(SERVICE, { Produce: echo, Consume: echo, Unmapped: echo });
    server.addService(HEALTH, { Check: echo });
    const creds = mutualTlsServerCredentials({
      cert: Buffer.from(serverCert.certPem),
      key: Buffer.from(serverCert.keyPem),
      ca: Buffer.from(ca.certPem),
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
  });

  after(async () => {
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  function call(who: string, name: 'Produce' | 'Consume' | 'Unmapped' | 'Check') {
    const cert = clients[who];
    const creds = grpc.credentials.createSsl(
      Buffer.from(ca.certPem),
      cert ? Buffer.from(cert.keyPem) : null,
      cert ? Buffer.from(cert.certPem) : null,
    );
    const Client = grpc.makeGenericClientConstructor(name === 'Check' ? HEALTH : SERVICE, 'X');
    const client = new Client(`127.0.0.1:${port}`, creds, {
      'grpc.ssl_target_name_override': 'localhost',
    });
    const path = name === 'Check' ? HEALTH.Check.path : SERVICE[name].path;
    return new Promise<{ code: grpc.status; details: string }>((resolve) => {
      client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from('x'),
        { deadline: Date.now() + 5000 },
        (err: grpc.ServiceError | null) => {
          client.close();
          resolve(
            err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' },
          );
        },
      );
    });
  }

  it('lets root produce and consume', async () => {
    const before = handled;
    assert.equal((await call('root', 'Produce')).code, grpc.status.OK);
    assert.equal((await call('root', 'Consume')).code, grpc.status.OK);
    assert.equal(handled, before + 2);
  });

  it('denies nobody both, naming subject and action, without reaching the handler', async () => {
    const before = handled;
    assert.deepEqual(await call('nobody', 'Produce'), {
      code: grpc.status.PERMISSION_DENIED,
      details: 'nobody is not permitted to produce',
    });
    assert.deepEqual(await call('nobody', 'Consume'), {
      code: grpc.status.PERMISSION_DENIED,
      details: 'nobody is not permitted to consume',
    });
    assert.equal(handled, before);
    assert.equal(warnings.at(-1)?.message, 'permission denied');
  });

  for (const [who, reason] of [
    ['none', /^no client certificate$/],
    ['stranger', /not signed by a trusted CA/],
    ['expired', /has expired/],
  ] as const) {
    it(`refuses ${who === 'none' ? 'no certificate' : `a ${who} certificate`} with UNAUTHENTICATED and logs why`, async () => {
      const before = handled;
      const asked = authorizer.stats;
      const result = await call(who, 'Produce');
      assert.equal(result.code, grpc.status.UNAUTHENTICATED);
      assert.match(result.details, reason);
      assert.equal(handled, before);
      const { evaluations, cacheHits } = authorizer.stats;
      assert.deepEqual(
        { evaluations, cacheHits },
        { evaluations: asked.evaluations, cacheHits: asked.cacheHits },
        'the authorizer was never asked',
      );
      const logged = warnings.at(-1);
      assert.equal(logged?.message, 'unauthenticated call refused');
      assert.match((logged?.fields as { reason: string }).reason, reason);
    });
  }

  it('evaluates the policy once per (subject, action), then answers from the cache', async () => {
    const before = authorizer.stats;
    for (let i = 0; i < 5; i++) assert.equal((await call('root', 'Produce')).code, grpc.status.OK);
    const after = authorizer.stats;
    assert.ok(after.evaluations - before.evaluations <= 1, 'at most one evaluation');
    assert.ok(after.cacheHits - before.cacheHits >= 4);
  });

  it('leaves health open, even without a certificate', async () => {
    assert.equal((await call('none', 'Check')).code, grpc.status.OK);
  });

  it('refuses a method missing from the action table', async () => {
    assert.deepEqual(await call('root', 'Unmapped'), {
      code: grpc.status.PERMISSION_DENIED,
      details: 'root is not permitted to make /log.v1.Log/SomethingNew',
    });
  });
});
