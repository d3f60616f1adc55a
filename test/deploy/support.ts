// Helpers for the deployment tests: helm (fetched by scripts/deploy-tools.mjs), the
// chart rendered into plain objects, and the pod spec turned back into the process
// Kubernetes would start (the start script and its environment).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { parseAllDocuments } from 'yaml';

/** The repository (this file runs from dist/test/deploy). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHART = join(ROOT, 'deploy', 'commitlog');

/** A rendered Kubernetes object; fields are read through the typed helpers below. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  [key: string]: unknown;
}

let helmBin: string | undefined;

/** helm 3: $HELM, or the binary the repo's script fetches into .cache/tools. */
export function helmPath(): string {
  helmBin ??= execFileSync(process.execPath, [join(ROOT, 'scripts', 'deploy-tools.mjs'), 'helm'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return helmBin;
}

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): HelmResult {
  const r = spawnSync(helmPath(), args, { encoding: 'utf8', cwd: ROOT });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs helm with a values file made of `values`; the file is gone afterwards. */
export function withValues<T>(values: object, fn: (file: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'commitlog-values-'));
  try {
    const file = join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(values));
    return fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const RELEASE = 'cl';
export const NAMESPACE = 'logs';

/** `helm template` of the chart with `values`; throws with helm's message on failure. */
export function render(values: object = {}): K8sObject[] {
  const r = withValues(values, (file) =>
    helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, '--values', file]),
  );
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML: ${doc.errors[0]?.message}`);
      return doc.toJSON() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

export function only(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = find(objects, kind, name);
  if (found.length !== 1) {
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  }
  return found[0]!;
}

// The parts of a pod spec the tests read.
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}
export interface Probe {
  grpc?: { port: number; service?: string };
  exec?: { command: string[] };
  httpGet?: { port: number | string; path?: string };
  tcpSocket?: { port: number | string };
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: ContainerPort[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: { readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean };
}
export interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  configMap?: { name: string };
  emptyDir?: { medium?: string; sizeLimit?: string };
}
export interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
}
export interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: PodSpec;
}

export function podTemplate(workload: K8sObject): PodTemplate {
  return (workload.spec as { template: PodTemplate }).template;
}

/** A container of the pod template by name (init containers too); default the node's. */
export function podContainer(sts: K8sObject, name?: string): Container {
  const spec = podTemplate(sts).spec;
  if (name === undefined) return spec.containers[0]!;
  const found = [...(spec.initContainers ?? []), ...spec.containers].find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

/**
 * What Kubernetes would run for pod `ordinal` of the StatefulSet: the container's
 * command and args, and its environment with fieldRefs resolved and $(VAR) expanded.
 */
export function podProcess(
  sts: K8sObject,
  ordinal: number,
  secrets: Record<string, string> = {},
  containerName?: string,
): { argv: string[]; env: Record<string, string> } {
  const container = podContainer(sts, containerName);
  const podName = `${sts.metadata.name}-${ordinal}`;
  const env: Record<string, string> = {};
  const expand = (s: string) =>
    s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = podName;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = NAMESPACE;
    else if (e.valueFrom?.secretKeyRef) {
      const key = `${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`;
      const value = secrets[key];
      if (value === undefined) throw new Error(`env ${e.name} needs the secret ${key}`);
      env[e.name] = value;
    } else throw new Error(`env ${e.name}: unsupported source`);
  }
  return { argv: [...(container.command ?? []), ...(container.args ?? [])].map(expand), env };
}

/**
 * The container's volume mounts as folders under `podDir` (one folder per volume, so an
 * init container and the node share an emptyDir as they do in a pod): mount path → folder.
 */
export function mountFolders(
  objects: K8sObject[],
  sts: K8sObject,
  container: Container,
  podDir: string,
): Map<string, string> {
  const volumes = new Map(podTemplate(sts).spec.volumes?.map((v) => [v.name, v]));
  const folders = new Map<string, string>();
  for (const m of container.volumeMounts ?? []) {
    const dir = join(podDir, m.name);
    folders.set(m.mountPath, dir);
    mkdirSync(dir, { recursive: true });
    const secretVolume = volumes.get(m.name)?.secret;
    if (!secretVolume) continue; // the data claim or an emptyDir: empty at first
    const secret = find(objects, 'Secret', secretVolume.secretName)[0];
    assert.ok(
      secret?.data,
      `volume ${m.name}: the chart renders no Secret ${secretVolume.secretName}`,
    );
    const items = secretVolume.items ?? Object.keys(secret.data).map((key) => ({ key, path: key }));
    for (const { key, path } of items) {
      assert.ok(key in secret.data, `Secret ${secretVolume.secretName} has no ${key}`);
      writeFileSync(join(dir, path), Buffer.from(secret.data[key]!, 'base64'), { mode: 0o440 });
    }
  }
  return folders;
}

/** The DNS name pod `ordinal` advertises and the others join. */
export function podHost(ordinal: number, domain = 'cluster.local'): string {
  return `${RELEASE}-commitlog-${ordinal}.${RELEASE}-commitlog-headless.${NAMESPACE}.svc.${domain}`;
}

/** True when every label of `selector` is on `labels`. */
export function selects(
  selector: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Thrown by a probe of `until` when waiting longer cannot help (a process died). */
export class GiveUpError extends Error {
  override readonly name = 'GiveUpError';
}

/**
 * Calls `probe` until it returns a value other than undefined, or fails at the deadline.
 * Errors count as "not yet", except GiveUpError.
 */
export async function until<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof GiveUpError) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${ms} ms waiting for ${what}${why}`);
    }
    // Between attempts only; each attempt is a real request with its own deadline.
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** deploy/health-probe.mjs, the probe the chart runs under TLS. */
export interface HealthProbe {
  check(
    this: void,
    o: {
      addr: string;
      service: string;
      tlsDir?: string;
      timeoutMs: number;
      env?: Record<string, string>;
    },
  ): Promise<string>;
}

export async function healthProbe(): Promise<HealthProbe> {
  const url = pathToFileURL(join(ROOT, 'deploy', 'health-probe.mjs')).href;
  return (await import(url)) as HealthProbe;
}
