// TLS for a cluster: one credentials object verifies every node, by the one name that
// every node's certificate carries (`localhost` for `commitlog cert` certificates, or
// an explicit serverName), whatever address each connection goes to.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import {
  createCa,
  issueClientCertificate,
  issueServerCertificate,
  type CertificateAuthority,
  type IssuedCertificate,
} from '../src/auth/index.js';
import { connect, type TlsOptions, UnavailableError } from '../src/client/index.js';
import { FakeCluster } from './client-fakes.js';

describe('client TLS against a cluster', () => {
  let ca: CertificateAuthority;
  let servers: IssuedCertificate[];
  let client: IssuedCertificate;
  let cluster: FakeCluster;
  let tls: TlsOptions;

  before(async () => {
    ca = await createCa();
    // Each node has its own certificate; all carry localhost and commitlog.test.
    servers = await Promise.all(
      [0, 1, 2].map((i) =>
        issueServerCertificate(ca, { commonName: `node-${i}`, hosts: ['commitlog.test'] }),
      ),
    );
    client = await issueClientCertificate(ca, { commonName: 'app' });
    cluster = await FakeCluster.start(3, (i) => {
      const s = servers[i] as IssuedCertificate;
      return grpc.ServerCredentials.createSsl(
        Buffer.from(ca.certPem),
        [{ private_key: Buffer.from(s.keyPem), cert_chain: Buffer.from(s.certPem) }],
        true,
      );
    });
    tls = { ca: ca.certPem, cert: client.certPem, key: client.keyPem };
  });

  after(() => cluster.stop());

  it('verifies every node with one credentials object (mutual TLS, IP addresses)', async () => {
    await using log = await connect(cluster.nodes.map((n) => n.addr).join(','), { tls });
    const offset = await log.produce(Buffer.from('secret'));
    for (let i = 0; i < 4; i++) assert.equal((await log.read(offset)).value.toString(), 'secret');
    assert.equal(cluster.node(0).calls.produce, 1);
    assert.ok(cluster.node(1).calls.consume > 0 && cluster.node(2).calls.consume > 0);
  });

  it('verifies an explicit server name', async () => {
    await using log = await connect(`commitlog://${cluster.node(1).addr}`, {
      tls: { ...tls, serverName: 'commitlog.test' },
    });
    assert.equal((await log.servers()).length, 3);
  });

  it('refuses nodes whose certificates lack the name', async () => {
    await assert.rejects(
      connect(cluster.node(0).addr, {
        tls: { ...tls, serverName: 'elsewhere.test' },
        connectTimeoutMs: 1500,
      }),
      UnavailableError,
    );
  });
});
