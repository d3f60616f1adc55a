import assert from 'node:assert/strict';
import { it } from 'node:test';
import { crc32 as nativeCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { crc32 } from './crc.js';

it('matches zlib.crc32 on every range, short and long', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(), fc.nat(), (bytes, a, b) => {
      const buf = Buffer.from(bytes);
      const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
      const end = start + (b % (bytes.length - start + 1));
      assert.equal(crc32(buf, start, end), nativeCrc32(buf.subarray(start, end)));
    }),
    { numRuns: 500 },
  );
  assert.equal(crc32(Buffer.from('123456789'), 0, 9), 0xcbf43926); // the standard check value
});
