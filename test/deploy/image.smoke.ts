// The container image under podman (`npm run test:image`, after scripts/image.sh): one
// node and the book's curl session, SIGTERM as PID 1, data kept in the volume; then
// three containers on a podman network joined by container name, the leader killed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';

import * as grpc from '@grpc/grpc-js';

import { BOOK_FILES, writeBookFileSet } from '../../src/auth/index.js';
import { CommitLogClient, NotLeaderError } from '../../src/client/index.js';
import {
  GiveUpError,
  mountFolders,
  only,
  podContainer,
  podHost,
  podProcess,
  podTemplate,
  render,
  ROOT,
  until,
} from './support.js';

const run = promisify(execFile);
const IMAGE = process.env.IMAGE ?? 'localhost/commitlog:dev';
const env = { ...process.env, CONTAINERS_CONF: join(ROOT, 'deploy', 'podman', 'containers.conf') };
const tag = `clsmoke${process.pid}`;
// On everything the tests create, so scripts/image-test.sh can remove what a test run
// that died left behind.
const LABEL = `io.commitlog.smoke=${tag}`;
const created: { containers: string[]; volumes: string[]; networks: string[] } = {
  containers: [],
  volumes: [],
  networks: [],
};

async function podman(...args: string[]): Promise<string> {
  try {
    return (await run('podman', args, { env, maxBuffer: 16 << 20 })).stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`podman ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

const folders: string[] = [];
after(async () => {
  for (const f of folders) rmSync(f, { recursive: true, force: true });
  for (const c of created.containers)
    await podman('rm', '--force', '--volumes', '--time', '0', c).catch(() => '');
  for (const v of created.volumes) await podman('volume', 'rm', '--force', v).catch(() => '');
  for (const n of created.networks) await podman('network', 'rm', '--force', n).catch(() => '');
});

/** Starts a container running the image's entrypoint with `args`; returns its name. */
async function container(name: string, opts: string[], args: string[]): Promise<string> {
  created.containers.push(name);
  await podman('run', '--detach', '--label', LABEL, '--name', name, ...opts, IMAGE, ...args);
  return name;
}

/** What the container wrote, stdout and stderr (podman logs answers on both). */
async function logs(name: string): Promise<string> {
  const { stdout, stderr } = await run('podman', ['logs', name], { env, maxBuffer: 16 << 20 });
  return `${stdout}${stderr}`;
}

async function hostPort(name: string, port: string): Promise<string> {
  // "0.0.0.0:41234" or "127.0.0.1:41234"; the first line is enough.
  const line = (await podman('port', name, port)).split('\n')[0]!;
  return `127.0.0.1:${line.split(':').pop()}`;
}

async function running(name: string): Promise<boolean> {
  return (await podman('inspect', '--format', '{{.State.Running}}', name)) === 'true';
}

async function alive(name: string): Promise<void> {
  if (!(await running(name))) throw new GiveUpError(`${name} stopped:\n${await logs(name)}`);
}

async function readyz(http: string, name: string): Promise<true | undefined> {
  await alive(name);
  const res = await fetch(`http://${http}/readyz`, { signal: AbortSignal.timeout(2000) });
  return res.status === 200 ? true : undefined;
}

async function curl(...args: string[]): Promise<string> {
  return (await run('curl', ['--silent', '--show-error', '--max-time', '5', ...args])).stdout;
}

describe('the image', () => {
  it("runs one node that serves the book's curl session, stops on SIGTERM and keeps its data", async () => {
    const volume = `${tag}-data`;
    created.volumes.push(volume);
    await podman('volume', 'create', '--label', LABEL, volume);
    const name = await container(
      `${tag}-single`,
      // As the chart runs it: read-only root, the data volume writable.
      ['--read-only', '--volume', `${volume}:/var/lib/commitlog`, '--publish', '127.0.0.1::8080'],
      ['agent', '--insecure'],
    );
    const http = await hostPort(name, '8080/tcp');
    await until('the node to be ready', 30_000, () => readyz(http, name));
    const url = `http://${http.replace('127.0.0.1', 'localhost')}`;
    const values = ['TGV0J3MgR28gIzEK', 'TGV0J3MgR28gIzIK', 'TGV0J3MgR28gIzMK'];
    for (const [i, v] of values.entries()) {
      const out = await curl('-X', 'POST', url, '-d', `{"record": {"value": "${v}"}}`);
      assert.deepEqual(JSON.parse(out), { offset: i });
    }
    for (const [i, v] of values.entries()) {
      const out = await curl('-X', 'GET', url, '-d', `{"offset": ${i}}`);
      assert.deepEqual(JSON.parse(out), { record: { value: v, offset: i } });
    }
    // The image's HEALTHCHECK (the chart's probe under TLS) agrees.
    await podman('healthcheck', 'run', name);
    assert.equal(await podman('exec', name, 'id', '-u'), '10001');

    // SIGTERM reaches Node as PID 1: a clean exit well before podman's 20 s kill.
    const t0 = Date.now();
    await podman('stop', '--time', '20', name);
    const stopMs = Date.now() - t0;
    assert.equal(await podman('inspect', '--format', '{{.State.ExitCode}}', name), '0');
    assert.ok(stopMs < 10_000, `stop took ${stopMs} ms`);
    assert.match(await logs(name), /shutting down/);
    console.log(`# image: SIGTERM to exit ${stopMs} ms`);

    await podman('start', name);
    const again = await hostPort(name, '8080/tcp');
    await until('the node to be ready again', 30_000, () => readyz(again, name));
    const out = await curl('-X', 'GET', `http://${again}`, '-d', '{"offset": 2}');
    assert.deepEqual(JSON.parse(out), { record: { value: values[2], offset: 2 } });
  });

  it('stops promptly on a SIGTERM that arrives while the node is still starting', async () => {
    // A join address nobody answers keeps the agent in its start-up for many seconds.
    const name = await container(
      `${tag}-early`,
      ['--read-only'],
      ['agent', '--insecure', '--start-join-addrs', '127.0.0.1:9'],
    );
    await until('the agent to be starting (RPC port open, joining)', 30_000, async () => {
      await alive(name);
      return /RPC port \(gRPC and Raft\) on/.test(await logs(name)) ? true : undefined;
    });
    const t0 = Date.now();
    await podman('stop', '--time', '8', name);
    const ms = Date.now() - t0;
    const code = await podman('inspect', '--format', '{{.State.ExitCode}}', name);
    // 143 = 128 + SIGTERM: ended by the signal, not killed (137) when podman gave up.
    assert.ok(ms < 5000 && code === '143', `stop took ${ms} ms, exit code ${code}`);
    assert.match(await logs(name), /SIGTERM before the command was ready/);
    console.log(`# image: SIGTERM during start-up to exit ${ms} ms`);
  });

  it('forms a three-node cluster by container name that survives the leader being killed', async () => {
    const network = `${tag}-net`;
    created.networks.push(network);
    await podman('network', 'create', '--label', LABEL, network);
    const names = [0, 1, 2].map((i) => `${tag}-c${i}`);
    for (const [i, name] of names.entries()) {
      const joins = names.filter((n) => n !== name).map((n) => `${n}:8401`);
      await container(
        name,
        [
          '--network',
          network,
          '--hostname',
          name,
          '--read-only',
          '--publish',
          '127.0.0.1::8080',
          '--publish',
          '127.0.0.1::8400',
        ],
        [
          'agent',
          '--insecure',
          '--node-name',
          name,
          '--advertise-host',
          name,
          ...(i === 0 ? ['--bootstrap'] : []),
          '--start-join-addrs',
          joins.join(','),
        ],
      );
    }
    const http = await Promise.all(names.map((n) => hostPort(n, '8080/tcp')));
    const rpc = await Promise.all(names.map((n) => hostPort(n, '8400/tcp')));
    type Server = { id: string; rpcAddr: string; isLeader: boolean; suffrage: string };
    /** GetServers through container `i`'s published RPC port. */
    const servers = async (i: number): Promise<Server[]> => {
      await alive(names[i]!);
      const client = new CommitLogClient(rpc[i]!);
      try {
        return await client.getServers();
      } finally {
        client.close();
      }
    };
    // Joiners come in as learners and are promoted once caught up; only voters make a
    // quorum that survives losing the leader.
    const formed = await until('three voters and a leader', 60_000, async () => {
      const list = await servers(0);
      const ok =
        list.length === 3 &&
        list.filter((s) => s.isLeader).length === 1 &&
        list.every((s) => s.suffrage === 'voter');
      return ok ? list : undefined;
    });
    // Members advertise their container names, which every container can dial.
    assert.deepEqual(formed.map((s) => s.rpcAddr).sort(), names.map((n) => `${n}:8400`).sort());
    for (const [i, h] of http.entries())
      await until('every node ready', 30_000, () => readyz(h, names[i]!));

    const produce = async (addr: string, text: string) => {
      const res = await fetch(`http://${addr}/`, {
        method: 'POST',
        body: JSON.stringify({ record: { value: Buffer.from(text).toString('base64') } }),
        signal: AbortSignal.timeout(5000),
      });
      if (res.status !== 200) throw new Error(`produce: ${res.status} ${await res.text()}`);
      return (await res.json()) as { offset: number };
    };
    await produce(http[1]!, 'before');
    // The book's read: GET with a body, which fetch refuses to send.
    const read = async (addr: string, offset: number) => {
      const out = await curl(
        '--fail',
        '-X',
        'GET',
        `http://${addr}`,
        '-d',
        `{"offset": ${offset}}`,
      );
      const { record } = JSON.parse(out) as { record: { value: string } };
      return Buffer.from(record.value, 'base64').toString();
    };

    const leader = formed.find((s) => s.isLeader)!.rpcAddr.split(':')[0]!;
    const survivors = names.filter((n) => n !== leader);
    const t0 = Date.now();
    await podman('kill', '--signal', 'KILL', leader);
    const survivorHttp = http[names.indexOf(survivors[0]!)]!;
    const { offset } = await until('a produce after the leader died', 30_000, () =>
      produce(survivorHttp, 'after'),
    );
    console.log(`# image: leader killed to next produce acknowledged ${Date.now() - t0} ms`);

    // The killed node failed, it did not leave: still a member. Back up, its address answers.
    await podman('start', leader);
    const from = survivors[0]!;
    await until('every listed address answering', 60_000, async () => {
      const list = await servers(names.indexOf(from));
      if (list.length !== 3) return undefined;
      for (const s of list) {
        await podman('exec', from, 'node', '/app/deploy/health-probe.mjs', '--addr', s.rpcAddr);
      }
      return true;
    });
    // It rejoined: it has the record produced while it was down, and takes produces.
    const back = await hostPort(leader, '8080/tcp');
    await until('the restarted node ready', 60_000, () => readyz(back, leader));
    assert.equal(
      await until('the record made while it was down', 30_000, () => read(back, offset)),
      'after',
    );
    await produce(back, 'through the restarted node');
    // And the operator's view: `commitlog servers` inside a container names all three,
    // by the names they advertise.
    const listed = await podman('exec', from, 'commitlog', 'servers', '--addr', `${from}:8400`);
    for (const n of names) assert.match(listed, new RegExp(`^${n}\t${n}:8400\t`, 'm'));
    assert.doesNotMatch(listed, /0\.0\.0\.0/);
    console.log(`# image: commitlog servers\n${listed.replace(/^/gm, '#   ')}`);
  });

  it("runs the chart's TLS pods as rendered: each issues its own certificate and they form a cluster", async () => {
    // The operator's files, and the chart rendered with its CA and an ACL.
    const work = mkdtempSync(join(tmpdir(), 'commitlog-image-tls-'));
    folders.push(work);
    chmodSync(work, 0o755);
    const certs = join(work, 'certs');
    await writeBookFileSet(certs);
    const file = (name: string) => readFileSync(join(certs, name), 'utf8');
    const objects = render({
      tls: { enabled: true, ca: { cert: file(BOOK_FILES.caCert), key: file(BOOK_FILES.caKey) } },
      acl: { enabled: true, model: file(BOOK_FILES.model), policy: file(BOOK_FILES.policy) },
    });
    const sts = only(objects, 'StatefulSet');
    const network = `${tag}-tls`;
    created.networks.push(network);
    await podman('network', 'create', '--label', LABEL, network);
    const podNames = [0, 1].map((i) => `${sts.metadata.name}-${i}`);
    // Containers named apart from other runs; each pod's own name is its hostname.
    const pods = podNames.map((p) => `${tag}-${p}`);

    /** podman flags for container `name` of pod `i`: its volumes as folders, its env. */
    const podFlags = (i: number, name?: string) => {
      const container = podContainer(sts, name);
      const mounts = mountFolders(objects, sts, container, join(work, `pod-${i}`));
      const { argv, env } = podProcess(sts, i, {}, container.name);
      const flags = ['--read-only', '--user', '10001:10001', '--network', network];
      for (const m of container.volumeMounts ?? []) {
        const dir = mounts.get(m.mountPath)!;
        // What fsGroup does in a pod: the volumes belong to the pod's user.
        chownSync(dir, 10001, 10001);
        for (const f of readdirSync(dir)) chownSync(join(dir, f), 10001, 10001);
        flags.push('--volume', `${dir}:${m.mountPath}${m.readOnly ? ':ro' : ''}`);
      }
      for (const [k, v] of Object.entries(env)) flags.push('--env', `${k}=${v}`);
      return { flags, argv };
    };

    for (const [i, pod] of pods.entries()) {
      // The init container, to completion, before the node (as the kubelet runs them).
      for (const init of podTemplate(sts).spec.initContainers ?? []) {
        const { flags, argv } = podFlags(i, init.name);
        const name = `${pod}-${init.name}`;
        created.containers.push(name);
        await podman(
          'run',
          '--label',
          LABEL,
          '--name',
          name,
          ...flags,
          '--entrypoint',
          argv[0]!,
          IMAGE,
          ...argv.slice(1),
        );
      }
      const { flags, argv } = podFlags(i);
      // Reached by its pod DNS name on the network, as the headless Service gives it.
      await container(
        pod,
        [
          ...flags,
          '--hostname',
          pod,
          '--network-alias',
          podHost(i),
          '--publish',
          '127.0.0.1::8400',
          '--entrypoint',
          argv[0]!,
        ],
        argv.slice(1),
      );
    }
    const rpc = await Promise.all(pods.map((p) => hostPort(p, '8400/tcp')));
    const read = (f: string) => readFileSync(join(certs, f));
    // root's client certificate; the node's names localhost, which a client dialling an
    // IP address checks.
    const client = (i: number) =>
      new CommitLogClient(rpc[i]!, {
        credentials: grpc.credentials.createSsl(
          read(BOOK_FILES.caCert),
          read(BOOK_FILES.rootClientKey),
          read(BOOK_FILES.rootClientCert),
        ),
      });
    const leader = await until('two TLS members and a leader, both Ready', 90_000, async () => {
      for (const p of pods) await alive(p);
      const c = client(0);
      let list;
      try {
        list = await c.getServers();
      } finally {
        c.close();
      }
      const addrs = list.map((s) => s.rpcAddr).sort();
      if (addrs.join() !== [0, 1].map((i) => `${podHost(i)}:8400`).join()) return undefined;
      const leaders = list.filter((s) => s.isLeader);
      if (leaders.length !== 1) return undefined;
      // A joiner is a learner until promoted (and the promotion can leave the follower
      // without a leader for a moment).
      if (!list.every((s) => s.suffrage === 'voter')) return undefined;
      // The readiness probe as rendered, inside each pod, with the pod's certificate.
      const probe = podContainer(sts).readinessProbe!.exec!.command;
      for (const p of pods) await podman('exec', p, ...probe);
      return leaders[0]!.rpcAddr === `${podHost(0)}:8400` ? 0 : 1;
    });
    // Produced on the follower, forwarded to the leader under the follower's own
    // certificate (the ACL lets the nodes produce), read on the leader.
    const cf = client(1 - leader);
    const cl = client(leader);
    try {
      const value = Buffer.from(`tls-pods-${Date.now()}`);
      // NotLeaderError comes before the append ("retry shortly"): retrying is safe.
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
    const subject = await podman(
      'exec',
      pods[1]!,
      'node',
      '-e',
      "const {X509Certificate}=require('crypto');const c=new X509Certificate(require('fs').readFileSync('/etc/commitlog/tls/tls.crt'));console.log(c.subject)",
    );
    assert.equal(subject, `CN=${podNames[1]}`);
  });
});
