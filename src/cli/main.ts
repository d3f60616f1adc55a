import { Command, CommanderError } from 'commander';

/** Builds the `commitlog` command tree. Exported for tests and `--help` checks. */
export function buildProgram(): Command {
  const program = new Command('commitlog')
    .description('A distributed commit log: append records, read them by offset, stream them live.')
    .version('0.1.0')
    .showHelpAfterError();

  program
    .command('agent')
    .description(
      'run a node (single-node defaults: data in ./data, gRPC 127.0.0.1:8400, HTTP 127.0.0.1:8080)',
    )
    .option('--data-dir <dir>', 'where the log lives', './data')
    .action((opts: { dataDir: string }) => {
      console.log(
        `commitlog agent: will serve gRPC on 127.0.0.1:8400 and HTTP on 127.0.0.1:8080 with data in ${opts.dataDir} (server not built yet)`,
      );
    });
  return program;
}

/** Runs the command line; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
}
