import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';

import {
  decodeEntry,
  decodeHeader,
  encodeEntry,
  encodeProposal,
  entryValue,
} from './entry-codec.js';
import { EntryCodecError } from './errors.js';

// That a stock protobuf decoder reads the stored bytes as a Record is checked end to
// end (test/cluster*.test.ts), where the generated API code may be imported.
test('entries round-trip', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.constantFrom('normal', 'noop', 'config' as const),
      (value, term, type) => {
        const data = type === 'normal' ? encodeProposal(value) : value;
        const stored = encodeEntry({ index: 7, term, type, data });
        const back = decodeEntry(stored, 7);
        assert.equal(back.term, term);
        assert.equal(back.type, type);
        assert.deepEqual(Buffer.from(back.data), Buffer.from(data));
        if (type === 'normal') {
          const h = decodeHeader(stored, 7);
          assert.deepEqual(entryValue(stored, h.bodyStart, 7), Buffer.from(value));
        }
      },
    ),
  );
});

test('damaged entries are refused with the index named', () => {
  assert.throws(() => decodeEntry(Buffer.from([0x0a, 0x00]), 9), EntryCodecError);
  assert.throws(
    () => decodeEntry(Buffer.from([0x18, 0x01, 0x20, 0x07]), 9),
    /raft entry 9: unknown entry type 7/,
  );
  assert.throws(() => decodeEntry(Buffer.from([0x18, 0x81]), 9), /truncated varint/);
  assert.throws(
    () => decodeEntry(Buffer.from([0x18, 0x01, 0x20, 0x02, 0x0a, 0x05, 0x01]), 9),
    /config entry body of the wrong length/,
  );
});
