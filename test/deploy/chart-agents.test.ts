// The agent started exactly as the chart starts it: the rendered start scripts and
// environment of pod 0 and pod 1 (init container first, as the kubelet runs them), run
// as processes on this machine, with and without TLS. Only what has no equivalent
// outside Kubernetes is mapped: each pod's DNS name (and the wildcard it binds) becomes a
// loopback address of its own, and each volume a folder: the data volume and emptyDirs
// empty, Secret volumes filled from the Secrets the chart rendered, item by item.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { BOOK_FILES, writeBookFileSet } from '../../src/auth/index.js';
import { CommitLogClient, NotLeaderError } from '../../src/client/index.js';
import {
  GiveUpError,
  mountFolders,
  NAMESPACE,
  healthProbe,
  only,
  podContainer,
  podHost,
  podProcess,
  podTemplate,
  render,
  ROOT,
  until,
  type K8sObject,
} from './support.js';

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

async function runPods(
  values: object,
  work: string,
): Promise<{
  pods: Pod[];
  rpc: (i: number) => string;
  tlsDir: (i: number) => string | undefined;
  /** Runs the `helm test` pod against the pods; resolves with what it printed. */
  helmTest: () => Promise<string>;
}> {
  const objects = render(values);
  const sts = only(objects, 'StatefulSet');
  const replicas = (sts.spec as { replicas: number }).replicas;
  const clientHost = `${sts.metadata.name}.${NAMESPACE}.svc.cluster.local`;
  // A loopback /24 of its own per run, so parallel runs do not meet.
  const net = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  const ipOf = (i: number) => `${net}.${10 + i}`;
  writeFileSync(
    join(work, 'commitlog'),
    `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin', 'commitlog.js')}" "$@"\n`,
  );
  chmodSync(join(work, 'commitlog'), 0o755);
  const pods: Pod[] = [];
  const tlsDirs = new Map<number, string>();

  /**
   * Starts container `name` of pod `i` of `workload` as the kubelet would, with its
   * paths mapped; `podDir` holds the pod's volumes.
   */
  const start = (i: number, name?: string, workload = sts, podDir = `pod-${i}`) => {
    const container = podContainer(workload, name);
    const folders = mountFolders(objects, workload, container, join(work, podDir));
    const tls = [...folders].find(([path]) => path.endsWith('/tls'));
    if (tls && workload === sts) tlsDirs.set(i, tls[1]);
    // One pass, longest first: nothing replaced is looked at again (the folders are
    // under /tmp, itself a mount path).
    const replacements = new Map<string, string>([
      ...Array.from({ length: replicas }, (_, j) => [podHost(j), ipOf(j)] as const),
      // The client Service: pod 0 stands in for it.
      [clientHost, ipOf(0)],
      ...folders,
      ['0.0.0.0', ipOf(i)],
    ]);
    const pattern = new RegExp(
      [...replacements.keys()]
        .sort((a, b) => b.length - a.length)
        .map((k) => k.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
        .join('|'),
      'g',
    );
    const map = (s: string) => s.replace(pattern, (m) => replacements.get(m)!);
    const { argv, env } = podProcess(workload, i, {}, container.name);
    const mappedEnv = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, map(v)]));
    const proc = spawn(argv[0]!, argv.slice(1).map(map), {
      env: { ...mappedEnv, PATH: `${work}:/usr/bin:/bin` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    return { proc, output: () => out };
  };

  /** Runs a container to its end; it must succeed. Returns what it printed. */
  const complete = async (what: string, started: ReturnType<typeof start>) => {
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => started.proc.kill('SIGKILL'), 30_000);
      started.proc.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 0, `${what}:\n${started.output()}`);
    return started.output();
  };

  for (const i of [0, 1]) {
    // Init containers must finish, and succeed, before the node starts.
    for (const init of podTemplate(sts).spec.initContainers ?? [])
      await complete(`pod ${i} init container ${init.name}`, start(i, init.name));
    const { proc, output } = start(i);
    const exited = new Promise<never>((_resolve, reject) =>
      proc.once('exit', (code, signal) =>
        reject(new Error(`pod ${i} exited (${code ?? signal}):\n${output().slice(0, 1500)}`)),
      ),
    );
    exited.catch(() => undefined);
    pods.push({ ip: ipOf(i), proc, output, exited });
  }
  // `helm test`: the hook pod, its init containers first, run to its end.
  const hook = only(objects, 'Pod');
  const asWorkload: K8sObject = {
    ...hook,
    spec: { template: { metadata: hook.metadata, spec: hook.spec } },
  };
  const helmTest = async () => {
    for (const init of podTemplate(asWorkload).spec.initContainers ?? [])
      await complete(`helm test init ${init.name}`, start(0, init.name, asWorkload, 'helm-test'));
    const main = podTemplate(asWorkload).spec.containers[0]!.name;
    return complete('helm test', start(0, main, asWorkload, 'helm-test'));
  };
  return { pods, rpc: (i) => `${ipOf(i)}:8400`, tlsDir: (i) => tlsDirs.get(i), helmTest };
}

const cases: [string, (certs: string) => object][] = [
  ['the default values (plaintext)', () => ({})],
  [
    'TLS (a certificate per pod, issued from the CA) and an ACL',
    (certs) => {
      const file = (name: string) => readFileSync(join(certs, name), 'utf8');
      return {
        tls: {
          enabled: true,
          ca: { cert: file(BOOK_FILES.caCert), key: file(BOOK_FILES.caKey) },
        },
        acl: { enabled: true, model: file(BOOK_FILES.model), policy: file(BOOK_FILES.policy) },
      };
    },
  ],
];

describe('the agent as the chart runs it', () => {
  for (const [name, valuesOf] of cases) {
    it(
      `pod 0 bootstraps, pod 1 joins it by name, and they form a cluster: ${name}`,
      { timeout: 120_000 },
      async () => {
        const work = mkdtempSync(join(tmpdir(), 'commitlog-chart-agents-'));
        let pods: Pod[] = [];
        try {
          // The operator's files: a CA, a client certificate for "root", the ACL files.
          const certs = join(work, 'certs');
          await writeBookFileSet(certs);
          const values = valuesOf(certs);
          const tls = 'tls' in values;
          const run = await runPods(values, work);
          pods = run.pods;
          const { rpc } = run;
          // A client with root's certificate (the ACL lets root produce and consume).
          const client = (i: number) => {
            if (!tls) return new CommitLogClient(rpc(i));
            const read = (f: string) => readFileSync(join(certs, f));
            return new CommitLogClient(rpc(i), {
              credentials: grpc.credentials.createSsl(
                read(BOOK_FILES.caCert),
                read(BOOK_FILES.rootClientKey),
                read(BOOK_FILES.rootClientCert),
              ),
            });
          };
          const probe = await healthProbe();
          const formed = until('two members, one leader, both Ready', 60_000, async () => {
            for (const p of pods)
              if (p.proc.exitCode !== null || p.proc.signalCode !== null)
                throw new GiveUpError('a pod exited');
            const c = client(0);
            let leader: number;
            try {
              const servers = await c.getServers();
              const addrs = servers.map((s) => s.rpcAddr).sort();
              if (addrs.join() !== [rpc(0), rpc(1)].join()) return undefined;
              const leaders = servers.filter((s) => s.isLeader);
              if (leaders.length !== 1) return undefined;
              // A joiner is a learner until promoted; the configuration change that
              // promotes it can leave the follower without a leader for a moment.
              if (!servers.every((s) => s.suffrage === 'voter')) return undefined;
              leader = leaders[0]!.rpcAddr === rpc(0) ? 0 : 1;
            } finally {
              c.close();
            }
            // Ready means what the chart's readiness probe asks, under TLS with the pod's
            // own certificate, and dialling the pod's address (its DNS name, mapped):
            // the certificate must name it.
            for (const i of [0, 1]) {
              const tlsDir = run.tlsDir(i);
              const state = await probe.check({
                addr: rpc(i),
                service: 'log.v1.Log',
                timeoutMs: 2000,
                ...(tls ? { tlsDir: tlsDir! } : {}),
              });
              if (state !== 'SERVING') return undefined;
            }
            return leader;
          });
          const leader = await Promise.race([formed, ...pods.map((p) => p.exited)]);
          // A record produced on the follower (which forwards it to the leader, under
          // the ACL as itself) is read back on the leader.
          const follower = 1 - leader;
          const cf = client(follower);
          const cl = client(leader);
          try {
            const value = Buffer.from(`from-the-chart-${Date.now()}`);
            // NotLeaderError is raised before the append ("retry shortly"): retrying
            // it cannot store the record twice.
            const offset = await until('the produce through the follower', 10_000, async () => {
              try {
                return await cf.produce(value);
              } catch (err) {
                if (err instanceof NotLeaderError) return undefined;
                throw new GiveUpError(`produce: ${String(err)}`, { cause: err });
              }
            });
            const got = await until(
              'the record on the leader',
              10_000,
              async () => (await cl.consume(offset)).value,
            );
            assert.deepEqual(Buffer.from(got), value);
          } finally {
            cf.close();
            cl.close();
          }
          // And the chart's `helm test` hook passes against them.
          assert.match(await run.helmTest(), /consumed helm-test-/);
        } finally {
          await stop(pods);
          rmSync(work, { recursive: true, force: true });
        }
      },
    );
  }
});
