import { InvalidLogOptionError } from './errors.js';
import { nodeLogFs, type LogFs } from './fs.js';

/**
 * When appended bytes reach the disk: `always` fsyncs before an append resolves
 * (concurrent appends share one write and one fsync), `interval` fsyncs every
 * `intervalMs` in the background, `never` leaves it to the OS.
 */
export type FsyncPolicy = 'always' | 'never' | { intervalMs: number };

/** Hooks for metrics; the log calls them synchronously and ignores their results. */
export interface LogObserver {
  /** A group of records was written (one write call; `records` may span several appends). */
  appended?(records: number, bytes: number): void;
  /** An fsync of the active store finished. */
  synced?(seconds: number): void;
  /**
   * A write, fsync or file operation failed and the log stopped (a LogFailedError whose
   * cause is the I/O error). Called once, when it happens, including for a background
   * fsync that no append is waiting on.
   */
  failed?(err: Error): void;
}

export interface LogOptions {
  /** Roll to a new segment once the store file would grow past this. Default 64 MiB. */
  maxStoreBytes?: number;
  /** Roll once the segment's index (8 bytes per record) would pass this. Default 8 MiB. */
  maxIndexBytes?: number;
  /** The first offset of a new, empty log. Default 0. */
  initialOffset?: bigint;
  /** Largest record value accepted. Default 1 MiB. */
  maxRecordBytes?: number;
  /** Default `always`. */
  fsync?: FsyncPolicy;
  /**
   * Opening a log whose last segment has damaged records followed by intact ones is
   * refused unless this is set; then the log is cut before the damage (and the
   * report says how much was dropped).
   */
  repairTruncate?: boolean;
  observer?: LogObserver;
  /**
   * Default false: records become readable once durable by the fsync policy. When true,
   * readers stop at a commit point the owner moves with `log.commit(end)` (a replicated
   * log commits what a quorum holds); records above it are read only with
   * `readBatch(from, { uncommitted: true })`. A reopened gated log starts with nothing
   * committed above its lowest offset.
   */
  commitGated?: boolean;
  /** The file system to use (a test double injects faults). Default node:fs/promises. */
  fs?: LogFs;
}

export interface ResolvedLogOptions {
  maxStoreBytes: number;
  maxIndexBytes: number;
  initialOffset: bigint;
  maxRecordBytes: number;
  fsync: FsyncPolicy;
  repairTruncate: boolean;
  observer: LogObserver;
  commitGated: boolean;
  fs: LogFs;
}

export const MiB = 1024 * 1024;
/** Frame header: CRC (4 bytes) then length (4 bytes). */
export const FRAME_HEADER_BYTES = 8;
/** One index entry: the record's byte position in the store. */
export const INDEX_ENTRY_BYTES = 8;
const MAX_FRAME_PAYLOAD = 0xffff_ffff;

export function resolveOptions(options: LogOptions = {}): ResolvedLogOptions {
  const resolved: ResolvedLogOptions = {
    maxStoreBytes: options.maxStoreBytes ?? 64 * MiB,
    maxIndexBytes: options.maxIndexBytes ?? 8 * MiB,
    initialOffset: options.initialOffset ?? 0n,
    maxRecordBytes: options.maxRecordBytes ?? MiB,
    fsync: options.fsync ?? 'always',
    repairTruncate: options.repairTruncate ?? false,
    observer: options.observer ?? {},
    commitGated: options.commitGated ?? false,
    fs: options.fs ?? nodeLogFs,
  };
  positiveInteger('maxStoreBytes', resolved.maxStoreBytes);
  positiveInteger('maxIndexBytes', resolved.maxIndexBytes);
  positiveInteger('maxRecordBytes', resolved.maxRecordBytes);
  if (resolved.maxIndexBytes < INDEX_ENTRY_BYTES) {
    throw new InvalidLogOptionError(
      'maxIndexBytes',
      `must hold at least one ${INDEX_ENTRY_BYTES}-byte entry`,
    );
  }
  if (resolved.maxRecordBytes > MAX_FRAME_PAYLOAD) {
    throw new InvalidLogOptionError('maxRecordBytes', `must be at most ${MAX_FRAME_PAYLOAD}`);
  }
  if (resolved.initialOffset < 0n || resolved.initialOffset >= 2n ** 64n) {
    throw new InvalidLogOptionError('initialOffset', 'must be an unsigned 64-bit integer');
  }
  const fsync = resolved.fsync;
  if (typeof fsync === 'object') positiveInteger('fsync.intervalMs', fsync.intervalMs);
  else if (fsync !== 'always' && fsync !== 'never') {
    throw new InvalidLogOptionError('fsync', `unknown policy ${String(fsync)}`);
  }
  return resolved;
}

/** Parses `always`, `never` or `interval:<ms>` (as given on a command line). */
export function parseFsyncPolicy(text: string): FsyncPolicy {
  if (text === 'always' || text === 'never') return text;
  const match = /^interval:(\d+)(ms)?$/.exec(text);
  if (match?.[1] !== undefined) {
    const intervalMs = Number(match[1]);
    if (intervalMs > 0) return { intervalMs };
  }
  throw new InvalidLogOptionError(
    'fsync',
    `expected always, never or interval:<ms> (e.g. interval:100), got ${JSON.stringify(text)}`,
  );
}

function positiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidLogOptionError(name, `must be a positive integer, got ${value}`);
  }
}
