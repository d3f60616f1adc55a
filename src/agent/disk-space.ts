// A reserve of free disk space: produces are refused (RESOURCE_EXHAUSTED / 507) while
// the device holding the data directory has less than --min-free-bytes free, so the
// log never runs into a full disk in the middle of a write. A Raft node whose storage
// write fails stops; a refused produce costs nothing, and produces succeed again as
// soon as space returns. The free space is read at most once a second.
import { statfs } from 'node:fs/promises';

import type { CommitLog } from '../server/index.js';

/** Bytes an unprivileged process may still write on the device holding `dir`. */
export type FreeBytes = (dir: string) => Promise<number>;

export const statfsFreeBytes: FreeBytes = async (dir) => {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
};

/** The device holding the data directory has less free space than the reserve. */
export class LowDiskSpaceError extends Error {
  override readonly name = 'LowDiskSpaceError';
  constructor(
    readonly dir: string,
    readonly freeBytes: number,
    readonly minFreeBytes: number,
    options?: ErrorOptions,
  ) {
    super(
      `the disk holding ${dir} is (nearly) full: ${freeBytes} bytes free, below --min-free-bytes ${minFreeBytes}; ` +
        'produces are refused until there is more: free space or grow the volume',
      options,
    );
  }
}

export interface DiskSpaceOptions {
  readonly dir: string;
  /** 0: no reserve. */
  readonly minFreeBytes: number;
  readonly freeBytes?: FreeBytes;
  /** How long a reading of the free space is trusted (default 1000 ms). */
  readonly maxAgeMs?: number;
}

export class DiskSpaceGuard {
  private free = Infinity;
  private readAt = -Infinity;
  private reading: Promise<void> | undefined;

  constructor(private readonly o: DiskSpaceOptions) {}

  /** Rejects with LowDiskSpaceError while the free space is below the reserve. */
  async check(): Promise<void> {
    if (this.stale()) {
      this.reading ??= this.read().finally(() => (this.reading = undefined));
      await this.reading;
    }
    this.throwIfLow();
  }

  private stale(): boolean {
    return this.o.minFreeBytes > 0 && performance.now() - this.readAt > (this.o.maxAgeMs ?? 1000);
  }

  private throwIfLow(): void {
    if (this.free < this.o.minFreeBytes) {
      throw new LowDiskSpaceError(this.o.dir, this.free, this.o.minFreeBytes);
    }
  }

  private async read(): Promise<void> {
    try {
      this.free = await (this.o.freeBytes ?? statfsFreeBytes)(this.o.dir);
    } catch {
      this.free = Infinity; // cannot tell (no statfs here): the log's own errors remain
    }
    this.readAt = performance.now();
  }

  /** `log`, with every append checked first. */
  guard(log: CommitLog): CommitLog {
    return {
      // Every produce passes here: with a fresh reading it costs a comparison, no await.
      append: async (values, o) => {
        if (this.stale()) await this.check();
        else this.throwIfLow();
        return log.append(values, o);
      },
      read: (offset, o) => log.read(offset, o),
      readBatchesFrom: (from, o) => log.readBatchesFrom(from, o),
      get endOffset() {
        return log.endOffset;
      },
    };
  }
}
