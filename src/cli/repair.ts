// `commitlog repair DIR [--dry-run]`: cuts a log that will not open at its first damage.
import type { Command } from 'commander';

import { NotADataDirectoryError, repairLog } from '../agent/index.js';
import { UsageError } from './errors.js';

export function registerRepairCommand(program: Command): void {
  program
    .command('repair')
    .description(
      'cut a log that will not open (a damaged record, an emptied or missing segment) at its first damage; the node must be stopped',
    )
    .argument('<dir>', "the agent's --data-dir (or a log directory)")
    .option('--dry-run', 'say what would be cut and deleted; change nothing')
    .addHelpText(
      'after',
      `
Everything from the damage on is dropped. On a cluster member the node then catches up
from the leader (repair one member at a time, never a majority); on a single node
those records are lost. Keep a copy of the directory first. See docs/storage.md.`,
    )
    .action(async (dir: string, flags: { dryRun?: boolean }) => {
      const outcome = await repairLog(dir, { dryRun: flags.dryRun ?? false }).catch(
        (err: unknown) => {
          throw err instanceof NotADataDirectoryError
            ? new UsageError('dir', err.message, { cause: err })
            : err;
        },
      );
      for (const line of outcome.lines) console.log(line);
    });
}
