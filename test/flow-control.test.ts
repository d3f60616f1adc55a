// The server against the storage engine with instrumentation: a slow consumer (gRPC or
// HTTP tail) must not make the server read (and buffer) the log without bound, and
// ProduceStream must start appends before earlier ones are durable so that the log can
// group them. Also: interceptors given to the server run on every call.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { ConsumeRequest, ConsumeResponse, LogClient } from '../src/api/index.js';
import { CommitLogClient } from '../src/client/index.js';
import { Log } from '../src/log/index.js';
import { ApiServer, type CommitLog, type ReadBatchOptions } from '../src/server/index.js';
import { serveLog, tempDir, values } from './support/node.js';
import { settled, until, within } from './support/wait.js';

/** A CommitLog that counts the records the server has pulled out of the log. */
function counting(log: Log): CommitLog & { pulled: number } {
  const inner = serveLog(log).log;
  const wrapper = {
    pulled: 0,
    append: inner.append.bind(inner),
    read: inner.read.bind(inner),
    async *readBatchesFrom(from: bigint, opts?: ReadBatchOptions) {
      for await (const batch of inner.readBatchesFrom(from, opts)) {
        wrapper.pulled += batch.length;
        yield batch;
      }
    },
  };
  return wrapper;
}

describe('flow control', () => {
  let dir: string;
  let log: Log;
  let server: ApiServer;
  let addr: string;
  let httpAddr: string;
  let slowFirst = 0n;
  const groups: number[] = [];
  let wrapped: ReturnType<typeof counting>;

  before(async () => {
    dir = await tempDir('flow');
    log = await Log.open(dir, {
      fsync: 'always',
      observer: { appended: (records) => groups.push(records) },
    });
    wrapped = counting(log);
    server = new ApiServer({ ...serveLog(log), log: wrapped });
    const bound = await server.listenGrpc('127.0.0.1', 0);
    addr = `127.0.0.1:${bound.port}`;
    httpAddr = `127.0.0.1:${(await server.listenHttp('127.0.0.1', 0)).port}`;
  });
  after(async () => {
    await server?.close(1000);
    await log?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('ProduceStream starts appends before earlier ones are durable (group commit)', async () => {
    const client = new CommitLogClient(addr);
    try {
      groups.length = 0;
      const offsets: bigint[] = [];
      for await (const o of client.produceStream(values(400, 'p'))) offsets.push(o);
      assert.deepEqual(
        offsets,
        offsets.map((_, i) => BigInt(i)),
      );
      const records = groups.reduce((a, b) => a + b, 0);
      assert.equal(records, 400);
      // A serial loop writes (and fsyncs) each record alone: 400 groups.
      assert.ok(groups.length < 200, `400 records were written in ${groups.length} groups`);
    } finally {
      client.close();
    }
  });

  it('a consumer that stops reading stops the server reading the log', async () => {
    const total = 20_000;
    const value = Buffer.alloc(1000, 1);
    const first = log.nextOffset;
    slowFirst = first;
    for (let i = 0; i < total; i += 1000) {
      await log.appendBatch(Array.from({ length: 1000 }, () => value));
    }
    // A bare HTTP/2 client, so that a paused stream really stops window updates (a
    // grpc-js 1.14 client that is not reading keeps receiving into an internal list).
    const session = http2.connect(`http://${addr}`);
    try {
      const request = ConsumeRequest.encode({ offset: first }).finish();
      const frame = Buffer.alloc(5 + request.length);
      frame.writeUInt32BE(request.length, 1);
      frame.set(request, 5);
      const stream = session.request({
        ':method': 'POST',
        ':path': '/log.v1.Log/ConsumeStream',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      stream.end(frame);
      stream.pause();
      wrapped.pulled = 0;
      // Settling is measured from the first record pulled: on a busy machine the stream
      // can take longer to start than the quiet period, which would read as a stall at 0.
      await until(() => wrapped.pulled > 0, { ms: 10_000, what: 'the server starts pulling' });
      const stalled = await within(
        10_000,
        'server stops pulling',
        settled(() => wrapped.pulled, 300),
      );
      assert.ok(stalled > 0, 'the server started sending');
      assert.ok(
        stalled < 1000,
        `server pulled ${stalled} of ${total} records (1 KB each) for a consumer that reads nothing`,
      );
      // Reading again resumes the server, in order, to the last record.
      let next = first;
      let pending = Buffer.alloc(0);
      const done = new Promise<void>((resolve, reject) => {
        stream.on('data', (chunk: Buffer) => {
          pending = Buffer.concat([pending, chunk]);
          while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
            const length = pending.readUInt32BE(1);
            const msg = ConsumeResponse.decode(pending.subarray(5, 5 + length));
            pending = pending.subarray(5 + length);
            if (msg.record?.offset !== next)
              reject(new Error(`got ${msg.record?.offset}, want ${next}`));
            next++;
            if (next === first + BigInt(total)) resolve();
          }
        });
      });
      stream.resume();
      await within(20_000, 'slow consumer catches up', done);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      console.log(
        `# slow consumer: server pulled ${stalled} of ${total} records while it was paused`,
      );
    } finally {
      session.close();
    }
  });

  it('an HTTP tail that stops reading stops the server reading the log', async () => {
    const total = 20_000; // written by the previous test
    wrapped.pulled = 0;
    const [host, port] = httpAddr.split(':');
    const controller = new AbortController();
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        {
          host,
          port: Number(port),
          path: `/v1/records?from=${slowFirst}`,
          signal: controller.signal,
        },
        resolve,
      );
      req.on('error', (err) => {
        if (!controller.signal.aborted) reject(err);
      });
      req.end();
    });
    try {
      response.pause();
      await until(() => wrapped.pulled > 0, { ms: 10_000, what: 'the server starts pulling' });
      const stalled = await within(
        10_000,
        'server stops pulling',
        settled(() => wrapped.pulled, 300),
      );
      // Socket buffers on loopback hold a few MB; 20 MB of records must not all be read.
      assert.ok(
        stalled < total / 2,
        `server pulled ${stalled} of ${total} records for a paused tail`,
      );
      let lines = 0;
      const done = new Promise<void>((resolve) => {
        response.on('data', (chunk: Buffer) => {
          for (const byte of chunk) if (byte === 10) lines++;
          if (lines >= total) resolve();
        });
      });
      response.resume();
      await within(20_000, 'paused tail catches up', done);
      console.log(`# HTTP tail: server pulled ${stalled} of ${total} records while it was paused`);
    } finally {
      controller.abort();
    }
  });
});

describe('interceptors', () => {
  it('run on every call, and can refuse one before its handler', async () => {
    const dir = await tempDir('interceptors');
    const log = await Log.open(dir, { fsync: 'never' });
    const seen: string[] = [];
    const interceptor: grpc.ServerInterceptor = (method, call) => {
      seen.push(method.path);
      return new grpc.ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (metadata, proceed) => {
              if (metadata.get('x-deny').length > 0) {
                call.sendStatus({
                  code: grpc.status.PERMISSION_DENIED,
                  details: 'denied',
                  metadata: new grpc.Metadata(),
                });
              } else {
                proceed(metadata);
              }
            },
          }),
      });
    };
    const server = new ApiServer({ ...serveLog(log), interceptors: [interceptor] });
    const target = `127.0.0.1:${(await server.listenGrpc('127.0.0.1', 0)).port}`;
    const client = new CommitLogClient(target);
    const raw = new LogClient(target, grpc.credentials.createInsecure());
    try {
      assert.equal(await client.produce(Buffer.from('allowed')), 0n);
      const denied = new grpc.Metadata();
      denied.set('x-deny', '1');
      const err = await new Promise<grpc.ServiceError | null>((resolve) => {
        raw.produce(
          { record: { value: Buffer.from('denied'), offset: 0n, term: 0n, type: 0 } },
          denied,
          (e) => resolve(e),
        );
      });
      assert.equal(err?.code, grpc.status.PERMISSION_DENIED);
      assert.equal(log.nextOffset, 1n, 'the refused call never reached the log');
      assert.deepEqual(seen, ['/log.v1.Log/Produce', '/log.v1.Log/Produce']);
    } finally {
      client.close();
      raw.close();
      await server.close(1000);
      await log.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
