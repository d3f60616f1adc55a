// Wire compatibility, checked without our generated code: clients built at run time by
// @grpc/proto-loader from the book's log.proto (verbatim messages and service) and
// from our proto/log/v1/log.proto.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

import { protoRoot } from '../src/api/index.js';
import { startNode, tempDir, within, type TestNode } from './support/node.js';

/** The book's api/v1/log.proto (proglog), as a Go client of the book is generated from. */
const BOOK_PROTO = `
syntax = "proto3";

package log.v1;

option go_package = "github.com/travisjeffery/api/log_v1";

message Record {
  bytes value = 1;
  uint64 offset = 2;
  uint64 term = 3;
  uint32 type = 4;
}

service Log {
  rpc Produce(ProduceRequest) returns (ProduceResponse) {}
  rpc Consume(ConsumeRequest) returns (ConsumeResponse) {}
  rpc ConsumeStream(ConsumeRequest) returns (stream ConsumeResponse) {}
  rpc ProduceStream(stream ProduceRequest) returns (stream ProduceResponse) {}
  rpc GetServers(GetServersRequest) returns (GetServersResponse) {}
}

message ProduceRequest  { Record record = 1; }
message ProduceResponse { uint64 offset = 1; }
message ConsumeRequest  { uint64 offset = 1; }
message ConsumeResponse { Record record = 2; }
message GetServersRequest {}
message GetServersResponse { repeated Server servers = 1; }
message Server {
  string id = 1;
  string rpc_addr = 2;
  bool is_leader = 3;
}
`;

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
interface DynRecord {
  value: Buffer;
  offset: string;
  term: string;
  type: number;
}
interface DynLogClient extends grpc.Client {
  produce(req: object, cb: Callback<{ offset: string }>): void;
  consume(req: { offset: string | number }, cb: Callback<{ record: DynRecord }>): void;
  consumeStream(req: { offset: string | number }): grpc.ClientReadableStream<{ record: DynRecord }>;
  produceStream(): grpc.ClientDuplexStream<object, { offset: string }>;
  getServers(
    req: object,
    cb: Callback<{ servers: { id: string; rpc_addr: string; is_leader: boolean }[] }>,
  ): void;
  produceBatch(req: object, cb: Callback<{ first_offset: string; count: number }>): void;
  consumeBatchStream(req: object): grpc.ClientReadableStream<{ records: DynRecord[] }>;
}

function loadClient(file: string, includeDirs: string[], addr: string): DynLogClient {
  const definition = loadSync(file, { includeDirs, longs: String, keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    log: { v1: { Log: new (addr: string, creds: grpc.ChannelCredentials) => DynLogClient } };
  };
  return new pkg.log.v1.Log(addr, grpc.credentials.createInsecure());
}

function unary<T>(invoke: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => invoke((err, res) => (err ? reject(err) : resolve(res))));
}

describe('wire compatibility (proto-loader clients)', () => {
  let node: TestNode;
  let dir: string;
  let book: DynLogClient;
  let ours: DynLogClient;

  before(async () => {
    node = await startNode({ fsync: 'never' });
    dir = await tempDir('book-proto');
    await writeFile(join(dir, 'log.proto'), BOOK_PROTO);
    book = loadClient(join(dir, 'log.proto'), [dir], node.agent.rpcAddr);
    const root = protoRoot();
    ours = loadClient(join(root, 'log', 'v1', 'log.proto'), [root], node.agent.rpcAddr);
  });
  after(async () => {
    book?.close();
    ours?.close();
    await node?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it("the book's client produces and consumes", async () => {
    const value = Buffer.from("Let's Go #1\n");
    const { offset } = await unary<{ offset: string }>((cb) =>
      book.produce({ record: { value } }, cb),
    );
    assert.equal(offset, '0');
    const { record } = await unary<{ record: DynRecord }>((cb) => book.consume({ offset: 0 }, cb));
    assert.deepEqual(record.value, value);
    assert.equal(record.offset, '0');
  });

  it("the book's client sees OUT_OF_RANGE with the book's localized message past the end", async () => {
    const err = await unary((cb) => book.consume({ offset: 1000 }, cb)).then(
      () => assert.fail('consume past the end succeeded'),
      (e: grpc.ServiceError) => e,
    );
    assert.equal(err.code, grpc.status.OUT_OF_RANGE);
    assert.equal(err.details, "The requested offset is outside the log's range: 1000");
    assert.ok(err.metadata.get('grpc-status-details-bin')[0] instanceof Buffer);
  });

  it("the book's ProduceStream and ConsumeStream work, acks in order", async () => {
    const stream = book.produceStream();
    const acks: string[] = [];
    stream.on('data', (res: { offset: string }) => acks.push(res.offset));
    for (let i = 0; i < 10; i++) stream.write({ record: { value: Buffer.from(`b${i}`) } });
    stream.end();
    await within(5000, 'ProduceStream end', once(stream, 'end'));
    assert.equal(acks.length, 10);
    const first = BigInt(acks[0] ?? '-1');
    acks.forEach((a, i) => assert.equal(a, String(first + BigInt(i))));

    const consume = book.consumeStream({ offset: first.toString() });
    const seen: string[] = [];
    await within(
      5000,
      'ConsumeStream delivers the produced records',
      new Promise<void>((resolve) => {
        consume.on('data', (res: { record: DynRecord }) => {
          seen.push(res.record.value.toString());
          if (seen.length === 10) resolve();
        });
      }),
    );
    assert.deepEqual(
      seen,
      Array.from({ length: 10 }, (_, i) => `b${i}`),
    );
    consume.on('error', () => undefined); // CANCELLED
    consume.cancel();
  });

  it("the book's GetServers answers the node as leader", async () => {
    const res = await unary<{ servers: { id: string; rpc_addr: string; is_leader: boolean }[] }>(
      (cb) => book.getServers({}, cb),
    );
    assert.deepEqual(res.servers, [
      { id: 'test-node', rpc_addr: node.agent.rpcAddr, is_leader: true },
    ]);
  });

  it('our .proto read at run time gives ProduceBatch and ConsumeBatchStream', async () => {
    const records = ['x', 'y', 'z'].map((v) => ({ value: Buffer.from(v) }));
    const res = await unary<{ first_offset: string; count: number }>((cb) =>
      ours.produceBatch({ records }, cb),
    );
    assert.equal(res.count, 3);
    const stream = ours.consumeBatchStream({ offset: res.first_offset, max_records: 2 });
    const got: string[] = [];
    await within(
      5000,
      'ConsumeBatchStream delivers the batch',
      new Promise<void>((resolve) => {
        stream.on('data', (msg: { records: DynRecord[] }) => {
          assert.ok(msg.records.length <= 2);
          for (const r of msg.records) got.push(r.value.toString());
          if (got.length >= 3) resolve();
        });
      }),
    );
    assert.deepEqual(got.slice(0, 3), ['x', 'y', 'z']);
    stream.on('error', () => undefined); // CANCELLED
    stream.cancel();
  });
});

describe(
  "the book's client against a follower of a three-node cluster",
  { timeout: 120_000 },
  () => {
    it('produces (forwarded), consumes committed records with their term, lists the servers', async () => {
      const { ProcessCluster } = await import('./support/cluster.js');
      await using c = await ProcessCluster.start(3);
      const leader = await c.leader();
      const follower = c.nodes.find((n) => n !== leader)!;
      const dir = await tempDir('book-proto-cluster');
      await writeFile(join(dir, 'log.proto'), BOOK_PROTO);
      const book = loadClient(join(dir, 'log.proto'), [dir], c.rpcAddr(follower));
      try {
        const value = Buffer.from("Let's Go #1\n");
        const { offset } = await unary<{ offset: string }>((cb) =>
          book.produce({ record: { value } }, cb),
        );
        assert.equal(offset, '0');
        // The follower serves it once committed there: its commit index follows the leader's.
        let record: DynRecord | undefined;
        for (let tries = 0; !record && tries < 100; tries++) {
          record = await unary<{ record: DynRecord }>((cb) => book.consume({ offset: 0 }, cb)).then(
            (r) => r.record,
            () => new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
          );
        }
        assert.ok(record, 'the follower serves the committed record');
        assert.deepEqual(record.value, value);
        assert.equal(record.offset, '0');
        assert.ok(BigInt(record.term) >= 1n, `the entry's Raft term, got ${record.term}`);
        assert.equal(record.type, 0);
        const { servers } = await unary<{
          servers: { id: string; rpc_addr: string; is_leader: boolean }[];
        }>((cb) => book.getServers({}, cb));
        assert.equal(servers.length, 3);
        assert.deepEqual(
          servers.filter((s) => s.is_leader).map((s) => s.rpc_addr),
          [c.rpcAddr(leader)],
        );
      } finally {
        book.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  },
);
