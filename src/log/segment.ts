// A segment: one store file (framed records) plus the positions of its records.
// Positions live in memory; the index file is their checkpoint, written atomically
// when the segment is sealed or the log closes, and always checked against the
// store on open (the index is a cache that can be rebuilt, never a source of truth).
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CorruptSegmentError } from './errors.js';
import { FRAME_HEADER_BYTES, INDEX_ENTRY_BYTES } from './options.js';
import { frameProblem, payloadAt } from './frame.js';
import { writeFileAtomic, writeFully, type LogFileHandle, type LogFs } from './fs.js';

export const STORE_SUFFIX = '.store';
export const INDEX_SUFFIX = '.index';
const OFFSET_DIGITS = 20; // 2^64 - 1 has 20 digits, so names sort as numbers

export function segmentName(baseOffset: bigint): string {
  return baseOffset.toString().padStart(OFFSET_DIGITS, '0');
}

/** The store and index file paths of the segment starting at `baseOffset`. */
export function segmentPaths(dir: string, baseOffset: bigint): { store: string; index: string } {
  const name = join(dir, segmentName(baseOffset));
  return { store: name + STORE_SUFFIX, index: name + INDEX_SUFFIX };
}

/** A record as stored: its offset and a view of its value. */
export interface StoredRecord {
  offset: bigint;
  value: Buffer;
}

export class Segment {
  readonly storePath: string;
  readonly indexPath: string;
  /** invariant: positions[0..count) strictly increase; positions[count-1] < size */
  private positions: Float64Array;
  private count: number;
  /** Bytes of valid frames in the store; the next frame is written here. */
  private bytes: number;
  /** The log holds one reference while the segment is part of it; snapshots and reads hold more. */
  private refs = 1;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly fs: LogFs,
    readonly dir: string,
    readonly baseOffset: bigint,
    private readonly handle: LogFileHandle,
    positions: Float64Array,
    count: number,
    size: number,
  ) {
    const paths = segmentPaths(dir, baseOffset);
    this.storePath = paths.store;
    this.indexPath = paths.index;
    this.positions = positions;
    this.count = count;
    this.bytes = size;
  }

  static async create(fs: LogFs, dir: string, baseOffset: bigint): Promise<Segment> {
    const handle = await fs.open(segmentPaths(dir, baseOffset).store, 'wx+');
    return new Segment(fs, dir, baseOffset, handle, new Float64Array(1024), 0, 0);
  }

  get records(): number {
    return this.count;
  }
  get size(): number {
    return this.bytes;
  }
  /** The offset the next record appended here would get. */
  get nextOffset(): bigint {
    return this.baseOffset + BigInt(this.count);
  }

  /** Writes framed records (already encoded in `frames`) at the end of the store. */
  async write(frames: Buffer, framePositions: readonly number[]): Promise<void> {
    await writeFully(this.handle, frames, this.bytes);
    this.reserve(this.count + framePositions.length);
    for (const p of framePositions) this.positions[this.count++] = this.bytes + p;
    this.bytes += frames.length;
  }

  async sync(): Promise<void> {
    await this.handle.datasync();
  }

  /**
   * Reads up to `maxRecords` records starting at `relative`, in one read of at most
   * `maxBytes` (but always at least one record). Every frame's checksum is verified.
   */
  async readRecords(
    relative: number,
    maxRecords: number,
    maxBytes: number,
  ): Promise<StoredRecord[]> {
    const start = this.positionAt(relative);
    let last = Math.min(this.count, relative + Math.max(1, maxRecords)); // exclusive
    // Shrink the range until it fits maxBytes (binary search on positions).
    if (this.endOf(last - 1) - start > maxBytes && last - relative > 1) {
      let lo = relative + 1; // always fits (at least one record)
      let hi = last;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (this.endOf(mid - 1) - start <= maxBytes) lo = mid;
        else hi = mid - 1;
      }
      last = lo;
    }
    const end = this.endOf(last - 1);
    const buf = Buffer.allocUnsafe(end - start);
    let filled = 0;
    while (filled < buf.length) {
      const { bytesRead } = await this.handle.read(
        buf,
        filled,
        buf.length - filled,
        start + filled,
      );
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled < buf.length) {
      throw new CorruptSegmentError(
        this.storePath,
        start + filled,
        'store is shorter than its index',
      );
    }
    const out: StoredRecord[] = new Array<StoredRecord>(last - relative);
    for (let i = relative; i < last; i++) {
      const at = this.positionAt(i) - start;
      const problem = frameProblem(buf, at, 0xffff_ffff);
      if (
        problem !== undefined ||
        this.endOf(i) - start !== at + FRAME_HEADER_BYTES + buf.readUInt32LE(at + 4)
      ) {
        throw new CorruptSegmentError(
          this.storePath,
          start + at,
          problem ?? 'frame length disagrees with the index',
        );
      }
      out[i - relative] = { offset: this.baseOffset + BigInt(i), value: payloadAt(buf, at) };
    }
    return out;
  }

  /** Drops records from `relative` on (the store is cut back to that record's position). */
  async truncateFrom(relative: number): Promise<void> {
    const size = relative < this.count ? this.positionAt(relative) : this.bytes;
    await this.handle.truncate(size);
    await this.handle.datasync();
    this.count = Math.min(this.count, relative);
    this.bytes = size;
  }

  /** Writes the index atomically (temp file, fsync, rename); the caller fsyncs the directory. */
  async writeIndex(): Promise<void> {
    const body = Buffer.allocUnsafe(this.count * INDEX_ENTRY_BYTES + 4);
    // u64 LE as two u32 halves: positions are below 2^53, and a BigInt per entry made
    // sealing a 64 MiB segment of small records cost tens of milliseconds.
    for (let i = 0; i < this.count; i++) {
      const position = this.positionAt(i);
      body.writeUInt32LE(position % 0x1_0000_0000, i * INDEX_ENTRY_BYTES);
      body.writeUInt32LE(Math.floor(position / 0x1_0000_0000), i * INDEX_ENTRY_BYTES + 4);
    }
    body.writeUInt32LE(crc32(body.subarray(0, body.length - 4)), body.length - 4);
    await writeFileAtomic(this.fs, this.indexPath, body);
  }

  async removeIndex(): Promise<void> {
    await this.fs.unlink(this.indexPath).catch(ignoreMissing);
  }

  acquire(): void {
    this.refs++;
  }

  /** Drops one reference; the file handle closes when the last one goes. */
  async release(): Promise<void> {
    if (--this.refs === 0) {
      this.closing ??= this.handle.close();
      await this.closing;
    }
  }

  /** Removes the files (index first, so a crash never leaves an index without its store). */
  async unlinkFiles(): Promise<void> {
    await this.removeIndex();
    await this.fs.unlink(this.storePath).catch(ignoreMissing);
  }

  private positionAt(relative: number): number {
    return this.positions[relative] as number;
  }

  private endOf(relative: number): number {
    return relative + 1 < this.count ? this.positionAt(relative + 1) : this.bytes;
  }

  private reserve(n: number): void {
    if (n <= this.positions.length) return;
    let length = this.positions.length * 2;
    while (length < n) length *= 2;
    const grown = new Float64Array(length);
    grown.set(this.positions.subarray(0, this.count));
    this.positions = grown;
  }
}

export function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
