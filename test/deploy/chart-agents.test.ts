// The agent started exactly as the chart starts it: the rendered start script and
// environment of pod 0 and pod 1, run as two processes on this machine. Only what has
// no equivalent outside Kubernetes is mapped: each pod's DNS name (and the wildcard it
// binds) becomes a loopback address of its own, and the data volume a temporary folder.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { CommitLogClient } from '../../src/client/index.js';
import { healthProbe, only, podHost, podProcess, render, ROOT, until } from './support.js';

interface Pod {
  ip: string;
  proc: ChildProcess;
  output: () => string;
  exited: Promise<never>;
}

async function stop(pods: Pod[]): Promise<void> {
  await Promise.all(
    pods.map(async ({ proc }) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    }),
  );
}

describe('the agent as the chart runs it', () => {
  it(
    'pod 0 bootstraps, pod 1 joins it by name, and they form a cluster',
    { timeout: 120_000 },
    async () => {
      const sts = only(render(), 'StatefulSet');
      const replicas = (sts.spec as { replicas: number }).replicas;
      // A loopback /24 of its own per run, so parallel runs do not meet.
      const net = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
      const ipOf = (i: number) => `${net}.${10 + i}`;
      const work = mkdtempSync(join(tmpdir(), 'commitlog-chart-agents-'));
      const shim = join(work, 'bin');
      const pods: Pod[] = [];
      try {
        writeFileSync(
          join(work, 'commitlog'),
          `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin', 'commitlog.js')}" "$@"\n`,
        );
        chmodSync(join(work, 'commitlog'), 0o755);
        for (const i of [0, 1]) {
          const map = (s: string) => {
            for (let j = 0; j < replicas; j++) s = s.replaceAll(podHost(j), ipOf(j));
            return s
              .replaceAll('0.0.0.0', ipOf(i))
              .replaceAll('/var/lib/commitlog', join(work, `data-${i}`));
          };
          const { argv, env } = podProcess(sts, i);
          const mappedEnv = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, map(v)]));
          const proc = spawn(argv[0]!, argv.slice(1).map(map), {
            env: { ...mappedEnv, PATH: `${work}:${shim}:/usr/bin:/bin` },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let out = '';
          proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
          proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
          const exited = new Promise<never>((_resolve, reject) =>
            proc.once('exit', (code, signal) =>
              reject(new Error(`pod ${i} exited (${code ?? signal}):\n${out.slice(0, 1500)}`)),
            ),
          );
          exited.catch(() => undefined);
          pods.push({ ip: ipOf(i), proc, output: () => out, exited });
        }
        const rpc = (i: number) => `${ipOf(i)}:8400`;
        const probe = await healthProbe();
        const formed = until('two members, one leader, both Ready', 30_000, async () => {
          const client = new CommitLogClient(rpc(0));
          try {
            const servers = await client.getServers();
            const addrs = servers.map((s) => s.rpcAddr).sort();
            if (addrs.join() !== [rpc(0), rpc(1)].join()) return undefined;
            if (servers.filter((s) => s.isLeader).length !== 1) return undefined;
          } finally {
            client.close();
          }
          // Ready means what the chart's readiness probe asks.
          for (const i of [0, 1]) {
            const state = await probe.check({
              addr: rpc(i),
              service: 'log.v1.Log',
              timeoutMs: 2000,
            });
            if (state !== 'SERVING') return undefined;
          }
          return true;
        });
        await Promise.race([formed, ...pods.map((p) => p.exited)]);
        // A record produced on one pod is read back on the other.
        const c1 = new CommitLogClient(rpc(1));
        const c0 = new CommitLogClient(rpc(0));
        try {
          const value = Buffer.from(`from-the-chart-${Date.now()}`);
          const offset = await c1.produce(value);
          const got = await until(
            'the record on pod 0',
            10_000,
            async () => (await c0.consume(offset)).value,
          );
          assert.deepEqual(Buffer.from(got), value);
        } finally {
          c0.close();
          c1.close();
        }
      } finally {
        await stop(pods);
        rmSync(work, { recursive: true, force: true });
      }
    },
  );
});
