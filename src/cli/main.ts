import { createInterface } from 'node:readline';

import { Command, CommanderError, Option } from 'commander';

import {
  Agent,
  CONFIG_KEYS,
  ConfigError,
  envName,
  resolveConfig,
  type ConfigKey,
} from '../agent/index.js';
import { loadTlsMaterial } from '../auth/index.js';
import { channelCredentials, CommitLogClient, OffsetOutOfRangeError } from '../client/index.js';
import { registerCertCommands } from './cert.js';
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
  [
    'acl-model-file',
    '<file>',
    'Casbin ACL model (sub, obj, act); with --acl-policy-file, needs server TLS',
  ],
  [
    'acl-policy-file',
    '<file>',
    'Casbin ACL policy; without ACL files every client with a valid certificate is allowed. Reloaded on SIGHUP and when the files change',
  ],
  [
    'server-tls-cert-file',
    '<file>',
    'certificate for gRPC and HTTPS (PEM); with the key and CA files, turns on mutual TLS',
  ],
  ['server-tls-key-file', '<file>', 'private key of --server-tls-cert-file (PEM)'],
  [
    'server-tls-ca-file',
    '<file>',
    'CA that signs client certificates; clients must present one (PEM)',
  ],
  [
    'peer-tls-cert-file',
    '<file>',
    "this node's certificate towards other nodes (checked at start; used by clustering)",
  ],
  ['peer-tls-key-file', '<file>', 'private key of --peer-tls-cert-file (PEM)'],
  ['peer-tls-ca-file', '<file>', "CA that signs other nodes' certificates (PEM)"],
  ['fsync', '<policy>', 'always | never | interval:<ms> (default always, with group commit)'],
  ['segment-max-bytes', '<n>', 'roll to a new segment past this size (default 67108864)'],
  [
    'log-level',
    '<level>',
    'fatal | error | warn | info | debug | trace | silent (default info; successful requests are logged at debug)',
  ],
  [
    'log-format',
    '<format>',
    'json | pretty | auto (default auto: pretty when stdout is a terminal, JSON lines otherwise)',
  ],
  [
    'metrics',
    '',
    'turn off the Prometheus metrics on GET /metrics of the HTTP port (on by default)',
  ],
  [
    'otlp-endpoint',
    '<url>',
    'send trace spans to this OTLP/HTTP collector, e.g. http://localhost:4318 (tracing is off by default)',
  ],
  ['trace-file', '<path>', 'append trace spans to this file as JSON lines (turns tracing on)'],
  [
    'trace-sample-ratio',
    '<ratio>',
    "share of new traces recorded when tracing is on, 0 to 1 (default 1; a caller's choice is kept)",
  ],
  ['insecure', '', 'allow binding a non-loopback address without TLS (refused by default)'],
];

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** Flags on by default are offered as `--no-<key>`. */
const NEGATED_FLAGS: ReadonlySet<ConfigKey> = new Set<ConfigKey>(['metrics']);

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
  // Logs go to stdout; the agent's start-up lines name every address and the data directory.
  const agent = await Agent.start(config);
  // SIGHUP reloads the ACL policy; connections stay up.
  const reload = () => {
    agent.reloadAcl().then(
      ({ rules }) => agent.logger.info({ rules, signal: 'SIGHUP' }, 'ACL policy reloaded'),
      (err: unknown) =>
        agent.logger.error({ err }, 'ACL policy reload failed; the previous policy stays in force'),
    );
  };
  process.on('SIGHUP', reload);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.off('SIGHUP', reload);
  agent.logger.info({ signal }, 'shutting down');
  // A second signal while draining means "now".
  const force = () => process.exit(1);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  await agent.shutdown();
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
    throw new ConfigError(
      certFile === undefined ? 'cert-file' : 'key-file',
      '--cert-file and --key-file go together',
    );
  }
  if (certFile === undefined || keyFile === undefined) return;
  if (caFile === undefined) {
    throw new ConfigError('ca-file', 'mutual TLS needs --ca-file to verify the server');
  }
  await loadTlsMaterial({ certFile, keyFile, caFile });
}

async function connect(flags: ClientFlags): Promise<CommitLogClient> {
  await checkClientTls(flags);
  return new CommitLogClient(flags.addr, {
    credentials: await channelCredentials(flags, flags.addr),
  });
}

function clientOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--addr <host:port>', 'RPC address of any node')
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
    if (arg) agent.option(`--${key} ${arg}`, help);
    else agent.option(NEGATED_FLAGS.has(key) ? `--no-${key}` : `--${key}`, help);
  }
  agent.addHelpText(
    'after',
    `
Precedence: flags > environment > config file > defaults. Every key has an
environment variable: ${envName('data-dir')}, ${envName('rpc-port')}, … (${envName('config-file')} too).
Unknown config-file keys and bad values are errors that name the key.
SIGINT/SIGTERM: stop accepting, finish in-flight calls (up to 5 s), close the log, exit 0.
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
  registerCertCommands(program);
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
