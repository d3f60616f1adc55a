import { createInterface } from 'node:readline';

import { Command, CommanderError, Option } from 'commander';

import {
  Agent,
  guardHttp2StreamRaces,
  isLogDamage,
  CONFIG_KEYS,
  CONFIG_ROWS,
  ConfigError,
  defaultText,
  envName,
  resolveConfig,
  VERSION,
  type ConfigKey,
} from '../agent/index.js';
import { loadTlsMaterial } from '../auth/index.js';
import { connect as connectSdk, tlsFromFiles, type CommitLog } from '../client/index.js';
import { registerCertCommands } from './cert.js';
import { addBenchCommand } from './bench/command.js';
import { registerDevClusterCommand } from './dev-cluster.js';
import { ensureDataDir } from './data-dir.js';
import { DamagedLogError, NodeFailedError, UsageError } from './errors.js';
import { registerRepairCommand } from './repair.js';
import { CannotConnectError, checkCaFile, diagnoseConnection } from './tls-diagnosis.js';

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** A key's flag in --help, from its configuration row: help, default and variable. */
function agentOption(row: (typeof CONFIG_ROWS)[number]): Option {
  const shown = defaultText(row);
  const notes = [...(shown !== undefined ? [`default: ${shown}`] : []), `env ${envName(row.key)}`];
  const help = `${row.help} (${notes.join('; ')})`;
  if (row.arg !== undefined) return new Option(`--${row.key} ${row.arg}`, help);
  return new Option(row.negatable ? `--no-${row.key}` : `--${row.key}`, help);
}

async function runAgent(command: Command): Promise<void> {
  const opts = command.opts<Record<string, string | boolean | undefined>>();
  const flags: Partial<Record<ConfigKey | 'config-file', string | boolean>> = {};
  for (const key of [...CONFIG_KEYS, 'config-file' as const]) {
    // commander fills in `true` for a --no-<key> flag that was not given; only what
    // the user typed may override the environment and the config file.
    if (command.getOptionValueSource(camel(key)) !== 'cli') continue;
    const value = opts[camel(key)];
    if (value !== undefined) flags[key] = value;
  }
  const config = await resolveConfig({ flags, env: process.env });
  await ensureDataDir(config.dataDir); // a path that cannot be made: exit 2 naming it
  // Logs go to stdout; the agent's start-up lines name every address and the data directory.
  const agent = await Agent.start(config).catch((err: unknown) => {
    throw isLogDamage(err) ? new DamagedLogError(config.dataDir, { cause: err }) : err;
  });
  // A grpc-js race on destroyed HTTP/2 streams must not take the node down.
  guardHttp2StreamRaces(agent.logger);
  // The start-up line on stderr too, whatever the log level or format: scripts and
  // tests wait for it (its form: parseStartupLine).
  process.stderr.write(`${agent.startupLine}\n`);
  // SIGHUP reloads the ACL policy and the TLS certificates; connections stay up.
  const reload = () => {
    agent.reloadAcl().then(
      ({ rules }) => agent.logger.info({ rules, signal: 'SIGHUP' }, 'ACL policy reloaded'),
      (err: unknown) =>
        agent.logger.error({ err }, 'ACL policy reload failed; the previous policy stays in force'),
    );
    // reloadTls logs its outcome itself, failures included.
    agent.reloadTls().catch(() => undefined);
  };
  process.on('SIGHUP', reload);
  // Runs until a signal, or until a failure the node cannot recover from in place.
  let onSignal!: (signal: NodeJS.Signals) => void;
  const stop = await new Promise<{ signal: NodeJS.Signals } | { failure: Error }>((resolve) => {
    onSignal = (signal) => resolve({ signal });
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    void agent.failure.then((failure) => resolve({ failure }));
  });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', reload);
  agent.logger.info('signal' in stop ? { signal: stop.signal } : {}, 'shutting down');
  // A second signal while draining means "now".
  const force = () => process.exit(1);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  if (!('failure' in stop)) return agent.shutdown();
  // Closing a log on a full disk may fail too; the failure that stopped the node is what
  // the operator must see.
  const closed = agent.shutdown().catch((err: unknown) => {
    agent.logger.error({ err }, 'closing after the failure failed as well');
  });
  // Bounded: the process exits once this throws, whatever is still open.
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  throw new NodeFailedError(stop.failure);
}

interface ClientFlags {
  addr: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** Checks the client's TLS files up front, so a mistake names the file. */
async function checkClientTls(flags: ClientFlags): Promise<void> {
  const { caFile, certFile, keyFile } = flags;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError(
      certFile === undefined ? 'cert-file' : 'key-file',
      '--cert-file and --key-file go together',
    );
  }
  if (certFile === undefined || keyFile === undefined) return;
  if (caFile === undefined) {
    throw new UsageError('ca-file', 'mutual TLS needs --ca-file to verify the server');
  }
  await loadTlsMaterial({ certFile, keyFile, caFile });
}

/**
 * The SDK, connected to the members `--addr` names (a list, or commitlog://…). A probe
 * of the first address first looks for a mistake it can name (TLS on one side only,
 * the wrong CA, a refused identity): one TLS handshake and one call, so that a named
 * mistake fails at once instead of after the SDK's connect timeout.
 */
async function connect(flags: ClientFlags): Promise<CommitLog> {
  if (flags.caFile !== undefined) await checkCaFile(flags.caFile);
  await checkClientTls(flags);
  const problem = await diagnoseConnection(flags).catch(() => undefined);
  if (problem !== undefined) throw new CannotConnectError(problem);
  const tls = tlsFromFiles(flags);
  return connectSdk(flags.addr, tls ? { tls } : {});
}

function clientOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--addr <addrs>',
        'RPC address of any node, or several (a,b,c or commitlog://a,b,c): the client finds the leader',
      )
        .env('COMMITLOG_ADDR')
        .default('127.0.0.1:8400'),
    )
    .option('--ca-file <file>', 'CA certificate to verify the server (enables TLS)')
    .option('--cert-file <file>', 'client certificate (mutual TLS; its CN is your ACL subject)')
    .option('--key-file <file>', 'private key of --cert-file');
}

async function* stdinLines(): AsyncGenerator<Buffer> {
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    yield Buffer.from(line, 'utf8');
  }
}

/** Offsets and counts are unsigned 64-bit on the wire. */
const MAX_U64 = (1n << 64n) - 1n;

function parseCount(text: string, name: string): bigint {
  if (!/^[0-9]+$/.test(text))
    throw new UsageError(name, `must be a non-negative integer, got ${text}`);
  const n = BigInt(text);
  if (n > MAX_U64) throw new UsageError(name, `must be at most 2^64-1 (${MAX_U64}), got ${text}`);
  return n;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function printRecord(record: { offset: bigint; value: Buffer }, json: boolean): void {
  if (json) {
    console.log(
      `{"offset":${record.offset},"value":${JSON.stringify(record.value.toString('base64'))}}`,
    );
  } else {
    console.log(record.value.toString('utf8'));
  }
}

/** Builds the `commitlog` command tree. Exported for tests and `--help` checks. */
export function buildProgram(): Command {
  const program = new Command('commitlog')
    .description('A distributed commit log: append records, read them by offset, stream them live.')
    .version(VERSION)
    .showHelpAfterError();

  const agent = program
    .command('agent')
    .description(
      'run a node (single-node defaults: data in ./data, gRPC 127.0.0.1:8400, HTTP 127.0.0.1:8080)',
    )
    .option(
      '--config-file <file>',
      'YAML or JSON file with the same keys as the flags (e.g. data-dir: /var/lib/commitlog)',
    );
  for (const row of CONFIG_ROWS) agent.addOption(agentOption(row));
  agent.addHelpText(
    'after',
    `
Precedence: flags > environment > config file > defaults. Every key has an
environment variable: ${envName('data-dir')}, ${envName('rpc-port')}, … (${envName('config-file')} too).
Unknown config-file keys and bad values are errors that name the key.
SIGINT/SIGTERM: stop accepting, finish in-flight calls (up to 5 s), close the log, exit 0.
A storage failure while running (a full disk, an I/O error) stops Raft; the node then
shuts down the same way and exits 1, so a supervisor restarts it from its data.
The start-up line ("commitlog agent <name>: gRPC on …, HTTP on …, data in …") is also
written to stderr, whatever the log level.
Logs are JSON lines on stdout (pretty on a terminal); metrics, traces and every log
field are described in docs/observability.md.`,
  );
  agent.action((_opts: unknown, command: Command) => runAgent(command));

  clientOptions(
    program
      .command('produce')
      .description('append records: each argument is one record, or each line of stdin when none')
      .argument('[values...]', 'record values (UTF-8 text)'),
  ).action(async (values: string[], flags: ClientFlags) => {
    const log = await connect(flags);
    const producer = log.producer({ lingerMs: 5 });
    try {
      const input = values.length > 0 ? values.map((v) => Buffer.from(v, 'utf8')) : stdinLines();
      for await (const offset of producer.sendAll(input)) console.log(offset.toString());
    } finally {
      await producer.close();
      log.close();
    }
  });

  clientOptions(
    program
      .command('consume')
      .description('print records from an offset, one per line (UTF-8 text, or JSON with --json)')
      .option('--offset <n>', 'first offset to read', '0')
      .option('--count <k>', 'stop after k records')
      .option('--follow', 'keep waiting for new records (until Ctrl-C or --count)')
      .option('--json', 'print {"offset":N,"value":"<base64>"} lines'),
  ).action(
    async (
      flags: ClientFlags & { offset: string; count?: string; follow?: boolean; json?: boolean },
    ) => {
      const from = parseCount(flags.offset, 'offset');
      const count = flags.count === undefined ? undefined : parseCount(flags.count, 'count');
      if (count === 0n) return;
      const log = await connect(flags);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      try {
        // Without --follow: the records there now (one stream, not a call per record).
        const to = flags.follow ? undefined : await log.endOffset(from);
        const end =
          count === undefined ? to : to === undefined ? from + count : min(to, from + count);
        if (end !== undefined && end <= from) return;
        const records = log.consume({
          from,
          signal: stop.signal,
          ...(end !== undefined ? { to: end } : {}),
        });
        let printed = 0n;
        for await (const record of records) {
          printRecord(record, flags.json ?? false);
          if (++printed === count) break;
        }
      } finally {
        process.off('SIGINT', onSignal);
        log.close();
      }
    },
  );

  const servers = clientOptions(
    program
      .command('servers')
      .description(
        "list the cluster's members: name, RPC address, leader or follower, voter or learner, " +
          'lag behind the leader (in entries), Raft id',
      ),
  ).action(async (flags: ClientFlags) => {
    const log = await connect(flags);
    try {
      for (const s of await log.servers()) {
        const columns = [s.id, s.rpcAddr, s.isLeader ? 'leader' : 'follower'];
        if (s.suffrage) columns.push(s.suffrage);
        if (s.lag !== undefined) columns.push(`lag ${s.lag}`);
        if (s.raftId) columns.push(s.raftId);
        console.log(columns.join('\t'));
      }
    } finally {
      log.close();
    }
  });
  clientOptions(
    servers
      .command('remove')
      .description(
        "remove a member from the configuration (one that died for good, or a wiped node's old id); " +
          'ID is its Raft id, or a name only one member has',
      )
      .argument('<id>', 'Raft id or node name'),
  ).action(async (id: string, _flags: ClientFlags, command: Command) => {
    // `servers` takes the same client options: whichever level they were given at.
    const log = await connect(command.optsWithGlobals<ClientFlags>());
    try {
      console.log(`removed ${await log.removeServer(id)}`);
    } finally {
      log.close();
    }
  });
  registerCertCommands(program);
  addBenchCommand(program);
  registerDevClusterCommand(program);
  registerRepairCommand(program);
  for (const command of allCommands(program)) command.addHelpText('after', EXIT_CODES_HELP);
  return program;
}

/** What every --help ends with. */
export const EXIT_CODES_HELP = `
Exit codes: 0 done; 1 failed (the node refused, could not be reached, or stopped
with an error); 2 usage error (unknown command or option, missing or bad value).`;

/** Commander's refusals of the command line itself: usage errors, exit code 2. */
const NOT_USAGE = new Set(['commander.helpDisplayed', 'commander.version', 'commander.help']);

/** Every command of the tree, the root first. */
function allCommands(root: Command): Command[] {
  return [root, ...root.commands.flatMap((c) => allCommands(c))];
}

/** Runs the command line; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  // Commander exits the process itself for errors in subcommands unless each command
  // overrides it; the override makes them errors that map to the documented codes.
  for (const command of allCommands(program)) command.exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return NOT_USAGE.has(err.code) ? err.exitCode : 2;
    if (err instanceof ConfigError || err instanceof UsageError) {
      console.error(`commitlog: ${err.message}`);
      return 2;
    }
    throw err;
  }
}
