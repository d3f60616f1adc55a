// How a Raft entry is stored as one record of the storage engine (offset = Raft index).
//
// The stored bytes are a valid protobuf `log.v1.Record` without its offset field:
//   0x18 varint(term)  0x20 varint(type)  body
// where body is the proposal itself for a data entry (an encoded Record carrying the
// value and any later additive fields), and `0x0a len data` for the leader's no-op and
// configuration entries. Term and type come first so they can be read without parsing
// the body; a consumer gets these bytes as they are on disk, and the server appends
// `0x10 varint(offset)` when sending (protobuf keeps the last value of a scalar field,
// and the stored bytes have none).
import type { Entry, EntryType } from '../raft/index.js';

import { EntryCodecError } from './errors.js';

/** `Record.type` on the wire. Consumers only ever see DATA. */
export const RECORD_TYPE = { normal: 0, noop: 1, config: 2 } as const satisfies Record<
  EntryType,
  number
>;
const TYPE_BY_CODE: readonly EntryType[] = ['normal', 'noop', 'config'];

const TAG_VALUE = 0x0a; // field 1, length-delimited
const TAG_TERM = 0x18; // field 3, varint
const TAG_TYPE = 0x20; // field 4, varint

/** A data entry's proposal: a Record holding just the value (field 1). */
export function encodeProposal(value: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(1 + varintSize(value.byteLength) + value.byteLength);
  let p = 0;
  out[p++] = TAG_VALUE;
  p = writeVarint(out, p, value.byteLength);
  out.set(value, p);
  return out;
}

export function encodeEntry(e: Entry): Uint8Array {
  const type = RECORD_TYPE[e.type];
  const bodyLen =
    e.type === 'normal' ? e.data.byteLength : 1 + varintSize(e.data.byteLength) + e.data.byteLength;
  const out = Buffer.allocUnsafe(2 + varintSize(e.term) + varintSize(type) + bodyLen);
  let p = 0;
  out[p++] = TAG_TERM;
  p = writeVarint(out, p, e.term);
  out[p++] = TAG_TYPE;
  p = writeVarint(out, p, type);
  if (e.type !== 'normal') {
    out[p++] = TAG_VALUE;
    p = writeVarint(out, p, e.data.byteLength);
  }
  out.set(e.data, p);
  return out;
}

/** What the header says, and where the body starts. */
export interface EntryHeader {
  readonly term: number;
  readonly type: EntryType;
  readonly bodyStart: number;
}

export function decodeHeader(stored: Uint8Array, index: number): EntryHeader {
  let p = 0;
  if (stored[p++] !== TAG_TERM) throw new EntryCodecError(index, 'no term field first');
  const term = readVarint(stored, p, index);
  p = term.next;
  if (stored[p++] !== TAG_TYPE) throw new EntryCodecError(index, 'no type field second');
  const code = readVarint(stored, p, index);
  const type = TYPE_BY_CODE[code.value];
  if (type === undefined) throw new EntryCodecError(index, `unknown entry type ${code.value}`);
  return { term: term.value, type, bodyStart: code.next };
}

export function decodeEntry(stored: Uint8Array, index: number): Entry {
  const h = decodeHeader(stored, index);
  let data = stored.subarray(h.bodyStart);
  if (h.type !== 'normal') {
    if (data[0] !== TAG_VALUE) throw new EntryCodecError(index, `${h.type} entry without a body`);
    const len = readVarint(data, 1, index);
    if (len.next + len.value !== data.byteLength)
      throw new EntryCodecError(index, `${h.type} entry body of the wrong length`);
    data = data.subarray(len.next);
  }
  return { index, term: h.term, type: h.type, data };
}

/** The value of a data entry (field 1 of its body; empty when absent). */
export function entryValue(stored: Uint8Array, bodyStart: number, index: number): Buffer {
  let p = bodyStart;
  let value: Buffer = Buffer.alloc(0);
  const buf = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  while (p < buf.byteLength) {
    const key = readVarint(buf, p, index);
    p = key.next;
    const wire = key.value & 7;
    if (wire === 0) p = readVarint(buf, p, index).next;
    else if (wire === 2) {
      const len = readVarint(buf, p, index);
      const end = len.next + len.value;
      if (end > buf.byteLength) throw new EntryCodecError(index, 'field runs past the record');
      if (key.value >>> 3 === 1) value = buf.subarray(len.next, end);
      p = end;
    } else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else throw new EntryCodecError(index, `wire type ${wire} in a record`);
  }
  if (p !== buf.byteLength) throw new EntryCodecError(index, 'truncated field');
  return value;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Uint8Array, p: number, n: number): number {
  while (n >= 0x80) {
    out[p++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[p++] = n;
  return p;
}

function readVarint(buf: Uint8Array, p: number, index: number): { value: number; next: number } {
  let value = 0;
  let scale = 1;
  for (let k = 0; k < 8; k++) {
    const b = buf[p++];
    if (b === undefined) throw new EntryCodecError(index, 'truncated varint');
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (!Number.isSafeInteger(value)) throw new EntryCodecError(index, 'varint too large');
      return { value, next: p };
    }
    scale *= 128;
  }
  throw new EntryCodecError(index, 'varint too long');
}
