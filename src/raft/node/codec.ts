// Compact, versioned binary encoding of Raft messages. Layout: a version byte, a type
// byte, then the fields in a fixed order per type. Integers are unsigned LEB128
// varints bounded by 2^53 - 1; strings and byte arrays are length-prefixed.
import { checkIds } from '../core/conf.js';
import type { ConfState, Entry, EntryType, SnapshotMeta } from '../core/index.js';
import type { WireMessage } from './messages.js';

export const CODEC_VERSION = 1;

export class RaftCodecError extends Error {
  override name = 'RaftCodecError';
}

const TYPES = [
  'vote',
  'voteResp',
  'append',
  'appendResp',
  'heartbeat',
  'heartbeatResp',
  'timeoutNow',
  'snapshotChunk',
  'snapshotAck',
] as const;
const TYPE_CODE = new Map<string, number>(TYPES.map((t, k) => [t, k]));
const ENTRY_TYPES: readonly EntryType[] = ['normal', 'noop', 'config'];
const ENTRY_CODE: Record<EntryType, number> = { normal: 0, noop: 1, config: 2 };
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

class Writer {
  buf: Uint8Array;
  pos = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  uint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0)
      throw new RaftCodecError(`not an unsigned safe integer: ${n}`);
    this.room(8);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  bytes(b: Uint8Array): void {
    this.uint(b.byteLength);
    this.room(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  str(s: string): void {
    this.bytes(utf8.encode(s));
  }
}

class Reader {
  pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw new RaftCodecError('message truncated');
    return this.buf[this.pos++]!;
  }

  uint(): number {
    let n = 0;
    let scale = 1;
    for (let k = 0; ; k++) {
      if (k >= 8) throw new RaftCodecError('varint too long');
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) break;
      scale *= 0x80;
    }
    if (!Number.isSafeInteger(n)) throw new RaftCodecError('integer beyond 2^53 - 1');
    return n;
  }

  bool(): boolean {
    const b = this.byte();
    if (b > 1) throw new RaftCodecError(`bad boolean ${b}`);
    return b === 1;
  }

  bytes(): Uint8Array {
    const n = this.uint();
    if (this.pos + n > this.buf.length) throw new RaftCodecError('message truncated');
    // A copy: the caller may reuse its receive buffer.
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  str(): string {
    try {
      return fromUtf8.decode(this.bytes());
    } catch (err) {
      if (err instanceof RaftCodecError) throw err;
      throw new RaftCodecError('string is not UTF-8', { cause: err });
    }
  }

  end(): void {
    if (this.pos !== this.buf.length)
      throw new RaftCodecError(`${this.buf.length - this.pos} trailing bytes`);
  }
}

export function encodeMessage(m: WireMessage): Uint8Array {
  let size = 64;
  if (m.type === 'append') for (const e of m.entries) size += e.data.byteLength + 24;
  else if (m.type === 'snapshotChunk') size += m.data.byteLength + 256;
  const w = new Writer(size);
  w.byte(CODEC_VERSION);
  w.byte(TYPE_CODE.get(m.type)!);
  if (m.from === '' || m.to === '') throw new RaftCodecError('empty node id');
  w.str(m.from);
  w.str(m.to);
  w.uint(m.term);
  switch (m.type) {
    case 'vote':
      w.byte(m.pre ? 1 : 0);
      w.uint(m.lastIndex);
      w.uint(m.lastTerm);
      w.byte(m.force ? 1 : 0);
      break;
    case 'voteResp':
      w.byte(m.pre ? 1 : 0);
      w.byte(m.reject ? 1 : 0);
      break;
    case 'append':
      w.uint(m.prevIndex);
      w.uint(m.prevTerm);
      w.uint(m.commit);
      w.uint(m.entries.length);
      for (const e of m.entries) writeEntry(w, e);
      break;
    case 'appendResp':
      w.uint(m.index);
      w.byte(m.reject ? 1 : 0);
      w.uint(m.hintIndex);
      w.uint(m.hintTerm);
      break;
    case 'heartbeat':
      w.uint(m.commit);
      w.uint(m.context);
      break;
    case 'heartbeatResp':
      w.uint(m.context);
      break;
    case 'timeoutNow':
      break;
    case 'snapshotChunk':
      writeMeta(w, m.meta);
      w.uint(m.offset);
      w.bytes(m.data);
      w.byte(m.done ? 1 : 0);
      break;
    case 'snapshotAck':
      w.uint(m.lastIndex);
      w.uint(m.offset);
      w.byte(m.done ? 1 : 0);
      break;
  }
  return w.buf.subarray(0, w.pos);
}

export function decodeMessage(buf: Uint8Array): WireMessage {
  const r = new Reader(buf);
  const version = r.byte();
  if (version !== CODEC_VERSION) throw new RaftCodecError(`unknown message version ${version}`);
  const code = r.byte();
  const type = TYPES[code];
  if (type === undefined) throw new RaftCodecError(`unknown message type ${code}`);
  const from = r.str();
  const to = r.str();
  // Node ids are never empty: an empty one is a forged or corrupt message.
  if (from === '' || to === '') throw new RaftCodecError('empty node id');
  const term = r.uint();
  let m: WireMessage;
  switch (type) {
    case 'vote':
      m = {
        type,
        from,
        to,
        term,
        pre: r.bool(),
        lastIndex: r.uint(),
        lastTerm: r.uint(),
        force: r.bool(),
      };
      break;
    case 'voteResp':
      m = { type, from, to, term, pre: r.bool(), reject: r.bool() };
      break;
    case 'append': {
      const prevIndex = r.uint();
      const prevTerm = r.uint();
      const commit = r.uint();
      const n = r.uint();
      const entries: Entry[] = [];
      for (let k = 0; k < n; k++) entries.push(readEntry(r));
      m = { type, from, to, term, prevIndex, prevTerm, commit, entries };
      break;
    }
    case 'appendResp':
      m = {
        type,
        from,
        to,
        term,
        index: r.uint(),
        reject: r.bool(),
        hintIndex: r.uint(),
        hintTerm: r.uint(),
      };
      break;
    case 'heartbeat':
      m = { type, from, to, term, commit: r.uint(), context: r.uint() };
      break;
    case 'heartbeatResp':
      m = { type, from, to, term, context: r.uint() };
      break;
    case 'timeoutNow':
      m = { type, from, to, term };
      break;
    case 'snapshotChunk':
      m = {
        type,
        from,
        to,
        term,
        meta: readMeta(r),
        offset: r.uint(),
        data: r.bytes(),
        done: r.bool(),
      };
      break;
    case 'snapshotAck':
      m = { type, from, to, term, lastIndex: r.uint(), offset: r.uint(), done: r.bool() };
      break;
  }
  r.end();
  return m;
}

function writeEntry(w: Writer, e: Entry): void {
  w.uint(e.index);
  w.uint(e.term);
  w.byte(ENTRY_CODE[e.type]);
  w.bytes(e.data);
}

function readEntry(r: Reader): Entry {
  const index = r.uint();
  const term = r.uint();
  const code = r.byte();
  const type = ENTRY_TYPES[code];
  if (type === undefined) throw new RaftCodecError(`unknown entry type ${code}`);
  return { index, term, type, data: r.bytes() };
}

function writeMeta(w: Writer, meta: SnapshotMeta): void {
  w.uint(meta.lastIndex);
  w.uint(meta.lastTerm);
  const c = meta.config;
  w.uint(c.voters.length);
  for (const v of c.voters) w.str(v);
  w.uint(c.learners.length);
  for (const v of c.learners) w.str(v);
  const addrs = Object.entries(c.addresses);
  w.uint(addrs.length);
  for (const [id, addr] of addrs) {
    w.str(id);
    w.str(addr);
  }
}

function readMeta(r: Reader): SnapshotMeta {
  const lastIndex = r.uint();
  const lastTerm = r.uint();
  const voters: string[] = [];
  for (let n = r.uint(); n > 0; n--) voters.push(r.str());
  const learners: string[] = [];
  for (let n = r.uint(); n > 0; n--) learners.push(r.str());
  const pairs: [string, string][] = [];
  for (let n = r.uint(); n > 0; n--) pairs.push([r.str(), r.str()]);
  const addresses: Record<string, string> = {};
  for (const [id, addr] of pairs) {
    if (id === '__proto__') throw new RaftCodecError('reserved node id __proto__');
    if (Object.hasOwn(addresses, id)) throw new RaftCodecError(`address of ${id} given twice`);
    addresses[id] = addr;
  }
  const config: ConfState = { voters, learners, addresses };
  checkIds(config, (msg) => new RaftCodecError(`snapshot configuration: ${msg}`));
  return { lastIndex, lastTerm, config };
}
