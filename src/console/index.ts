// The web console's pure parts (value decoding, number formatting, paging), which the
// Node tests import; the browser entry is main.ts, bundled by scripts/build-console.mjs.
export {
  decodeValue,
  formatRate,
  formatSeconds,
  fromBase64,
  hexDump,
  pageOffsets,
  parseOffsetInput,
  previousPage,
  toBase64,
  type DecodedValue,
} from './format.js';
