// Scenario tests for every RPC of log.v1.Log against a real node (real storage engine,
// real ports), including error details, live streams, cancellation and shutdown.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';

import { decodeStatusDetails, LogClient, type LogRecord } from '../src/api/index.js';
import { CommitLogClient, OffsetOutOfRangeError } from '../src/client/index.js';
import { startNode, values, within, type TestNode } from './support/node.js';

/** Calls a unary method of the generated client; resolves with the result or the error. */
function call<Res>(
  invoke: (cb: (err: grpc.ServiceError | null, res: Res) => void) => void,
): Promise<{ err: grpc.ServiceError | null; res: Res }> {
  return new Promise((resolve) => invoke((err, res) => resolve({ err, res })));
}

interface HealthClient extends grpc.Client {
  check(req: { service: string }, cb: (err: Error | null, res: { status: string }) => void): void;
}

interface ReflectionClient extends grpc.Client {
  serverReflectionInfo(): grpc.ClientDuplexStream<object, unknown>;
}

/** The final status of a client stream; its 'error' event is consumed here. */
function statusOf(
  stream: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>,
): Promise<grpc.StatusObject> {
  stream.on('error', () => undefined); // the status carries the same code and details
  return new Promise((resolve) => stream.on('status', resolve));
}

function record(value: Buffer): LogRecord {
  return { value, offset: 0n, term: 0n, type: 0 };
}

describe('log.v1.Log over gRPC', () => {
  let node: TestNode;
  let raw: LogClient;
  let client: CommitLogClient;

  before(async () => {
    node = await startNode({ fsync: 'never' });
    raw = new LogClient(node.agent.rpcAddr, grpc.credentials.createInsecure());
    client = new CommitLogClient(node.agent.rpcAddr);
  });
  after(async () => {
    raw?.close();
    client?.close();
    await node?.cleanup();
  });

  describe('Produce and Consume', () => {
    it('answers dense offsets and reads each record back', async () => {
      const first = await client.produce(Buffer.from('hello'));
      const second = await client.produce(Buffer.from('world'));
      assert.equal(second, first + 1n);
      const read = await client.consume(first);
      assert.equal(read.offset, first);
      assert.equal(read.value.toString(), 'hello');
      assert.equal((await client.consume(second)).value.toString(), 'world');
    });

    it('stores empty values', async () => {
      const offset = await client.produce(Buffer.alloc(0));
      assert.equal((await client.consume(offset)).value.length, 0);
    });

    it('answers OUT_OF_RANGE with a LocalizedMessage detail past the end', async () => {
      const end = (await client.produce(Buffer.from('x'))) + 1n;
      const { err } = await call((cb) => raw.consume({ offset: end + 5n }, cb));
      assert.ok(err);
      assert.equal(err.code, grpc.status.OUT_OF_RANGE);
      const expected = `The requested offset is outside the log's range: ${end + 5n}`;
      assert.equal(err.details, expected);
      const bin = err.metadata.get('grpc-status-details-bin')[0];
      assert.ok(bin instanceof Buffer, 'grpc-status-details-bin is set');
      const decoded = decodeStatusDetails(bin);
      assert.equal(decoded.code, grpc.status.OUT_OF_RANGE);
      assert.deepEqual(decoded.localized, [{ locale: 'en-US', message: expected }]);
      await assert.rejects(client.consume(end + 5n), OffsetOutOfRangeError);
    });

    it('refuses a request without a record with INVALID_ARGUMENT naming the field', async () => {
      const { err } = await call((cb) => raw.produce({}, cb));
      assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err?.details ?? '', /record is required/);
    });

    it('refuses an oversized value with RESOURCE_EXHAUSTED naming the limit', async () => {
      const big = Buffer.alloc(1024 * 1024 + 1);
      const { err } = await call((cb) => raw.produce({ record: record(big) }, cb));
      assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(
        err?.details ?? '',
        /record\.value is 1048577 bytes, more than the limit of 1048576/,
      );
    });

    it('accepts a value of exactly the limit', async () => {
      const offset = await client.produce(Buffer.alloc(1024 * 1024, 7));
      assert.equal((await client.consume(offset)).value.length, 1024 * 1024);
    });

    it('answers OUT_OF_RANGE for the largest uint64 offset', async () => {
      const { err } = await call((cb) => raw.consume({ offset: 2n ** 64n - 1n }, cb));
      assert.equal(err?.code, grpc.status.OUT_OF_RANGE);
    });
  });

  describe('ConsumeStream', () => {
    it('sends N, N+1, … and then waits for new records', async () => {
      const first = await client.produce(Buffer.from('s0'));
      await client.produce(Buffer.from('s1'));
      const stop = new AbortController();
      const seen: string[] = [];
      const reading = (async () => {
        for await (const r of client.consumeStream(first, { signal: stop.signal })) {
          assert.equal(r.offset, first + BigInt(seen.length));
          seen.push(r.value.toString());
          if (seen.length === 4) return;
        }
      })();
      // The first two are there; the next two are written while the stream waits.
      await client.produce(Buffer.from('s2'));
      await client.produce(Buffer.from('s3'));
      await within(5000, 'stream sees records written after it started', reading);
      assert.deepEqual(seen, ['s0', 's1', 's2', 's3']);
    });

    it('from a future offset waits until that record exists', async () => {
      const next = (await client.produce(Buffer.from('before'))) + 1n;
      const stream = raw.consumeStream({ offset: next + 1n });
      const got = once(stream, 'data') as Promise<[{ record?: LogRecord }]>;
      await client.produce(Buffer.from('skipped'));
      await client.produce(Buffer.from('wanted'));
      const [msg] = await within(5000, 'record at a future offset', got);
      assert.equal(msg.record?.offset, next + 1n);
      assert.equal(msg.record?.value.toString(), 'wanted');
      const status = statusOf(stream);
      stream.cancel();
      assert.equal((await status).code, grpc.status.CANCELLED);
    });

    it('ends cleanly when the client cancels', async () => {
      const stream = raw.consumeStream({ offset: 0n });
      await once(stream, 'data');
      const status = statusOf(stream);
      stream.cancel();
      const s = await within(5000, 'status after cancel', status);
      assert.equal(s.code, grpc.status.CANCELLED);
    });
  });

  describe('ProduceStream', () => {
    it('acknowledges every record in request order with dense offsets', async () => {
      const offsets: bigint[] = [];
      for await (const offset of client.produceStream(values(500, 'ps'))) offsets.push(offset);
      assert.equal(offsets.length, 500);
      const first = offsets[0] ?? -1n;
      offsets.forEach((o, i) => assert.equal(o, first + BigInt(i)));
      assert.equal((await client.consume(first + 499n)).value.toString(), 'ps-499');
    });

    it('acks the records before an invalid request, then INVALID_ARGUMENT; reads nothing after it', async () => {
      const stream = raw.produceStream();
      const acks: bigint[] = [];
      stream.on('data', (res: { offset: bigint }) => acks.push(res.offset));
      const status = statusOf(stream);
      stream.write({ record: record(Buffer.from('ok-1')) });
      stream.write({ record: record(Buffer.from('ok-2')) });
      stream.write({});
      stream.write({ record: record(Buffer.from('never')) });
      stream.end();
      const s = await within(5000, 'ProduceStream status', status);
      assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
      assert.match(s.details, /record is required/);
      assert.equal(acks.length, 2);
      const last = acks[1] ?? -1n;
      assert.equal((await client.consume(last)).value.toString(), 'ok-2');
      await assert.rejects(client.consume(last + 1n), OffsetOutOfRangeError);
    });

    it('ends OK with no acks when the client sends nothing', async () => {
      const offsets: bigint[] = [];
      for await (const offset of client.produceStream([])) offsets.push(offset);
      assert.deepEqual(offsets, []);
    });
  });

  describe('ProduceBatch and ConsumeBatchStream', () => {
    it('appends a batch densely and streams it back in batches', async () => {
      const batch = values(2500, 'b');
      const { firstOffset, count } = await client.produceBatch(batch);
      assert.equal(count, 2500);
      const stop = new AbortController();
      const got: bigint[] = [];
      let messages = 0;
      for await (const records of client.consumeBatches(firstOffset, {
        signal: stop.signal,
        maxRecords: 1000,
      })) {
        messages++;
        assert.ok(records.length >= 1 && records.length <= 1000, `batch of ${records.length}`);
        for (const r of records) {
          assert.equal(r.value.toString(), `b-${Number(r.offset - firstOffset)}`);
          got.push(r.offset);
        }
        if (got.length === 2500) stop.abort();
      }
      assert.equal(got.length, 2500);
      got.forEach((o, i) => assert.equal(o, firstOffset + BigInt(i)));
      assert.ok(messages >= 3, `2500 records in ${messages} messages of at most 1000`);
    });

    it('refuses an empty batch with INVALID_ARGUMENT', async () => {
      const { err } = await call((cb) => raw.produceBatch({ records: [] }, cb));
      assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err?.details ?? '', /records must hold at least one record/);
    });

    it('refuses a batch with an oversized record, naming it, and appends none', async () => {
      const before = await client.produce(Buffer.from('marker'));
      const batch = [record(Buffer.from('fine')), record(Buffer.alloc(1024 * 1024 + 1))];
      const { err } = await call((cb) => raw.produceBatch({ records: batch }, cb));
      assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(err?.details ?? '', /records\[1\]\.value/);
      await assert.rejects(client.consume(before + 1n), OffsetOutOfRangeError);
    });

    it('waits for new records when caught up', async () => {
      const next = (await client.produce(Buffer.from('x'))) + 1n;
      const stop = new AbortController();
      const reading = (async () => {
        for await (const records of client.consumeBatches(next, { signal: stop.signal })) {
          return records.map((r) => r.value.toString());
        }
        return [];
      })();
      await client.produceBatch([Buffer.from('late-0'), Buffer.from('late-1')]);
      const got = await within(5000, 'batch stream sees new records', reading);
      assert.deepEqual(got, ['late-0', 'late-1']);
    });
  });

  describe('GetServers', () => {
    it('answers the single node as leader', async () => {
      const servers = await client.getServers();
      // The book's fields, then the additive ones (Raft id, suffrage, the leader's view).
      assert.deepEqual(
        servers.map(({ id, rpcAddr, isLeader }) => ({ id, rpcAddr, isLeader })),
        [{ id: 'test-node', rpcAddr: node.agent.rpcAddr, isLeader: true }],
      );
      assert.match((servers[0] as { raftId?: string }).raftId ?? '', /^test-node\.[0-9a-f]{12}$/);
    });
  });

  describe('health and reflection', () => {
    it('serves grpc.health.v1.Health for the server and for log.v1.Log', async () => {
      const pkg = grpc.loadPackageDefinition(
        loadSync(healthProtoPath, { enums: String }),
      ) as unknown as {
        grpc: { health: { v1: { Health: new (...args: unknown[]) => HealthClient } } };
      };
      const health = new pkg.grpc.health.v1.Health(
        node.agent.rpcAddr,
        grpc.credentials.createInsecure(),
      );
      try {
        for (const service of ['', 'log.v1.Log']) {
          const res = await new Promise<{ status: string }>((resolve, reject) => {
            health.check({ service }, (err, r) => (err ? reject(err) : resolve(r)));
          });
          assert.equal(res.status, 'SERVING', `health of "${service}"`);
        }
      } finally {
        health.close();
      }
    });

    it('lists log.v1.Log and describes its file through server reflection', async () => {
      const reflectionProto = new URL(
        '../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto',
        import.meta.url,
      ).pathname;
      const pkg = grpc.loadPackageDefinition(loadSync(reflectionProto)) as unknown as {
        grpc: {
          reflection: { v1: { ServerReflection: new (...args: unknown[]) => ReflectionClient } };
        };
      };
      const reflection = new pkg.grpc.reflection.v1.ServerReflection(
        node.agent.rpcAddr,
        grpc.credentials.createInsecure(),
      );
      try {
        const stream = reflection.serverReflectionInfo();
        const first = once(stream, 'data');
        stream.write({ listServices: '' });
        const [list] = (await within(5000, 'reflection list', first)) as [
          { listServicesResponse?: { service: { name: string }[] } },
        ];
        const names = list.listServicesResponse?.service.map((s) => s.name) ?? [];
        assert.ok(names.includes('log.v1.Log'), `services: ${names.join(', ')}`);
        const second = once(stream, 'data');
        stream.write({ fileContainingSymbol: 'log.v1.Log' });
        const [file] = (await within(5000, 'reflection file', second)) as [
          { fileDescriptorResponse?: { fileDescriptorProto: Buffer[] } },
        ];
        const protos = file.fileDescriptorResponse?.fileDescriptorProto ?? [];
        assert.ok(protos.length >= 1);
        stream.end();
        // The README's grpcurl line, as any generic client runs it: the types come from
        // reflection alone, the request from the JSON exactly as written there.
        const readmeJson = '{"record":{"value":"aGVsbG8="}}';
        // protobufjs/ext/descriptor adds Root.fromDescriptor (not in protobufjs's types).
        const Root = protobuf.Root as unknown as {
          fromDescriptor(set: protobuf.Message): protobuf.Root;
        };
        const root = Root.fromDescriptor(
          descriptor.FileDescriptorSet.fromObject({
            file: protos.map((b) => descriptor.FileDescriptorProto.decode(b)),
          }),
        );
        const request = root.lookupType('log.v1.ProduceRequest');
        const response = root.lookupType('log.v1.ProduceResponse');
        const generic = new grpc.Client(node.agent.rpcAddr, grpc.credentials.createInsecure());
        try {
          const answer = await new Promise<{ [key: string]: unknown }>((resolve, reject) =>
            generic.makeUnaryRequest(
              '/log.v1.Log/Produce',
              (o: object) => Buffer.from(request.encode(request.fromObject(o)).finish()),
              (b: Buffer) =>
                response.toObject(response.decode(b), { longs: String, defaults: true }),
              JSON.parse(readmeJson) as object,
              (err, res) => (err ? reject(err) : resolve(res ?? {})),
            ),
          );
          const offset = answer.offset as string;
          assert.match(offset, /^\d+$/);
          const raw = new LogClient(node.agent.rpcAddr, grpc.credentials.createInsecure());
          const stored = await call<{ record?: LogRecord }>((cb) =>
            raw.consume({ offset: BigInt(offset) }, cb),
          );
          raw.close();
          assert.equal(stored.res.record?.value.toString(), 'hello');
        } finally {
          generic.close();
        }
      } finally {
        reflection.close();
      }
    });
  });
});

describe('shutdown', () => {
  it('ends live streams with UNAVAILABLE and finishes well within the grace period', async () => {
    const node = await startNode({ fsync: 'never' });
    const raw = new LogClient(node.agent.rpcAddr, grpc.credentials.createInsecure());
    try {
      await new Promise((resolve) => raw.produce({ record: record(Buffer.from('x')) }, resolve));
      const stream = raw.consumeStream({ offset: 0n });
      await once(stream, 'data');
      const status = statusOf(stream);
      const started = Date.now();
      await within(4000, 'agent shutdown with a live stream', node.agent.shutdown());
      const s = await within(2000, 'stream status at shutdown', status);
      assert.equal(s.code, grpc.status.UNAVAILABLE);
      assert.match(s.details, /shutting down/);
      assert.ok(Date.now() - started < 4000);
    } finally {
      raw.close();
      await node.cleanup();
    }
  });

  it('acknowledges every append a ProduceStream had started, then UNAVAILABLE', async () => {
    const node = await startNode({ fsync: 'always' });
    const raw = new LogClient(node.agent.rpcAddr, grpc.credentials.createInsecure());
    try {
      const stream = raw.produceStream();
      const acks: bigint[] = [];
      const firstAck = new Promise<void>((resolve) => {
        stream.on('data', (res: { offset: bigint }) => {
          acks.push(res.offset);
          resolve();
        });
      });
      const status = statusOf(stream);
      for (let i = 0; i < 5000; i++) stream.write({ record: record(Buffer.from(`s${i}`)) });
      await within(5000, 'first ack', firstAck);
      await within(5000, 'agent shutdown during a ProduceStream', node.agent.shutdown());
      const s = await within(5000, 'ProduceStream status at shutdown', status);
      assert.ok(
        s.code === grpc.status.UNAVAILABLE || s.code === grpc.status.OK,
        `status ${s.code} ${s.details}`,
      );
      acks.forEach((o, i) => assert.equal(o, BigInt(i)));
      // Nothing was appended without an ack: after a restart the log holds exactly the
      // acknowledged records.
      const again = await startNode({ 'data-dir': node.dir });
      const check = new CommitLogClient(again.agent.rpcAddr);
      try {
        if (acks.length > 0) {
          const last = await check.consume(BigInt(acks.length - 1));
          assert.equal(last.value.toString(), `s${acks.length - 1}`);
        }
        await assert.rejects(check.consume(BigInt(acks.length)), /outside the log's range/);
      } finally {
        check.close();
        await again.agent.shutdown();
      }
    } finally {
      raw.close();
      await node.cleanup();
    }
  });
});
