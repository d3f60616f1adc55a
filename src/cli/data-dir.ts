// The agent's data directory, made before anything starts: a path that cannot be made is
// a usage error (exit 2) that names it.
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import { UsageError } from './errors.js';

/**
 * Creates the data directory one level at a time, so that a path that cannot be made
 * fails at once naming the level at fault (a recursive mkdir under /proc never returns).
 */
export async function ensureDataDir(dataDir: string): Promise<void> {
  const missing: string[] = [];
  let at = resolve(dataDir);
  for (;;) {
    try {
      const s = await stat(at);
      if (!s.isDirectory()) {
        throw new UsageError('data-dir', `cannot create ${dataDir}: ${at} is not a directory`);
      }
      break;
    } catch (err) {
      if (err instanceof UsageError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(at) === at) {
        throw new UsageError('data-dir', `cannot use ${dataDir}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      missing.unshift(at);
      at = dirname(at);
    }
  }
  for (const dir of missing) {
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new UsageError('data-dir', `cannot create ${dataDir}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
