// deploy/health-probe.mjs, the readiness and liveness probe the chart uses under mutual
// TLS (and the image's HEALTHCHECK), against a real node.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { startNode, tempDir } from '../support/node.js';
import { healthProbe, ROOT } from './support.js';

describe('health-probe.mjs', () => {
  it('reports SERVING for the server and log.v1.Log, and fails for anything else', async () => {
    const { check } = await healthProbe();
    const node = await startNode();
    const addr = node.agent.rpcAddr;
    try {
      assert.equal(await check({ addr, service: '', timeoutMs: 3000 }), 'SERVING');
      assert.equal(await check({ addr, service: 'log.v1.Log', timeoutMs: 3000 }), 'SERVING');
      await assert.rejects(
        check({ addr, service: 'no.such.Service', timeoutMs: 3000 }),
        /grpc-status 5/,
      );
    } finally {
      await node.cleanup();
    }
    await assert.rejects(check({ addr, service: '', timeoutMs: 3000 }), /ECONNREFUSED/);
  });

  it('speaks mutual TLS with the files laid out as the chart mounts them', async () => {
    const { check } = await healthProbe();
    const certs = await tempDir('probe-certs');
    execFileSync(process.execPath, [
      join(ROOT, 'bin', 'commitlog.js'),
      'cert',
      'init',
      '--dir',
      certs,
    ]);
    // The Secret's layout (cert-manager's): ca.crt, tls.crt, tls.key.
    const tlsDir = join(certs, 'mounted');
    mkdirSync(tlsDir);
    copyFileSync(join(certs, 'ca.pem'), join(tlsDir, 'ca.crt'));
    copyFileSync(join(certs, 'server.pem'), join(tlsDir, 'tls.crt'));
    copyFileSync(join(certs, 'server-key.pem'), join(tlsDir, 'tls.key'));
    const node = await startNode({
      'server-tls-cert-file': join(tlsDir, 'tls.crt'),
      'server-tls-key-file': join(tlsDir, 'tls.key'),
      'server-tls-ca-file': join(tlsDir, 'ca.crt'),
      'acl-model-file': join(certs, 'model.conf'),
      'acl-policy-file': join(certs, 'policy.csv'),
    });
    const addr = node.agent.rpcAddr;
    try {
      assert.equal(
        await check({ addr, service: 'log.v1.Log', tlsDir, timeoutMs: 3000 }),
        'SERVING',
      );
      // As a container's HEALTHCHECK: the files the agent was configured with.
      const env = {
        COMMITLOG_SERVER_TLS_CERT_FILE: join(tlsDir, 'tls.crt'),
        COMMITLOG_SERVER_TLS_KEY_FILE: join(tlsDir, 'tls.key'),
        COMMITLOG_SERVER_TLS_CA_FILE: join(tlsDir, 'ca.crt'),
      };
      assert.equal(await check({ addr, service: 'log.v1.Log', env, timeoutMs: 3000 }), 'SERVING');
      // Without a certificate the handshake is refused: the probe must carry one.
      await assert.rejects(check({ addr, service: 'log.v1.Log', timeoutMs: 3000 }));
    } finally {
      await node.cleanup();
      await rm(certs, { recursive: true, force: true });
    }
  });
});
