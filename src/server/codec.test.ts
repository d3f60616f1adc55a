import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import {
  ConsumeBatchResponse,
  ConsumeResponse,
  type LogRecord,
  ProduceBatchRequest,
  ProduceResponse,
} from '../api/index.js';
import {
  decodeProduceBatchRequest,
  encodeConsumeBatchResponse,
  encodeConsumeResponse,
  encodeProduceResponse,
} from './codec.js';

const generated = (bytes: Uint8Array): Buffer => Buffer.from(bytes);

const EDGES = [0n, 1n, 127n, 128n, 16_383n, 16_384n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n];

const uint64 = fc.oneof(fc.constantFrom(...EDGES), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
const record: fc.Arbitrary<LogRecord> = fc.record({
  value: fc
    .oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.constant(new Uint8Array(0)),
      fc.integer({ min: 16_000, max: 20_000 }).map((n) => new Uint8Array(n).fill(7)),
    )
    .map((a) => Buffer.from(a)),
  offset: uint64,
  term: uint64,
  type: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
});

describe('response codec: same bytes as the generated encoders', () => {
  it('ProduceResponse', () => {
    fc.assert(
      fc.property(uint64, (offset) => {
        assert.deepEqual(
          encodeProduceResponse({ offset }),
          generated(ProduceResponse.encode({ offset }).finish()),
        );
      }),
      { seed: 8, numRuns: 500 },
    );
  });

  it('ConsumeResponse', () => {
    fc.assert(
      fc.property(fc.option(record, { nil: undefined }), (r) => {
        assert.deepEqual(
          encodeConsumeResponse({ record: r }),
          generated(ConsumeResponse.encode({ record: r }).finish()),
        );
      }),
      { seed: 8, numRuns: 500 },
    );
  });

  it('ConsumeBatchResponse', () => {
    fc.assert(
      fc.property(fc.array(record, { maxLength: 40 }), (records) => {
        const ours = encodeConsumeBatchResponse({ records });
        assert.deepEqual(ours, generated(ConsumeBatchResponse.encode({ records }).finish()));
        assert.deepEqual(ConsumeBatchResponse.decode(ours).records.length, records.length);
      }),
      { seed: 8, numRuns: 200 },
    );
  });

  it('refuses offsets that do not fit uint64, as the generated encoder does', () => {
    assert.throws(() => encodeProduceResponse({ offset: 2n ** 64n }), /too large/);
    assert.throws(() => encodeProduceResponse({ offset: -1n }), /too large/);
  });
});

/** The generated decoder's outcome: the message, or the error's class. */
function outcome(decode: (b: Buffer) => ProduceBatchRequest, bytes: Buffer): unknown {
  try {
    return decode(bytes);
  } catch (err) {
    return { threw: err instanceof Error ? err.constructor.name : typeof err };
  }
}

describe('request codec: ProduceBatchRequest decodes as the generated decoder does', () => {
  it('for every encoded batch', () => {
    fc.assert(
      fc.property(fc.array(record, { maxLength: 40 }), (records) => {
        const bytes = Buffer.from(ProduceBatchRequest.encode({ records }).finish());
        assert.deepEqual(decodeProduceBatchRequest(bytes), ProduceBatchRequest.decode(bytes));
      }),
      { seed: 8, numRuns: 300 },
    );
  });

  it('for damaged and arbitrary bytes (same result or the same failure)', () => {
    const damaged = fc
      .tuple(fc.array(record, { minLength: 1, maxLength: 5 }), fc.nat(), fc.nat({ max: 255 }))
      .map(([records, at, byte]) => {
        const bytes = Buffer.from(ProduceBatchRequest.encode({ records }).finish());
        bytes[at % bytes.length] = byte;
        return bytes;
      });
    const arbitrary = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(fc.oneof(damaged, arbitrary), (bytes) => {
        assert.deepEqual(
          outcome(decodeProduceBatchRequest, bytes),
          outcome((b) => ProduceBatchRequest.decode(b), bytes),
        );
      }),
      { seed: 8, numRuns: 2000 },
    );
  });

  it('gives values that do not share memory with the received buffer', () => {
    const bytes = Buffer.from(
      ProduceBatchRequest.encode({
        records: [{ value: Buffer.from('abc'), offset: 0n, term: 0n, type: 0 }],
      }).finish(),
    );
    const decoded = decodeProduceBatchRequest(bytes);
    bytes.fill(0);
    assert.equal(decoded.records[0]?.value.toString(), 'abc');
  });
});

describe('records sent from their stored bytes (wire)', () => {
  /** The stored form: the Record without its offset field, as the generated encoder writes it. */
  const stored = (r: LogRecord): Buffer =>
    Buffer.from(ConsumeResponse.encode({ record: { ...r, offset: 0n } }).finish()).subarray(
      // ConsumeResponse is tag 0x12 + length + Record: skip to the Record's bytes.
      2,
    );

  it('decode to the same record as a full encoding, offset appended at send time', () => {
    fc.assert(
      fc.property(record, (r) => {
        const inner = Buffer.from(
          ConsumeResponse.encode({ record: { ...r, offset: 0n } }).finish(),
        );
        // Skip the outer tag and its varint length to reach the Record bytes.
        let at = 1;
        while ((inner[at] as number) >= 0x80) at++;
        const wire = inner.subarray(at + 1);
        const sent = encodeConsumeResponse({ record: { ...r, wire } as LogRecord });
        const decoded = ConsumeResponse.decode(sent).record;
        assert.deepEqual(decoded, {
          ...r,
          value: Buffer.from(r.value),
        });
        const batch = encodeConsumeBatchResponse({ records: [{ ...r, wire } as LogRecord] });
        assert.deepEqual(ConsumeBatchResponse.decode(batch).records, [
          { ...r, value: Buffer.from(r.value) },
        ]);
      }),
    );
  });

  it('copies the stored bytes verbatim and appends 0x10 varint(offset)', () => {
    const r: LogRecord = { value: Buffer.from('hi'), offset: 300n, term: 7n, type: 0 };
    const wire = stored(r);
    const sent = encodeConsumeResponse({ record: { ...r, wire } as LogRecord });
    // 0x12 len | stored bytes | 0x10 0xac 0x02 (300)
    assert.deepEqual(sent.subarray(2, 2 + wire.length), wire);
    assert.deepEqual([...sent.subarray(2 + wire.length)], [0x10, 0xac, 0x02]);
    assert.equal(sent[1], wire.length + 3);
  });
});
