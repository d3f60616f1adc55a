// Opening a log directory after a clean stop or a crash: find the segments, check
// each against its checksums, cut a torn tail off the last one, rebuild indexes that
// disagree with their stores, and refuse (naming the file) anything that is damage
// rather than an interrupted write.
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CorruptSegmentError, InvalidLogDirectoryError } from './errors.js';
import { frameProblem } from './frame.js';
import { syncDirectory, writeFileAtomic, type LogFileHandle, type LogFs } from './fs.js';
import { FRAME_HEADER_BYTES, INDEX_ENTRY_BYTES, type ResolvedLogOptions } from './options.js';
import { INDEX_SUFFIX, STORE_SUFFIX, Segment, ignoreMissing, segmentPaths } from './segment.js';

/** What opening the log found and repaired. */
export interface RecoveryReport {
  segments: number;
  /** A torn or (with `repairTruncate`) damaged tail that was cut off the last segment. */
  truncated?: Truncation;
  /** Index files that disagreed with their stores and were rebuilt (or dropped). */
  indexesRebuilt: string[];
  /** Leftover temporary files removed. */
  removedFiles: string[];
  /** A reset (resetTo) interrupted by a crash was finished: the log is empty from this offset. */
  reset?: bigint;
}

/** Bytes cut off the end of a segment's store when the log was opened. */
export interface Truncation {
  file: string;
  /** Where the store now ends (bytes). */
  position: number;
  /** How many bytes were cut. */
  bytes: number;
  /** The first offset dropped: the records from here on are gone. */
  fromOffset: bigint;
  reason: string;
}

/** One line for a log: which file, how much, and which offsets were dropped. */
export function describeTruncation(t: Truncation, unit = 'offsets from'): string {
  return `cut ${t.bytes} bytes off ${t.file} at byte ${t.position}: ${unit} ${t.fromOffset} on dropped (${t.reason})`;
}

export interface ScanResult {
  positions: Float64Array;
  count: number;
  validBytes: number;
  problem?: string;
}

export const NAME_RE = /^(\d{20})\.(store|index)$/;

export async function openSegments(
  dir: string,
  options: ResolvedLogOptions,
): Promise<{ segments: Segment[]; report: RecoveryReport }> {
  const { fs } = options;
  await fs.mkdir(dir);
  const report: RecoveryReport = { segments: 0, indexesRebuilt: [], removedFiles: [] };
  let names = await fs.readdir(dir);
  if (names.includes(RESET_MARKER)) {
    const base = await readResetMarker(fs, dir);
    await (await completeReset(fs, dir, base)).release();
    report.reset = base;
    names = await fs.readdir(dir);
  }
  const found = new Map<bigint, { store: boolean; index: boolean }>();
  for (const name of names) {
    if (name.endsWith(`${INDEX_SUFFIX}.tmp`) || name === `${RESET_MARKER}.tmp`) {
      // A temporary file never renamed: an index checkpoint, or a reset that never happened.
      await fs.unlink(join(dir, name)).catch(ignoreMissing);
      report.removedFiles.push(join(dir, name));
      continue;
    }
    const match = NAME_RE.exec(name);
    if (match === null) {
      if (name.endsWith(STORE_SUFFIX) || name.endsWith(INDEX_SUFFIX)) {
        throw new InvalidLogDirectoryError(
          join(dir, name),
          'not a segment file name (expected 20 digits)',
        );
      }
      continue; // not ours (e.g. lost+found, a README)
    }
    const base = BigInt(match[1] as string);
    const entry = found.get(base) ?? { store: false, index: false };
    if (match[2] === 'store') entry.store = true;
    else entry.index = true;
    found.set(base, entry);
  }
  const bases = [...found.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const segments: Segment[] = [];
  try {
    for (const [i, base] of bases.entries()) {
      const files = found.get(base) as { store: boolean; index: boolean };
      const { store: storePath, index: indexPath } = segmentPaths(dir, base);
      if (!files.store) {
        throw new InvalidLogDirectoryError(indexPath, 'index file without its store file');
      }
      const last = i === bases.length - 1;
      const segment = last
        ? await openLast(dir, base, files.index, options, report)
        : await openSealed(dir, base, files.index, options, report);
      const previous = segments.at(-1);
      segments.push(segment);
      if (previous !== undefined && previous.nextOffset !== base) {
        // An emptied sealed segment is the damage, not the intact one after it.
        if (previous.records === 0) {
          throw new InvalidLogDirectoryError(
            segmentPaths(dir, previous.baseOffset).store,
            `holds no records, but the next segment (${storePath}) starts at offset ${base}: offsets ${previous.baseOffset} to ${base - 1n} are missing (the file was emptied)`,
          );
        }
        throw new InvalidLogDirectoryError(
          storePath,
          `segment starts at offset ${base} but the previous segment ends before offset ${previous.nextOffset}: offsets ${previous.nextOffset} to ${base - 1n} are missing`,
        );
      }
    }
    if (segments.length === 0) {
      segments.push(await Segment.create(fs, dir, options.initialOffset));
      await syncDirectory(fs, dir);
    }
  } catch (err) {
    await Promise.all(segments.map((s) => s.release()));
    throw err;
  }
  report.segments = segments.length;
  return { segments, report };
}

async function openSealed(
  dir: string,
  base: bigint,
  hasIndex: boolean,
  options: ResolvedLogOptions,
  report: RecoveryReport,
): Promise<Segment> {
  const { store: storePath, index: indexPath } = segmentPaths(dir, base);
  const { fs } = options;
  const handle = await fs.open(storePath, 'r+');
  try {
    const size = (await handle.stat()).size;
    if (hasIndex) {
      const index = await loadIndex(fs, indexPath, size);
      if (index !== undefined && (await lastFrameFits(handle, index, size, options))) {
        return new Segment(fs, dir, base, handle, index.positions, index.count, size);
      }
    }
    // No usable index: every frame must check out, since a sealed segment was fsynced
    // whole before its successor was created (under every fsync policy).
    const scan = scanFrames(await fs.readFile(storePath), options.maxRecordBytes);
    if (scan.problem !== undefined) {
      throw new CorruptSegmentError(storePath, scan.validBytes, scan.problem);
    }
    const segment = new Segment(fs, dir, base, handle, scan.positions, scan.count, size);
    await segment.writeIndex();
    await syncDirectory(fs, dir);
    report.indexesRebuilt.push(indexPath);
    return segment;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

async function openLast(
  dir: string,
  base: bigint,
  hasIndex: boolean,
  options: ResolvedLogOptions,
  report: RecoveryReport,
): Promise<Segment> {
  const { store: storePath, index: indexPath } = segmentPaths(dir, base);
  const { fs } = options;
  const handle = await fs.open(storePath, 'r+');
  try {
    const data = await fs.readFile(storePath);
    const scan = scanFrames(data, options.maxRecordBytes);
    if (scan.problem !== undefined) {
      const damage = scan.validBytes;
      const later = findFrameAfter(data, damage, options.maxRecordBytes);
      if (later !== undefined && !options.repairTruncate) {
        throw new CorruptSegmentError(
          storePath,
          damage,
          `${scan.problem}, followed by intact records (at byte ${later}); this is damage, not a torn write. ` +
            `Restore the file, or open with repairTruncate to cut the log at offset ${base + BigInt(scan.count)}`,
        );
      }
      await handle.truncate(damage);
      await handle.datasync();
      report.truncated = {
        file: storePath,
        position: damage,
        bytes: data.length - damage,
        fromOffset: base + BigInt(scan.count),
        reason:
          later === undefined
            ? `torn tail: ${scan.problem}`
            : `damaged records cut (repairTruncate): ${scan.problem}`,
      };
    }
    if (hasIndex) {
      const indexed = await loadIndex(fs, indexPath, scan.validBytes);
      if (indexed === undefined || !samePositions(indexed, scan)) {
        report.indexesRebuilt.push(indexPath);
      }
      // The active segment's index is written when it is sealed or the log closes.
      await fs.unlink(indexPath).catch(ignoreMissing);
    }
    return new Segment(fs, dir, base, handle, scan.positions, scan.count, scan.validBytes);
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Walks frames from the start; stops at the first one that does not check out. */
export function scanFrames(data: Buffer, maxPayload: number): ScanResult {
  let positions = new Float64Array(1024);
  let count = 0;
  let at = 0;
  while (at < data.length) {
    const problem = frameProblem(data, at, maxPayload);
    if (problem !== undefined) return { positions, count, validBytes: at, problem };
    if (count === positions.length) {
      const grown = new Float64Array(positions.length * 2);
      grown.set(positions);
      positions = grown;
    }
    positions[count++] = at;
    at += FRAME_HEADER_BYTES + data.readUInt32LE(at + 4);
  }
  return { positions, count, validBytes: at };
}

/**
 * Looks for an intact frame after damaged bytes at `from`. The damaged record held at
 * most `maxPayload` bytes, so the record after it (if any) starts within that reach.
 */
export function findFrameAfter(data: Buffer, from: number, maxPayload: number): number | undefined {
  if (data.length - from >= FRAME_HEADER_BYTES) {
    const claimed = from + FRAME_HEADER_BYTES + data.readUInt32LE(from + 4);
    if (claimed < data.length && frameProblem(data, claimed, maxPayload) === undefined)
      return claimed;
  }
  const reach = Math.min(data.length - FRAME_HEADER_BYTES, from + FRAME_HEADER_BYTES + maxPayload);
  for (let at = from + 1; at <= reach; at++) {
    if (frameProblem(data, at, maxPayload) === undefined) return at;
  }
  return undefined;
}

interface LoadedIndex {
  positions: Float64Array;
  count: number;
}

/** Reads an index file; undefined when it is damaged or cannot describe a store of `storeSize`. */
async function loadIndex(
  fs: LogFs,
  path: string,
  storeSize: number,
): Promise<LoadedIndex | undefined> {
  const body = await fs.readFile(path).catch((err: unknown) => {
    ignoreMissing(err);
    return undefined;
  });
  if (body === undefined || body.length < 4 || (body.length - 4) % INDEX_ENTRY_BYTES !== 0)
    return undefined;
  if (crc32(body.subarray(0, body.length - 4)) !== body.readUInt32LE(body.length - 4))
    return undefined;
  const count = (body.length - 4) / INDEX_ENTRY_BYTES;
  if (count === 0 && storeSize !== 0) return undefined;
  const positions = new Float64Array(Math.max(count, 1024));
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const position = Number(body.readBigUInt64LE(i * INDEX_ENTRY_BYTES));
    if (position <= previous || position >= storeSize || (i === 0 && position !== 0))
      return undefined;
    positions[i] = position;
    previous = position;
  }
  return { positions, count };
}

/** The sealed segment's last frame must check out and end exactly at the end of the store. */
async function lastFrameFits(
  handle: LogFileHandle,
  index: LoadedIndex,
  size: number,
  options: ResolvedLogOptions,
): Promise<boolean> {
  if (index.count === 0) return size === 0;
  const last = index.positions[index.count - 1] as number;
  const buf = Buffer.allocUnsafe(size - last);
  const { bytesRead } = await handle.read(buf, 0, buf.length, last);
  if (bytesRead !== buf.length || frameProblem(buf, 0, options.maxRecordBytes) !== undefined)
    return false;
  return FRAME_HEADER_BYTES + buf.readUInt32LE(4) === buf.length;
}

function samePositions(index: LoadedIndex, scan: ScanResult): boolean {
  if (index.count !== scan.count) return false;
  for (let i = 0; i < scan.count; i++) if (index.positions[i] !== scan.positions[i]) return false;
  return true;
}

/**
 * The reset marker: present only while a resetTo is under way. Written atomically (temp
 * file, fsync, rename, directory fsync) before anything else is touched, it is the
 * point of no return: a log that has it is reopened as the new empty log.
 */
export const RESET_MARKER = 'reset-base';

/** Persists the intent to reset; once this returns, a crash reopens as the new empty log. */
export async function writeResetMarker(fs: LogFs, dir: string, base: bigint): Promise<void> {
  const body = Buffer.allocUnsafe(12);
  body.writeBigUInt64LE(base, 0);
  body.writeUInt32LE(crc32(body.subarray(0, 8)), 8);
  await writeFileAtomic(fs, join(dir, RESET_MARKER), body);
  await syncDirectory(fs, dir);
}

async function readResetMarker(fs: LogFs, dir: string): Promise<bigint> {
  const path = join(dir, RESET_MARKER);
  const body = await fs.readFile(path);
  if (body.length !== 12 || crc32(body.subarray(0, 8)) !== body.readUInt32LE(8)) {
    // It was renamed into place whole, so this is damage, not an interrupted write.
    throw new InvalidLogDirectoryError(
      path,
      'damaged reset marker (a reset to a new base offset was under way)',
    );
  }
  return body.readBigUInt64LE(0);
}

/**
 * Finishes a reset whose marker is durable: removes every segment file, creates the
 * empty segment at `base`, then removes the marker. Each step can be repeated after a
 * crash. Returns the new segment (the caller owns its handle).
 */
export async function completeReset(fs: LogFs, dir: string, base: bigint): Promise<Segment> {
  for (const name of await fs.readdir(dir)) {
    if (NAME_RE.test(name) || name.endsWith(`${INDEX_SUFFIX}.tmp`)) {
      await fs.unlink(join(dir, name)).catch(ignoreMissing);
    }
  }
  const segment = await Segment.create(fs, dir, base);
  try {
    await syncDirectory(fs, dir);
    await fs.unlink(join(dir, RESET_MARKER));
    await syncDirectory(fs, dir);
  } catch (err) {
    await segment.release();
    throw err;
  }
  return segment;
}
