import { open } from 'node:fs/promises';

/** fsyncs a directory so that file creations, renames and unlinks in it are durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
