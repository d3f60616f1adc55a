// One client must not take the node down: streams that never read are bounded in
// bytes, and the streams a connection and the node may hold are capped, the excess
// refused with RESOURCE_EXHAUSTED naming the limit and its setting. The node is a
// child process so that its memory (RSS) can be measured on its own.
import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { ConsumeBatchRequest } from '../src/api/index.js';
import { CommitLogClient } from '../src/client/index.js';
import { spawnAgent, type AgentProcess } from './support/agent-process.js';
import { tempDir } from './support/node.js';
import { settled, within } from './support/wait.js';

/** Resident memory of a process in MiB (Linux /proc). */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  assert.ok(kb, 'VmRSS in /proc/<pid>/status');
  return Number(kb[1]) / 1024;
}

/**
 * The node's RSS once it has stopped growing, in 4 MiB steps (allocation noise aside):
 * what it holds for the stalled streams, not a figure read at a chosen moment.
 */
async function settledRss(pid: number): Promise<number> {
  let now = await rssMiB(pid);
  let step = Math.round(now / 4);
  const poll = setInterval(() => {
    rssMiB(pid).then(
      (v) => {
        now = v;
        step = Math.round(v / 4);
      },
      () => {},
    );
  }, 20);
  try {
    await settled(() => step, 1000, { ms: 30_000 });
    return now;
  } finally {
    clearInterval(poll);
  }
}

/** A gRPC-framed request body. */
function frame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

interface RawStream {
  /** Resolves with the first bytes of the response, or the trailers' status if it ends. */
  firstData: Promise<void>;
  status: Promise<{ code: number; message: string }>;
  stream: http2.ClientHttp2Stream;
}

/**
 * A ConsumeBatchStream from offset 0 on a bare HTTP/2 session that reads nothing (a
 * grpc-js client keeps reading into its own buffer even when the caller does not).
 */
function stalledConsume(session: http2.ClientHttp2Session): RawStream {
  const stream = session.request({
    ':method': 'POST',
    ':path': '/log.v1.Log/ConsumeBatchStream',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.end(
    frame(ConsumeBatchRequest.encode({ offset: 0n, maxRecords: 0, maxBytes: 0 }).finish()),
  );
  const status = new Promise<{ code: number; message: string }>((resolve, reject) => {
    const fromHeaders = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) {
        resolve({
          code: Number(h['grpc-status']),
          message: decodeURIComponent(String(h['grpc-message'] ?? '')),
        });
      }
    };
    stream.on('response', fromHeaders);
    stream.on('trailers', fromHeaders);
    stream.on('error', reject);
  });
  const firstData = new Promise<void>((resolve, reject) => {
    stream.once('data', () => {
      stream.pause();
      resolve();
    });
    void status.then((s) => reject(new Error(`stream ended with ${s.code} ${s.message}`)), reject);
  });
  // Read the first chunk only, to know the server is sending, then stop reading.
  return { firstData, status, stream };
}

describe('limits against one greedy client', () => {
  // LIMITS_TEST_STREAMS=100 measures at the default --max-streams-per-connection (slower).
  const perConnection = Number(process.env.LIMITS_TEST_STREAMS ?? 32);
  let dir: string;
  let agent: AgentProcess;

  before(async () => {
    dir = await tempDir('limits');
    agent = await spawnAgent([
      '--data-dir',
      dir,
      '--rpc-port',
      '0',
      '--http-port',
      '0',
      '--log-level',
      'warn',
      '--max-streams-per-connection',
      String(perConnection),
    ]);
    // 20 MiB of 256 KiB records: every stream could pull all of it if nothing bounded it.
    const client = new CommitLogClient(agent.rpcAddr);
    try {
      const value = Buffer.alloc(256 * 1024, 7);
      for (let i = 0; i < 10; i++)
        await client.produceBatch(Array.from({ length: 8 }, () => value));
    } finally {
      client.close();
    }
  });
  after(async () => {
    await agent?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('stalled streams up to the per-connection limit keep the node under a memory bound; the next is refused', async () => {
    const baseline = await rssMiB(agent.pid);
    const session = http2.connect(`http://${agent.rpcAddr}`);
    session.on('error', () => {});
    try {
      const streams = Array.from({ length: perConnection }, () => stalledConsume(session));
      await within(
        20_000,
        'every stream receives data',
        Promise.all(streams.map((s) => s.firstData)),
      );
      // Measured once the node stops growing (in 4 MiB steps: allocation noise aside).
      const rss = await settledRss(agent.pid);
      const grown = rss - baseline;
      // Each stalled stream may hold its send buffer (1 MiB) plus one batch message
      // (1 MiB) beyond the HTTP/2 window; 4 MiB each leaves room for the rest.
      const bound = perConnection * 4;
      console.log(
        `# ${perConnection} stalled ConsumeBatchStreams: RSS ${baseline.toFixed(0)} → ${rss.toFixed(0)} MiB (+${grown.toFixed(0)}, bound +${bound})`,
      );
      assert.ok(grown < bound, `node grew by ${grown.toFixed(0)} MiB, bound ${bound} MiB`);
      const extra = stalledConsume(session);
      extra.firstData.catch(() => {}); // it is refused: its status is what counts
      const refused = await within(10_000, 'the extra stream is answered', extra.status);
      assert.equal(refused.code, 8, `RESOURCE_EXHAUSTED, got ${refused.code} ${refused.message}`);
      assert.match(refused.message, /max-streams-per-connection/);
      assert.match(refused.message, new RegExp(`${perConnection}`));
    } finally {
      session.destroy();
    }
  });
});

describe('a crowd of idle sockets under a low open-file limit', () => {
  let dir: string;
  let agent: AgentProcess;
  const sockets: Socket[] = [];

  before(async () => {
    dir = await tempDir('limits-fds');
    agent = await spawnAgent(
      [
        '--data-dir',
        dir,
        '--rpc-port',
        '0',
        '--http-port',
        '0',
        '--log-level',
        'error',
        '--segment-max-bytes',
        '1024',
      ],
      { openFileLimit: 256 },
    );
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await agent?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps descriptors for the log: produces that roll segments succeed and /healthz answers', async () => {
    // 300 silent connections to each port from another loopback address (so that the
    // caps per address apply to them, not to the test's own calls).
    const crowd = async (addr: string) => {
      const [host, port] = [
        addr.slice(0, addr.lastIndexOf(':')),
        Number(addr.slice(addr.lastIndexOf(':') + 1)),
      ];
      for (let i = 0; i < 300; i++) {
        const socket = connect({ host, port, localAddress: '127.0.0.2' });
        socket.on('error', () => {});
        sockets.push(socket);
      }
      await Promise.all(
        sockets.map((s) =>
          s.connecting
            ? once(s, 'connect').then(
                () => {},
                () => {},
              )
            : Promise.resolve(),
        ),
      );
    };
    await crowd(agent.httpAddr);
    await crowd(agent.rpcAddr);
    const client = new CommitLogClient(agent.rpcAddr);
    try {
      // Each 600-byte record fills most of a 1 KiB segment: every produce opens files.
      for (let i = 0; i < 20; i++) {
        const offset = await within(5000, `produce ${i}`, client.produce(Buffer.alloc(600, i)));
        assert.equal(offset, BigInt(i));
      }
    } finally {
      client.close();
    }
    const health = await within(5000, '/healthz', fetch(`http://${agent.httpAddr}/healthz`));
    assert.equal(health.status, 200);
    const fds = (await readdir(`/proc/${agent.pid}/fd`)).length;
    console.log(`# open-file limit 256, 600 idle sockets: the node holds ${fds} descriptors`);
    assert.ok(fds < 256, `${fds} descriptors`);
  });
});
