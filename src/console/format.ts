// Pure helpers of the web console: how a record's bytes are shown, how numbers read.
// No DOM here, so Node's tests run them as they are.

/** How a value is shown: pretty JSON, UTF-8 text, or a hex dump. */
export interface DecodedValue {
  kind: 'json' | 'text' | 'hex';
  text: string;
}

const HEX_PREVIEW_BYTES = 4096;

/** Bytes from standard or URL-safe base64 (as the HTTP API sends values). */
export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Standard base64 of some bytes. */
export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** Text is valid UTF-8 without control characters other than tab, newline and CR. */
function printable(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text);
}

/** Offset, hex bytes and ASCII, 16 bytes a line (`xxd`-like); long values are cut. */
export function hexDump(bytes: Uint8Array, limit = HEX_PREVIEW_BYTES): string {
  const lines: string[] = [];
  const end = Math.min(bytes.length, limit);
  for (let at = 0; at < end; at += 16) {
    const row = bytes.subarray(at, Math.min(at + 16, end));
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.'));
    lines.push(`${at.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii.join('')}`);
  }
  if (bytes.length > end) lines.push(`… ${bytes.length - end} more bytes`);
  return lines.join('\n');
}

/** JSON pretty-printed when the value parses as an object or array, else text, else hex. */
export function decodeValue(bytes: Uint8Array): DecodedValue {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { kind: 'hex', text: hexDump(bytes) };
  }
  if (!printable(text)) return { kind: 'hex', text: hexDump(bytes) };
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { kind: 'json', text: JSON.stringify(JSON.parse(trimmed), null, 2) };
    } catch {
      // Not JSON after all: shown as the text it is.
    }
  }
  return { kind: 'text', text };
}

/** Records (or anything) per second, short: 0, 3.5, 120, 12.3k, 4.56M. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return '0';
  if (perSecond < 10) return perSecond.toFixed(1).replace(/\.0$/, '');
  if (perSecond < 1000) return Math.round(perSecond).toString();
  if (perSecond < 1e6) return `${(perSecond / 1e3).toPrecision(3)}k`;
  return `${(perSecond / 1e6).toPrecision(3)}M`;
}

/** A duration given in seconds, in the unit that reads best: 850 µs, 12.5 ms, 1.20 s. */
export function formatSeconds(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '–';
  if (seconds <= 0) return '0';
  if (seconds < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  if (seconds < 1) return `${(seconds * 1e3).toPrecision(3)} ms`;
  return `${seconds.toPrecision(3)} s`;
}

/** The offsets of one page of the record browser: `size` offsets from `from`, within [start, end). */
export function pageOffsets(from: bigint, size: number, start: bigint, end: bigint): bigint[] {
  const out: bigint[] = [];
  for (let o = from < start ? start : from; o < end && out.length < size; o++) out.push(o);
  return out;
}

/** Where the previous page starts: `size` before `from`, not before `start`. */
export function previousPage(from: bigint, size: number, start: bigint): bigint {
  const back = from - BigInt(size);
  return back < start ? start : back;
}

/** Parses an offset typed by a person; undefined when it is not an unsigned integer. */
export function parseOffsetInput(text: string): bigint | undefined {
  const t = text.trim();
  return /^[0-9]{1,20}$/.test(t) ? BigInt(t) : undefined;
}
