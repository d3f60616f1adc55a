// Small state files replaced atomically: written to a temporary name, then renamed over
// the old one. Each carries a magic, a version and a CRC so that damage is named rather
// than trusted. `sync` orders the write before the rename and makes the rename durable.
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';

import { StateFileError } from './errors.js';

const HEADER = 12; // magic (4) + version (4) + crc (4)

export async function writeStateFile(
  path: string,
  magic: string,
  version: number,
  body: Uint8Array,
  options: { sync: boolean },
): Promise<void> {
  const out = Buffer.alloc(HEADER + body.byteLength);
  out.write(magic, 0, 4, 'latin1');
  out.writeUInt32BE(version, 4);
  out.writeUInt32BE(crc32(body), 8);
  out.set(body, HEADER);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(out);
    if (options.sync) await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  if (options.sync) await syncDir(dirname(path));
}

/** The body, or undefined when the file does not exist. */
export async function readStateFile(
  path: string,
  magic: string,
  version: number,
): Promise<Buffer | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(path, 'cannot be read', { cause: err });
  }
  if (buf.byteLength < HEADER || buf.toString('latin1', 0, 4) !== magic)
    throw new StateFileError(path, `not a ${magic} file (wrong magic or too short)`);
  const v = buf.readUInt32BE(4);
  if (v !== version) throw new StateFileError(path, `version ${v}; this build reads ${version}`);
  const body = buf.subarray(HEADER);
  if (crc32(body) !== buf.readUInt32BE(8)) throw new StateFileError(path, 'checksum mismatch');
  return body;
}

export async function removeStateFile(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A tiny length-prefixed binary writer/reader for state file bodies. */
export class BodyWriter {
  private parts: Buffer[] = [];
  u64(n: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    this.parts.push(b);
    return this;
  }
  str(s: string): this {
    const bytes = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.byteLength);
    this.parts.push(len, bytes);
    return this;
  }
  bytes(b: Uint8Array): this {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.byteLength);
    this.parts.push(len, Buffer.from(b));
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export class BodyReader {
  private p = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly path: string,
  ) {}
  private need(n: number): void {
    if (this.p + n > this.buf.byteLength) throw new StateFileError(this.path, 'truncated body');
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.p);
    this.p += 8;
    return v;
  }
  num(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new StateFileError(this.path, `number ${v} too large`);
    return Number(v);
  }
  bytes(): Buffer {
    this.need(4);
    const len = this.buf.readUInt32BE(this.p);
    this.p += 4;
    this.need(len);
    const out = this.buf.subarray(this.p, this.p + len);
    this.p += len;
    return out;
  }
  str(): string {
    return this.bytes().toString('utf8');
  }
  end(): void {
    if (this.p !== this.buf.byteLength) throw new StateFileError(this.path, 'trailing bytes');
  }
}
