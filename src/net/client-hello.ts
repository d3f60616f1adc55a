// A pure, allocation-light reader of a TLS ClientHello: just enough to route a
// connection by ALPN (and report SNI) before anyone terminates the TLS. It runs on
// bytes from strangers, so it never throws, never loops beyond the input, and gives
// up on anything larger than MAX_HELLO_BYTES.

/** What a ClientHello tells the port multiplexer. */
export interface ClientHelloInfo {
  /** ALPN protocol names in the client's order; empty when the extension is absent. */
  readonly alpn: string[];
  /** server_name (host_name type), when present. */
  readonly sni?: string;
}

export type ClientHelloResult = ClientHelloInfo | 'incomplete' | 'not-tls';

/** A ClientHello larger than this is refused: real ones are under 2 KiB (4 with PQ keys). */
export const MAX_HELLO_BYTES = 16 * 1024;

const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
// TLS record payloads are at most 2^14 bytes (RFC 8446 §5.1).
const MAX_RECORD = 1 << 14;

// Thrown inside parseHello only and caught by readClientHello; never seen outside. One
// shared instance: strangers' garbage should not cost a stack trace each.
class MalformedHelloError extends Error {
  override readonly name = 'MalformedHelloError';
}
const MALFORMED = new MalformedHelloError('malformed ClientHello');

/**
 * Reads a ClientHello from the first bytes of a connection. 'incomplete': every byte so
 * far fits a ClientHello; read more. 'not-tls': it is not one (or is malformed or too
 * large). The hello may span several handshake records; each is reassembled.
 */
export function readClientHello(buf: Uint8Array): ClientHelloResult {
  if (buf.length === 0) return 'incomplete';
  if (buf[0] !== CONTENT_HANDSHAKE) return 'not-tls';
  // Reassemble the handshake message from consecutive handshake records. Each pass
  // consumes a record header of 5 bytes or returns, so the loop is bounded by the input.
  let pos = 0;
  let need = -1; // total bytes of the handshake message (4-byte header + body)
  const parts: Uint8Array[] = [];
  let have = 0;
  for (;;) {
    if (pos >= buf.length) return 'incomplete';
    if (buf[pos] !== CONTENT_HANDSHAKE) return 'not-tls';
    if (pos + 1 < buf.length && buf[pos + 1] !== 0x03) return 'not-tls';
    if (pos + 5 > buf.length) return 'incomplete';
    const len = (buf[pos + 3]! << 8) | buf[pos + 4]!;
    if (len === 0 || len > MAX_RECORD) return 'not-tls';
    const end = Math.min(pos + 5 + len, buf.length);
    parts.push(buf.subarray(pos + 5, end));
    have += end - (pos + 5);
    if (have >= 1 && parts[0]![0] !== HANDSHAKE_CLIENT_HELLO) return 'not-tls';
    if (need < 0 && have >= 4) {
      const head = concat(parts, 4);
      need = ((head[1]! << 16) | (head[2]! << 8) | head[3]!) + 4;
      if (need > MAX_HELLO_BYTES) return 'not-tls';
    }
    if (need >= 0 && have >= need) break;
    if (end < pos + 5 + len) return 'incomplete';
    pos = end;
  }
  const hello = parts.length === 1 ? parts[0]! : concat(parts, need);
  try {
    return parseHello(hello.subarray(4, need));
  } catch {
    // Only MALFORMED is thrown inside parseHello; anything else would be a bug in it,
    // and a stranger's bytes must still not crash the listener.
    return 'not-tls';
  }
}

/** The first `total` bytes of `parts`, joined. */
function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    if (at >= total) break;
    const n = Math.min(p.length, total - at);
    out.set(p.subarray(0, n), at);
    at += n;
  }
  return out;
}

function parseHello(b: Uint8Array): ClientHelloInfo {
  let p = 0;
  const u8 = (): number => {
    if (p + 1 > b.length) throw MALFORMED;
    return b[p++]!;
  };
  const u16 = (): number => {
    if (p + 2 > b.length) throw MALFORMED;
    const v = (b[p]! << 8) | b[p + 1]!;
    p += 2;
    return v;
  };
  const skip = (n: number): void => {
    if (p + n > b.length) throw MALFORMED;
    p += n;
  };
  if (u8() !== 0x03) throw MALFORMED; // legacy_version 3.x
  u8();
  skip(32); // random
  const sessionLen = u8();
  if (sessionLen > 32) throw MALFORMED;
  skip(sessionLen);
  const suitesLen = u16();
  if (suitesLen < 2 || suitesLen % 2 !== 0) throw MALFORMED;
  skip(suitesLen);
  const compressionLen = u8();
  if (compressionLen < 1) throw MALFORMED;
  skip(compressionLen);
  const alpn: string[] = [];
  let sni: string | undefined;
  if (p === b.length) return { alpn }; // no extensions at all (old clients)
  const extLen = u16();
  const extEnd = p + extLen;
  if (extEnd !== b.length) throw MALFORMED;
  const seen = new Set<number>();
  while (p < extEnd) {
    const type = u16();
    const len = u16();
    const end = p + len;
    if (end > extEnd) throw MALFORMED;
    if (seen.has(type)) throw MALFORMED; // RFC 8446 §4.2: no duplicates
    seen.add(type);
    if (type === EXT_ALPN) {
      const listLen = u16();
      const listEnd = p + listLen;
      if (listEnd !== end || listLen === 0) throw MALFORMED;
      while (p < listEnd) {
        const n = u8();
        if (n === 0 || p + n > listEnd) throw MALFORMED;
        alpn.push(latin1(b, p, n));
        p += n;
      }
    } else if (type === EXT_SERVER_NAME && len > 0) {
      const listLen = u16();
      const listEnd = p + listLen;
      if (listEnd !== end) throw MALFORMED;
      while (p < listEnd) {
        const nameType = u8();
        const n = u16();
        if (p + n > listEnd) throw MALFORMED;
        if (nameType === 0 && sni === undefined && n > 0) sni = latin1(b, p, n);
        p += n;
      }
    }
    p = end;
  }
  return sni === undefined ? { alpn } : { alpn, sni };
}

function latin1(b: Uint8Array, at: number, n: number): string {
  let s = '';
  for (let k = at; k < at + n; k++) s += String.fromCharCode(b[k]!);
  return s;
}

export interface HelloSpec {
  readonly alpn?: readonly string[];
  readonly sni?: string;
  /** Extra opaque extensions [type, data], placed before ALPN. */
  readonly extensions?: readonly (readonly [number, Uint8Array])[];
  readonly sessionId?: Uint8Array;
  /** Split the handshake message over records of at most this many bytes. */
  readonly recordSize?: number;
}

/** Builds a well-formed ClientHello record stream (for tests and the fuzzer). */
export function buildClientHello(spec: HelloSpec = {}): Uint8Array {
  const exts: number[] = [];
  const ext = (type: number, data: number[]): void => {
    exts.push(type >> 8, type & 0xff, data.length >> 8, data.length & 0xff, ...data);
  };
  for (const [type, data] of spec.extensions ?? []) ext(type, [...data]);
  if (spec.sni !== undefined) {
    const name = [...Buffer.from(spec.sni, 'latin1')];
    const entry = [0, name.length >> 8, name.length & 0xff, ...name];
    ext(EXT_SERVER_NAME, [entry.length >> 8, entry.length & 0xff, ...entry]);
  }
  if (spec.alpn !== undefined && spec.alpn.length > 0) {
    const list = spec.alpn.flatMap((a) => {
      const bytes = [...Buffer.from(a, 'latin1')];
      return [bytes.length, ...bytes];
    });
    ext(EXT_ALPN, [list.length >> 8, list.length & 0xff, ...list]);
  }
  const session = [...(spec.sessionId ?? new Uint8Array(32))];
  const body = [
    0x03,
    0x03,
    ...new Array<number>(32).fill(7),
    session.length,
    ...session,
    0x00,
    0x02,
    0x13,
    0x01, // TLS_AES_128_GCM_SHA256
    0x01,
    0x00, // null compression
    exts.length >> 8,
    exts.length & 0xff,
    ...exts,
  ];
  const handshake = [
    HANDSHAKE_CLIENT_HELLO,
    body.length >> 16,
    (body.length >> 8) & 0xff,
    body.length & 0xff,
    ...body,
  ];
  const size = spec.recordSize ?? MAX_RECORD;
  const out: number[] = [];
  for (let at = 0; at < handshake.length; at += size) {
    const chunk = handshake.slice(at, at + size);
    out.push(CONTENT_HANDSHAKE, 0x03, 0x01, chunk.length >> 8, chunk.length & 0xff, ...chunk);
  }
  return Uint8Array.from(out);
}
