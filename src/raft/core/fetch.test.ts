// Catch-up from storage: a follower behind the leader's in-memory window is fed
// entries the driver reads from storage (Ready.fetch), bounded in bytes; snapshots
// only below the compaction point; stale answers are dropped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftInvariantError } from './log.js';
import { RaftConfigError, RaftCore, bootstrapState, validateRaftConfig } from './raft.js';
import type { RaftConfig } from './raft.js';
import type { Entry, FetchRequest, Message, NodeId } from './types.js';

/** Pure cores, a FIFO network and a "disk" per node that serves fetches when told. */
class Harness {
  readonly cores = new Map<NodeId, RaftCore>();
  readonly disk = new Map<NodeId, Entry[]>();
  readonly fetches: { from: NodeId; req: FetchRequest }[] = [];
  readonly sent: Message[] = [];
  readonly isolated = new Set<NodeId>();
  /** Serve fetches at once while stabilizing. */
  autoFetch = true;
  private queue: Message[] = [];

  constructor(ids: NodeId[], config: Partial<RaftConfig>) {
    const conf = { voters: ids, learners: [], addresses: {} };
    for (const [k, id] of ids.entries()) {
      this.cores.set(
        id,
        new RaftCore({ fetchFromStorage: true, ...config, id, seed: k + 1 }, bootstrapState(conf)),
      );
      this.disk.set(id, []);
    }
  }

  core(id: NodeId): RaftCore {
    return this.cores.get(id)!;
  }

  /** Entries [lo, hi) from id's disk, at most maxBytes of data (at least one). */
  read(id: NodeId, req: FetchRequest): Entry[] {
    const disk = this.disk.get(id)!;
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = req.lo; i < req.hi; i++) {
      const e = disk[i - 1]!;
      bytes += e.data.byteLength;
      if (bytes > req.maxBytes && out.length > 0) break;
      out.push(e);
    }
    return out;
  }

  serve(k = 0): void {
    const [f] = this.fetches.splice(k, 1);
    this.core(f!.from).entriesLoaded(f!.req, this.read(f!.from, f!.req));
  }

  stabilize(): void {
    for (let round = 0; round < 10_000; round++) {
      for (const [id, core] of this.cores) {
        while (core.hasReady()) {
          const rd = core.ready();
          const disk = this.disk.get(id)!;
          if (rd.snapshot) disk.length = 0;
          if (rd.entries.length > 0) {
            disk.length = rd.entries[0]!.index - 1;
            for (const e of rd.entries) disk[e.index - 1] = e;
          }
          for (const req of rd.fetch) this.fetches.push({ from: id, req });
          for (const m of rd.messages) this.queue.push(m);
          core.advance(rd);
        }
      }
      if (this.autoFetch && this.fetches.length > 0) {
        while (this.fetches.length > 0) this.serve();
        continue;
      }
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        this.sent.push(m);
        if (this.isolated.has(m.from) || this.isolated.has(m.to)) continue;
        this.core(m.to).step(m);
      }
    }
    throw new Error('did not stabilize');
  }

  propose(id: NodeId, n: number, size: number): void {
    for (let k = 0; k < n; k++) {
      const res = this.core(id).propose([new Uint8Array(size).fill(k & 0xff)]);
      assert.ok(res.ok);
      this.stabilize();
    }
  }
}

const ids = ['n1', 'n2', 'n3'];

function laggingFollower(config: Partial<RaftConfig>, entries = 50, size = 10): Harness {
  const h = new Harness(ids, config);
  h.core('n1').campaign();
  h.stabilize();
  h.isolated.add('n3');
  h.propose('n1', entries, size);
  h.isolated.clear();
  h.sent.length = 0;
  return h;
}

describe('catch-up from storage', () => {
  it('feeds a follower behind the in-memory window from storage, with no snapshot', () => {
    const h = laggingFollower({ retainEntries: 0, retainBytes: 0, maxMsgBytes: 100 });
    const leader = h.core('n1');
    assert.equal(leader.log.memStart, leader.log.applied + 1, 'nothing applied is retained');
    leader.tick();
    h.stabilize();
    const n3 = h.core('n3');
    assert.equal(n3.log.lastIndex, leader.log.lastIndex);
    assert.equal(n3.log.committed, leader.log.committed);
    assert.equal(n3.log.snapIndex, 0, 'no snapshot');
    assert.ok(!h.sent.some((m) => m.type === 'snapshot'));
    // maxMsgBytes 100 with 26-byte entries: several appends, none above the bound.
    const appends = h.sent.filter((m) => m.type === 'append' && m.to === 'n3');
    assert.ok(appends.length > 5);
    for (const m of appends) if (m.type === 'append') assert.ok(m.entries.length <= 3);
  });

  it('without fetchFromStorage such a follower gets a snapshot (the core alone)', () => {
    const h = laggingFollower({ retainEntries: 0, retainBytes: 0, fetchFromStorage: false });
    h.core('n1').tick();
    h.stabilize();
    assert.ok(h.sent.some((m) => m.type === 'snapshot' && m.to === 'n3'));
    assert.equal(h.fetches.length, 0);
  });

  it('sends a snapshot only below the compaction point, then the rest from storage', () => {
    const h = laggingFollower({
      retainEntries: 0,
      retainBytes: 0,
      snapshotAtCompaction: true,
    });
    const leader = h.core('n1');
    leader.compact(20);
    h.stabilize();
    leader.tick();
    h.stabilize();
    const snaps = h.sent.filter((m) => m.type === 'snapshot');
    assert.equal(snaps.length, 1);
    assert.equal(snaps[0]!.type === 'snapshot' && snaps[0]!.meta.lastIndex, 20);
    assert.equal(h.core('n3').log.lastIndex, leader.log.lastIndex);
  });

  it('bounds bytes in flight per follower and bytes retained in memory', () => {
    const MiB = 1024 * 1024;
    const h = laggingFollower(
      { retainBytes: 3 * MiB, maxMsgBytes: MiB, maxInflightBytes: 4 * MiB },
      12,
      MiB,
    );
    const leader = h.core('n1');
    assert.ok(leader.log.retainedBytes <= 3 * MiB, `${leader.log.retainedBytes} retained`);
    assert.ok(leader.log.memStart > 1, 'older entries were released');
    h.autoFetch = false;
    leader.tick(); // heartbeat -> probe -> fetch
    h.stabilize();
    assert.equal(h.fetches.length, 1);
    assert.ok(h.fetches[0]!.req.maxBytes <= MiB, 'a probe reads one message');
    const n3 = () => leader.status().peers.find((p) => p.id === 'n3')!;
    while (n3().state !== 'replicate' || n3().match < 6) {
      h.serve();
      h.stabilize(); // once n3 accepts: replicate; reads are sized by the room in flight
    }
    assert.equal(h.fetches.length, 1);
    const req = h.fetches[0]!.req;
    assert.ok(req.maxBytes <= 4 * MiB, `read of ${req.maxBytes}`);
    // Withhold acks: serve reads until the in-flight budget stops further appends.
    h.isolated.add('n3');
    const before = h.sent.length;
    h.serve();
    h.stabilize();
    while (h.fetches.length > 0) {
      h.serve();
      h.stabilize();
    }
    const inFlight = h.sent
      .slice(before)
      .filter((m) => m.type === 'append' && m.to === 'n3')
      .reduce((n, m) => n + (m.type === 'append' ? m.entries.length : 0), 0);
    assert.ok(inFlight >= 3 && inFlight <= 5, `${inFlight} MiB in flight`);
    h.isolated.clear();
  });

  it('drops a fetch answer from an older term', () => {
    const h = laggingFollower({ retainEntries: 0, retainBytes: 0 });
    h.autoFetch = false;
    h.core('n1').tick();
    h.stabilize();
    const stale = h.fetches.shift()!;
    // n2 takes over; n1 becomes a follower, then leads again in a later term.
    assert.ok(h.core('n1').transferLeadership('n2').ok);
    h.stabilize();
    assert.equal(h.core('n2').role, 'leader');
    h.sent.length = 0;
    h.core('n1').entriesLoaded(stale.req, h.read('n1', stale.req));
    h.stabilize();
    assert.ok(!h.sent.some((m) => m.from === 'n1' && m.type === 'append'));
  });

  it('re-plans when the peer moved outside what was read, and when the read failed', () => {
    const h = laggingFollower({ retainEntries: 0, retainBytes: 0, maxMsgBytes: 60 });
    h.autoFetch = false;
    const leader = h.core('n1');
    leader.tick();
    h.stabilize();
    const first = h.fetches.shift()!;
    leader.fetchFailed(first.req);
    h.stabilize();
    assert.equal(h.fetches.length, 0, 'a failed read waits for the next heartbeat answer');
    leader.tick();
    h.stabilize();
    assert.equal(h.fetches.length, 1, 'and is then retried');
    // An answer for a request the progress no longer waits on is ignored.
    leader.entriesLoaded(first.req, h.read('n1', first.req));
    h.autoFetch = true;
    h.stabilize();
    assert.equal(h.core('n3').log.lastIndex, leader.log.lastIndex);
  });

  it('falls back to a snapshot when the entries were compacted while being read', () => {
    const h = laggingFollower({ retainEntries: 0, retainBytes: 0, snapshotAtCompaction: true });
    h.autoFetch = false;
    const leader = h.core('n1');
    leader.tick();
    h.stabilize();
    const pending = h.fetches.shift()!;
    leader.compact(leader.log.applied);
    h.stabilize();
    // The storage read fails (compacted); the next heartbeat answer sends a snapshot.
    leader.fetchFailed(pending.req);
    leader.tick();
    h.autoFetch = true;
    h.stabilize();
    assert.ok(h.sent.some((m) => m.type === 'snapshot' && m.to === 'n3'));
    assert.equal(h.core('n3').log.lastIndex, leader.log.lastIndex);
  });

  it('stops on storage that returns entries of the wrong term', () => {
    const h = laggingFollower({ retainEntries: 0, retainBytes: 0 });
    h.autoFetch = false;
    h.core('n1').tick();
    h.stabilize();
    const f = h.fetches.shift()!;
    const wrong = h.read('n1', f.req).map((e) => ({ ...e, term: e.term + 1 }));
    assert.throws(() => h.core('n1').entriesLoaded(f.req, wrong), RaftInvariantError);
  });
});

describe('validateRaftConfig', () => {
  it('refuses empty ids and out-of-range settings with RaftConfigError', () => {
    assert.throws(() => validateRaftConfig({ id: '' }), RaftConfigError);
    assert.throws(() => validateRaftConfig({ id: 'a', electionTicks: 0 }), RaftConfigError);
    assert.throws(
      () => validateRaftConfig({ id: 'a', electionTicks: 2, heartbeatTicks: 2 }),
      /heartbeatTicks/,
    );
    assert.throws(() => validateRaftConfig({ id: 'a', retainBytes: -1 }), RaftConfigError);
    assert.throws(() => validateRaftConfig({ id: 'a', maxInflightBytes: 0.5 }), RaftConfigError);
    assert.throws(
      () => validateRaftConfig({ id: 'a', snapshotAtCompaction: true }),
      /fetchFromStorage/,
    );
    assert.equal(validateRaftConfig({ id: 'a' }).retainBytes, 16 * 1024 * 1024);
    assert.throws(
      () =>
        new RaftCore(
          { id: 'a' },
          bootstrapState({ voters: ['a', ''], learners: [], addresses: {} }),
        ),
      RaftConfigError,
    );
    assert.throws(
      () =>
        new RaftCore(
          { id: 'a' },
          bootstrapState({ voters: ['a'], learners: ['a'], addresses: {} }),
        ),
      /twice/,
    );
  });
});
