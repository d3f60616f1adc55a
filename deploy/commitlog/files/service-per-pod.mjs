// Metacontroller DecoratorController hook: for a StatefulSet, one LoadBalancer Service
// per pod, so each pod is reachable from outside the cluster. Metacontroller POSTs the
// StatefulSet (`object`) and its attachments to /sync and creates, updates or deletes Services to match
// the answer (fewer replicas: fewer Services). Node.js only, no packages.
//
// Read from the StatefulSet's annotations:
//   service-per-pod-label            the pod label to select on (statefulset.kubernetes.io/pod-name)
//   service-per-pod-ports            "port:targetPort[/PROTOCOL],…", e.g. "8400:8400,8401:8401/UDP"
//   service-per-pod-external-domain  optional: an external-dns hostname <pod>.<domain> per Service
// SERVICE_ANNOTATIONS (environment, JSON) are copied onto every Service.
import { Buffer } from 'node:buffer';
import { createServer } from 'node:http';

/** The hook's answer to one sync request. */
export function sync(request, extraAnnotations = {}) {
  const sts = request.object;
  const annotations = sts.metadata.annotations ?? {};
  const label = annotations['service-per-pod-label'];
  const ports = (annotations['service-per-pod-ports'] ?? '')
    .split(',')
    .filter((spec) => spec !== '')
    .map((spec) => {
      const [pair, protocol = 'TCP'] = spec.split('/');
      const [port, target] = pair.split(':').map(Number);
      if (!Number.isInteger(port) || !Number.isInteger(target)) {
        throw new Error(`service-per-pod-ports: bad entry ${JSON.stringify(spec)}`);
      }
      return { name: `${protocol.toLowerCase()}-${port}`, port, targetPort: target, protocol };
    });
  if (!label || ports.length === 0) return { attachments: [] };
  const domain = annotations['service-per-pod-external-domain'];
  const replicas = sts.spec.replicas ?? 1;
  const attachments = [];
  for (let i = 0; i < replicas; i++) {
    const pod = `${sts.metadata.name}-${i}`;
    const meta = { ...extraAnnotations };
    if (domain) meta['external-dns.alpha.kubernetes.io/hostname'] = `${pod}.${domain}`;
    attachments.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: pod,
        namespace: sts.metadata.namespace,
        labels: {
          'app.kubernetes.io/component': 'pod-service',
          'service-per-pod': sts.metadata.name,
        },
        annotations: meta,
      },
      spec: {
        type: 'LoadBalancer',
        publishNotReadyAddresses: true,
        selector: { [label]: pod },
        ports,
      },
    });
  }
  return { attachments };
}

function serve(port, extraAnnotations) {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') return void res.end('ok');
    if (req.method !== 'POST' || req.url !== '/sync') {
      res.statusCode = 404;
      return void res.end();
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.stringify(
          sync(JSON.parse(Buffer.concat(chunks).toString()), extraAnnotations),
        );
        res.setHeader('content-type', 'application/json');
        res.end(body);
      } catch (err) {
        console.error(`sync failed: ${err instanceof Error ? err.message : String(err)}`);
        res.statusCode = 400;
        res.end();
      }
    });
  });
  server.listen(port, () =>
    console.log(`service-per-pod hook listening on port ${server.address().port}`),
  );
  // A Deployment's pod is stopped with SIGTERM: stop at once, Metacontroller retries.
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  serve(Number(process.env.PORT ?? 8080), JSON.parse(process.env.SERVICE_ANNOTATIONS ?? '{}'));
}
