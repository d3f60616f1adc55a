// What mutual TLS and authorization cost on the produce path. Starts `commitlog agent`
// as a child process (its own core) in three set-ups — plaintext, mutual TLS with every
// authenticated client allowed, mutual TLS with the Casbin ACL — and drives each with
// the same client load, interleaved over several rounds so drift hits all alike.
// Prints medians and ratios against plaintext. Also times the authorizer alone: a cached
// decision against a Casbin evaluation.
//
//   npm run bench:auth -- [--records N] [--inflight K] [--rounds R] [--batch B]
// (the machine is shared and noisy: read the ratios, measured in the same run)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import {
  ACTION_PRODUCE,
  Authorizer,
  OBJECT_WILDCARD,
  writeBookFileSet,
} from '../src/auth/index.js';
import { channelCredentials, CommitLogClient } from '../src/client/index.js';
import { spawnAgent, type AgentProcess } from '../test/support/agent-process.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '20000' },
    inflight: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '5' },
    batch: { type: 'string', default: '100' },
  },
});
const RECORDS = Number(args.records);
const INFLIGHT = Number(args.inflight);
const ROUNDS = Number(args.rounds);
const BATCH = Number(args.batch);

type Setup = 'plaintext' | 'mtls' | 'mtls+acl';
type Kind = 'unary' | 'stream' | 'batch';
const KINDS: Kind[] = ['unary', 'stream', 'batch'];
const SETUPS: Setup[] = ['plaintext', 'mtls', 'mtls+acl'];

async function startAgent(setup: Setup, certs: string, dataDir: string): Promise<AgentProcess> {
  const flags = ['--data-dir', dataDir, '--rpc-port', '0', '--http-port', '0'];
  flags.push('--fsync', 'never', '--log-level', 'error');
  if (setup !== 'plaintext') {
    flags.push('--server-tls-cert-file', join(certs, 'server.pem'));
    flags.push('--server-tls-key-file', join(certs, 'server-key.pem'));
    flags.push('--server-tls-ca-file', join(certs, 'ca.pem'));
  }
  if (setup === 'mtls+acl') {
    flags.push('--acl-model-file', join(certs, 'model.conf'));
    flags.push('--acl-policy-file', join(certs, 'policy.csv'));
  }
  return spawnAgent(flags, { echoStderr: true, stdout: 'ignore' });
}

async function stopAgent(r: AgentProcess): Promise<void> {
  await r.stop();
}

async function client(setup: Setup, certs: string, rpcAddr: string): Promise<CommitLogClient> {
  if (setup === 'plaintext') return new CommitLogClient(rpcAddr);
  const credentials = await channelCredentials(
    {
      caFile: join(certs, 'ca.pem'),
      certFile: join(certs, 'root-client.pem'),
      keyFile: join(certs, 'root-client-key.pem'),
    },
    rpcAddr,
  );
  return new CommitLogClient(rpcAddr, { credentials });
}

/** N unary produces with K in flight; records/s. */
async function unary(c: CommitLogClient, n: number, k: number): Promise<number> {
  const value = Buffer.alloc(100, 1);
  let next = 0;
  const start = process.hrtime.bigint();
  const worker = async () => {
    while (next < n) {
      next++;
      await c.produce(value);
    }
  };
  await Promise.all(Array.from({ length: k }, worker));
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** N records over one pipelined ProduceStream; records/s. */
async function streamed(c: CommitLogClient, n: number): Promise<number> {
  const value = Buffer.alloc(100, 1);
  const start = process.hrtime.bigint();
  let acked = 0;
  for await (const _offset of c.produceStream(
    (function* () {
      for (let i = 0; i < n; i++) yield value;
    })(),
  )) {
    acked++;
  }
  return acked / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** N records in ProduceBatch calls of B, K calls in flight; records/s. */
async function batched(c: CommitLogClient, n: number, k: number, b: number): Promise<number> {
  const values = Array.from({ length: b }, () => Buffer.alloc(100, 1));
  let sent = 0;
  const start = process.hrtime.bigint();
  const worker = async () => {
    while (sent < n) {
      sent += b;
      await c.produceBatch(values);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.floor(k / 8)) }, worker));
  return sent / (Number(process.hrtime.bigint() - start) / 1e9);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

async function authorizerMicro(certs: string): Promise<{ cachedNs: number; evalNs: number }> {
  const authz = await Authorizer.open({
    modelFile: join(certs, 'model.conf'),
    policyFile: join(certs, 'policy.csv'),
  });
  const n = 1_000_000;
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) authz.authorize('root', OBJECT_WILDCARD, ACTION_PRODUCE);
  const cachedNs = Number(process.hrtime.bigint() - t) / n;
  // A fresh subject each time: every call misses the cache and evaluates the policy.
  const m = 20_000;
  t = process.hrtime.bigint();
  for (let i = 0; i < m; i++) authz.authorize(`user-${i}`, OBJECT_WILDCARD, ACTION_PRODUCE);
  const evalNs = Number(process.hrtime.bigint() - t) / m;
  return { cachedNs, evalNs };
}

async function main() {
  const work = await mkdtemp(join(tmpdir(), 'commitlog-bench-auth-'));
  try {
    const certs = join(work, 'certs');
    await writeBookFileSet(certs);
    const results: Record<Setup, Record<Kind, number[]>> = {
      plaintext: { unary: [], stream: [], batch: [] },
      mtls: { unary: [], stream: [], batch: [] },
      'mtls+acl': { unary: [], stream: [], batch: [] },
    };
    for (let round = 0; round < ROUNDS; round++) {
      for (const setup of SETUPS) {
        const dataDir = join(work, `data-${setup}-${round}`);
        const agent = await startAgent(setup, certs, dataDir);
        const c = await client(setup, certs, agent.rpcAddr);
        try {
          await unary(c, Math.min(2000, RECORDS), INFLIGHT); // warm-up: JIT, connection
          results[setup].unary.push(await unary(c, RECORDS, INFLIGHT));
          results[setup].stream.push(await streamed(c, RECORDS * 5));
          results[setup].batch.push(await batched(c, RECORDS * 10, INFLIGHT, BATCH));
        } finally {
          c.close();
          await stopAgent(agent);
          await rm(dataDir, { recursive: true, force: true });
        }
        process.stderr.write('.');
      }
    }
    process.stderr.write('\n');
    console.log(
      `produce path, 100-byte records, fsync never, median of ${ROUNDS} interleaved rounds; ` +
        `unary: ${RECORDS} Produce with ${INFLIGHT} in flight; stream: ${RECORDS * 5} over one ` +
        `ProduceStream; batch: ${RECORDS * 10} in ProduceBatch(${BATCH})`,
    );
    console.log(`setup     ${KINDS.map((k) => `${k} rec/s`.padStart(15) + '  ratio').join('')}`);
    for (const setup of SETUPS) {
      const cells = KINDS.map((k) => {
        const m = median(results[setup][k]);
        const ratio = m / median(results.plaintext[k]);
        return `${m.toFixed(0).padStart(15)}  ${ratio.toFixed(2).padStart(5)}`;
      });
      console.log(`${setup.padEnd(10)}${cells.join('')}`);
    }
    const micro = await authorizerMicro(certs);
    console.log(
      `authorizer: cached decision ${micro.cachedNs.toFixed(0)} ns, Casbin evaluation ${(micro.evalNs / 1000).toFixed(1)} µs`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
