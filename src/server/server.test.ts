// ApiServer taking connections it did not accept (grpcSink), as a port multiplexer
// hands them over: a plain net.Server accepts, peeks at the first bytes, puts them back
// and injects the socket. With mutual TLS, grpc-js does the handshake on the injected
// socket, so the auth interceptor still sees the client certificate.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { LogClient, type ProduceResponse } from '../api/index.js';
import { Authorizer, BOOK_FILES, loadTlsMaterial, writeBookFileSet } from '../auth/index.js';
import { MemoryCommitLog, until } from './fake-log.test-support.js';
import type { ClusterView, LeaderHint } from './ports.js';
import { ApiServer } from './server.js';

const NO_CLUSTER = { servers: async () => [], leader: () => undefined };

/** A TCP listener that peeks at each connection's first bytes, unshifts them, and hands it on. */
async function muxLike(
  sink: (socket: Socket) => void,
): Promise<{ server: Server; port: number; peeked: number[] }> {
  const peeked: number[] = [];
  const server = createServer((socket) => {
    socket.once('readable', () => {
      const first = socket.read() as Buffer | null;
      if (first === null) return;
      peeked.push(first[0] as number);
      socket.unshift(first);
      sink(socket);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, peeked };
}

function produce(client: LogClient, value: string): Promise<ProduceResponse> {
  return new Promise((resolve, reject) =>
    client.produce(
      { record: { value: Buffer.from(value), offset: 0n, term: 0n, type: 0 } },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

describe('ApiServer.grpcSink', () => {
  it('serves gRPC on injected plaintext connections, peeked bytes put back', async () => {
    const log = new MemoryCommitLog();
    const api = new ApiServer({ log, cluster: NO_CLUSTER });
    const mux = await muxLike(api.grpcSink());
    const client = new LogClient(`127.0.0.1:${mux.port}`, grpc.credentials.createInsecure());
    try {
      assert.equal((await produce(client, 'a')).offset, 0n);
      assert.equal((await produce(client, 'b')).offset, 1n);
      assert.deepEqual(log.appended, [[Buffer.from('a')], [Buffer.from('b')]]);
      // 'P' of the HTTP/2 preface ("PRI * HTTP/2.0"): the sink saw the connection's real start.
      assert.equal(mux.peeked[0], 0x50);
    } finally {
      client.close();
      await api.close(1000);
      mux.server.close();
    }
  });

  describe('with mutual TLS', () => {
    let dir: string;
    let api: ApiServer;
    let mux: Awaited<ReturnType<typeof muxLike>>;
    const clients: LogClient[] = [];

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'commitlog-sink-'));
      await writeBookFileSet(dir);
      const tls = await loadTlsMaterial({
        certFile: join(dir, BOOK_FILES.serverCert),
        keyFile: join(dir, BOOK_FILES.serverKey),
        caFile: join(dir, BOOK_FILES.caCert),
      });
      api = new ApiServer({
        log: new MemoryCommitLog(),
        cluster: NO_CLUSTER,
        security: { tls, authorizer: await Authorizer.open({}) },
      });
      mux = await muxLike(api.grpcSink());
    });
    after(async () => {
      for (const c of clients) c.close();
      await api?.close(1000);
      mux?.server.close();
      await rm(dir, { recursive: true, force: true });
    });

    async function client(withCertificate: boolean): Promise<LogClient> {
      const ca = await readFile(join(dir, BOOK_FILES.caCert));
      const credentials = withCertificate
        ? grpc.credentials.createSsl(
            ca,
            await readFile(join(dir, BOOK_FILES.rootClientKey)),
            await readFile(join(dir, BOOK_FILES.rootClientCert)),
          )
        : grpc.credentials.createSsl(ca);
      const c = new LogClient(`localhost:${mux.port}`, credentials);
      clients.push(c);
      return c;
    }

    it('does the handshake itself: the client certificate reaches the auth interceptor', async () => {
      assert.equal((await produce(await client(true), 'x')).offset, 0n);
      // 0x16: a TLS handshake record (the ClientHello) was what the listener peeked at.
      assert.equal(mux.peeked[0], 0x16);
    });

    it('refuses a client without a certificate as UNAUTHENTICATED', async () => {
      await assert.rejects(produce(await client(false), 'y'), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNAUTHENTICATED);
        return true;
      });
    });
  });
});

describe('ApiServer health', () => {
  /** grpc.health.v1.Health/Check for `service`, hand-encoded: 1 SERVING, 2 NOT_SERVING. */
  function check(client: grpc.Client, service: string): Promise<number> {
    const name = Buffer.from(service);
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        () => Buffer.concat([Buffer.from([0x0a, name.length]), name]),
        (b: Buffer) => b,
        {},
        (err, res) => (err ? reject(err) : resolve(res?.[1] ?? 0)),
      ),
    );
  }

  it('serves log.v1.Log only while the cluster view knows a leader', async () => {
    const waiting: ((v: IteratorResult<LeaderHint | undefined>) => void)[] = [];
    let leader: LeaderHint | undefined;
    const cluster: ClusterView = {
      servers: async () => [],
      leader: () => leader,
      leaderChanges: () => ({
        [Symbol.asyncIterator]: () => ({
          next: () => new Promise((resolve) => waiting.push(resolve)),
        }),
      }),
    };
    const api = new ApiServer({ log: new MemoryCommitLog(), cluster });
    const { port } = await api.listenGrpc('127.0.0.1', 0);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const announce = async (hint: LeaderHint | undefined) => {
      leader = hint;
      await until(() => waiting.length > 0, { what: 'the server waits for a leader change' });
      waiting.shift()?.({ value: hint, done: false });
    };
    try {
      assert.equal(await check(client, 'log.v1.Log'), 2, 'no leader yet');
      assert.equal(await check(client, ''), 1, 'the process itself is up');
      await announce({ id: 'n1', addr: 'a:1' });
      await until(async () => (await check(client, 'log.v1.Log')) === 1, { what: 'SERVING' });
      await announce(undefined);
      await until(async () => (await check(client, 'log.v1.Log')) === 2, { what: 'NOT_SERVING' });
    } finally {
      client.close();
      await api.close(1000);
    }
  });
});

describe('ApiServer HTTPS port', () => {
  let dir: string;
  let api: ApiServer;
  let port: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-https-'));
    await writeBookFileSet(dir);
    const tls = await loadTlsMaterial({
      certFile: join(dir, BOOK_FILES.serverCert),
      keyFile: join(dir, BOOK_FILES.serverKey),
      caFile: join(dir, BOOK_FILES.caCert),
    });
    api = new ApiServer({
      log: new MemoryCommitLog(),
      cluster: NO_CLUSTER,
      security: { tls, authorizer: await Authorizer.open({}) },
      limits: { handshakeTimeoutMs: 300 },
    });
    ({ port } = await api.listenHttp('127.0.0.1', 0));
  });
  after(async () => {
    await api?.close(1000);
    await rm(dir, { recursive: true, force: true });
  });

  /** Everything the server sends on a raw TCP connection after `request`, until it closes. */
  async function raw(request: string): Promise<string> {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {}); // a reset ends the answer like a close
    if (request !== '') socket.write(request);
    await once(socket, 'close');
    return Buffer.concat(chunks).toString('latin1');
  }

  it('answers plain HTTP with a 400 that says the port speaks HTTPS', async () => {
    const answer = await raw('GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(answer, /this port speaks HTTPS: use https:\/\/localhost:\d+\/healthz/);
  });

  it('still serves HTTPS', async () => {
    const ca = await readFile(join(dir, BOOK_FILES.caCert));
    const status = await new Promise<number>((resolve, reject) =>
      httpsGet(
        { host: '127.0.0.1', port, path: '/healthz', ca, servername: 'localhost' },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      ).on('error', reject),
    );
    assert.equal(status, 200);
  });

  it('closes a connection that sends nothing within the handshake timeout', async () => {
    assert.equal(await raw(''), '');
  });
});
