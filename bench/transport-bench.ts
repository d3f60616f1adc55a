// npm run bench:transport: Raft transport throughput between two processes over
// loopback TCP with mutual TLS (entries/s, MB/s, CPU per entry), and the cost of the port
// multiplexer on gRPC unary latency against grpc-js binding its own port, same run.
//
// The parent is the leader: it sends appends of `batch` entries, keeping `window` of
// them unacknowledged; the child answers each with an appendResp (as a follower would).
// Options: --seconds 3 --batch 256 --window 8 --calls 500 --rounds 6
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';

import {
  createCa,
  issueClientCertificate,
  issueServerCertificate,
  type IssuedCertificate,
} from '../src/auth/index.js';
import { PortMux, TlsPeerStreamLayer } from '../src/net/index.js';
import type { WireMessage } from '../src/raft/index.js';
import { StreamTransport } from '../src/raft/index.js';

interface Pki {
  ca: string;
  n1: IssuedCertificate;
  n2: IssuedCertificate;
  client: IssuedCertificate;
}

const arg = (name: string, dflt: number): number => {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 ? Number(process.argv[k + 1]) : dflt;
};

const identity = (b: Buffer): Buffer => b;
const echoService: grpc.ServiceDefinition = {
  echo: {
    path: '/bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

function serverCreds(pki: Pki): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(
    Buffer.from(pki.ca),
    [{ private_key: Buffer.from(pki.n2.keyPem), cert_chain: Buffer.from(pki.n2.certPem) }],
    true,
  );
}

/** The follower: a PortMux (gRPC + Raft), a separate grpc-js port, and a transport. */
async function child(): Promise<void> {
  const pki = JSON.parse(process.env.BENCH_PKI ?? '') as Pki;
  const layer = new TlsPeerStreamLayer({ cert: pki.n2.certPem, key: pki.n2.keyPem, ca: pki.ca });
  const server = new grpc.Server();
  server.addService(echoService, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb(null, call.request),
  });
  const injector = server.createConnectionInjector(serverCreds(pki));
  const mux = new PortMux({
    mode: 'tls',
    routes: { grpc: (s) => injector.injectConnection(s), raft: layer.sink },
  });
  const { port } = await mux.listen('127.0.0.1', 0);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCreds(pki), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const leaderAddr = { value: '' };
  const transport = new StreamTransport({
    id: 'n2',
    clusterId: 'bench',
    layer,
    addressOf: (id) => (id === 'n1' ? leaderAddr.value : undefined),
  });
  let entries = 0;
  transport.listen((m) => {
    if (m.type !== 'append') return;
    entries += m.entries.length;
    transport.send({
      type: 'appendResp',
      from: 'n2',
      to: 'n1',
      term: m.term,
      index: entries,
      reject: false,
      hintIndex: 0,
      hintTerm: 0,
    });
  });
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const cmd = JSON.parse(line) as { leader?: string; cpu?: boolean; exit?: boolean };
    if (cmd.leader !== undefined) leaderAddr.value = cmd.leader;
    if (cmd.cpu === true) console.log(JSON.stringify({ cpu: process.cpuUsage(), entries }));
    if (cmd.exit === true) process.exit(0);
  });
  console.log(JSON.stringify({ ready: { port, grpcPort } }));
}

function lineReader(p: ChildProcess): () => Promise<Record<string, unknown>> {
  const rl = createInterface({ input: p.stdout! });
  const waiting: ((v: Record<string, unknown>) => void)[] = [];
  const lines: Record<string, unknown>[] = [];
  rl.on('line', (l) => {
    const v = JSON.parse(l) as Record<string, unknown>;
    const w = waiting.shift();
    if (w) w(v);
    else lines.push(v);
  });
  return () =>
    new Promise((resolve) => {
      const v = lines.shift();
      if (v) resolve(v);
      else waiting.push(resolve);
    });
}

const cpuMicros = (u: NodeJS.CpuUsage): number => u.user + u.system;

async function parent(): Promise<void> {
  const seconds = arg('seconds', 3);
  const batch = arg('batch', 256);
  const window = arg('window', 8);
  const calls = arg('calls', 500);
  const rounds = arg('rounds', 6);
  const ca = await createCa({ commonName: 'bench CA' });
  const pki: Pki = {
    ca: ca.certPem,
    n1: await issueServerCertificate(ca, { commonName: 'n1' }),
    n2: await issueServerCertificate(ca, { commonName: 'n2' }),
    client: await issueClientCertificate(ca, { commonName: 'bench' }),
  };
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child'], {
    env: { ...process.env, BENCH_PKI: JSON.stringify(pki) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const kill = (): void => {
    proc.kill('SIGKILL');
  };
  process.on('exit', kill);
  const next = lineReader(proc);
  const ready = (await next()).ready as { port: number; grpcPort: number };

  const layer = new TlsPeerStreamLayer({ cert: pki.n1.certPem, key: pki.n1.keyPem, ca: pki.ca });
  const mux = new PortMux({ mode: 'tls', routes: { raft: layer.sink } });
  const mine = await mux.listen('127.0.0.1', 0);
  proc.stdin.write(JSON.stringify({ leader: `127.0.0.1:${mine.port}` }) + '\n');
  const transport = new StreamTransport({
    id: 'n1',
    clusterId: 'bench',
    layer,
    addressOf: (id) => (id === 'n2' ? `127.0.0.1:${ready.port}` : undefined),
  });

  console.log(
    `transport: 2 processes, loopback TCP, mutual TLS; appends of ${batch} entries, ${window} in flight, ${seconds} s each`,
  );
  let acked = 0;
  let onAck: (() => void) | undefined;
  transport.listen((m) => {
    if (m.type === 'appendResp') {
      acked = m.index;
      onAck?.();
    }
  });
  let sentEntries = 0;
  for (const size of [100, 1024]) {
    const data = new Uint8Array(size).fill(0x61);
    const entries = Array.from({ length: batch }, (_, k) => ({
      index: k + 1,
      term: 1,
      type: 'normal' as const,
      data,
    }));
    const send = (): void => {
      const m: WireMessage = {
        type: 'append',
        from: 'n1',
        to: 'n2',
        term: 1,
        prevIndex: sentEntries,
        prevTerm: 1,
        commit: 0,
        entries,
      };
      transport.send(m);
      sentEntries += batch;
    };
    // Warm-up: connect and make sure the follower answers.
    const base = acked;
    send();
    await new Promise<void>((r) => (onAck = () => acked > base && r()));
    proc.stdin.write(JSON.stringify({ cpu: true }) + '\n');
    const childCpu0 = (await next()).cpu as NodeJS.CpuUsage;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const start = acked;
    const end = t0 + seconds * 1000;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        if (performance.now() >= end) {
          if (acked >= sentEntries) resolve();
          return;
        }
        while (sentEntries - acked < window * batch) send();
      };
      onAck = pump;
      pump();
    });
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = cpuMicros(process.cpuUsage(cpu0));
    proc.stdin.write(JSON.stringify({ cpu: true }) + '\n');
    const childCpu = cpuMicros((await next()).cpu as NodeJS.CpuUsage) - cpuMicros(childCpu0);
    const moved = acked - start;
    const stats = transport.stats().peers.n2!;
    console.log(
      `  ${String(size).padStart(4)}-byte entries: ${Math.round(moved / elapsed).toLocaleString('en')} entries/s, ` +
        `${((moved * size) / elapsed / 1e6).toFixed(1)} MB/s of payload; CPU ${(cpu / moved).toFixed(2)} µs/entry sender + ` +
        `${(childCpu / moved).toFixed(2)} µs/entry receiver; drops ${stats.drops}`,
    );
  }

  // gRPC unary latency: through the mux vs grpc-js's own port, interleaved rounds.
  const creds = grpc.credentials.createSsl(
    Buffer.from(pki.ca),
    Buffer.from(pki.client.keyPem),
    Buffer.from(pki.client.certPem),
  );
  const Client = grpc.makeGenericClientConstructor(echoService, 'Echo');
  type EchoFn = (r: Buffer, cb: (e: grpc.ServiceError | null) => void) => void;
  // The certificate names localhost; an IP as TLS server name is also deprecated.
  const channelOptions = { 'grpc.ssl_target_name_override': 'localhost' };
  const viaMux = new Client(`127.0.0.1:${ready.port}`, creds, channelOptions);
  const direct = new Client(`127.0.0.1:${ready.grpcPort}`, creds, channelOptions);
  const one = (c: grpc.Client): Promise<number> =>
    new Promise((resolve, reject) => {
      const t = performance.now();
      (c as unknown as { echo: EchoFn }).echo(Buffer.from('ping'), (e) =>
        e ? reject(e) : resolve(performance.now() - t),
      );
    });
  const samples = { mux: [] as number[], direct: [] as number[] };
  for (let k = 0; k < 50; k++) {
    await one(viaMux);
    await one(direct);
  }
  // Alternate call by call, and which goes first, so that load from elsewhere on the
  // machine and any order effect hit both alike.
  for (let r = 0; r < rounds * calls; r++) {
    if (r % 2 === 0) {
      samples.mux.push(await one(viaMux));
      samples.direct.push(await one(direct));
    } else {
      samples.direct.push(await one(direct));
      samples.mux.push(await one(viaMux));
    }
  }
  const q = (xs: number[], p: number): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  };
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const line = (name: string, xs: number[]): string =>
    `  ${name}: median ${(q(xs, 0.5) * 1000).toFixed(0)} µs, mean ${(mean(xs) * 1000).toFixed(0)} µs, p99 ${(q(xs, 0.99) * 1000).toFixed(0)} µs`;
  console.log(`gRPC unary (mTLS), ${rounds * calls} calls each, alternating:`);
  console.log(line('grpc-js own port', samples.direct));
  console.log(line('through PortMux ', samples.mux));
  const overhead = (q(samples.mux, 0.5) / q(samples.direct, 0.5) - 1) * 100;
  console.log(`  mux overhead on the median: ${overhead.toFixed(1)}% (target < 5%)`);
  viaMux.close();
  direct.close();
  await transport.close();
  await layer.close();
  await mux.close();
  proc.stdin.write(JSON.stringify({ exit: true }) + '\n');
  process.exit(0);
}

if (process.argv.includes('--child')) await child();
else await parent();
