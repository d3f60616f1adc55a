import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger, parseLogFormat, parseLogLevel } from './logger.js';
import { InvalidTelemetryOptionError } from './errors.js';

/** A destination that keeps every line written to it. */
function capture(isTTY = false): { lines: string[]; write(s: string): void; isTTY: boolean } {
  const lines: string[] = [];
  return { lines, isTTY, write: (s: string) => void lines.push(s) };
}

describe('createLogger', () => {
  it('writes one JSON object per line with level name, ISO time, pid, hostname and msg', () => {
    const out = capture();
    const logger = createLogger({ destination: out, format: 'json', base: { node: 'n1' } });
    logger.info({ addr: '127.0.0.1:8400' }, 'listening');
    assert.equal(out.lines.length, 1);
    const line = out.lines[0] ?? '';
    assert.ok(line.endsWith('\n'));
    const entry = JSON.parse(line) as Record<string, unknown>;
    assert.equal(entry.level, 'info');
    assert.equal(entry.msg, 'listening');
    assert.equal(entry.addr, '127.0.0.1:8400');
    assert.equal(entry.node, 'n1');
    assert.equal(entry.pid, process.pid);
    assert.equal(typeof entry.hostname, 'string');
    assert.match(String(entry.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('child loggers add their component to every line', () => {
    const out = capture();
    const logger = createLogger({ destination: out, format: 'json' });
    logger.child({ component: 'server' }).warn('slow');
    const entry = JSON.parse(out.lines[0] ?? '') as Record<string, unknown>;
    assert.equal(entry.component, 'server');
    assert.equal(entry.level, 'warn');
  });

  it('drops lines below the level', () => {
    const out = capture();
    const logger = createLogger({ destination: out, format: 'json', level: 'warn' });
    logger.info('hidden');
    logger.debug('hidden');
    logger.error('shown');
    assert.equal(out.lines.length, 1);
    assert.equal((JSON.parse(out.lines[0] ?? '') as { msg: string }).msg, 'shown');
  });

  it('serializes errors under err with type, message and stack', () => {
    const out = capture();
    const logger = createLogger({ destination: out, format: 'json' });
    logger.error({ err: new RangeError('boom') }, 'failed');
    const entry = JSON.parse(out.lines[0] ?? '') as { err: Record<string, string> };
    assert.equal(entry.err.type, 'RangeError');
    assert.equal(entry.err.message, 'boom');
    assert.match(entry.err.stack ?? '', /RangeError: boom/);
  });

  it('is pretty (not JSON) on a terminal in auto format, and when asked', () => {
    for (const [format, tty] of [
      ['auto', true],
      ['pretty', false],
    ] as const) {
      const out = capture(tty);
      createLogger({ destination: out, format }).info({ addr: 'x:1' }, 'listening');
      const text = out.lines.join('');
      assert.throws(() => JSON.parse(text) as unknown, SyntaxError);
      assert.match(text, /INFO/);
      assert.match(text, /listening/);
      assert.match(text, /addr/);
    }
  });

  it('stays JSON on a terminal when json is asked for', () => {
    const out = capture(true);
    createLogger({ destination: out, format: 'json' }).info('plain');
    assert.equal((JSON.parse(out.lines[0] ?? '') as { msg: string }).msg, 'plain');
  });
});

describe('option parsing', () => {
  it('accepts levels and formats case-insensitively', () => {
    assert.equal(parseLogLevel('DEBUG'), 'debug');
    assert.equal(parseLogFormat('Pretty'), 'pretty');
  });

  it('names the option and the allowed values', () => {
    assert.throws(
      () => parseLogLevel('verbose'),
      (err: unknown) =>
        err instanceof InvalidTelemetryOptionError &&
        err.option === 'log-level' &&
        /verbose/.test(err.message) &&
        /debug/.test(err.message),
    );
    assert.throws(() => parseLogFormat('xml'), InvalidTelemetryOptionError);
  });
});
