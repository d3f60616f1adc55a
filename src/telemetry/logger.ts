import { hostname } from 'node:os';
import type { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { InvalidTelemetryOptionError } from './errors.js';

/** The logger every component receives through its constructor (pino's). */
export type Logger = PinoLogger;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto` is pretty when the destination is a terminal, JSON otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  /** Default `info`. */
  level?: LogLevel;
  /** Default `auto`. */
  format?: LogFormat;
  /** Where lines go; default stdout. Tests pass a stream they read back. */
  destination?: Writable | DestinationStream;
  /** Fields on every line, e.g. `{ node: 'node-1' }`. */
  base?: Record<string, unknown>;
}

export function parseLogLevel(text: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === text.toLowerCase());
  if (level === undefined) {
    throw new InvalidTelemetryOptionError('log-level', text, `one of ${LOG_LEVELS.join(', ')}`);
  }
  return level;
}

export function parseLogFormat(text: string): LogFormat {
  const format = LOG_FORMATS.find((f) => f === text.toLowerCase());
  if (format === undefined) {
    throw new InvalidTelemetryOptionError('log-format', text, `one of ${LOG_FORMATS.join(', ')}`);
  }
  return format;
}

/**
 * pino-pretty's own stream is an asynchronous pipeline that can drop the last lines
 * when the process exits; formatting each line in place keeps writes synchronous.
 */
function prettyStream(
  destination: Writable | DestinationStream,
  colorize: boolean,
): DestinationStream & { flush(done: (err?: Error) => void): void } {
  const format = prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
  const flushable = destination as { flush?: (done: (err?: Error) => void) => void };
  return {
    write: (line: string) => void destination.write(format(line)),
    // logger.flush() reaches the destination through this (SonicBoom buffers stdout).
    flush: (done) => (flushable.flush ? flushable.flush(done) : done()),
  };
}

function isTerminal(stream: Writable | DestinationStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

/**
 * Builds the process logger. JSON lines carry `level` as a name ("info"), `time` as
 * ISO 8601, `pid`, `hostname`, the `base` fields and `msg`; components add their own
 * with `logger.child({ component: 'server' })`.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination(1);
  const format = options.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && isTerminal(destination));
  const stream = pretty ? prettyStream(destination, isTerminal(destination)) : destination;
  return pino(
    {
      level: options.level ?? 'info',
      base: { pid: process.pid, hostname: hostname(), ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}
