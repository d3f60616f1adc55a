// Raft's storage over the storage engine: each Raft entry is one record of `src/log`, at
// offset = Raft index (the log's first offset is 1). One write per record per replica:
// the records consumers read are these same bytes (see entry-codec.ts).
//
// A group's directory holds:
//   log/          the segments
//   hard-state    term, vote (and the last commit written with them)
//   base          where the log starts: the snapshot point (index, term, configuration)
//                 and the consumer offset of the first record after it
//   translator    a checkpoint of the offset translator (a cache; rebuilt when absent)
//
// Crash safety of a snapshot install (the one operation that replaces the log): `base`
// is written (synced) first, then the log is reset to start after it. At start-up a log
// that does not continue `base` with the same term is reset again, so a crash at any
// point leaves either the old state or the new one.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { Log, type FsyncPolicy, type LogObserver, type StoredRecord } from '../log/index.js';
import {
  decodeConfState,
  encodeConfState,
  type ConfState,
  type Entry,
  type HardState,
  type HardStateStorage,
  type LogStorage,
  type SnapshotMeta,
  type MetaSnapshotPort,
  type StoredLog,
} from '../raft/index.js';

import { decodeEntry, decodeHeader, encodeEntry } from './entry-codec.js';
import { CompactedError } from './errors.js';
import { OffsetTranslator } from './offset-translator.js';
import {
  BodyReader,
  BodyWriter,
  readStateFile,
  removeStateFile,
  writeStateFile,
} from './state-file.js';

const EMPTY_CONF: ConfState = { voters: [], learners: [], addresses: {} };

/** Where the log starts: everything up to `meta.lastIndex` is compacted away. */
export interface LogBase {
  readonly meta: SnapshotMeta;
  /** The consumer offset of the first data entry after meta.lastIndex. */
  readonly baseOffset: bigint;
  /** The snapshot blob as the leader sent it (Raft hands it back after a restart). */
  readonly blob: Uint8Array;
}

export interface RaftStorageOptions {
  readonly dir: string;
  readonly fsync: FsyncPolicy;
  readonly maxRecordBytes: number;
  readonly maxStoreBytes?: number;
  readonly observer?: LogObserver;
}

const READ_CHUNK = 1000;

export class RaftStorage implements LogStorage, MetaSnapshotPort {
  private _log!: Log;
  private _translator!: OffsetTranslator;
  private _base!: LogBase;
  private hard: HardState | undefined;
  /** Term and vote as last written durably: commit-only changes are not synced. */
  private durable: { term: number; vote: string } | undefined;
  private compactionWaiters: { index: number; resolve: () => void }[] = [];

  private constructor(private readonly opts: RaftStorageOptions) {}

  static async open(opts: RaftStorageOptions): Promise<RaftStorage> {
    const s = new RaftStorage(opts);
    await mkdir(opts.dir, { recursive: true });
    await s.openAll();
    return s;
  }

  get log(): Log {
    return this._log;
  }
  get translator(): OffsetTranslator {
    return this._translator;
  }
  get base(): LogBase {
    return this._base;
  }
  /** The stored hard state (what a restarted node continues from). */
  get hardState(): HardState | undefined {
    return this.hard;
  }
  /** True once the group holds any Raft state (a configuration, a term or an entry). */
  get initialized(): boolean {
    return (
      this.hard !== undefined || this._translator.lastIndex > 0 || this._base.meta.lastIndex > 0
    );
  }

  private path(name: string): string {
    return join(this.opts.dir, name);
  }

  private async openAll(): Promise<void> {
    this._base = await this.readBase();
    const hsBody = await readStateFile(this.path('hard-state'), 'CLHS', 1);
    if (hsBody) {
      const r = new BodyReader(hsBody, this.path('hard-state'));
      this.hard = { term: r.num(), vote: r.str(), commit: r.num() };
      r.end();
      this.durable = { term: this.hard.term, vote: this.hard.vote };
    }
    await this.openLog();
    const b = this._base.meta;
    const first = b.lastIndex + 1;
    const lowest = Number(this._log.lowestOffset);
    const next = Number(this._log.nextOffset);
    const conflicting =
      b.lastIndex > 0 &&
      lowest <= b.lastIndex &&
      next > b.lastIndex &&
      (await this.termInLog(b.lastIndex)) !== b.lastTerm;
    // The log must continue the base: not end before it, not start after it, and agree
    // with it on the term of its last entry.
    if (next < first || lowest > first || conflicting) await this.resetLog(first);
    await this.loadTranslator();
  }

  private async termInLog(index: number): Promise<number | undefined> {
    if (BigInt(index) < this._log.lowestOffset || BigInt(index) >= this._log.nextOffset)
      return undefined;
    const [rec] = await this._log.readBatch(BigInt(index), { maxRecords: 1 });
    return rec ? decodeHeader(rec.value, index).term : undefined;
  }

  private async openLog(): Promise<void> {
    this._log = await Log.open(this.path('log'), {
      initialOffset: BigInt(this._base.meta.lastIndex + 1),
      fsync: this.opts.fsync,
      // Room for the entry header on top of the largest value.
      maxRecordBytes: this.opts.maxRecordBytes + 32,
      ...(this.opts.maxStoreBytes !== undefined ? { maxStoreBytes: this.opts.maxStoreBytes } : {}),
      ...(this.opts.observer ? { observer: this.opts.observer } : {}),
    });
  }

  /** Empties the log so that it continues at `first` (base is already written). */
  private async resetLog(first: number): Promise<void> {
    await removeStateFile(this.path('translator'));
    await this._log.resetTo(BigInt(first));
  }

  private async readBase(): Promise<LogBase> {
    const body = await readStateFile(this.path('base'), 'CLBS', 2);
    if (!body)
      return {
        meta: { lastIndex: 0, lastTerm: 0, config: EMPTY_CONF },
        baseOffset: 0n,
        blob: encodeBaseOffset(0n),
      };
    const r = new BodyReader(body, this.path('base'));
    const lastIndex = r.num();
    const lastTerm = r.num();
    const config = decodeConfState(r.bytes());
    const baseOffset = r.u64();
    const blob = r.bytes();
    r.end();
    return { meta: { lastIndex, lastTerm, config }, baseOffset, blob };
  }

  private async writeBase(base: LogBase): Promise<void> {
    const body = new BodyWriter()
      .u64(base.meta.lastIndex)
      .u64(base.meta.lastTerm)
      .bytes(encodeConfState(base.meta.config))
      .u64(base.baseOffset)
      .bytes(base.blob)
      .done();
    await writeStateFile(this.path('base'), 'CLBS', 2, body, { sync: true });
    this._base = base;
  }

  private async loadTranslator(): Promise<void> {
    const first = this._base.meta.lastIndex + 1;
    const last = Number(this._log.nextOffset) - 1;
    let t: OffsetTranslator | undefined;
    try {
      const body = await readStateFile(this.path('translator'), 'CLTR', 1);
      if (body) t = OffsetTranslator.decode(body, this.path('translator'));
    } catch {
      t = undefined; // a cache: rebuilt below
    }
    if (
      t &&
      (t.baseIndex > first ||
        t.lastIndex > last ||
        (t.lastIndex >= first && t.termAt(t.lastIndex) !== (await this.termInLog(t.lastIndex))))
    )
      t = undefined;
    if (t) t.compact(first);
    t ??= OffsetTranslator.empty(first, this._base.baseOffset);
    if (t.baseOffset !== this._base.baseOffset && t.baseIndex === first && t.lastIndex < first)
      t = OffsetTranslator.empty(first, this._base.baseOffset);
    // Re-read the tail after the checkpoint: headers only.
    let next = t.lastIndex + 1;
    while (next <= last) {
      const batch = await this._log.readBatch(BigInt(next), { maxRecords: 4096 });
      for (const rec of batch) {
        const h = decodeHeader(rec.value, next);
        t.append(next, h.term, h.type);
        next++;
      }
    }
    this._translator = t;
  }

  /** Writes the translator checkpoint covering entries up to `upTo` (committed ones). */
  async checkpoint(upTo: number): Promise<void> {
    await writeStateFile(this.path('translator'), 'CLTR', 1, this._translator.encode(upTo), {
      sync: false,
    });
  }

  // ---- LogStorage --------------------------------------------------------------

  async load(): Promise<StoredLog> {
    const configs: { index: number; config: ConfState }[] = [];
    for (const index of this._translator.configsAfter(this._base.meta.lastIndex)) {
      const [e] = await this.entries(index, index + 1);
      configs.push({ index, config: decodeConfState(e!.data) });
    }
    return {
      snapshot: this._base.meta,
      snapshotData: this._base.blob,
      lastIndex: this._translator.lastIndex,
      termRuns: this._translator.termRunsView(),
      configs,
    };
  }

  /** Entries [lo, hi), or the prefix whose data first exceeds `maxBytes` (at least one). */
  async entries(lo: number, hi: number, o?: { readonly maxBytes?: number }): Promise<Entry[]> {
    // The log may still hold whole segments below the compaction point; Raft may not.
    if (lo <= this._base.meta.lastIndex) throw new CompactedError(lo, this._base.meta.lastIndex);
    const out: Entry[] = [];
    const maxBytes = o?.maxBytes ?? Infinity;
    let bytes = 0;
    let next = lo;
    while (next < hi && bytes <= maxBytes) {
      const batch: StoredRecord[] = await this._log.readBatch(BigInt(next), {
        maxRecords: Math.min(hi - next, READ_CHUNK),
        maxBytes: Math.min(8 * 1024 * 1024, Math.max(1, maxBytes - bytes)),
      });
      for (const rec of batch) {
        const e = decodeEntry(rec.value, next++);
        out.push(e);
        bytes += e.data.byteLength;
        if (bytes > maxBytes) break;
      }
    }
    return out;
  }

  async append(entries: readonly Entry[]): Promise<void> {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const encoded = entries.map(encodeEntry);
    for (const e of entries) this._translator.append(e.index, e.term, e.type);
    try {
      // The log refuses (OffsetConflictError) if it does not continue at `first`.
      await this._log.appendBatch(encoded, { expectFirst: BigInt(first) });
    } catch (err) {
      this._translator.truncate(first);
      throw err;
    }
  }

  async truncateSuffix(from: number): Promise<void> {
    this._translator.truncate(from);
    await this._log.truncateSuffix(BigInt(from));
  }

  async compactPrefix(meta: SnapshotMeta): Promise<void> {
    if (meta.lastIndex <= this._base.meta.lastIndex) return;
    const baseOffset = this._translator.endOffset(meta.lastIndex);
    await this.writeBase({ meta, baseOffset, blob: encodeBaseOffset(baseOffset) });
    this._translator.compact(meta.lastIndex + 1);
    await this._log.truncatePrefix(BigInt(meta.lastIndex + 1));
    this.compactionWaiters = this.compactionWaiters.filter((w) => {
      if (w.index > meta.lastIndex) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves once storage has compacted up to `index` (the driver does it after Ready). */
  compacted(index: number): Promise<void> {
    if (this._base.meta.lastIndex >= index) return Promise.resolve();
    return new Promise((resolve) => this.compactionWaiters.push({ index, resolve }));
  }

  /**
   * A leader's snapshot replaces the log: the base (with the consumer offset the blob
   * carries) is written first, then the log restarts after it; see the file header
   * for why a crash in between is safe.
   */
  async installSnapshot(meta: SnapshotMeta, data?: Uint8Array): Promise<void> {
    const blob = data ?? new Uint8Array();
    const baseOffset = decodeBaseOffset(blob);
    await this.writeBase({ meta, baseOffset, blob });
    await this.resetLog(meta.lastIndex + 1);
    this._translator = OffsetTranslator.empty(meta.lastIndex + 1, baseOffset);
  }

  // ---- HardStateStorage --------------------------------------------------------

  /** Raft's hard-state port, over the `hard-state` file. */
  readonly hardStates: HardStateStorage = {
    load: async () => this.hard,
    save: (state) => this.saveHardState(state),
  };

  private async saveHardState(state: HardState): Promise<void> {
    this.hard = state;
    // A commit-only change needs no write: the commit index is re-learned from the
    // leader after a restart. Term and vote must be durable before any message that
    // depends on them is sent.
    if (this.durable && this.durable.term === state.term && this.durable.vote === state.vote)
      return;
    await this.writeHardState(state);
  }

  private async writeHardState(state: HardState): Promise<void> {
    const body = new BodyWriter().u64(state.term).str(state.vote).u64(state.commit).done();
    await writeStateFile(this.path('hard-state'), 'CLHS', 1, body, { sync: true });
    this.durable = { term: state.term, vote: state.vote };
  }

  // ---- MetaSnapshotPort: a snapshot of a log is where it starts ----------------

  /** Snapshots are metadata: the compaction point plus the consumer offset there. */
  readonly kind = 'metadata' as const;

  blob(meta: SnapshotMeta): Uint8Array {
    return encodeBaseOffset(this._translator.endOffset(meta.lastIndex));
  }

  async close(): Promise<void> {
    if (this.hard) await this.writeHardState(this.hard);
    await this._log.close();
  }
}

function encodeBaseOffset(offset: bigint): Uint8Array {
  return new BodyWriter().u64(offset).done();
}

/** The consumer offset a blob from blob() carries; a blob of another shape carries none (0). */
function decodeBaseOffset(data: Uint8Array): bigint {
  if (data.byteLength !== 8) return 0n;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).readBigUInt64BE(0);
}
