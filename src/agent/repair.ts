// The offline repair of an agent's log (`commitlog repair`): the data directory's
// replicated log (groups/default/log), or a log directory given directly.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

import {
  CorruptSegmentError,
  InvalidLogDirectoryError,
  Log,
  applyRepair,
  describeRepair,
  planRepair,
} from '../log/index.js';
import { MAX_RECORD_BYTES } from './steps.js';

/** The replicated log stores Raft entries: each value with a small header. */
const ENTRY_HEADER_ROOM = 32;

/** The log refused to open for damage in its files (not a permission or a full disk). */
export function isLogDamage(err: unknown): err is Error {
  return err instanceof CorruptSegmentError || err instanceof InvalidLogDirectoryError;
}

/** DIR is not a directory: nothing to repair there. */
export class NotADataDirectoryError extends Error {
  override readonly name = 'NotADataDirectoryError';
  constructor(
    readonly dir: string,
    options?: ErrorOptions,
  ) {
    super(`${dir} is not a directory`, options);
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

export interface RepairOutcome {
  /** What was found and what was (or, in a dry run, would be) cut and deleted. */
  readonly lines: string[];
  /** False when every segment checked out. */
  readonly needed: boolean;
}

/**
 * Plans the repair of the log in `dir` and, unless `dryRun`, carries it out and opens
 * the log to check the result (which rebuilds the indexes the repair deleted).
 */
export async function repairLog(dir: string, o: { dryRun: boolean }): Promise<RepairOutcome> {
  const replicated = join(dir, 'groups', 'default', 'log');
  const raft = await isDirectory(replicated);
  const logDir = raft ? replicated : dir;
  if (!(await isDirectory(logDir))) throw new NotADataDirectoryError(dir);
  const maxRecordBytes = MAX_RECORD_BYTES + ENTRY_HEADER_ROOM;
  const plan = await planRepair(logDir, { maxRecordBytes });
  const lines = describeRepair(plan, raft ? 'Raft log entries from index' : 'offsets from');
  const needed = plan.cut !== undefined || plan.remove.length > 0;
  if (!needed) return { lines, needed };
  if (o.dryRun) return { lines: [...lines, 'dry run: nothing changed'], needed };
  await applyRepair(plan);
  const log = await Log.open(logDir, { maxRecordBytes });
  await log.close();
  return { lines: [...lines, `repaired: the log opens (${logDir})`], needed };
}
