// Configuration entries carry the whole new ConfState, so a follower needs no history
// to interpret one, and a truncated configuration entry is undone by looking back.
import type { ConfState, NodeId } from './types.js';

/** Version byte of the configuration encoding (JSON, the old form, began with `{`). */
export const CONF_ENCODING_VERSION = 1;

/** A configuration entry's bytes are not a valid encoded ConfState. */
export class ConfEncodingError extends Error {
  override readonly name = 'ConfEncodingError';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Layout: version byte, then voters, learners (each a varint count and that many
 * strings) and addresses (a count of id/address string pairs). Strings are a varint
 * byte length and UTF-8. Varints are unsigned LEB128, at most 2^53 - 1.
 */
export function encodeConfState(conf: ConfState): Uint8Array {
  checkIds(conf, (msg) => new ConfEncodingError(msg));
  const parts: number[] = [CONF_ENCODING_VERSION];
  const uint = (n: number): void => {
    while (n >= 0x80) {
      parts.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    parts.push(n);
  };
  const str = (v: string): void => {
    const b = encoder.encode(v);
    uint(b.byteLength);
    for (const x of b) parts.push(x);
  };
  uint(conf.voters.length);
  for (const v of conf.voters) str(v);
  uint(conf.learners.length);
  for (const v of conf.learners) str(v);
  const addrs = Object.entries(conf.addresses);
  uint(addrs.length);
  for (const [id, addr] of addrs) {
    str(id);
    str(addr);
  }
  return Uint8Array.from(parts);
}

/** Decodes a configuration entry strictly: any malformed input is a ConfEncodingError. */
export function decodeConfState(data: Uint8Array): ConfState {
  let pos = 0;
  const fail = (why: string): never => {
    throw new ConfEncodingError(`bad configuration entry: ${why}`);
  };
  const byte = (): number => (pos < data.length ? data[pos++]! : fail('truncated'));
  const uint = (): number => {
    let n = 0;
    let scale = 1;
    for (let k = 0; ; k++) {
      if (k >= 8) fail('varint too long');
      const b = byte();
      n += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) break;
      scale *= 0x80;
    }
    if (!Number.isSafeInteger(n)) fail('integer beyond 2^53 - 1');
    return n;
  };
  const str = (): string => {
    const n = uint();
    if (n > data.length - pos) fail('truncated');
    const b = data.subarray(pos, pos + n);
    pos += n;
    try {
      return decoder.decode(b);
    } catch {
      return fail('a string is not UTF-8');
    }
  };
  const list = (): NodeId[] => {
    const n = uint();
    // Each id takes at least two bytes: a bound that stops absurd counts at once.
    if (n > data.length - pos) fail('count beyond the input');
    const out: NodeId[] = [];
    for (let k = 0; k < n; k++) out.push(str());
    return out;
  };
  const version = byte();
  if (version !== CONF_ENCODING_VERSION) fail(`unknown version ${version}`);
  const voters = list();
  const learners = list();
  const n = uint();
  if (n > data.length - pos) fail('count beyond the input');
  const addresses: Record<NodeId, string> = {};
  for (let k = 0; k < n; k++) {
    const id = str();
    const addr = str();
    if (id === '__proto__') fail('reserved node id __proto__');
    if (Object.hasOwn(addresses, id)) fail(`address of ${id} given twice`);
    addresses[id] = addr;
  }
  if (pos !== data.length) fail(`${data.length - pos} trailing bytes`);
  const conf: ConfState = { voters, learners, addresses };
  checkIds(conf, (msg) => new ConfEncodingError(`bad configuration entry: ${msg}`));
  return conf;
}

/** Ids are non-empty and each appears once, as voter or learner. */
export function checkIds(conf: ConfState, error: (msg: string) => Error): void {
  const seen = new Set<NodeId>();
  for (const id of [...conf.voters, ...conf.learners]) {
    if (typeof id !== 'string' || id === '') throw error('empty node id');
    // Ids become object keys (addresses): this one would change the prototype instead.
    if (id === '__proto__') throw error('reserved node id __proto__');
    if (seen.has(id)) throw error(`node ${id} appears twice`);
    seen.add(id);
  }
  for (const [id, addr] of Object.entries(conf.addresses)) {
    if (id === '') throw error('address for an empty node id');
    if (id === '__proto__') throw error('address for the reserved node id __proto__');
    if (typeof addr !== 'string') throw error(`address of ${id} is not a string`);
  }
}

export function isVoter(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id);
}

export function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

/** The index that a majority of `matches` has reached (0 for an empty list). */
export function quorumIndex(matches: number[]): number {
  if (matches.length === 0) return 0;
  matches.sort((a, b) => b - a);
  return matches[matches.length >> 1 /* majority - 1 */]!;
}

export function majority(n: number): number {
  return (n >> 1) + 1;
}
