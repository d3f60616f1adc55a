// Hand-written codecs for the node's hottest messages. Responses (acknowledgements,
// consumed records) are written with the same bytes as the generated encoders
// (checked by codec.test.ts) but sized first into one buffer, where the generic
// writer grows a buffer by doubling, copies every nested record on join() and copies
// the result twice more. ProduceBatchRequest is decoded with one copy of the message
// (values are views into it) instead of one allocation per record; anything but the
// plain shape falls back to the generated decoder, which defines the semantics.
import {
  type ConsumeBatchResponse,
  type ConsumeResponse,
  type LogRecord,
  LogService,
  ProduceBatchRequest,
  type ProduceResponse,
} from '../api/index.js';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 128) {
    buf[at++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function checkUint64(v: bigint, field: string): void {
  if (BigInt.asUintN(64, v) !== v) {
    throw new Error(`value provided for field ${field} of type uint64 too large`);
  }
}

function uint64Size(v: bigint, field: string): number {
  if (v >= 0n && v <= MAX_SAFE) return varintSize(Number(v));
  checkUint64(v, field);
  let size = 1;
  while (v >= 128n) {
    v >>= 7n;
    size++;
  }
  return size;
}

function writeUint64(buf: Buffer, at: number, v: bigint): number {
  if (v <= MAX_SAFE) return writeVarint(buf, at, Number(v));
  while (v >= 128n) {
    buf[at++] = Number(v & 127n) | 128;
    v >>= 7n;
  }
  buf[at++] = Number(v);
  return at;
}

/**
 * A Record to send. With `wire` (the stored Record bytes without the offset field) the
 * encoder copies those bytes and appends field 2 with the offset, instead of encoding
 * value, term and type: a repeated scalar field's last value wins, so the message
 * decodes the same, and a consume sends what is on disk without re-encoding it.
 */
export interface WireRecord extends LogRecord {
  wire?: Buffer;
}

/** Size of a Record's fields (proto3: zero values are left out). */
function recordSize(r: WireRecord): number {
  if (r.wire !== undefined) {
    return r.wire.length + (r.offset !== 0n ? 1 + uint64Size(r.offset, 'message.offset') : 0);
  }
  let size = 0;
  if (r.value.length !== 0) size += 1 + varintSize(r.value.length) + r.value.length;
  if (r.offset !== 0n) size += 1 + uint64Size(r.offset, 'message.offset');
  if (r.term !== 0n) size += 1 + uint64Size(r.term, 'message.term');
  if (r.type !== 0) size += 1 + varintSize(r.type >>> 0);
  return size;
}

function writeRecord(buf: Buffer, at: number, r: WireRecord): number {
  if (r.wire !== undefined) {
    buf.set(r.wire, at);
    at += r.wire.length;
    if (r.offset !== 0n) {
      buf[at++] = 0x10;
      at = writeUint64(buf, at, r.offset);
    }
    return at;
  }
  if (r.value.length !== 0) {
    buf[at++] = 0x0a;
    at = writeVarint(buf, at, r.value.length);
    buf.set(r.value, at);
    at += r.value.length;
  }
  if (r.offset !== 0n) {
    buf[at++] = 0x10;
    at = writeUint64(buf, at, r.offset);
  }
  if (r.term !== 0n) {
    buf[at++] = 0x18;
    at = writeUint64(buf, at, r.term);
  }
  if (r.type !== 0) {
    buf[at++] = 0x20;
    at = writeVarint(buf, at, r.type >>> 0);
  }
  return at;
}

export function encodeProduceResponse(message: ProduceResponse): Buffer {
  if (message.offset === 0n) return Buffer.alloc(0);
  const buf = Buffer.allocUnsafe(1 + uint64Size(message.offset, 'message.offset'));
  buf[0] = 0x08;
  writeUint64(buf, 1, message.offset);
  return buf;
}

export function encodeConsumeResponse(message: ConsumeResponse): Buffer {
  if (message.record === undefined) return Buffer.alloc(0);
  const size = recordSize(message.record);
  const buf = Buffer.allocUnsafe(1 + varintSize(size) + size);
  buf[0] = 0x12; // field 2, length-delimited
  writeRecord(buf, writeVarint(buf, 1, size), message.record);
  return buf;
}

export function encodeConsumeBatchResponse(message: ConsumeBatchResponse): Buffer {
  const sizes = message.records.map(recordSize);
  let total = 0;
  for (const size of sizes) total += 1 + varintSize(size) + size;
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (const [i, r] of message.records.entries()) {
    buf[at++] = 0x0a; // field 1, length-delimited
    at = writeVarint(buf, at, sizes[i] as number);
    at = writeRecord(buf, at, r);
  }
  return buf;
}

/** Reads a varint of at most `maxBytes` bytes at `at`; -1 if longer or truncated. */
function readVarint(buf: Buffer, at: number, end: number, maxBytes: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes && at < end; i++) {
    const byte = buf[at++] as number;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
    scale *= 128;
  }
  return [-1, at];
}

/** One Record in [at, end) of `buf` (a private copy), or undefined if not the plain shape. */
function decodeRecord(buf: Buffer, at: number, end: number): LogRecord | undefined {
  const r: LogRecord = { value: EMPTY, offset: 0n, term: 0n, type: 0 };
  while (at < end) {
    const tag = buf[at++] as number;
    let n: number;
    [n, at] = readVarint(buf, at, end, tag === 0x0a ? 5 : 7); // 7 bytes: < 2^49, exact
    if (n < 0) return undefined;
    if (tag === 0x0a) {
      if (at + n > end) return undefined;
      r.value = buf.subarray(at, at + n);
      at += n;
    } else if (tag === 0x10) r.offset = BigInt(n);
    else if (tag === 0x18) r.term = BigInt(n);
    else if (tag === 0x20 && n <= 0xffff_ffff) r.type = n;
    else return undefined;
  }
  return r;
}

const EMPTY = Buffer.alloc(0);

export function decodeProduceBatchRequest(input: Buffer): ProduceBatchRequest {
  const buf = Buffer.from(input); // values outlive grpc-js's buffer: one copy for all
  const records: LogRecord[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf[at++] !== 0x0a) return ProduceBatchRequest.decode(input);
    let length: number;
    [length, at] = readVarint(buf, at, buf.length, 5);
    if (length < 0 || at + length > buf.length) return ProduceBatchRequest.decode(input);
    const record = decodeRecord(buf, at, at + length);
    if (record === undefined) return ProduceBatchRequest.decode(input);
    records.push(record);
    at += length;
  }
  return { records };
}

/** log.v1.Log with the hand-written codecs; other messages use the generated ones. */
export const FastLogService = {
  ...LogService,
  produce: { ...LogService.produce, responseSerialize: encodeProduceResponse },
  produceStream: { ...LogService.produceStream, responseSerialize: encodeProduceResponse },
  produceBatch: { ...LogService.produceBatch, requestDeserialize: decodeProduceBatchRequest },
  consume: { ...LogService.consume, responseSerialize: encodeConsumeResponse },
  consumeStream: { ...LogService.consumeStream, responseSerialize: encodeConsumeResponse },
  consumeBatchStream: {
    ...LogService.consumeBatchStream,
    responseSerialize: encodeConsumeBatchResponse,
  },
} satisfies typeof LogService;
