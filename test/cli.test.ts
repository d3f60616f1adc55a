// End to end: `commitlog agent` as a real process, driven by `commitlog produce`,
// `consume` and `servers`; then stopped with SIGTERM, restarted, and read again.
import assert from 'node:assert/strict';
import { appendFile, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { CONFIG_ROWS, defaultText, envName, VERSION } from '../src/agent/index.js';
import { buildProgram } from '../src/cli/index.js';
import { runCli, spawnAgent, type AgentProcess } from './support/agent-process.js';
import { tempDir } from './support/node.js';
import { within } from './support/wait.js';

/** Starts `commitlog agent` on free ports and waits for its start-up line. */
function startAgent(dataDir: string): Promise<AgentProcess> {
  return spawnAgent([
    '--data-dir',
    dataDir,
    '--rpc-port',
    '0',
    '--http-port',
    '0',
    '--node-name',
    'e2e',
  ]);
}

async function stopAgent(agent: AgentProcess): Promise<number | null> {
  return within(8000, 'agent exits after SIGTERM', agent.stop('SIGTERM'));
}

const cli = (args: string[], input?: string, ms?: number) =>
  runCli(args, { input, ...(ms !== undefined && { ms }) });

describe('commitlog CLI end to end', () => {
  let dir: string;
  let agent: AgentProcess;

  before(async () => {
    dir = await tempDir('cli');
    agent = await startAgent(dir);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('produces from arguments and from stdin lines, printing offsets', async () => {
    const args = await cli(['produce', '--addr', agent.rpcAddr, 'hello', 'world']);
    assert.equal(args.code, 0, args.stderr);
    assert.equal(args.stdout, '0\n1\n');
    const stdin = await cli(['produce', '--addr', agent.rpcAddr], 'line a\nline b\n');
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.equal(stdin.stdout, '2\n3\n');
  });

  it('consumes to the end, from an offset, a count, and as JSON', async () => {
    const all = await cli(['consume', '--addr', agent.rpcAddr]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, 'hello\nworld\nline a\nline b\n');
    const some = await cli([
      'consume',
      '--addr',
      agent.rpcAddr,
      '--offset',
      '1',
      '--count',
      '2',
      '--json',
    ]);
    assert.equal(some.code, 0, some.stderr);
    assert.deepEqual(
      some.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
      [
        { offset: 1, value: Buffer.from('world').toString('base64') },
        { offset: 2, value: Buffer.from('line a').toString('base64') },
      ],
    );
  });

  it('follows new records with --follow', async () => {
    const following = cli([
      'consume',
      '--addr',
      agent.rpcAddr,
      '--offset',
      '3',
      '--follow',
      '--count',
      '2',
    ]);
    const produced = await cli(['produce', '--addr', agent.rpcAddr, 'later']);
    assert.equal(produced.stdout, '4\n');
    const res = await following;
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'line b\nlater\n');
  });

  it('lists the node as leader with servers', async () => {
    const res = await cli(['servers', '--addr', agent.rpcAddr]);
    assert.equal(res.code, 0, res.stderr);
    // Name, address, role, suffrage, lag, and the Raft id (the name and a suffix made
    // once per data directory).
    assert.match(
      res.stdout,
      new RegExp(`^e2e\\t${agent.rpcAddr}\\tleader\\tvoter\\tlag 0\\te2e\\.[0-9a-f]{12}\\n$`),
    );
  });

  it('exits 0 on SIGTERM and serves the same records after a restart', async () => {
    assert.equal(await stopAgent(agent), 0, agent.stderr());
    agent = await startAgent(dir);
    const res = await cli(['consume', '--addr', agent.rpcAddr]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'hello\nworld\nline a\nline b\nlater\n');
    const next = await cli(['produce', '--addr', agent.rpcAddr, 'after restart']);
    assert.equal(next.stdout, '5\n');
    assert.equal(await stopAgent(agent), 0, agent.stderr());
  });
});

describe('commitlog repair', () => {
  it('names itself when a segment is damaged, shows its plan, cuts, and the node starts', async () => {
    const dir = await tempDir('cli-repair');
    try {
      const flags = ['--data-dir', dir, '--rpc-port', '0', '--http-port', '0'];
      let node = await spawnAgent([...flags, '--segment-max-bytes', '1024']);
      const values = Array.from({ length: 60 }, (_, i) => `record-${i}-${'x'.repeat(40)}`);
      const produced = await cli(['produce', '--addr', node.rpcAddr, ...values]);
      assert.equal(produced.code, 0, produced.stderr);
      assert.equal(await stopAgent(node), 0, node.stderr());
      // Damage a sealed segment of the replicated log: its index gone, a byte flipped.
      const logDir = join(dir, 'groups', 'default', 'log');
      const stores = (await readdir(logDir)).filter((f) => f.endsWith('.store')).sort();
      assert.ok(stores.length >= 3, `segments: ${stores.join(' ')}`);
      const damaged = join(logDir, stores[1] as string);
      await rm(damaged.replace(/\.store$/, '.index'));
      const bytes = await readFile(damaged);
      bytes[20] = (bytes[20] as number) ^ 0x40;
      await writeFile(damaged, bytes);

      const refused = await cli(['agent', ...flags, '--bind-addr', '127.0.0.1:0']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /corrupt segment file .*\.store/);
      assert.ok(
        refused.stderr.includes(`commitlog repair ${dir} --dry-run`),
        `the refusal names the repair command:\n${refused.stderr}`,
      );

      const dry = await cli(['repair', dir, '--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(
        dry.stdout,
        new RegExp(`cut: ${damaged.replace(/[.]/g, '\\.')} truncated to \\d+ bytes`),
      );
      assert.match(dry.stdout, /Raft log entries from index \d+ on are dropped/);
      assert.match(dry.stdout, /dry run: nothing changed/);
      const again = await cli(['agent', ...flags, '--bind-addr', '127.0.0.1:0']);
      assert.equal(again.code, 1, 'the dry run changed nothing');

      const repaired = await cli(['repair', dir]);
      assert.equal(repaired.code, 0, repaired.stderr);
      assert.match(repaired.stdout, /repaired: the log opens/);
      // A torn tail on top: the warning names the entries it drops.
      const last = (await readdir(logDir))
        .filter((f) => f.endsWith('.store'))
        .sort()
        .at(-1);
      await appendFile(
        join(logDir, last as string),
        Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
      );
      node = await spawnAgent(flags);
      await node.logged(
        /log recovered from an unclean shutdown: cut 11 bytes off .*\.store at byte \d+: Raft log entries from index \d+ on dropped \(torn tail/,
      );
      const read = await cli(['consume', '--addr', node.rpcAddr]);
      assert.equal(read.code, 0, read.stderr);
      const kept = read.stdout.split('\n').filter((l) => l !== '');
      assert.ok(kept.length > 0 && kept.length < values.length, `kept ${kept.length}`);
      assert.deepEqual(kept, values.slice(0, kept.length));
      assert.equal(await stopAgent(node), 0, node.stderr());
      const clean = await cli(['repair', dir, '--dry-run']);
      assert.match(clean.stdout, /nothing to repair/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('commitlog client TLS errors say what to do', () => {
  let dir: string;
  let tlsNode: AgentProcess;
  let plainNode: AgentProcess;
  const files = (set: string, who: string) => [
    '--ca-file',
    join(dir, set, 'ca.pem'),
    '--cert-file',
    join(dir, set, `${who}-client.pem`),
    '--key-file',
    join(dir, set, `${who}-client-key.pem`),
  ];

  before(async () => {
    dir = await tempDir('cli-tls');
    for (const set of ['certs', 'other']) {
      const made = await cli(['cert', 'init', '--dir', join(dir, set)]);
      assert.equal(made.code, 0, made.stderr);
    }
    const certs = join(dir, 'certs');
    tlsNode = await spawnAgent([
      ...['--data-dir', join(dir, 'tls'), '--rpc-port', '0', '--http-port', '0'],
      ...['--server-tls-cert-file', join(certs, 'server.pem')],
      ...['--server-tls-key-file', join(certs, 'server-key.pem')],
      ...['--server-tls-ca-file', join(certs, 'ca.pem')],
      ...['--acl-model-file', join(certs, 'model.conf')],
      ...['--acl-policy-file', join(certs, 'policy.csv')],
    ]);
    plainNode = await spawnAgent([
      '--data-dir',
      join(dir, 'plain'),
      '--rpc-port',
      '0',
      '--http-port',
      '0',
    ]);
  });
  after(async () => {
    await Promise.all([tlsNode?.stop(), plainNode?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('root with the right files produces', async () => {
    const res = await cli(['produce', '--addr', tlsNode.rpcAddr, ...files('certs', 'root'), 'x']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '', 'no warning either');
  });

  it('a plaintext client against a TLS node: pass --ca-file', async () => {
    const res = await cli(['produce', '--addr', tlsNode.rpcAddr, 'x'], undefined, 5000);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /speaks TLS and this client does not: pass --ca-file/);
  });

  it('a --ca-file that is not PEM: exit 2 naming the file', async () => {
    const bad = join(dir, 'bad.pem');
    await writeFile(bad, 'hello\n');
    const res = await cli(['produce', '--addr', tlsNode.rpcAddr, '--ca-file', bad, 'x']);
    assert.equal(res.code, 2);
    assert.ok(res.stderr.includes(`ca-file: ${bad} is not a PEM certificate`), res.stderr);
  });

  it("another CA than the node's: says the CA did not sign the node's certificate", async () => {
    const res = await cli(
      ['produce', '--addr', tlsNode.rpcAddr, ...files('other', 'root'), 'x'],
      undefined,
      5000,
    );
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /has a certificate not signed by the CA in --ca-file .*other\/ca\.pem/,
    );
  });

  it('a refused identity keeps the PERMISSION_DENIED: prefix', async () => {
    const res = await cli(
      ['produce', '--addr', tlsNode.rpcAddr, ...files('certs', 'nobody'), 'x'],
      undefined,
      5000,
    );
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^PERMISSION_DENIED: nobody is not permitted to /);
  });

  it('a TLS client against a plaintext node: drop the TLS flags', async () => {
    const res = await cli(
      ['produce', '--addr', plainNode.rpcAddr, ...files('certs', 'root'), 'x'],
      undefined,
      5000,
    );
    assert.equal(res.code, 1);
    assert.match(res.stderr, /does not speak TLS: drop --ca-file/);
  });
});

describe('commitlog agent configuration errors', () => {
  it('refuses an unknown config-file key, naming it (exit 2)', async () => {
    const dir = await tempDir('cli-config');
    try {
      const file = join(dir, 'agent.yaml');
      await writeFile(file, 'data-dir: ./x\nrpc_port: 9000\n');
      const res = await cli(['agent', '--config-file', file]);
      assert.equal(res.code, 2);
      assert.match(res.stderr, /rpc_port: unknown key in config file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad flag value, naming the key (exit 2)', async () => {
    const res = await cli(['agent', '--rpc-port', 'eighty']);
    assert.equal(res.code, 2);
    assert.match(
      res.stderr,
      /rpc-port: must be an integer from 0 to 65535, got "eighty" \(from flag --rpc-port\)/,
    );
  });
});

describe('commitlog client usage errors', () => {
  it('refuses a bad option of a client command, naming it (exit 2)', async () => {
    const count = await cli(['consume', '--count', 'some']);
    assert.equal(count.code, 2);
    assert.match(count.stderr, /count: must be a non-negative integer, got some/);
    const tls = await cli(['produce', '--cert-file', 'a.pem', 'x']);
    assert.equal(tls.code, 2);
    assert.match(tls.stderr, /key-file: --cert-file and --key-file go together/);
  });

  it('shows each key with its default and environment variable, from the config rows', () => {
    const agent = buildProgram().commands.find((c) => c.name() === 'agent');
    assert.ok(agent);
    const help = agent.helpInformation().replace(/\s+/g, ' ');
    for (const row of CONFIG_ROWS) {
      assert.ok(help.includes(`env ${envName(row.key)}`), `${row.key} in ${help}`);
      const shown = defaultText(row);
      if (shown !== undefined) assert.ok(help.includes(`default: ${shown}`), `${row.key} default`);
    }
    assert.ok(help.includes('default: 8400; env COMMITLOG_RPC_PORT'));
  });

  it('prints the package version', async () => {
    const res = await cli(['--version']);
    assert.equal(res.stdout.trim(), VERSION);
  });
});

describe('commitlog --help', () => {
  const expected: [string[], string[]][] = [
    [[], ['agent', 'produce', 'consume', 'servers', 'cert', 'bench', 'dev-cluster', 'repair']],
    [['repair'], ['<dir>', '--dry-run', 'the node must be stopped']],
    [['cert'], ['init', 'server', 'client']],
    [
      ['agent'],
      [
        '--config-file',
        '--data-dir',
        '--node-name',
        '--bind-addr',
        '--rpc-port',
        '--http-port',
        '--start-join-addrs',
        '--bootstrap',
        '--acl-model-file',
        '--acl-policy-file',
        '--server-tls-cert-file',
        '--server-tls-key-file',
        '--server-tls-ca-file',
        '--peer-tls-cert-file',
        '--peer-tls-key-file',
        '--peer-tls-ca-file',
        '--fsync',
        '--segment-max-bytes',
        '--log-level',
        '--log-format',
        '--no-metrics',
        '--otlp-endpoint',
        '--trace-file',
        '--trace-sample-ratio',
        '--insecure',
        'COMMITLOG_DATA_DIR',
        'docs/observability.md',
      ],
    ],
    [['produce'], ['--addr', '--ca-file', '--cert-file', '--key-file', 'stdin']],
    [['consume'], ['--addr', '--offset', '--count', '--follow', '--json', '--ca-file']],
    [['servers'], ['--addr', '--ca-file', '--cert-file', '--key-file']],
  ];
  /** Every command of the tree with its path, the root first. */
  function everyCommand(): { path: string; help: string }[] {
    const out: { path: string; help: string }[] = [];
    const walk = (c: ReturnType<typeof buildProgram>, path: string[]) => {
      // The text added with addHelpText('after') is part of what --help prints.
      let after = '';
      c.configureOutput({ writeOut: (t) => (after += t), writeErr: () => {} });
      c.exitOverride();
      try {
        c.outputHelp();
      } catch {
        // outputHelp does not throw; exitOverride only keeps it from exiting
      }
      out.push({ path: path.join(' '), help: after });
      for (const sub of c.commands) walk(sub, [...path, sub.name()]);
    };
    walk(buildProgram(), []);
    return out;
  }

  it('every --help states the exit codes once, and no default twice', () => {
    for (const { path, help } of everyCommand()) {
      assert.equal(help.match(/Exit codes:/g)?.length, 1, `commitlog ${path} --help`);
      // One option's entry: its line and the wrapped lines under it.
      const entries = help.split(/\n(?=\s{2}-)/).map((e) => e.split('\n\n')[0] ?? '');
      for (const entry of entries) {
        // Commander's "(default: …)" beside a default the help text already gives.
        const generated = /\(default:/.test(entry);
        assert.ok(
          !generated || (entry.match(/default/gi)?.length ?? 0) <= 1,
          `commitlog ${path} --help prints a default twice:\n${entry}`,
        );
      }
    }
  });

  it('bench consume --help speaks of its own options only', () => {
    const consume = everyCommand().find((c) => c.path === 'bench consume');
    assert.ok(consume);
    for (const other of ['--size', '--inflight', 'Produced records']) {
      assert.ok(!consume.help.includes(other), `${other} in:\n${consume.help}`);
    }
    // --count's default is said once, in its own line.
    assert.equal(consume.help.match(/100[,]?000/g)?.length, 1, consume.help);
  });

  for (const [command, words] of expected) {
    it(`commitlog ${command.join(' ')} --help lists ${words.length} options`, async () => {
      // The agent's help runs as a process once; the others are read in-process (faster).
      let text: string;
      if (command[0] === 'agent') {
        const res = await cli([...command, '--help']);
        assert.equal(res.code, 0, res.stderr);
        text = res.stdout;
      } else {
        const program = buildProgram();
        const sub = program.commands.find((c) => c.name() === command[0]) ?? program;
        text = sub.helpInformation();
      }
      for (const word of words) assert.ok(text.includes(word), `${word} in:\n${text}`);
    });
  }
});
