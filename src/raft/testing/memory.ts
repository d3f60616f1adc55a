// In-memory implementations of every port. They survive a RaftNode (pass the same
// objects to a new node to simulate a restart) and can be told to fail.
import type { ConfState, Entry, HardState, NodeId, SnapshotMeta } from '../core/index.js';
import { decodeConfState } from '../core/index.js';
import type {
  HardStateStorage,
  LogStorage,
  MetaSnapshotPort,
  SnapshotPort,
  SnapshotSink,
  StoredLog,
  Transport,
  WriteOptions,
} from '../node/ports.js';
import type { WireMessage } from '../node/messages.js';

export class MemoryStorageError extends Error {
  override readonly name = 'MemoryStorageError';
}

const NO_SNAPSHOT: SnapshotMeta = {
  lastIndex: 0,
  lastTerm: 0,
  config: { voters: [], learners: [], addresses: {} },
};

/**
 * The log in memory. Every write is durable at once (the object outlives a node, as
 * a disk does). `snapshotData` holds the blob of the last metadata snapshot (from
 * installSnapshot, or set by the caller with compactPrefix), and `metaSnapshots()` is a
 * MetaSnapshotPort that serves it. `reads` counts entries() calls (tests of catch-up
 * from storage); `readDelayMs` makes each read take that long, as a disk would.
 */
export class MemoryLogStorage implements LogStorage {
  snapshot: SnapshotMeta = NO_SNAPSHOT;
  snapshotData: Uint8Array = new Uint8Array(0);
  private buf: Entry[] = [];
  private head = 0;
  /** Set to make the next writes fail (storage failure tests). */
  failWrites: Error | undefined;
  reads = 0;
  readDelayMs = 0;

  get firstIndex(): number {
    return this.snapshot.lastIndex + 1;
  }

  get lastIndex(): number {
    return this.snapshot.lastIndex + this.buf.length - this.head;
  }

  async load(): Promise<StoredLog> {
    const termRuns: [number, number][] = [];
    const configs: { index: number; config: ConfState }[] = [];
    for (let k = this.head; k < this.buf.length; k++) {
      const e = this.buf[k]!;
      if (termRuns.length === 0 || termRuns[termRuns.length - 1]![1] !== e.term)
        termRuns.push([e.index, e.term]);
      if (e.type === 'config') configs.push({ index: e.index, config: decodeConfState(e.data) });
    }
    return {
      snapshot: this.snapshot,
      lastIndex: this.lastIndex,
      termRuns,
      configs,
      snapshotData: this.snapshotData,
    };
  }

  async entries(lo: number, hi: number, options?: { maxBytes?: number }): Promise<Entry[]> {
    if (this.readDelayMs > 0) await new Promise((r) => setTimeout(r, this.readDelayMs));
    this.reads++;
    if (lo < this.firstIndex || hi > this.lastIndex + 1 || lo > hi) {
      throw new MemoryStorageError(
        `entries [${lo}, ${hi}) outside [${this.firstIndex}, ${this.lastIndex + 1})`,
      );
    }
    const base = this.head - this.firstIndex;
    const maxBytes = options?.maxBytes ?? Infinity;
    let end = base + lo;
    let bytes = 0;
    while (end < base + hi) {
      bytes += this.buf[end]!.data.byteLength;
      if (bytes > maxBytes && end > base + lo) break;
      end++;
    }
    return this.buf.slice(base + lo, end);
  }

  /** A MetaSnapshotPort serving `snapshotData` (the blob stored with the compaction point). */
  metaSnapshots(): MetaSnapshotPort {
    return { kind: 'metadata', blob: () => this.snapshotData };
  }

  /** Every stored entry (tests). */
  all(): Entry[] {
    return this.buf.slice(this.head);
  }

  async append(entries: readonly Entry[], _options?: WriteOptions): Promise<void> {
    this.check();
    if (entries.length === 0) return;
    if (entries[0]!.index !== this.lastIndex + 1) {
      throw new MemoryStorageError(
        `append at ${entries[0]!.index}, expected ${this.lastIndex + 1}`,
      );
    }
    for (const e of entries) this.buf.push(e);
  }

  async truncateSuffix(from: number): Promise<void> {
    this.check();
    if (from <= this.snapshot.lastIndex)
      throw new MemoryStorageError(`truncate at ${from} below the snapshot`);
    if (from <= this.lastIndex) this.buf.length = this.head + from - this.firstIndex;
  }

  async compactPrefix(meta: SnapshotMeta): Promise<void> {
    this.check();
    const drop = meta.lastIndex - this.snapshot.lastIndex;
    if (drop <= 0) return;
    this.head += drop;
    this.snapshot = meta;
    if (this.head > 1024 && this.head * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.head);
      this.head = 0;
    }
  }

  async installSnapshot(meta: SnapshotMeta, data?: Uint8Array): Promise<void> {
    this.check();
    this.snapshot = meta;
    this.snapshotData = data?.slice() ?? new Uint8Array(0);
    this.buf = [];
    this.head = 0;
  }

  private check(): void {
    if (this.failWrites) throw this.failWrites;
  }
}

/**
 * Hard state in memory, modelling fsync: `state` is the last saved, `durable` the
 * last saved with sync. crash() forgets what was not synced. `saves` and `syncs`
 * count the calls (tests of mustSync).
 */
export class MemoryHardStateStorage implements HardStateStorage {
  state: HardState | undefined;
  durable: HardState | undefined;
  saves = 0;
  syncs = 0;

  async load(): Promise<HardState | undefined> {
    return this.state;
  }

  async save(state: HardState, options?: WriteOptions): Promise<void> {
    this.saves++;
    this.state = state;
    if (options?.sync ?? true) {
      this.syncs++;
      this.durable = state;
    }
  }

  /** A machine crash: the last unsynced save is lost. */
  crash(): void {
    this.state = this.durable;
  }
}

/**
 * A state machine that records the data of every applied entry, and its snapshot
 * port: a snapshot is the list of applied data up to the snapshot index, streamed in
 * chunks of `chunkBytes`.
 */
export class MemoryStateMachine implements SnapshotPort {
  /** Data of applied entries: entry i at [i - 1]. */
  applied: Uint8Array[] = [];
  installs = 0;
  private readonly staged = new Map<number, Uint8Array[]>();

  constructor(private readonly chunkBytes = 64 * 1024) {}

  get appliedIndex(): number {
    return this.applied.length;
  }

  apply = (entries: readonly Entry[]): void => {
    for (const e of entries) {
      if (e.index !== this.applied.length + 1) {
        throw new MemoryStorageError(`applied ${e.index} after ${this.applied.length}`);
      }
      this.applied.push(e.data);
    }
  };

  async *read(meta: SnapshotMeta): AsyncIterable<Uint8Array> {
    // Capture the state now: the state machine moves on while we stream.
    const state = encodeList(this.applied.slice(0, meta.lastIndex));
    for (let at = 0; at < state.byteLength; at += this.chunkBytes) {
      yield state.subarray(at, Math.min(state.byteLength, at + this.chunkBytes));
    }
  }

  receive(meta: SnapshotMeta): SnapshotSink {
    const chunks: Uint8Array[] = [];
    return {
      write: async (chunk) => {
        chunks.push(chunk.slice());
      },
      finish: async () => {
        this.staged.set(meta.lastIndex, chunks);
      },
      abort: async () => {
        chunks.length = 0;
      },
    };
  }

  async install(meta: SnapshotMeta): Promise<void> {
    const chunks = this.staged.get(meta.lastIndex);
    if (!chunks) throw new MemoryStorageError(`no staged snapshot at ${meta.lastIndex}`);
    this.staged.clear();
    this.applied = decodeList(concat(chunks));
    if (this.applied.length !== meta.lastIndex) {
      throw new MemoryStorageError(
        `snapshot holds ${this.applied.length} entries, expected ${meta.lastIndex}`,
      );
    }
    this.installs++;
  }
}

/**
 * A network of in-memory transports. Delivery is asynchronous (a microtask), so no
 * node ever runs inside another's call. Links can be cut and nodes isolated.
 */
export class MemoryNetwork {
  private readonly handlers = new Map<NodeId, (m: WireMessage) => void>();
  private readonly cutLinks = new Set<string>();
  private readonly isolated = new Set<NodeId>();
  /** Drop filter for tests: return true to drop a message. */
  dropIf: ((m: WireMessage) => boolean) | undefined;
  delivered = 0;

  transport(id: NodeId): Transport {
    return {
      send: (m) => this.send(m),
      listen: (handler) => {
        this.handlers.set(id, handler);
        return () => {
          if (this.handlers.get(id) === handler) this.handlers.delete(id);
        };
      },
    };
  }

  cut(a: NodeId, b: NodeId): void {
    this.cutLinks.add(`${a}\0${b}`);
    this.cutLinks.add(`${b}\0${a}`);
  }

  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  heal(): void {
    this.cutLinks.clear();
    this.isolated.clear();
  }

  private send(m: WireMessage): void {
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return;
    if (this.cutLinks.size > 0 && this.cutLinks.has(`${m.from}\0${m.to}`)) return;
    if (this.dropIf?.(m)) return;
    queueMicrotask(() => {
      const h = this.handlers.get(m.to);
      if (!h) return;
      this.delivered++;
      h(m);
    });
  }
}

function encodeList(items: readonly Uint8Array[]): Uint8Array {
  let size = 4;
  for (const it of items) size += 4 + it.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, items.length);
  let at = 4;
  for (const it of items) {
    view.setUint32(at, it.byteLength);
    out.set(it, at + 4);
    at += 4 + it.byteLength;
  }
  return out;
}

function decodeList(buf: Uint8Array): Uint8Array[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = view.getUint32(0);
  const out: Uint8Array[] = [];
  let at = 4;
  for (let k = 0; k < n; k++) {
    const len = view.getUint32(at);
    out.push(buf.slice(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const c of chunks) size += c.byteLength;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
