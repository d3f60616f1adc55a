// Port-level fuzz of a running node: random and mutated bytes at its gRPC, HTTP and
// gossip ports (the Raft protocol shares the gRPC port and its sniffer). The seeds
// for mutation are real conversations: a capture proxy records what the generated
// gRPC client sends for every call, and the HTTP seeds are the book's and the REST
// requests. Meanwhile a producer keeps appending; at the end every acknowledged
// record must be there, the node must never have died, and its RSS must have stayed
// under the bound.
import { createSocket } from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';

import * as grpc from '@grpc/grpc-js';

import { LogClient, type LogRecord, type ProduceResponse } from '../../src/api/index.js';
import { createTopology } from './hosts.js';
import { agentArgs, NodeProcess } from './nodes.js';
import { pause, Rng } from './rng.js';

export interface FuzzOptions {
  inputs: number;
  seed: number;
  maxRssBytes: number;
  concurrency?: number;
  /** Which ports get inputs (default all three). */
  ports?: Port[];
  /** Keep the node's folder (its log) even when the run passes. */
  keep?: boolean;
  log?: (line: string) => void;
}

export interface FuzzResult {
  ok: boolean;
  inputs: { grpc: number; raft: number; http: number; gossip: number };
  crashes: number;
  lost: number;
  acknowledged: number;
  maxRss: number;
  problems: string[];
  summary: string;
}

export type Port = 'grpc' | 'raft' | 'http' | 'gossip';

/**
 * The plaintext Raft preamble of the RPC port's multiplexer (net's RAFT_MAGIC): what
 * follows it goes to the Raft transport instead of gRPC. Until the multiplexer is in
 * the agent these inputs are just more garbage for the gRPC port.
 */
const RAFT_MAGIC = Buffer.from('\x01CLRAFT\x01', 'latin1');

function raftSeeds(rng: Rng): Buffer[] {
  const frames = (n: number) =>
    Buffer.concat(
      Array.from({ length: n }, () => {
        const body = rng.bytes(rng.int(0, 64));
        const len = Buffer.alloc(4);
        len.writeUInt32BE(body.length);
        return Buffer.concat([len, body]);
      }),
    );
  return [
    RAFT_MAGIC,
    Buffer.concat([RAFT_MAGIC, frames(1)]),
    Buffer.concat([RAFT_MAGIC, frames(4)]),
  ];
}

/** Records the bytes clients send through it, one buffer per connection. */
async function captureProxy(target: { host: string; port: number }) {
  const captured: Buffer[] = [];
  const server = createServer((client) => {
    const chunks: Buffer[] = [];
    const upstream = connect(target.port, target.host);
    client.on('data', (d: Buffer) => {
      chunks.push(d);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    const done = () => {
      if (chunks.length) captured.push(Buffer.concat(chunks));
      chunks.length = 0;
      client.destroy();
      upstream.destroy();
    };
    client.on('close', done);
    upstream.on('close', done);
    client.on('error', done);
    upstream.on('error', done);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    captured,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function unary<T>(fn: (cb: (err: grpc.ServiceError | null, r: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, r) => (err ? reject(err) : resolve(r))));
}

const deadline = (ms = 5000) => ({ deadline: Date.now() + ms });
const rec = (s: string): LogRecord => ({ value: Buffer.from(s), offset: 0n, term: 0n, type: 0 });

/** Real gRPC conversations, one per call kind, as the client sent them. */
async function grpcSeeds(rpcAddr: string): Promise<Buffer[]> {
  const [host, port] = rpcAddr.split(':');
  const proxy = await captureProxy({ host: host!, port: Number(port) });
  const calls: Array<(c: LogClient) => Promise<unknown>> = [
    (c) =>
      unary((cb) => c.produce({ record: rec('seed-unary') }, new grpc.Metadata(), deadline(), cb)),
    (c) =>
      unary((cb) =>
        c.produceBatch(
          { records: [rec('seed-b1'), rec('seed-b2')] },
          new grpc.Metadata(),
          deadline(),
          cb,
        ),
      ),
    (c) => unary((cb) => c.consume({ offset: 0n }, new grpc.Metadata(), deadline(), cb)),
    (c) =>
      unary((cb) => c.consume({ offset: 1n << 40n }, new grpc.Metadata(), deadline(), cb)).catch(
        () => undefined,
      ),
    (c) => unary((cb) => c.getServers({}, new grpc.Metadata(), deadline(), cb)),
    async (c) => {
      const s = c.produceStream(deadline());
      s.write({ record: rec('seed-s1') });
      s.write({ record: rec('seed-s2') });
      s.end();
      for await (const _ of s as AsyncIterable<ProduceResponse>) void _;
    },
    async (c) => {
      const s = c.consumeStream({ offset: 0n }, deadline());
      for await (const _ of s as AsyncIterable<unknown>) {
        s.cancel();
        break;
      }
    },
  ];
  for (const call of calls) {
    const c = new LogClient(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    try {
      await call(c);
    } catch {
      // a refused seed call is still a conversation worth mutating
    }
    c.close();
    await pause(50);
  }
  await proxy.close();
  return proxy.captured;
}

function httpSeeds(): Buffer[] {
  const req = (method: string, path: string, body = '', type = 'application/json') =>
    Buffer.from(
      `${method} ${path} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  return [
    req('POST', '/', '{"record":{"value":"ZnV6eg=="}}'),
    req('GET', '/', '{"offset":0}'),
    req('GET', '/', '{"offset":99999999999}'),
    req('GET', '/v1/records/0'),
    req('POST', '/v1/records', 'hello', 'application/octet-stream'),
    req('GET', '/metrics'),
    req('GET', '/healthz'),
    req('GET', '/readyz'),
    Buffer.from(
      'GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    ),
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  ];
}

export function mutate(rng: Rng, seeds: Buffer[]): Buffer {
  if (seeds.length === 0 || rng.chance(0.2))
    return rng.bytes(rng.int(0, rng.chance(0.9) ? 512 : 65_536));
  let b = Buffer.from(rng.pick(seeds));
  for (let n = rng.int(1, 8); n > 0; n--) {
    const at = rng.int(0, Math.max(0, b.length - 1));
    switch (rng.int(0, 7)) {
      case 0: // flip a bit
        if (b.length) b[at] = b[at]! ^ (1 << rng.int(0, 7));
        break;
      case 1: // an interesting byte
        if (b.length) b[at] = rng.pick([0, 1, 0x7f, 0x80, 0xff, 0xfe]);
        break;
      case 2: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.int(1, 64)), b.subarray(at)]);
        break;
      case 3: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + rng.int(1, 64))]);
        break;
      case 4: // duplicate a range
        b = Buffer.concat([
          b.subarray(0, at + 1),
          b.subarray(at, at + rng.int(1, 256)),
          b.subarray(at + 1),
        ]);
        break;
      case 5: // truncate
        b = b.subarray(0, at);
        break;
      case 6: // splice with another seed
        b = Buffer.concat([b.subarray(0, at), rng.pick(seeds).subarray(rng.int(0, 64))]);
        break;
      default: // big-endian length fields: set 4 bytes to an extreme
        if (b.length > at + 4)
          b.writeUInt32BE(rng.pick([0, 0xffffffff, 0x7fffffff, 0x01000000]), at);
    }
  }
  return b;
}

/** Sends one input on a fresh connection; resolves when the node closes it or soon after. */
function sendTcp(port: number, input: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    const timer = setTimeout(done, 60);
    s.on('error', done);
    s.on('close', done);
    s.on('data', () => undefined);
    s.end(input);
  });
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const say = opts.log ?? (() => {});
  const rng = new Rng(opts.seed);
  const topo = await createTopology({ nodes: 1, mode: 'loopback' });
  const host = topo.hosts[0]!;
  const node = new NodeProcess(host, topo.root, 'fuzz');
  const problems: string[] = [];
  const counts = { grpc: 0, raft: 0, http: 0, gossip: 0 };
  const acked = new Map<bigint, Buffer>();
  let maxRss = 0;
  let crashes = 0;
  let lost = 0;
  const recent: Array<{ port: Port; input: Buffer }> = [];
  try {
    await node.start(
      agentArgs(
        host,
        { hosts: topo.hosts, clustered: false },
        { bootstrap: true, nodeName: 'fuzz' },
      ),
    );
    const client = new LogClient(node.rpcAddr, grpc.credentials.createInsecure());
    const seeds: Record<Port, Buffer[]> = {
      grpc: await grpcSeeds(node.rpcAddr),
      raft: raftSeeds(rng),
      http: httpSeeds(),
      gossip: [],
    };
    say(
      `fuzz: seed ${opts.seed}; ${seeds.grpc.length} captured gRPC conversations, ${seeds.http.length} HTTP requests; node pid ${node.pid} on ${node.rpcAddr}`,
    );
    const udp = createSocket('udp4');
    const stop = new AbortController();

    // A producer and a watchdog run beside the fuzzers.
    let seq = 0;
    const producing = (async () => {
      while (!stop.signal.aborted) {
        const value = Buffer.from(`fuzz-ack-${seq++}`);
        try {
          const r = await unary<ProduceResponse>((cb) =>
            client.produce({ record: rec(value.toString()) }, new grpc.Metadata(), deadline(), cb),
          );
          acked.set(r.offset, value);
        } catch (err) {
          problems.push(
            `a produce failed during the fuzz: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        await pause(50, stop.signal);
      }
    })();
    const watching = (async () => {
      while (!stop.signal.aborted) {
        const rss = node.rss();
        if (rss === undefined || node.state !== 'running') {
          crashes++;
          problems.push(
            `the node died after ${counts.grpc + counts.raft + counts.http + counts.gossip} inputs`,
          );
          stop.abort();
          break;
        }
        maxRss = Math.max(maxRss, rss);
        if (rss > opts.maxRssBytes) {
          problems.push(`RSS ${(rss / 2 ** 20).toFixed(0)} MiB over the bound`);
          stop.abort();
          break;
        }
        await pause(500, stop.signal);
      }
    })();

    let sent = 0;
    let lastReport = Date.now();
    const worker = async () => {
      while (!stop.signal.aborted && sent < opts.inputs) {
        sent++;
        const r = rng.next();
        let port: Port = r < 0.4 ? 'grpc' : r < 0.5 ? 'raft' : r < 0.9 ? 'http' : 'gossip';
        if (opts.ports && !opts.ports.includes(port)) port = opts.ports[sent % opts.ports.length]!;
        const input = mutate(rng, seeds[port]);
        recent.push({ port, input });
        if (recent.length > 64) recent.shift();
        counts[port]++;
        if (port === 'gossip') {
          await new Promise<void>((resolve) =>
            udp.send(input.subarray(0, 60_000), host.gossipPort, '127.0.0.1', () => resolve()),
          );
          if (rng.chance(0.1)) await sendTcp(host.gossipPort, input);
        } else await sendTcp(port === 'http' ? host.httpPort : host.rpcPort, input);
        if (Date.now() - lastReport > 10_000) {
          lastReport = Date.now();
          say(
            `fuzz: ${sent} inputs, RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB max, ${acked.size} acknowledged`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency ?? 96 }, worker));
    stop.abort();
    await Promise.all([producing, watching]);
    udp.close();

    if (node.state === 'running') {
      for (const [offset, value] of acked) {
        try {
          const r = await unary<{ record?: LogRecord }>((cb) =>
            client.consume({ offset }, new grpc.Metadata(), deadline(), cb),
          );
          if (!r.record || !Buffer.from(r.record.value).equals(value)) {
            lost++;
            problems.push(
              `offset ${offset}: acknowledged ${value.toString()}, now ${r.record ? Buffer.from(r.record.value).toString('latin1').slice(0, 40) : 'absent'}`,
            );
          }
        } catch (err) {
          lost++;
          problems.push(`offset ${offset}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
    client.close();
    if (problems.length > 0 && recent.length > 0) {
      const file = join(topo.root, 'last-inputs.json');
      await writeFile(
        file,
        JSON.stringify(recent.map((r) => ({ port: r.port, base64: r.input.toString('base64') }))),
      );
      problems.push(`the last ${recent.length} inputs are in ${file}`);
    }
  } finally {
    await node.stop(5000);
    node.closeLog();
    await topo.close({ keepFiles: problems.length > 0 || opts.keep === true });
  }
  const total = counts.grpc + counts.raft + counts.http + counts.gossip;
  const ok = problems.length === 0 && total >= opts.inputs;
  const summary =
    `fuzz: ${total} inputs (gRPC ${counts.grpc}, Raft ${counts.raft}, HTTP ${counts.http}, gossip ${counts.gossip}), ${crashes} crashes, ` +
    `${lost} lost of ${acked.size} acknowledged, max RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB (bound ${(opts.maxRssBytes / 2 ** 20).toFixed(0)} MiB)` +
    (ok ? '' : `\n  ${problems.slice(0, 20).join('\n  ')}`);
  return { ok, inputs: counts, crashes, lost, acknowledged: acked.size, maxRss, problems, summary };
}

/**
 * Replays saved inputs (the `last-inputs.json` of a failed fuzz) against a fresh node,
 * each `repeat` times (native crashes may wait for a garbage collection), and names
 * the first input after which the node is gone.
 */
export async function replayFuzz(opts: {
  file: string;
  repeat: number;
  log?: (line: string) => void;
}): Promise<{ culprit?: number; summary: string }> {
  const say = opts.log ?? (() => {});
  const saved = JSON.parse(await readFile(opts.file, 'utf8')) as Array<{
    port: Port;
    base64: string;
  }>;
  const topo = await createTopology({ nodes: 1, mode: 'loopback' });
  const host = topo.hosts[0]!;
  const node = new NodeProcess(host, topo.root, 'replay');
  let culprit: number | undefined;
  try {
    await node.start(
      agentArgs(
        host,
        { hosts: topo.hosts, clustered: false },
        { bootstrap: true, nodeName: 'replay' },
      ),
    );
    const udp = createSocket('udp4');
    for (const [i, { port, base64 }] of saved.entries()) {
      const input = Buffer.from(base64, 'base64');
      for (let k = 0; k < opts.repeat && node.state === 'running'; k++) {
        if (port === 'gossip')
          await new Promise<void>((resolve) =>
            udp.send(input.subarray(0, 60_000), host.gossipPort, '127.0.0.1', () => resolve()),
          );
        else await sendTcp(port === 'http' ? host.httpPort : host.rpcPort, input);
      }
      await pause(200);
      if (node.state !== 'running') {
        culprit = i;
        say(
          `replay: the node died after input ${i} (${port}, ${input.length} bytes): ${input.subarray(0, 48).toString('hex')}…`,
        );
        break;
      }
    }
    udp.close();
  } finally {
    await node.stop(5000);
    node.closeLog();
    await topo.close({ keepFiles: culprit !== undefined });
  }
  const summary =
    culprit === undefined
      ? `replay: ${saved.length} inputs × ${opts.repeat}, the node survived`
      : `replay: input ${culprit} of ${saved.length} kills the node (log in ${topo.root})`;
  return { culprit, summary };
}
