// The file-system port: every call the log makes to the disk goes through a LogFs,
// so tests can inject faults (see testing.ts) and count what reaches the disk.
// node:fs/promises satisfies it; the default is exactly that.
import * as nodeFs from 'node:fs/promises';

/** An open file; node's FileHandle is one. Positions are byte offsets. */
export interface LogFileHandle {
  read(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number }>;
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  /** Full fsync; used on directories, so that entries created, renamed or removed last. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/**
 * Open flags the log uses: `r` (read; also directories for sync), `r+` (existing
 * segment), `w` (a temporary file to rename), `wx+` (a new segment; fails if it exists).
 */
export type LogOpenFlags = 'r' | 'r+' | 'w' | 'wx+';

export interface LogFs {
  open(path: string, flags: LogOpenFlags): Promise<LogFileHandle>;
  readFile(path: string): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string): Promise<void>;
}

/** The real file system (node:fs/promises). */
export const nodeLogFs: LogFs = {
  open: (path, flags) => nodeFs.open(path, flags),
  readFile: (path) => nodeFs.readFile(path),
  rename: (from, to) => nodeFs.rename(from, to),
  unlink: (path) => nodeFs.unlink(path),
  readdir: (path) => nodeFs.readdir(path),
  mkdir: async (path) => {
    await nodeFs.mkdir(path, { recursive: true });
  },
};

/** fsyncs a directory so that file creations, renames and unlinks in it are durable. */
export async function syncDirectory(fs: LogFs, dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes all of `data` at `position` (a write may be short). */
export async function writeFully(
  handle: LogFileHandle,
  data: Uint8Array,
  position: number,
): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await handle.write(
      data,
      written,
      data.length - written,
      position + written,
    );
    written += bytesWritten;
  }
}

/** Writes `data` to `path` atomically: a temp file, fsynced, renamed over. The caller syncs the directory. */
export async function writeFileAtomic(fs: LogFs, path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await fs.open(tmp, 'w');
  try {
    await writeFully(fh, data, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, path);
}
