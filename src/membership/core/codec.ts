import { MembershipCodecError } from './errors.js';
/**
 * The wire format of gossip. Every UDP packet and every TCP frame starts with the
 * protocol version; a packet carries one or more messages (the first is usually a
 * ping or an ack, the rest piggybacked news). All integers are big-endian; strings are
 * UTF-8 with a u16 length. Anything that does not parse raises MembershipCodecError, which the
 * caller counts and drops.
 */

export const PROTOCOL_VERSION = 1;
/** Longest member name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 128;
/** Longest address (host:port), in UTF-8 bytes. */
export const MAX_ADDRESS_BYTES = 256;
/** Largest encoded tag map of one member (memberlist's MetaMaxSize). */
export const MAX_TAGS_BYTES = 512;

export type Tags = Readonly<Record<string, string>>;

/** Member states, as carried by push-pull. */
export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left';
const STATUS_CODES: readonly MemberStatus[] = ['alive', 'suspect', 'dead', 'left'];

export interface PingMessage {
  type: 'ping';
  seq: number;
  /** Name of the member the ping is meant for; a member ignores pings for someone else. */
  target: string;
  sourceName: string;
  sourceAddress: string;
}
export interface IndirectPingMessage {
  type: 'indirect-ping';
  seq: number;
  target: string;
  targetAddress: string;
  /** Whether the requester wants a nack when the target does not answer. */
  wantNack: boolean;
  sourceName: string;
  sourceAddress: string;
}
export interface AckMessage {
  type: 'ack';
  seq: number;
}
export interface NackMessage {
  type: 'nack';
  seq: number;
}
export interface AliveMessage {
  type: 'alive';
  incarnation: number;
  name: string;
  address: string;
  tags: Tags;
}
export interface SuspectMessage {
  type: 'suspect';
  incarnation: number;
  name: string;
  from: string;
}
/** A dead message whose `from` is the member itself announces a graceful leave. */
export interface DeadMessage {
  type: 'dead';
  incarnation: number;
  name: string;
  from: string;
}

export type PacketMessage =
  | PingMessage
  | IndirectPingMessage
  | AckMessage
  | NackMessage
  | AliveMessage
  | SuspectMessage
  | DeadMessage;

export interface PushPullMember {
  name: string;
  address: string;
  tags: Tags;
  incarnation: number;
  status: MemberStatus;
}
export interface PushPullMessage {
  /** Set by a member that is joining; informational, receivers treat both alike. */
  join: boolean;
  members: PushPullMember[];
}

const TYPE_CODES: Record<PacketMessage['type'], number> = {
  ping: 1,
  'indirect-ping': 2,
  ack: 3,
  nack: 4,
  alive: 5,
  suspect: 6,
  dead: 7,
};
const STREAM_PUSH_PULL = 1;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.length, v);
    this.length += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, v);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  str(s: string, max: number, what: string): void {
    const b = utf8.encode(s);
    if (b.length > max)
      throw new MembershipCodecError(`${what} is ${b.length} bytes, more than ${max}`);
    this.u16(b.length);
    this.bytes(b);
  }
  tags(tags: Tags): void {
    const start = this.length;
    const entries = Object.entries(tags);
    this.u16(entries.length);
    for (const [k, v] of entries) {
      this.str(k, MAX_TAGS_BYTES, 'tag name');
      this.str(v, MAX_TAGS_BYTES, 'tag value');
    }
    if (this.length - start > MAX_TAGS_BYTES) {
      throw new MembershipCodecError(
        `tags take ${this.length - start} bytes, more than ${MAX_TAGS_BYTES}`,
      );
    }
  }
  /** Reserves a u16 and returns a function that fills it with the bytes written since. */
  lengthPrefix(): () => void {
    const at = this.length;
    this.u16(0);
    return () => {
      const n = this.length - at - 2;
      if (n > 0xffff) throw new MembershipCodecError('message too large');
      this.view.setUint16(at, n);
    };
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly end = buf.length,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number): void {
    if (this.pos + n > this.end) throw new MembershipCodecError('truncated message');
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  str(max: number, what: string): string {
    const n = this.u16();
    if (n > max) throw new MembershipCodecError(`${what} is ${n} bytes, more than ${max}`);
    this.need(n);
    const s = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return utf8Decoder.decode(s);
    } catch (err) {
      throw new MembershipCodecError(`${what} is not valid UTF-8`, { cause: err });
    }
  }
  tags(): Tags {
    const start = this.pos;
    const count = this.u16();
    const out: Record<string, string> = Object.create(null) as Record<string, string>;
    for (let i = 0; i < count; i++) {
      const k = this.str(MAX_TAGS_BYTES, 'tag name');
      out[k] = this.str(MAX_TAGS_BYTES, 'tag value');
    }
    if (this.pos - start > MAX_TAGS_BYTES) throw new MembershipCodecError('tags too large');
    return { ...out };
  }
  sub(n: number): Reader {
    this.need(n);
    const r = new Reader(this.buf, this.pos + n);
    r.pos = this.pos;
    this.pos += n;
    return r;
  }
  atEnd(): boolean {
    return this.pos === this.end;
  }
}

function writeMessage(w: Writer, m: PacketMessage): void {
  w.u8(TYPE_CODES[m.type]);
  const close = w.lengthPrefix();
  switch (m.type) {
    case 'ping':
      w.u32(m.seq);
      w.str(m.target, MAX_NAME_BYTES, 'name');
      w.str(m.sourceName, MAX_NAME_BYTES, 'name');
      w.str(m.sourceAddress, MAX_ADDRESS_BYTES, 'address');
      break;
    case 'indirect-ping':
      w.u32(m.seq);
      w.str(m.target, MAX_NAME_BYTES, 'name');
      w.str(m.targetAddress, MAX_ADDRESS_BYTES, 'address');
      w.u8(m.wantNack ? 1 : 0);
      w.str(m.sourceName, MAX_NAME_BYTES, 'name');
      w.str(m.sourceAddress, MAX_ADDRESS_BYTES, 'address');
      break;
    case 'ack':
    case 'nack':
      w.u32(m.seq);
      break;
    case 'alive':
      w.u32(m.incarnation);
      w.str(m.name, MAX_NAME_BYTES, 'name');
      w.str(m.address, MAX_ADDRESS_BYTES, 'address');
      w.tags(m.tags);
      break;
    case 'suspect':
    case 'dead':
      w.u32(m.incarnation);
      w.str(m.name, MAX_NAME_BYTES, 'name');
      w.str(m.from, MAX_NAME_BYTES, 'name');
      break;
    default:
      assertNever(m);
  }
  close();
}

function readMessage(r: Reader): PacketMessage {
  const code = r.u8();
  const body = r.sub(r.u16());
  let m: PacketMessage;
  switch (code) {
    case 1:
      m = {
        type: 'ping',
        seq: body.u32(),
        target: body.str(MAX_NAME_BYTES, 'name'),
        sourceName: body.str(MAX_NAME_BYTES, 'name'),
        sourceAddress: body.str(MAX_ADDRESS_BYTES, 'address'),
      };
      break;
    case 2:
      m = {
        type: 'indirect-ping',
        seq: body.u32(),
        target: body.str(MAX_NAME_BYTES, 'name'),
        targetAddress: body.str(MAX_ADDRESS_BYTES, 'address'),
        wantNack: body.u8() === 1,
        sourceName: body.str(MAX_NAME_BYTES, 'name'),
        sourceAddress: body.str(MAX_ADDRESS_BYTES, 'address'),
      };
      break;
    case 3:
      m = { type: 'ack', seq: body.u32() };
      break;
    case 4:
      m = { type: 'nack', seq: body.u32() };
      break;
    case 5:
      m = {
        type: 'alive',
        incarnation: body.u32(),
        name: body.str(MAX_NAME_BYTES, 'name'),
        address: body.str(MAX_ADDRESS_BYTES, 'address'),
        tags: body.tags(),
      };
      break;
    case 6:
    case 7:
      m = {
        type: code === 6 ? 'suspect' : 'dead',
        incarnation: body.u32(),
        name: body.str(MAX_NAME_BYTES, 'name'),
        from: body.str(MAX_NAME_BYTES, 'name'),
      };
      break;
    default:
      throw new MembershipCodecError(`unknown message type ${code}`);
  }
  if (!body.atEnd()) throw new MembershipCodecError(`trailing bytes in ${m.type} message`);
  return m;
}

/** Encodes one message alone (the unit the broadcast queue keeps). */
export function encodeMessage(m: PacketMessage): Uint8Array {
  const w = new Writer();
  writeMessage(w, m);
  return w.finish();
}

/** Bytes a packet spends besides its messages: version and message count. */
export const PACKET_OVERHEAD = 2;

/** Builds a packet from messages already encoded by encodeMessage. */
export function assemblePacket(encoded: readonly Uint8Array[]): Uint8Array {
  if (encoded.length === 0 || encoded.length > 255) {
    throw new MembershipCodecError(`a packet holds 1 to 255 messages, got ${encoded.length}`);
  }
  const w = new Writer();
  w.u8(PROTOCOL_VERSION);
  w.u8(encoded.length);
  for (const e of encoded) w.bytes(e);
  return w.finish();
}

export function encodePacket(messages: readonly PacketMessage[]): Uint8Array {
  return assemblePacket(messages.map(encodeMessage));
}

export function decodePacket(data: Uint8Array): PacketMessage[] {
  const r = new Reader(data);
  const version = r.u8();
  if (version !== PROTOCOL_VERSION)
    throw new MembershipCodecError(`unsupported protocol version ${version}`);
  const count = r.u8();
  if (count === 0) throw new MembershipCodecError('empty packet');
  const out: PacketMessage[] = [];
  for (let i = 0; i < count; i++) out.push(readMessage(r));
  if (!r.atEnd()) throw new MembershipCodecError('trailing bytes after the last message');
  return out;
}

export function encodePushPull(m: PushPullMessage): Uint8Array {
  const w = new Writer();
  w.u8(PROTOCOL_VERSION);
  w.u8(STREAM_PUSH_PULL);
  w.u8(m.join ? 1 : 0);
  w.u32(m.members.length);
  for (const member of m.members) {
    w.str(member.name, MAX_NAME_BYTES, 'name');
    w.str(member.address, MAX_ADDRESS_BYTES, 'address');
    w.u32(member.incarnation);
    w.u8(STATUS_CODES.indexOf(member.status));
    w.tags(member.tags);
  }
  return w.finish();
}

export function decodePushPull(data: Uint8Array, maxBytes: number): PushPullMessage {
  if (data.length > maxBytes) {
    throw new MembershipCodecError(`state exchange of ${data.length} bytes exceeds ${maxBytes}`);
  }
  const r = new Reader(data);
  const version = r.u8();
  if (version !== PROTOCOL_VERSION)
    throw new MembershipCodecError(`unsupported protocol version ${version}`);
  const kind = r.u8();
  if (kind !== STREAM_PUSH_PULL) throw new MembershipCodecError(`unknown stream message ${kind}`);
  const join = r.u8() === 1;
  const count = r.u32();
  // Each member takes at least 11 bytes, so a huge count in a short frame is a lie.
  if (count * 11 > data.length)
    throw new MembershipCodecError(`member count ${count} exceeds the frame`);
  const members: PushPullMember[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.str(MAX_NAME_BYTES, 'name');
    const address = r.str(MAX_ADDRESS_BYTES, 'address');
    const incarnation = r.u32();
    const status = STATUS_CODES[r.u8()];
    if (status === undefined) throw new MembershipCodecError('unknown member status');
    members.push({ name, address, incarnation, status, tags: r.tags() });
  }
  if (!r.atEnd()) throw new MembershipCodecError('trailing bytes after the member list');
  return { join, members };
}

function assertNever(x: never): never {
  throw new MembershipCodecError(`unexpected message ${JSON.stringify(x)}`);
}
