// The Metacontroller hook server (deploy/commitlog/files/service-per-pod.mjs) as the
// chart runs it: a Node process answering POST /sync.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { CHART, until } from './support.js';

describe('service-per-pod hook server', () => {
  it('answers sync requests with one Service per pod, refuses bad ones, and stops on SIGTERM', async () => {
    const proc = spawn(process.execPath, [join(CHART, 'files', 'service-per-pod.mjs')], {
      env: { PORT: '0', SERVICE_ANNOTATIONS: '{"cloud/lb":"nlb"}' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const port = await until(
        'the hook to listen',
        10_000,
        async () => /port (\d+)/.exec(out)?.[1],
      );
      const base = `http://127.0.0.1:${port}`;
      assert.equal(await (await fetch(`${base}/healthz`)).text(), 'ok');
      const object = {
        metadata: {
          name: 'cl-commitlog',
          namespace: 'logs',
          annotations: {
            'service-per-pod-label': 'statefulset.kubernetes.io/pod-name',
            'service-per-pod-ports': '8400:8400,8401:8401/UDP',
          },
        },
        spec: { replicas: 2 },
      };
      const res = await fetch(`${base}/sync`, {
        method: 'POST',
        body: JSON.stringify({ controller: {}, object, attachments: {} }),
      });
      assert.equal(res.status, 200);
      const { attachments } = (await res.json()) as {
        attachments: {
          metadata: { name: string; annotations: object };
          spec: { ports: object[] };
        }[];
      };
      assert.deepEqual(
        attachments.map((a) => a.metadata.name),
        ['cl-commitlog-0', 'cl-commitlog-1'],
      );
      assert.deepEqual(attachments[0]!.metadata.annotations, { 'cloud/lb': 'nlb' });
      assert.deepEqual(attachments[1]!.spec.ports, [
        { name: 'tcp-8400', port: 8400, targetPort: 8400, protocol: 'TCP' },
        { name: 'udp-8401', port: 8401, targetPort: 8401, protocol: 'UDP' },
      ]);
      const bad = await fetch(`${base}/sync`, { method: 'POST', body: '{"object": 1' });
      assert.equal(bad.status, 400);
      assert.equal((await fetch(`${base}/nope`)).status, 404);
      const exit = once(proc, 'exit');
      proc.kill('SIGTERM');
      assert.deepEqual(await exit, [0, null]);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
  });
});
