// The same-run baseline for `npm run bench`: a bare grpc-js server on log.v1.Log's
// paths whose handlers store nothing — Produce/ProduceBatch answer at once, ProduceStream
// acknowledges each request, ConsumeStream/ConsumeBatchStream send records from memory
// (encoded per message, as a real server must). What `commitlog bench` reaches against
// it is the ceiling of grpc-js and the client on this machine.
//   node dist/bench/baseline-server.js   → prints {"port":N} and serves until SIGTERM
import { once } from 'node:events';

import * as grpc from '@grpc/grpc-js';

import {
  ConsumeBatchRequest,
  ConsumeBatchResponse,
  ConsumeRequest,
  ConsumeResponse,
  LogService,
  ProduceBatchRequest,
  ProduceResponse,
  ProduceBatchResponse,
} from '../src/api/index.js';

/** Records "exist" below this offset, so the bench's end-of-log probe stops here. */
const LOG_END = 1_000_000_000_000;

const identity = (b: Buffer): Buffer => b;
const raw = {
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
};
const definition = Object.fromEntries(
  Object.entries(LogService).map(([name, method]) => [name, { ...method, ...raw }]),
) as grpc.ServiceDefinition;

const value = Buffer.alloc(100, 'x');
let next = 0n;

function record(offset: bigint) {
  return { value, offset, term: 0n, type: 0 };
}

function produced(): Buffer {
  return Buffer.from(ProduceResponse.encode({ offset: next++ }).finish());
}

async function sendUntilCancelled(
  call: grpc.ServerWritableStream<Buffer, Buffer>,
  message: (i: number) => Buffer,
): Promise<void> {
  for (let i = 0; !call.cancelled; i++) {
    if (!call.write(message(i))) await once(call, 'drain');
  }
}

const server = new grpc.Server();
server.addService(definition, {
  produce: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
    cb(null, produced()),
  produceBatch: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
    const count = ProduceBatchRequest.decode(call.request).records.length;
    const firstOffset = next;
    next += BigInt(count);
    cb(null, Buffer.from(ProduceBatchResponse.encode({ firstOffset, count }).finish()));
  },
  produceStream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    call.on('data', () => call.write(produced()));
    call.on('end', () => call.end());
  },
  consume: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
    const { offset } = ConsumeRequest.decode(call.request);
    if (offset >= LOG_END) cb({ code: grpc.status.OUT_OF_RANGE, details: `offset ${offset}` });
    else cb(null, Buffer.from(ConsumeResponse.encode({ record: record(offset) }).finish()));
  },
  consumeStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    const from = ConsumeRequest.decode(call.request).offset;
    sendUntilCancelled(call, (i) =>
      Buffer.from(ConsumeResponse.encode({ record: record(from + BigInt(i)) }).finish()),
    ).catch(() => call.destroy());
  },
  consumeBatchStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    const req = ConsumeBatchRequest.decode(call.request);
    const per = Math.min(req.maxRecords || 1000, 1000);
    sendUntilCancelled(call, (i) => {
      const first = req.offset + BigInt(i * per);
      const records = Array.from({ length: per }, (_, j) => record(first + BigInt(j)));
      return Buffer.from(ConsumeBatchResponse.encode({ records }).finish());
    }).catch(() => call.destroy());
  },
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  console.log(JSON.stringify({ port }));
});
process.once('SIGTERM', () => server.forceShutdown());
