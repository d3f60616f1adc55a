// Reads below the first retained offset (after retention dropped old segments) are
// OUT_OF_RANGE on every path: unary, live streams, and the HTTP tail.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { CommitLogClient, OffsetOutOfRangeError } from '../src/client/index.js';
import { Log } from '../src/log/index.js';
import { ApiServer } from '../src/server/index.js';
import { serveLog, tempDir, values, within } from './support/node.js';

describe('reads below the retained range', () => {
  let dir: string;
  let log: Log;
  let server: ApiServer;
  let client: CommitLogClient;
  let httpAddr: string;

  before(async () => {
    dir = await tempDir('retention');
    log = await Log.open(dir, { fsync: 'never', maxStoreBytes: 1024 });
    for (const value of values(100)) await log.append(value);
    await log.truncatePrefix(log.highestOffset);
    assert.ok(log.lowestOffset > 0n, 'retention dropped the first segments');
    server = new ApiServer(serveLog(log));
    client = new CommitLogClient(`127.0.0.1:${(await server.listenGrpc('127.0.0.1', 0)).port}`);
    httpAddr = `127.0.0.1:${(await server.listenHttp('127.0.0.1', 0)).port}`;
  });
  after(async () => {
    client?.close();
    await server?.close(1000);
    await log?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('Consume answers OUT_OF_RANGE below the first offset and reads the first one', async () => {
    await assert.rejects(client.consume(0n), OffsetOutOfRangeError);
    const first = await client.consume(log.lowestOffset);
    assert.equal(first.value.toString(), `record-${log.lowestOffset}`);
  });

  it('ConsumeStream and ConsumeBatchStream end with OUT_OF_RANGE', async () => {
    const drain = async (records: AsyncIterable<unknown>) => {
      for await (const _ of records) assert.fail('no record below the first offset');
    };
    await assert.rejects(
      within(5000, 'ConsumeStream below the range', drain(client.consumeStream(0n))),
      (err: unknown) =>
        err instanceof OffsetOutOfRangeError && err.code === grpc.status.OUT_OF_RANGE,
    );
    await assert.rejects(
      within(5000, 'ConsumeBatchStream below the range', drain(client.consumeBatches(0n))),
      OffsetOutOfRangeError,
    );
  });

  it('the HTTP tail ends with an error entry', async () => {
    const [host, port] = httpAddr.split(':');
    const text = await within(
      5000,
      'HTTP tail below the range',
      new Promise<string>((resolve, reject) => {
        const req = httpRequest({ host, port: Number(port), path: '/v1/records?from=0' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        req.end();
      }),
    );
    assert.deepEqual(JSON.parse(text), {
      error: "The requested offset is outside the log's range: 0",
    });
  });
});
