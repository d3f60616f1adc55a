// The server's limits in one process: streams per node, HTTP connections per client
// address, and connections that never finish a request head or an HTTP/2 handshake.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { LogClient } from '../api/index.js';
import { ErrorTable } from './errors.js';
import { MemoryCommitLog } from './fake-log.test-support.js';
import { parseFdLimits, type ServerLimits } from './limits.js';
import { ApiServer } from './server.js';

const NO_CLUSTER = { servers: async () => [], leader: () => undefined };

async function start(limits: Partial<ServerLimits>) {
  const log = new MemoryCommitLog();
  await log.append([Buffer.from('a')]);
  const server = new ApiServer({ log, cluster: NO_CLUSTER, limits });
  const rpc = await server.listenGrpc('127.0.0.1', 0);
  const http = await server.listenHttp('127.0.0.1', 0);
  return { server, rpcPort: rpc.port, httpPort: http.port };
}

/** Resolves with the stream's status once it ends (the first data does not end it). */
function statusOf(stream: grpc.ClientReadableStream<unknown>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    stream.on('data', () => {});
    stream.on('error', () => {});
    stream.on('status', resolve);
  });
}

async function openSocket(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

/** Everything the server sends until it closes the socket, within `ms`. */
async function untilClosed(socket: Socket, ms: number): Promise<string> {
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  socket.on('error', () => {});
  const closed = once(socket, 'close');
  const timer = setTimeout(() => socket.destroy(new Error('still open')), ms);
  try {
    await closed;
  } finally {
    clearTimeout(timer);
  }
  assert.ok(!socket.errored, `the server did not close the connection within ${ms} ms`);
  return text;
}

describe('server limits', () => {
  const servers: ApiServer[] = [];
  const sockets: Socket[] = [];
  after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => s.close(500)));
  });

  it('refuses streams past max-streams across connections, and takes one again once a stream ends', async () => {
    const { server, rpcPort } = await start({ streams: 2 });
    servers.push(server);
    const clients = [0, 1, 2].map(
      (i) =>
        new LogClient(`127.0.0.1:${rpcPort}`, grpc.credentials.createInsecure(), {
          'grpc.channel_id': i, // separate connections
        }),
    );
    try {
      const live = clients.slice(0, 2).map((c) => c.consumeStream({ offset: 0n }));
      await Promise.all(live.map((s) => once(s, 'data')));
      const statuses = live.map(statusOf);
      const refused = await statusOf(clients[2]!.consumeStream({ offset: 0n }));
      assert.equal(refused.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(refused.details, /streams on this node: the limit is 2 \(--max-streams\)/);
      live[0]!.cancel();
      await statuses[0];
      // The server lets go of the stream once it sees the cancel, a moment after the
      // client does: ask until it is accepted.
      const deadline = Date.now() + 5000;
      for (;;) {
        const again = clients[2]!.consumeStream({ offset: 0n });
        const status = statusOf(again);
        const first = await once(again, 'data').then(
          () => 'data' as const,
          () => status,
        );
        again.cancel();
        if (typeof first === 'string') break;
        assert.equal(first.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.ok(Date.now() < deadline, 'a stream is accepted again after one ended');
      }
      live[1]!.cancel();
      await statuses[1];
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('answers a connection past max-connections-per-address with 429 naming the setting', async () => {
    const { server, httpPort } = await start({ connectionsPerAddress: 2 });
    servers.push(server);
    sockets.push(await openSocket(httpPort), await openSocket(httpPort));
    const third = await openSocket(httpPort);
    sockets.push(third);
    const answer = await untilClosed(third, 5000);
    assert.match(answer, /^HTTP\/1\.1 429 /);
    assert.match(answer, /the limit is 2 \(--max-connections-per-address\)/);
  });

  it('closes an HTTP connection that sends no whole request head within the handshake timeout', async () => {
    const { server, httpPort } = await start({ handshakeTimeoutMs: 200 });
    servers.push(server);
    const partial = await openSocket(httpPort);
    sockets.push(partial);
    partial.write('GET /v1/records/0 HTTP/1.1\r\nhost: x\r\n');
    await untilClosed(partial, 5000);
  });

  it('drops gRPC connections that never finish the HTTP/2 handshake (silent, bare preface) by keepalive', async () => {
    const { server, rpcPort } = await start({ keepaliveTimeMs: 1000, keepaliveTimeoutMs: 500 });
    servers.push(server);
    const silent = await openSocket(rpcPort);
    const bare = await openSocket(rpcPort);
    sockets.push(silent, bare);
    bare.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    await Promise.all([untilClosed(silent, 8000), untilClosed(bare, 8000)]);
  });
});

describe('running out of file descriptors', () => {
  it('is UNAVAILABLE (503) saying what to do, not INTERNAL, wherever EMFILE is in the chain', () => {
    const emfile = Object.assign(new Error("EMFILE: too many open files, open '/d/log/1.store'"), {
      code: 'EMFILE',
    });
    const wrapped = new Error('cannot roll to a new segment', { cause: emfile });
    const table = new ErrorTable();
    const grpcStatus = table.toGrpcStatus(wrapped);
    assert.equal(grpcStatus.code, grpc.status.UNAVAILABLE);
    assert.match(grpcStatus.details, /out of file descriptors \(EMFILE\).*ulimit -n/);
    const http = table.toHttpError(emfile);
    assert.equal(http.status, 503);
    assert.equal(http.body.reason, 'DESCRIPTORS_EXHAUSTED');
    // Still logged as a failure of the node, not a client's mistake.
    assert.equal(table.isExpected(wrapped), false);
  });

  it('reads the open-file limits of /proc/self/limits', () => {
    const text =
      'Limit                     Soft Limit           Hard Limit           Units\n' +
      'Max open files            1024                 524288               files\n';
    assert.deepEqual(parseFdLimits(text), { soft: 1024, hard: 524288 });
    assert.equal(parseFdLimits('nothing here'), undefined);
  });
});
