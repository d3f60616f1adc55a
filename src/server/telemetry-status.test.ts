// A request grpc-js refuses itself (a body that is not protobuf, a message over the size
// limit) is logged and counted with the status the client got, not as cancelled; a
// request its client abandons is logged as cancelled, not as a failure of the node.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { createLogger, Metrics, parseExposition, RequestTelemetry } from '../telemetry/index.js';
import { MemoryCommitLog, until } from './fake-log.test-support.js';
import { ApiServer } from './server.js';

const raw = (b: Buffer) => b;
const RawProduce = grpc.makeGenericClientConstructor(
  {
    produce: {
      path: '/log.v1.Log/Produce',
      requestStream: false,
      responseStream: false,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    },
  },
  'RawLog',
);
type RawClient = grpc.Client & {
  produce(req: Buffer, cb: (err: grpc.ServiceError | null) => void): void;
  produce(
    req: Buffer,
    options: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null) => void,
  ): void;
};

describe('statuses grpc-js sends itself', () => {
  const lines: Record<string, unknown>[] = [];
  const metrics = new Metrics({ processMetrics: false });
  const log = new MemoryCommitLog();
  let server: ApiServer;
  let client: RawClient;

  before(async () => {
    const logger = createLogger({
      level: 'debug',
      format: 'json',
      destination: {
        write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>),
      },
    });
    server = new ApiServer({
      log,
      logger,
      cluster: { servers: async () => [], leader: () => undefined },
      requests: new RequestTelemetry({ logger, metrics }),
      metrics,
      maxRecordBytes: 1024,
    });
    const { port } = await server.listenGrpc('127.0.0.1', 0);
    client = new RawProduce(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': -1,
    }) as unknown as RawClient;
  });
  after(async () => {
    client?.close();
    await server?.close(500);
  });

  async function produceRaw(body: Buffer): Promise<grpc.ServiceError> {
    return new Promise((resolve, reject) =>
      client.produce(body, (err) => (err ? resolve(err) : reject(new Error('accepted')))),
    );
  }

  async function counted(code: string): Promise<number> {
    const samples = parseExposition(await metrics.registry.metrics());
    return samples
      .filter(
        (s) =>
          s.name === 'commitlog_rpc_requests_total' &&
          s.labels.method === 'log.v1.Log/Produce' &&
          s.labels.code === code,
      )
      .reduce((sum, s) => sum + s.value, 0);
  }

  it('a body that is not protobuf: INTERNAL for the client, the log line and the metric', async () => {
    const err = await produceRaw(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    assert.equal(err.code, grpc.status.INTERNAL);
    const line = lines.find((l) => l.method === 'log.v1.Log/Produce' && l.code === 'INTERNAL');
    assert.ok(line, `log lines: ${JSON.stringify(lines)}`);
    assert.equal(await counted('INTERNAL'), 1);
    assert.equal(await counted('CANCELLED'), 0);
  });

  it('a message over the size limit: RESOURCE_EXHAUSTED for all three', async () => {
    const err = await produceRaw(Buffer.alloc(5 * 1024 * 1024));
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    const line = lines.find(
      (l) => l.method === 'log.v1.Log/Produce' && l.code === 'RESOURCE_EXHAUSTED',
    );
    assert.ok(line, `log lines: ${JSON.stringify(lines)}`);
    assert.equal(await counted('RESOURCE_EXHAUSTED'), 1);
    assert.equal(await counted('CANCELLED'), 0);
  });

  it('a produce its client abandons: logged as the call ended, no error line', async () => {
    log.hold = true;
    const from = lines.length;
    try {
      const body = Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x61]); // record { value: "a" }
      const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
        client.produce(body, { deadline: Date.now() + 200 }, (e) =>
          e ? resolve(e) : reject(new Error('accepted')),
        ),
      );
      assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
      await until(() => log.abandoned === 1, { what: 'the held append given up' });
      await until(
        () =>
          lines.some(
            (l) =>
              l.method === 'log.v1.Log/Produce' &&
              // grpc-js's own deadline timer may end the call before the client's cancel.
              (l.code === 'CANCELLED' || l.code === 'DEADLINE_EXCEEDED'),
          ),
        { what: 'the request line' },
      );
      // The append's rejection (the abort) settles a turn after the cancel.
      await new Promise((resolve) => setImmediate(resolve));
      const errors = lines.slice(from).filter((l) => l.level === 'error' || l.level === 'fatal');
      assert.deepEqual(errors, [], 'a client that gives up is not an error of the node');
    } finally {
      log.hold = false;
    }
  });
});
