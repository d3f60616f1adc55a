import { createInterface } from 'node:readline';

import { Command, CommanderError, Option } from 'commander';

import {
  Agent,
  CONFIG_KEYS,
  ConfigError,
  envName,
  resolveConfig,
  type ConfigKey,
  type LogLevel,
} from '../agent/index.js';
import { channelCredentials, CommitLogClient, OffsetOutOfRangeError } from '../client/index.js';
import { addBenchCommand } from './bench/command.js';

/** The agent's flags: config key, argument, help. Booleans take no argument. */
const AGENT_FLAGS: [ConfigKey, string, string][] = [
  ['data-dir', '<dir>', 'where the log lives (default ./data)'],
  ['node-name', '<name>', "this node's unique id in the cluster (default: the host name)"],
  [
    'bind-addr',
    '<host:port>',
    'gossip address (default 127.0.0.1:8401); its host is where gRPC and HTTP listen too',
  ],
  ['rpc-port', '<port>', 'gRPC port on the bind host (default 8400; 0 picks a free port)'],
  [
    'http-port',
    '<port>',
    'HTTP/JSON API port on the bind host (default 8080; 0 picks a free port)',
  ],
  [
    'start-join-addrs',
    '<addrs>',
    'comma-separated gossip addresses of nodes to join (clustering: coming; accepted and ignored)',
  ],
  [
    'bootstrap',
    '',
    'start a new cluster with this node (implied when no join addresses are given)',
  ],
  ['acl-model-file', '<file>', 'Casbin ACL model (coming with ACLs; refused for now)'],
  ['acl-policy-file', '<file>', 'Casbin ACL policy (coming with ACLs; refused for now)'],
  ['server-tls-cert-file', '<file>', 'server certificate (coming with TLS; refused for now)'],
  ['server-tls-key-file', '<file>', 'server private key (coming with TLS; refused for now)'],
  ['server-tls-ca-file', '<file>', 'CA that signs client certificates (coming with TLS)'],
  ['peer-tls-cert-file', '<file>', 'certificate for talking to peers (coming with TLS)'],
  ['peer-tls-key-file', '<file>', 'private key for talking to peers (coming with TLS)'],
  ['peer-tls-ca-file', '<file>', "CA that signs peers' certificates (coming with TLS)"],
  ['fsync', '<policy>', 'always | never | interval:<ms> (default always, with group commit)'],
  ['segment-max-bytes', '<n>', 'roll to a new segment past this size (default 67108864)'],
  ['log-level', '<level>', 'debug | info | warn | error | silent (default info)'],
  ['insecure', '', 'allow binding a non-loopback address without TLS'],
];

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** JSON lines on stderr, pino's call shape, until structured logging lands. */
function stderrLogger(level: LogLevel) {
  const at = (name: Exclude<LogLevel, 'silent'>) => (fields: object, message: string) => {
    if (LEVELS[name] < LEVELS[level]) return;
    const fieldsJson = JSON.stringify(fields, (_k, v: unknown) =>
      typeof v === 'bigint'
        ? v.toString()
        : v instanceof Error
          ? { name: v.name, message: v.message }
          : v,
    );
    process.stderr.write(
      `{"level":"${name}","time":"${new Date().toISOString()}","msg":${JSON.stringify(message)},"fields":${fieldsJson}}\n`,
    );
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

async function runAgent(opts: Record<string, string | boolean | undefined>): Promise<void> {
  const flags: Partial<Record<ConfigKey | 'config-file', string | boolean>> = {};
  for (const key of [...CONFIG_KEYS, 'config-file' as const]) {
    const value = opts[camel(key)];
    if (value !== undefined) flags[key] = value;
  }
  const config = await resolveConfig({ flags, env: process.env });
  const logger = stderrLogger(config.logLevel);
  const agent = await Agent.start(config, { logger });
  console.log(
    `commitlog agent ${config.nodeName}: gRPC on ${agent.rpcAddr}, HTTP on http://${agent.httpAddr}, data in ${config.dataDir}`,
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  logger.info({ signal }, 'shutting down');
  // A second signal while draining means "now".
  const force = () => process.exit(1);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  await agent.shutdown();
  logger.info({}, 'stopped');
}

interface ClientFlags {
  addr: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

async function connect(flags: ClientFlags): Promise<CommitLogClient> {
  return new CommitLogClient(flags.addr, { credentials: await channelCredentials(flags) });
}

function clientOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--addr <host:port>', 'RPC address of any node')
        .env('COMMITLOG_ADDR')
        .default('127.0.0.1:8400'),
    )
    .option('--ca-file <file>', 'CA certificate to verify the server (enables TLS)')
    .option('--cert-file <file>', 'client certificate (mutual TLS)')
    .option('--key-file <file>', 'client private key (mutual TLS)');
}

async function* stdinLines(): AsyncGenerator<Buffer> {
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    yield Buffer.from(line, 'utf8');
  }
}

function parseCount(text: string, name: string): bigint {
  if (!/^[0-9]+$/.test(text))
    throw new ConfigError(name, `must be a non-negative integer, got ${text}`);
  return BigInt(text);
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
    .version('0.1.0')
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
  for (const [key, arg, help] of AGENT_FLAGS) {
    agent.option(arg ? `--${key} ${arg}` : `--${key}`, help);
  }
  agent.addHelpText(
    'after',
    `
Precedence: flags > environment > config file > defaults. Every key has an
environment variable: ${envName('data-dir')}, ${envName('rpc-port')}, … (${envName('config-file')} too).
Unknown config-file keys and bad values are errors that name the key.
SIGINT/SIGTERM: stop accepting, finish in-flight calls (up to 5 s), close the log, exit 0.`,
  );
  agent.action((opts: Record<string, string | boolean | undefined>) => runAgent(opts));

  clientOptions(
    program
      .command('produce')
      .description('append records: each argument is one record, or each line of stdin when none')
      .argument('[values...]', 'record values (UTF-8 text)'),
  ).action(async (values: string[], flags: ClientFlags) => {
    const client = await connect(flags);
    try {
      const input = values.length > 0 ? values.map((v) => Buffer.from(v, 'utf8')) : stdinLines();
      for await (const offset of client.produceStream(input)) console.log(offset.toString());
    } finally {
      client.close();
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
      let offset = parseCount(flags.offset, 'offset');
      const count = flags.count === undefined ? undefined : parseCount(flags.count, 'count');
      const client = await connect(flags);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      try {
        let printed = 0n;
        if (count === 0n) return;
        if (flags.follow) {
          for await (const record of client.consumeStream(offset, { signal: stop.signal })) {
            printRecord(record, flags.json ?? false);
            if (++printed === count) break;
          }
          return;
        }
        for (; count === undefined || printed < count; offset++, printed++) {
          try {
            printRecord(await client.consume(offset), flags.json ?? false);
          } catch (err) {
            if (err instanceof OffsetOutOfRangeError) break;
            throw err;
          }
        }
      } finally {
        process.off('SIGINT', onSignal);
        client.close();
      }
    },
  );

  clientOptions(
    program.command('servers').description("list the cluster's nodes and which one leads"),
  ).action(async (flags: ClientFlags) => {
    const client = await connect(flags);
    try {
      for (const s of await client.getServers()) {
        console.log(`${s.id}\t${s.rpcAddr}\t${s.isLeader ? 'leader' : 'follower'}`);
      }
    } finally {
      client.close();
    }
  });

  addBenchCommand(program);
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
    if (err instanceof ConfigError) {
      console.error(`commitlog: ${err.message}`);
      return 2;
    }
    throw err;
  }
}
