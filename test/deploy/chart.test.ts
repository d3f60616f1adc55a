// The Helm chart, checked without a cluster: helm lint, every rendering validated
// against the Kubernetes schemas, and the invariants a running cluster depends on
// (selectors, ports, names, quorum, who bootstraps and who joins whom).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';

import { ConfigMap, Pod, Secret, Service } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';

import { DECORATOR_CONTROLLER, violations } from './schema.js';
import {
  CHART,
  NAMESPACE,
  ROOT,
  find,
  helm,
  only,
  podHost,
  podProcess,
  podTemplate,
  render,
  selects,
  withValues,
  type Container,
  type ContainerPort,
  type K8sObject,
  type PodSpec,
  type Probe,
} from './support.js';

/** PEM-shaped placeholders: the chart stores them, it does not parse them. */
const PEM = {
  ca: '-----BEGIN CERTIFICATE-----\nY2E=\n-----END CERTIFICATE-----\n',
  cert: '-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n',
  key: '-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n',
};

const SCENARIOS: Record<string, object> = {
  default: {},
  'tls + acl from files': {
    tls: { enabled: true, ca: { cert: PEM.ca, key: PEM.key }, extraHosts: ['log.example.com'] },
    acl: { enabled: true, model: '[request_definition]\n', policy: 'p, root, *, produce\n' },
  },
  'tls from an existing CA Secret': { tls: { enabled: true, ca: { existingSecret: 'my-ca' } } },
  'lb through Metacontroller': { service: { lb: { enabled: true } } },
  'lb rendered directly': {
    service: { lb: { enabled: true, mode: 'direct', annotations: { 'cloud/lb-type': 'nlb' } } },
  },
  'lb with external names': {
    service: { lb: { enabled: true, mode: 'direct', externalDomain: 'log.example.com' } },
    gossip: { existingSecret: 'gossip-key' },
  },
  '1 replica': { replicas: 1 },
  '5 replicas, leave on terminate, extra flags': {
    replicas: 5,
    agent: { leaveOnTerminate: true, extraArgs: ['--otlp-endpoint', 'http://otel:4318'] },
  },
};

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'v1/Pod': Pod,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

function validate(o: K8sObject): void {
  const key = `${o.apiVersion}/${o.kind}`;
  if (key === 'metacontroller.k8s.io/v1alpha1/DecoratorController') {
    assert.deepEqual(
      violations(DECORATOR_CONTROLLER, o),
      [],
      `DecoratorController ${o.metadata.name}`,
    );
    return;
  }
  const Model = MODELS[key];
  assert.ok(Model, `${key} has no schema here: add it`);
  assert.doesNotThrow(() => new Model(o as never).validate(), `${key} ${o.metadata.name}`);
}

// The agent's start script, run by /bin/sh with a `commitlog` that prints its argv.
const stubDir = mkdtempSync(join(tmpdir(), 'commitlog-stub-'));
writeFileSync(join(stubDir, 'commitlog'), '#!/bin/sh\nprintf "%s\\0" "$@"\n');
chmodSync(join(stubDir, 'commitlog'), 0o755);
after(() => rmSync(stubDir, { recursive: true, force: true }));

/** The agent's argv (after `commitlog`) that pod `ordinal` would start with. */
function agentArgs(
  sts: K8sObject,
  ordinal: number,
  secrets: Record<string, string> = {},
): string[] {
  const { argv, env } = podProcess(sts, ordinal, secrets);
  const r = spawnSync(argv[0]!, argv.slice(1), {
    env: { ...env, PATH: `${stubDir}:/usr/bin:/bin` },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `start script failed: ${r.stderr}`);
  return r.stdout.split('\0').slice(0, -1);
}

/** Flag values: `--k v` pairs and bare `--k` booleans (as `true`). */
function flags(args: string[]): Map<string, string | true> {
  assert.equal(args[0], 'agent');
  const out = new Map<string, string | true>();
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    assert.match(a, /^--[a-z-]+$/, `unexpected argument ${a}`);
    const next = args[i + 1];
    if (next === undefined || next.startsWith('--')) out.set(a.slice(2), true);
    else {
      out.set(a.slice(2), next);
      i++;
    }
  }
  return out;
}

/** The agent's flags: today's --help, plus the ones agreed for clustering. */
const agentHelp = spawnSync(
  process.execPath,
  [join(ROOT, 'bin', 'commitlog.js'), 'agent', '--help'],
  {
    encoding: 'utf8',
  },
).stdout;
const KNOWN_FLAGS = new Set([
  ...[...agentHelp.matchAll(/--([a-z-]+)/g)].map((m) => m[1]!),
  'advertise-host',
  'leave-on-terminate',
]);

function ports(o: K8sObject): ContainerPort[] {
  return podTemplate(o).spec.containers.flatMap((c) => c.ports ?? []);
}

function probePort(p: Probe): number | string | undefined {
  if (p.grpc) return p.grpc.port;
  if (p.httpGet) return p.httpGet.port;
  if (p.tcpSocket) return p.tcpSocket.port;
  const addr = p.exec?.command[p.exec.command.indexOf('--addr') + 1];
  return addr === undefined ? undefined : Number(addr.split(':').pop());
}

function hasPort(list: ContainerPort[], port: number | string, protocol = 'TCP'): boolean {
  return list.some(
    (p) => (p.protocol ?? 'TCP') === protocol && (p.name === port || p.containerPort === port),
  );
}

describe('helm chart deploy/commitlog', () => {
  it('passes helm lint --strict with every scenario', () => {
    for (const [name, values] of Object.entries(SCENARIOS)) {
      const r = withValues(values, (file) => helm(['lint', '--strict', CHART, '--values', file]));
      assert.equal(r.status, 0, `${name}: ${r.stdout}${r.stderr}`);
    }
  });

  it('refuses wrong values at install time (values.schema.json)', () => {
    const wrong: [string, object, RegExp][] = [
      ['no replicas', { replicas: 0 }, /replicas/],
      ['a misspelt key', { replica: 3 }, /replica/],
      ['ACL without TLS', { acl: { enabled: true, existingSecret: 'acl' } }, /tls/],
      ['TLS without a CA', { tls: { enabled: true } }, /tls/],
      ['TLS with half a CA', { tls: { enabled: true, ca: { cert: PEM.ca } } }, /tls/],
      ['a certificate valid for 0 days', { tls: { days: 0 } }, /days/],
      ['an unknown fsync policy', { agent: { fsync: 'sometimes' } }, /fsync/],
      ['an unknown lb mode', { service: { lb: { enabled: true, mode: 'magic' } } }, /mode/],
      [
        'gossip through external load balancers in clear',
        { service: { lb: { enabled: true, externalDomain: 'log.example.com' } } },
        /gossip/,
      ],
    ];
    for (const [name, values, message] of wrong) {
      const r = withValues(values, (file) => helm(['template', 'x', CHART, '--values', file]));
      assert.notEqual(r.status, 0, `${name} was accepted`);
      assert.match(r.stderr, message, name);
    }
  });

  for (const [name, values] of Object.entries(SCENARIOS)) {
    describe(`rendered with ${name}`, () => {
      const objects = render(values);
      const sts = only(objects, 'StatefulSet');
      const replicas = (sts.spec as { replicas: number }).replicas;
      const pod = podTemplate(sts);
      const podLabels = pod.metadata.labels;
      const container = pod.spec.containers[0]!;
      const containerPorts = ports(sts);

      it('validates every object against its schema', () => {
        assert.ok(objects.length >= 4);
        for (const o of objects) validate(o);
      });

      it('selects its own pods and only them', () => {
        const selector = (sts.spec as { selector: { matchLabels: Record<string, string> } })
          .selector;
        assert.ok(selects(selector.matchLabels, podLabels), 'StatefulSet selector misses its pods');
        for (const d of find(objects, 'Deployment')) {
          const labels = podTemplate(d).metadata.labels;
          const sel = (d.spec as { selector: { matchLabels: Record<string, string> } }).selector;
          assert.ok(
            selects(sel.matchLabels, labels),
            `${d.metadata.name} selector misses its pods`,
          );
          assert.ok(
            !selects(selector.matchLabels, labels),
            `${d.metadata.name}'s pods pass for nodes`,
          );
          assert.ok(!selects(sel.matchLabels, podLabels), `${d.metadata.name} selects the nodes`);
        }
      });

      it('is served by a headless Service that publishes pods before they are Ready', () => {
        const serviceName = (sts.spec as { serviceName: string }).serviceName;
        const headless = only(objects, 'Service', serviceName);
        const spec = headless.spec as {
          clusterIP: string;
          publishNotReadyAddresses: boolean;
          selector: Record<string, string>;
        };
        assert.equal(spec.clusterIP, 'None');
        assert.equal(spec.publishNotReadyAddresses, true);
        assert.ok(selects(spec.selector, podLabels));
        assert.equal((sts.spec as { podManagementPolicy: string }).podManagementPolicy, 'Parallel');
      });

      it('points every Service port at a port the selected pods have', () => {
        const workloads = [sts, ...find(objects, 'Deployment')];
        for (const svc of find(objects, 'Service')) {
          const spec = svc.spec as {
            selector: Record<string, string>;
            ports: { port: number; targetPort?: number | string; protocol?: string }[];
          };
          const podName = spec.selector['statefulset.kubernetes.io/pod-name'];
          let targets: ContainerPort[];
          if (podName !== undefined) {
            // A per-pod Service: its pod must exist.
            const ordinal = Number(podName.slice(sts.metadata.name.length + 1));
            assert.ok(podName.startsWith(`${sts.metadata.name}-`) && ordinal < replicas, podName);
            targets = containerPorts;
          } else {
            const owner = workloads.filter((w) =>
              selects(spec.selector, podTemplate(w).metadata.labels),
            );
            assert.equal(
              owner.length,
              1,
              `Service ${svc.metadata.name} selects ${owner.length} workloads`,
            );
            targets = ports(owner[0]!);
          }
          for (const p of spec.ports) {
            const target = p.targetPort ?? p.port;
            assert.ok(
              hasPort(targets, target, p.protocol),
              `${svc.metadata.name}: no port ${target}`,
            );
          }
        }
      });

      it('probes ports the container has; readiness asks log.v1.Log', () => {
        for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
          const probe = container[kind];
          assert.ok(probe, `${kind} missing`);
          const port = probePort(probe);
          assert.ok(port !== undefined && hasPort(containerPorts, port), `${kind} port ${port}`);
        }
        const readiness = container.readinessProbe!;
        const service =
          readiness.grpc?.service ??
          readiness.exec?.command[readiness.exec.command.indexOf('--service') + 1];
        assert.equal(service, 'log.v1.Log');
      });

      it('runs as non-root with a read-only root file system and writable data', () => {
        assert.equal(pod.spec.securityContext?.runAsNonRoot, true);
        assert.ok((pod.spec.securityContext?.runAsUser ?? 0) > 0);
        assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
        const mounts = new Map(container.volumeMounts?.map((m) => [m.mountPath, m.name]));
        assert.equal(mounts.get('/var/lib/commitlog'), 'data');
        const claims = (sts.spec as { volumeClaimTemplates: K8sObject[] }).volumeClaimTemplates;
        assert.deepEqual(
          claims.map((c) => c.metadata.name),
          ['data'],
        );
        const volumes = new Set(pod.spec.volumes?.map((v) => v.name));
        for (const m of container.volumeMounts ?? []) {
          assert.ok(m.name === 'data' || volumes.has(m.name), `mount ${m.name} has no volume`);
        }
      });

      it('keeps a quorum through voluntary disruptions', () => {
        const pdb = only(objects, 'PodDisruptionBudget');
        const spec = pdb.spec as {
          minAvailable: number;
          selector: { matchLabels: Record<string, string> };
        };
        assert.equal(spec.minAvailable, Math.floor(replicas / 2) + 1);
        assert.ok(selects(spec.selector.matchLabels, podLabels));
      });

      it('bootstraps pod 0 only; every pod advertises its own name and joins the others', () => {
        const secrets = { 'gossip-key/key': 'c2VjcmV0' };
        const external = (values as { service?: { lb?: { externalDomain?: string } } }).service?.lb
          ?.externalDomain;
        for (let i = 0; i < replicas; i++) {
          const f = flags(agentArgs(sts, i, secrets));
          for (const key of f.keys())
            assert.ok(KNOWN_FLAGS.has(key), `unknown agent flag --${key}`);
          assert.equal(f.get('bootstrap'), i === 0 ? true : undefined, `pod ${i} --bootstrap`);
          assert.equal(f.get('node-name'), `${sts.metadata.name}-${i}`);
          assert.equal(
            f.get('advertise-host'),
            external ? `${sts.metadata.name}-${i}.${external}` : podHost(i),
          );
          const others = Array.from({ length: replicas }, (_, j) => j)
            .filter((j) => j !== i)
            .map((j) => `${podHost(j)}:8401`);
          const joins = f.get('start-join-addrs');
          assert.deepEqual(
            typeof joins === 'string' ? joins.split(',') : [],
            others,
            `pod ${i} joins`,
          );
          assert.equal(f.get('data-dir'), '/var/lib/commitlog');
          const tls = f.has('server-tls-cert-file');
          assert.equal(f.get('insecure'), tls ? undefined : true);
          assert.equal(f.has('peer-tls-cert-file'), tls);
          const agent = (values as { agent?: { leaveOnTerminate?: boolean; extraArgs?: string[] } })
            .agent;
          assert.equal(f.get('leave-on-terminate'), agent?.leaveOnTerminate ? true : undefined);
          const extra = agent?.extraArgs ?? [];
          for (let k = 0; k < extra.length; k += 2)
            assert.equal(f.get(extra[k]!.slice(2)), extra[k + 1]);
        }
      });
    });
  }

  it('gives every pod its own certificate; only the init container sees the CA key', () => {
    const objects = render(SCENARIOS['tls + acl from files']);
    const sts = only(objects, 'StatefulSet');
    const pod = podTemplate(sts).spec;
    const [init] = pod.initContainers ?? [];
    assert.ok(init, 'an init container issues the certificate');
    const volumes = new Map(pod.volumes!.map((v) => [v.name, v]));
    const mountsOf = (c: Container) => new Map(c.volumeMounts!.map((m) => [m.name, m]));
    // The CA: a kubernetes.io/tls Secret made from the values, mounted by the init
    // container alone, its two keys laid out as `commitlog cert` reads a CA directory.
    const ca = only(objects, 'Secret', 'cl-commitlog-ca');
    assert.equal(ca.type, 'kubernetes.io/tls');
    assert.equal(Buffer.from(ca.data!['tls.key']!, 'base64').toString(), PEM.key);
    assert.equal(volumes.get('ca')?.secret?.secretName, ca.metadata.name);
    assert.deepEqual(volumes.get('ca')?.secret?.items, [
      { key: 'tls.crt', path: 'ca.pem' },
      { key: 'tls.key', path: 'ca-key.pem' },
    ]);
    assert.ok(mountsOf(init).has('ca'));
    for (const c of pod.containers) assert.ok(!mountsOf(c).has('ca'), `${c.name} sees the CA key`);
    // The issued files live in memory, written by the init container, read by the node.
    assert.equal(volumes.get('tls')?.emptyDir?.medium, 'Memory');
    const tlsDir = mountsOf(init).get('tls')!.mountPath;
    const nodeMount = mountsOf(pod.containers[0]!).get('tls')!;
    assert.equal(nodeMount.mountPath, tlsDir);
    assert.equal(nodeMount.readOnly, true);
    // Issued per pod: CN = the pod's name (the node name peers check), SANs the names
    // peers and clients dial.
    for (const i of [0, 2]) {
      const { argv, env } = podProcess(sts, i, {}, init.name);
      const script = argv.at(-1)!;
      assert.match(script, /commitlog cert server --cn "\$POD_NAME"/);
      assert.equal(env.POD_NAME, `cl-commitlog-${i}`);
      assert.equal(env.POD_HOST, podHost(i));
      const hosts = /--host "([^"]*)"/.exec(script)![1]!.split(',');
      assert.deepEqual(hosts, [
        '$POD_HOST',
        'cl-commitlog',
        'cl-commitlog.logs',
        'cl-commitlog.logs.svc',
        'cl-commitlog.logs.svc.cluster.local',
        'log.example.com',
      ]);
      const f = flags(agentArgs(sts, i));
      assert.equal(f.get('node-name'), env.POD_NAME, 'the CN is the node name');
      for (const key of ['server-tls', 'peer-tls'])
        for (const [flag, file] of [
          ['cert-file', 'tls.crt'],
          ['key-file', 'tls.key'],
          ['ca-file', 'ca.crt'],
        ] as const) {
          assert.equal(f.get(`${key}-${flag}`), `${tlsDir}/${file}`, `--${key}-${flag}`);
          assert.match(script, new RegExp(`"\\$out/${file.replace('.', '\\.')}"`), file);
        }
    }
    // Under the ACL the nodes may produce: a follower forwards produces as itself.
    const policy = Buffer.from(
      only(objects, 'Secret', 'cl-commitlog-acl').data!['policy.csv']!,
      'base64',
    ).toString();
    assert.match(policy, /^p, root, \*, produce$/m);
    for (const i of [0, 1, 2])
      assert.match(policy, new RegExp(`^p, cl-commitlog-${i}, \\*, produce$`, 'm'));
    // The probes cannot use Kubernetes' plaintext gRPC probe under mutual TLS.
    assert.ok(pod.containers[0]!.readinessProbe!.exec, 'readiness under TLS');

    // The helm test pod issues itself a client certificate (the ACL's subject), or uses
    // the one it is given.
    const test = only(objects, 'Pod');
    assert.equal(test.metadata.annotations?.['helm.sh/hook'], 'test');
    const testSpec = test.spec as unknown as PodSpec;
    assert.match(testSpec.initContainers![0]!.args![0]!, /commitlog cert client --cn 'root'/);
    assert.match(JSON.stringify(testSpec.containers), /--cert-file \/etc\/commitlog\/tls\/tls.crt/);
    const withClient = render({
      ...SCENARIOS['tls + acl from files']!,
      tests: { clientSecret: 'root-client' },
    });
    const clientSpec = only(withClient, 'Pod').spec as unknown as PodSpec;
    assert.equal(clientSpec.initContainers, undefined);
    assert.deepEqual(
      clientSpec.volumes!.map((v) => [v.name, v.secret?.secretName]),
      [['tls', 'root-client']],
    );
  });

  it('names an existing CA Secret and makes none; external names join the certificate', () => {
    const objects = render({
      ...SCENARIOS['tls from an existing CA Secret']!,
      ...SCENARIOS['lb with external names']!,
    });
    assert.deepEqual(find(objects, 'Secret'), []);
    const sts = only(objects, 'StatefulSet');
    const pod = podTemplate(sts).spec;
    assert.equal(pod.volumes!.find((v) => v.name === 'ca')?.secret?.secretName, 'my-ca');
    const { argv, env } = podProcess(sts, 1, {}, 'certificate');
    assert.equal(env.POD_HOST, 'cl-commitlog-1.log.example.com');
    const hosts = /--host "([^"]*)"/.exec(argv.at(-1)!)![1]!.split(',');
    assert.equal(hosts[0], '$POD_HOST');
    assert.ok(hosts.includes(`$POD_NAME.cl-commitlog-headless.logs.svc.cluster.local`));
  });

  it('has a helm test that produces a record and consumes it at the offset it got', () => {
    const objects = render();
    const test = only(objects, 'Pod');
    assert.equal(test.metadata.annotations?.['helm.sh/hook'], 'test');
    const script = (test.spec as { containers: { args: string[] }[] }).containers[0]!.args[0]!;
    assert.match(script, new RegExp(`--addr "\\$addr".*"\\$value"`));
    assert.match(script, /addr=cl-commitlog\.logs\.svc\.cluster\.local:8400/);
    assert.match(script, /consume --addr "\$addr" --offset "\$offset" --count 1/);
  });

  it('makes the same per-pod Services through Metacontroller as when rendered directly', async () => {
    type Hook = {
      sync(req: object, annotations?: Record<string, string>): { attachments: K8sObject[] };
    };
    const hook = (await import(
      pathToFileURL(join(CHART, 'files', 'service-per-pod.mjs')).href
    )) as Hook;
    for (const replicas of [1, 3, 5]) {
      const lb = { enabled: true, annotations: { 'cloud/lb-type': 'nlb' } };
      const viaMeta = render({ replicas, service: { lb: { ...lb, mode: 'metacontroller' } } });
      const direct = render({ replicas, service: { lb: { ...lb, mode: 'direct' } } });
      const controller = only(viaMeta, 'DecoratorController');
      const sts = only(viaMeta, 'StatefulSet');
      const rule = (
        controller.spec as {
          resources: { labelSelector: { matchLabels: Record<string, string> } }[];
        }
      ).resources[0]!;
      assert.ok(
        selects(rule.labelSelector.matchLabels, sts.metadata.labels!),
        'controller misses the StatefulSet',
      );
      // The webhook URL names the hook's Service, whose pods run the hook script.
      const url = (controller.spec as { hooks: { sync: { webhook: { url: string } } } }).hooks.sync
        .webhook.url;
      const hookService = find(viaMeta, 'Service').find((s) =>
        url.startsWith(`http://${s.metadata.name}.${NAMESPACE}.svc.`),
      );
      assert.ok(hookService, `no Service for ${url}`);
      const cm = only(viaMeta, 'ConfigMap');
      assert.equal(
        cm.data!['service-per-pod.mjs'],
        (await import('node:fs')).readFileSync(join(CHART, 'files', 'service-per-pod.mjs'), 'utf8'),
      );
      const { attachments } = hook.sync(
        {
          controller,
          object: { ...sts, metadata: { ...sts.metadata, namespace: NAMESPACE } },
          attachments: {},
        },
        { 'cloud/lb-type': 'nlb' },
      );
      const rendered = find(direct, 'Service').filter(
        (s) => s.metadata.labels?.['app.kubernetes.io/component'] === 'pod-service',
      );
      assert.equal(attachments.length, replicas);
      assert.equal(rendered.length, replicas);
      for (const [i, svc] of attachments.entries()) {
        validate(svc);
        const twin = rendered[i]!;
        assert.equal(svc.metadata.name, twin.metadata.name);
        assert.deepEqual(svc.metadata.annotations, twin.metadata.annotations);
        const a = svc.spec as {
          type: string;
          selector: object;
          ports: { port: number; protocol: string }[];
        };
        const b = twin.spec as typeof a;
        assert.equal(a.type, 'LoadBalancer');
        assert.deepEqual(a.selector, b.selector);
        assert.deepEqual(
          a.ports.map((p) => [p.port, p.protocol]),
          b.ports.map((p) => [p.port, p.protocol]),
        );
      }
    }
  });
});
