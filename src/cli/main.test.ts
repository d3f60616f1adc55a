// Exit codes as documented: usage errors of the parser exit 2, like the CLI's own; every
// --help states the codes.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, mock } from 'node:test';

import { buildProgram, EXIT_CODES_HELP, main } from './main.js';

/** Runs `commitlog ...args` in-process with its output captured; resolves to the exit code. */
async function run(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const capture = (chunk: unknown) => {
    out += String(chunk);
    return true;
  };
  const writes = [
    mock.method(process.stdout, 'write', capture),
    mock.method(process.stderr, 'write', capture),
    mock.method(console, 'error', (...parts: unknown[]) => capture(`${parts.join(' ')}\n`)),
  ];
  try {
    return { code: await main(['node', 'commitlog', ...args]), out };
  } finally {
    for (const m of writes) m.mock.restore();
  }
}

describe('commitlog exit codes', () => {
  for (const [args, message] of [
    [['consume', '--bogus'], /unknown option '--bogus'/],
    [['nosuch'], /unknown command 'nosuch'/],
    [['cert', 'init'], /required option '--dir <dir>' not specified/],
    [
      ['cert', 'client', '--cn', 'a', '--ca-dir', '/nonexistent/x', '--days', '0'],
      /between 1 and 36500/,
    ],
    [['produce', '--addr'], /option '--addr <addrs>' argument missing/],
    [['consume', '--offset', String(2n ** 64n)], /offset: must be at most 2\^64-1/],
  ] as const) {
    it(`${args.join(' ')} is a usage error: exit 2 with a message`, async () => {
      const { code, out } = await run(...args);
      assert.equal(code, 2, out);
      assert.match(out, message);
    });
  }

  it('a --data-dir that cannot be made fails at once naming it (exit 2)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'commitlog-main-'));
    try {
      const file = join(dir, 'a-file');
      await writeFile(file, '');
      const under = await run('agent', '--data-dir', join(file, 'data'), '--rpc-port', '0');
      assert.equal(under.code, 2, under.out);
      assert.match(under.out, new RegExp(`data-dir: cannot use ${join(file, 'data')}: ENOTDIR`));
      // A recursive mkdir under /proc never returns: made level by level, it fails.
      const proc = await run('agent', '--data-dir', '/proc/commitlog-nope/data', '--rpc-port', '0');
      assert.equal(proc.code, 2, proc.out);
      assert.match(
        proc.out,
        /data-dir: cannot create \/proc\/commitlog-nope\/data: .*\/proc\/commitlog-nope/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--help and --version exit 0', async () => {
    assert.equal((await run('consume', '--help')).code, 0);
    assert.equal((await run('--version')).code, 0);
  });

  it('every --help states the exit codes', () => {
    const walk = (c: ReturnType<typeof buildProgram>): ReturnType<typeof buildProgram>[] => [
      c,
      ...c.commands.flatMap(walk),
    ];
    for (const command of walk(buildProgram())) {
      let help = '';
      command.configureOutput({ writeOut: (s) => (help += s) });
      command.outputHelp();
      assert.ok(help.includes(EXIT_CODES_HELP.trim()), `${command.name()} --help:\n${help}`);
      assert.equal(help.split('Exit codes:').length, 2, `${command.name()}: stated once`);
    }
  });
});
