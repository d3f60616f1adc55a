// The web console's pure formatting code (value decoding, numbers, paging), in Node.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  decodeValue,
  formatRate,
  formatSeconds,
  fromBase64,
  hexDump,
  pageOffsets,
  parseOffsetInput,
  previousPage,
  toBase64,
} from '../src/console/index.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

describe('console: value decoding', () => {
  it('pretty-prints JSON objects and arrays', () => {
    assert.deepEqual(decodeValue(utf8(' {"a":1,"b":[true,null]} ')), {
      kind: 'json',
      text: '{\n  "a": 1,\n  "b": [\n    true,\n    null\n  ]\n}',
    });
    assert.equal(decodeValue(utf8('[1]')).kind, 'json');
  });

  it('shows other UTF-8 as text, as it is (markup included)', () => {
    const text = 'héllo <script>alert(1)</script>\n\ttabbed';
    assert.deepEqual(decodeValue(utf8(text)), { kind: 'text', text });
    // Looks like JSON, is not: text.
    assert.deepEqual(decodeValue(utf8('{not json')), { kind: 'text', text: '{not json' });
    // A bare number is valid JSON but reads best as the text it is.
    assert.deepEqual(decodeValue(utf8('42')), { kind: 'text', text: '42' });
  });

  it('falls back to hex for invalid UTF-8 and control characters', () => {
    assert.equal(decodeValue(new Uint8Array([0xc3, 0x28])).kind, 'hex');
    assert.equal(decodeValue(utf8('a\u0000b')).kind, 'hex');
    assert.equal(decodeValue(utf8('bell\u0007')).kind, 'hex');
    assert.equal(decodeValue(new Uint8Array([])).kind, 'text');
  });

  it('dumps hex with offsets and ASCII, cutting long values', () => {
    const bytes = new Uint8Array(20).map((_, i) => i + 0x41);
    assert.equal(
      hexDump(bytes),
      '00000000  41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP\n' +
        '00000010  51 52 53 54                                      QRST',
    );
    assert.equal(
      hexDump(new Uint8Array([0, 0x7f, 0xff])),
      '00000000  00 7f ff' + ' '.repeat(39) + '  ...',
    );
    const long = hexDump(new Uint8Array(100), 32).split('\n');
    assert.equal(long.length, 3);
    assert.equal(long[2], '… 68 more bytes');
  });

  it('round-trips base64, URL-safe input included', () => {
    const bytes = new Uint8Array(70_000).map((_, i) => (i * 7) % 256);
    assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
    assert.deepEqual(fromBase64('-_8='), new Uint8Array([0xfb, 0xff]));
    assert.equal(toBase64(utf8('<b>')), Buffer.from('<b>').toString('base64'));
  });
});

describe('console: numbers', () => {
  it('formats rates', () => {
    assert.equal(formatRate(0), '0');
    assert.equal(formatRate(-1), '0');
    assert.equal(formatRate(Number.NaN), '0');
    assert.equal(formatRate(3), '3');
    assert.equal(formatRate(3.46), '3.5');
    assert.equal(formatRate(120.4), '120');
    assert.equal(formatRate(12_345), '12.3k');
    assert.equal(formatRate(4_560_000), '4.56M');
  });

  it('formats durations in seconds', () => {
    assert.equal(formatSeconds(null), '–');
    assert.equal(formatSeconds(0), '0');
    assert.equal(formatSeconds(0.00085), '850 µs');
    assert.equal(formatSeconds(0.0125), '12.5 ms');
    assert.equal(formatSeconds(1.2), '1.20 s');
  });
});

describe('console: paging', () => {
  it('pages within the log, both ways', () => {
    assert.deepEqual(pageOffsets(5n, 3, 0n, 100n), [5n, 6n, 7n]);
    assert.deepEqual(pageOffsets(98n, 5, 0n, 100n), [98n, 99n]);
    assert.deepEqual(pageOffsets(2n, 3, 10n, 100n), [10n, 11n, 12n]);
    assert.deepEqual(pageOffsets(100n, 3, 0n, 100n), []);
    assert.equal(previousPage(50n, 20, 0n), 30n);
    assert.equal(previousPage(15n, 20, 10n), 10n);
  });

  it('parses offsets typed by a person, past 2^53 too', () => {
    assert.equal(parseOffsetInput(' 42 '), 42n);
    assert.equal(parseOffsetInput('18446744073709551615'), 18446744073709551615n);
    assert.equal(parseOffsetInput('-1'), undefined);
    assert.equal(parseOffsetInput('1e3'), undefined);
    assert.equal(parseOffsetInput(''), undefined);
  });
});
