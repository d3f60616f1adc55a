// A test double for the log's file-system port (log/testing, not the main barrel).
// FaultyFs passes every call through to a real LogFs, records it, and fails the calls
// it is told to: EIO on the Nth write, ENOSPC after half a write, a failing fsync, or a
// simulated crash after N calls (every later call fails, as if the process died).
// With `trackDurability`, it also remembers each file's contents as of its last fsync,
// and simulatePowerLoss() puts every file back to them (file data only: directory
// entries are taken to be durable, a simplification).
import { nodeLogFs, writeFully, type LogFileHandle, type LogFs, type LogOpenFlags } from '../fs.js';

export type FsOp =
  | 'open'
  | 'read'
  | 'write'
  | 'datasync'
  | 'sync'
  | 'truncate'
  | 'stat'
  | 'close'
  | 'readFile'
  | 'rename'
  | 'unlink'
  | 'readdir'
  | 'mkdir';

export interface FsCall {
  op: FsOp;
  /** The file or directory (for a handle, the path it was opened with). */
  path: string;
  /** For `open`, the flags. */
  flags?: LogOpenFlags;
}

export interface FaultRule {
  op: FsOp;
  /** Fail the nth matching call (1-based), counted from when the rule is added. Default 1. */
  nth?: number;
  /** The errno code of the error thrown. Default `EIO`. */
  code?: string;
  /** Only calls on matching paths count. */
  path?: RegExp;
  /** Keep failing every matching call after the nth too (a dead disk). Default false. */
  sticky?: boolean;
  /** For `write`: write half of the bytes before failing (a torn write, as ENOSPC leaves). */
  partial?: boolean;
}

/** What a FaultyFs throws: a Node-style errno error. */
export function fsError(code: string, op: FsOp, path: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${op} '${path}'`);
  err.code = code;
  err.syscall = op;
  err.path = path;
  return err;
}

interface ActiveRule extends FaultRule {
  seen: number;
}

export class FaultyFs implements LogFs {
  /** Every call, in order. */
  readonly calls: FsCall[] = [];
  private readonly rules: ActiveRule[] = [];
  private crashAt: number | undefined;
  /** Each written file's contents as of its last fsync; kept only with trackDurability. */
  private readonly durable: Map<string, Buffer> | undefined;

  constructor(
    private readonly inner: LogFs = nodeLogFs,
    options: { trackDurability?: boolean } = {},
  ) {
    if (options.trackDurability === true) this.durable = new Map();
  }

  /** Removes every fault (the disk has space again); a crash stays. */
  clear(): this {
    this.rules.length = 0;
    return this;
  }

  /** Adds a fault. */
  fail(rule: FaultRule): this {
    this.rules.push({ ...rule, seen: 0 });
    return this;
  }

  /**
   * Simulates a crash: the next `calls` calls go through, every one after fails with
   * `ECRASH` (closing handles still works, so the test can release them).
   */
  crashAfter(calls: number): this {
    this.crashAt = this.calls.length + calls;
    return this;
  }

  /** True once a call was refused because of crashAfter. */
  get crashed(): boolean {
    return this.crashAt !== undefined && this.calls.length > this.crashAt;
  }

  async open(path: string, flags: LogOpenFlags): Promise<LogFileHandle> {
    this.check({ op: 'open', path, flags });
    const handle = await this.inner.open(path, flags);
    if (this.durable !== undefined && flags !== 'r' && !this.durable.has(path)) {
      // An existing file is as durable as it is now; a new or emptied one holds nothing yet.
      this.durable.set(path, flags === 'r+' ? await this.inner.readFile(path) : Buffer.alloc(0));
    }
    return new FaultyHandle(this, path, handle, flags !== 'r');
  }
  async readFile(path: string): Promise<Buffer> {
    this.check({ op: 'readFile', path });
    return this.inner.readFile(path);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check({ op: 'rename', path: from });
    await this.inner.rename(from, to);
    const content = this.durable?.get(from);
    if (content !== undefined) {
      this.durable?.set(to, content);
      this.durable?.delete(from);
    }
  }
  async unlink(path: string): Promise<void> {
    this.check({ op: 'unlink', path });
    await this.inner.unlink(path);
    this.durable?.delete(path);
  }

  /**
   * Puts every file written through this fs back to its contents at its last fsync, as
   * a power loss would. Crash first (crashAfter) and close the log, so nothing writes after.
   */
  async simulatePowerLoss(): Promise<void> {
    if (this.durable === undefined) throw new Error('create the FaultyFs with trackDurability');
    for (const [path, content] of this.durable) {
      const fh = await this.inner.open(path, 'w');
      try {
        await writeFully(fh, content, 0);
      } finally {
        await fh.close();
      }
    }
  }

  /** Called by a handle after a successful fsync: its file's contents are now durable. */
  async synced(path: string): Promise<void> {
    if (this.durable?.has(path) === true) this.durable.set(path, await this.inner.readFile(path));
  }
  async readdir(path: string): Promise<string[]> {
    this.check({ op: 'readdir', path });
    return this.inner.readdir(path);
  }
  async mkdir(path: string): Promise<void> {
    this.check({ op: 'mkdir', path });
    return this.inner.mkdir(path);
  }

  /** Records the call and throws if a fault applies (the handles call it too). */
  check(call: FsCall): void {
    this.calls.push(call);
    if (call.op === 'close') return;
    if (this.crashAt !== undefined && this.calls.length > this.crashAt) {
      throw fsError('ECRASH', call.op, call.path);
    }
    for (const rule of this.rules) {
      if (rule.op !== call.op || (rule.path !== undefined && !rule.path.test(call.path))) continue;
      rule.seen++;
      const nth = rule.nth ?? 1;
      if (rule.seen === nth || (rule.sticky === true && rule.seen > nth)) {
        const err = fsError(rule.code ?? 'EIO', call.op, call.path);
        if (rule.partial === true && call.op === 'write') throw new PartialWrite(err);
        throw err;
      }
    }
  }
}

/** Thrown by check() so the handle can tear the write before failing with `err`. */
class PartialWrite extends Error {
  override readonly name = 'PartialWrite';
  constructor(readonly err: NodeJS.ErrnoException) {
    super(err.message);
  }
}

class FaultyHandle implements LogFileHandle {
  constructor(
    private readonly fs: FaultyFs,
    private readonly path: string,
    private readonly inner: LogFileHandle,
    private readonly writable: boolean,
  ) {}

  async read(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number }> {
    this.fs.check({ op: 'read', path: this.path });
    return this.inner.read(buffer, offset, length, position);
  }

  async write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }> {
    try {
      this.fs.check({ op: 'write', path: this.path });
    } catch (err) {
      if (!(err instanceof PartialWrite)) throw err;
      const half = Math.floor(length / 2);
      if (half > 0) await this.inner.write(buffer, offset, half, position);
      throw err.err;
    }
    return this.inner.write(buffer, offset, length, position);
  }

  async datasync(): Promise<void> {
    this.fs.check({ op: 'datasync', path: this.path });
    await this.inner.datasync();
    if (this.writable) await this.fs.synced(this.path);
  }
  async sync(): Promise<void> {
    this.fs.check({ op: 'sync', path: this.path });
    await this.inner.sync();
    if (this.writable) await this.fs.synced(this.path);
  }
  async truncate(length: number): Promise<void> {
    this.fs.check({ op: 'truncate', path: this.path });
    return this.inner.truncate(length);
  }
  async stat(): Promise<{ size: number }> {
    this.fs.check({ op: 'stat', path: this.path });
    return this.inner.stat();
  }
  async close(): Promise<void> {
    this.fs.check({ op: 'close', path: this.path });
    return this.inner.close();
  }
}

/** A FaultyFs over node:fs/promises (or `inner`). */
export function faultyFs(inner?: LogFs, options?: { trackDurability?: boolean }): FaultyFs {
  return new FaultyFs(inner, options);
}
