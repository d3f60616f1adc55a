// The driver against its storage and transport contracts: catch-up from disk,
// unsynced commit-only hard state, the apply stage, crash-safe snapshot installs
// (streamed and metadata), chunk resend, transport feedback and configuration events.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  RaftConfigError,
  type ConfState,
  type Entry,
  type HardState,
  type SnapshotMeta,
} from '../core/index.js';
import {
  MemoryHardStateStorage,
  MemoryLogStorage,
  MemoryNetwork,
  MemoryStateMachine,
  Rng,
  TestCluster,
  addressOf,
} from '../testing/index.js';
import { InvalidConfChangeError, NotLeaderError, RaftStorageError } from './errors.js';
import type { WireMessage } from './messages.js';
import type { MetaSnapshotPort } from './ports.js';
import { RaftNode, type RaftNodeOptions } from './raft-node.js';

const enc = new TextEncoder();

/** Resolves once `probe` holds, checking every few milliseconds; fails at the deadline. */
async function until(probe: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Member {
  id: string;
  log: MemoryLogStorage;
  hard: MemoryHardStateStorage;
  applied: Entry[];
  node?: RaftNode;
}

/** A small cluster of RaftNodes with metadata snapshots (the log is the state). */
class MetaCluster {
  readonly network = new MemoryNetwork();
  readonly members = new Map<string, Member>();

  constructor(
    ids: string[],
    private readonly extra: Partial<RaftNodeOptions> = {},
  ) {
    for (const id of ids) {
      this.members.set(id, {
        id,
        log: new MemoryLogStorage(),
        hard: new MemoryHardStateStorage(),
        applied: [],
      });
    }
  }

  async start(id: string, bootstrap?: ConfState): Promise<RaftNode> {
    const m = this.members.get(id)!;
    const last = m.applied[m.applied.length - 1];
    m.node = await RaftNode.start({
      id,
      logStorage: m.log,
      hardStateStorage: m.hard,
      snapshots: m.log.metaSnapshots(),
      transport: this.network.transport(id),
      apply: (es) => {
        m.applied.push(...es);
      },
      applied: last?.index ?? m.log.snapshot.lastIndex,
      bootstrap,
      tickMs: 2,
      ...this.extra,
    });
    return m.node;
  }

  async startAll(): Promise<void> {
    const ids = [...this.members.keys()];
    const conf = { voters: ids, learners: [], addresses: {} };
    for (const id of ids) await this.start(id, conf);
    this.node(ids[0]!).campaign();
  }

  node(id: string): RaftNode {
    return this.members.get(id)!.node!;
  }

  async leader(): Promise<RaftNode> {
    let found: RaftNode | undefined;
    await until(() => {
      found = [...this.members.values()]
        .map((m) => m.node)
        .find((n) => n && !n.status().closed && n.status().role === 'leader');
      return found !== undefined;
    }, 'a leader');
    return found!;
  }

  async close(): Promise<void> {
    for (const m of this.members.values()) await m.node?.close();
  }
}

describe('RaftNode catch-up from storage', () => {
  it('feeds a restarted follower from the leader storage, not a snapshot', async () => {
    await using cluster = await TestCluster.create({
      size: 3,
      raft: { retainEntries: 0, retainBytes: 0, maxMsgBytes: 2048 },
    });
    const leader = await cluster.waitForLeader();
    const follower = cluster.running().find((n) => n.id !== leader.id)!;
    await cluster.stop(follower.id);
    let last = 0;
    for (let k = 0; k < 200; k++) last = await leader.propose(new Uint8Array(100).fill(k));
    const leaderLog = cluster.members.get(leader.id)!.log;
    const readsBefore = leaderLog.reads;
    await cluster.restart(follower.id, { keepState: true });
    await cluster.waitForApplied(last);
    assert.ok(leaderLog.reads > readsBefore, 'the leader read entries from storage');
    assert.equal(cluster.members.get(follower.id)!.stateMachine.installs, 0, 'no snapshot');
  });

  it('keeps catching up while storage reads are slow', async () => {
    await using cluster = await TestCluster.create({
      size: 3,
      raft: { retainEntries: 0, retainBytes: 0, maxMsgBytes: 4096 },
    });
    const leader = await cluster.waitForLeader();
    const follower = cluster.running().find((n) => n.id !== leader.id)!;
    await cluster.stop(follower.id);
    let last = 0;
    for (let k = 0; k < 100; k++) last = await leader.propose(new Uint8Array(500).fill(k));
    cluster.members.get(leader.id)!.log.readDelayMs = 3;
    await cluster.restart(follower.id, { keepState: true });
    // Writes go on while the follower is fed from slow reads.
    for (let k = 0; k < 20; k++) last = await leader.propose(enc.encode(`more-${k}`));
    await cluster.waitForApplied(last, 10_000);
  });
});

describe('RaftNode restart', () => {
  it('reads committed entries back from storage to apply them, in bounded batches', async () => {
    await using cluster = await TestCluster.create({ size: 3, raft: { maxApplyBytes: 300 } });
    const leader = await cluster.waitForLeader();
    const follower = cluster.running().find((n) => n.id !== leader.id)!;
    let last = 0;
    for (let k = 0; k < 40; k++) last = await leader.propose(new Uint8Array(100).fill(k));
    await cluster.waitForApplied(last);
    const m = cluster.members.get(follower.id)!;
    const readsBefore = m.log.reads;
    // A volatile state machine: it restarts empty and must see every entry again.
    await cluster.restart(follower.id);
    await cluster.waitForApplied(last);
    assert.equal(m.stateMachine.appliedIndex >= last, true);
    assert.deepEqual(m.stateMachine.applied[last - 1], new Uint8Array(100).fill(39));
    // 300 bytes per batch: about three entries per read.
    assert.ok(m.log.reads - readsBefore >= 10, `${m.log.reads - readsBefore} reads`);
  });
});

describe('RaftNode durability', () => {
  it('saves commit-only hard state changes without fsync', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const log = new Map<string, { term: number; vote: string; sync: boolean }[]>();
    for (const m of cluster.members.values()) {
      const saves: { term: number; vote: string; sync: boolean }[] = [];
      log.set(m.id, saves);
      const inner = m.hardState.save.bind(m.hardState);
      m.hardState.save = (state, options) => {
        saves.push({ term: state.term, vote: state.vote, sync: options?.sync ?? true });
        return inner(state, options);
      };
    }
    const leader = await cluster.waitForLeader();
    let last = 0;
    for (let k = 0; k < 50; k++) last = await leader.propose(enc.encode(`x${k}`));
    await cluster.waitForApplied(last);
    for (const [id, saves] of log) {
      let prev: HardState | undefined;
      let commitOnly = 0;
      for (const s of saves) {
        const changed = !prev || prev.term !== s.term || prev.vote !== s.vote;
        // Synced exactly when term or vote changed.
        assert.equal(s.sync, changed, `${id}: ${JSON.stringify(s)}`);
        if (!changed) commitOnly++;
        prev = { term: s.term, vote: s.vote, commit: 0 };
      }
      assert.ok(commitOnly > 0, `${id}: ${commitOnly} commit-only saves`);
    }
  });

  it('restarts after losing an unsynced commit index', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const follower = cluster.running().find((n) => n.id !== leader.id)!;
    let last = 0;
    for (let k = 0; k < 20; k++) last = await leader.propose(enc.encode(`y${k}`));
    await cluster.waitForApplied(last);
    await cluster.stop(follower.id);
    const m = cluster.members.get(follower.id)!;
    m.hardState.crash();
    assert.ok(m.hardState.state!.commit < last, 'the commit index went back');
    await cluster.restart(follower.id);
    last = await leader.propose(enc.encode('after'));
    await cluster.waitForApplied(last);
  });

  it('applies in its own stage: a slow state machine does not hold up replication', async () => {
    const cluster = new MetaCluster(['n1', 'n2', 'n3']);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let blocked = 0;
    const m1 = cluster.members.get('n1')!;
    const network = cluster.network;
    const ids = ['n1', 'n2', 'n3'];
    const conf = { voters: ids, learners: [], addresses: {} };
    m1.node = await RaftNode.start({
      id: 'n1',
      logStorage: m1.log,
      hardStateStorage: m1.hard,
      transport: network.transport('n1'),
      apply: async (es) => {
        if (es.some((e) => e.type === 'normal')) {
          blocked++;
          await gate;
        }
        m1.applied.push(...es);
      },
      bootstrap: conf,
      tickMs: 2,
    });
    await cluster.start('n2', conf);
    await cluster.start('n3', conf);
    try {
      const n1 = m1.node;
      n1.campaign();
      await until(() => n1.status().role === 'leader', 'n1 leads');
      const proposals = Array.from({ length: 20 }, (_, k) => n1.propose(enc.encode(`s${k}`)));
      await until(() => n1.status().commit >= 21, 'commit of all 20 while apply is blocked');
      assert.equal(blocked, 1);
      assert.ok(n1.status().applied < 21);
      release();
      const indexes = await Promise.all(proposals);
      assert.deepEqual(
        m1.applied.map((e) => e.index),
        Array.from({ length: indexes[19]! }, (_, k) => k + 1),
        'in order, each once',
      );
    } finally {
      release();
      await cluster.close();
    }
  });
});

describe('RaftNode snapshots', () => {
  it('metadata snapshots: one install call with the blob, applied jumps to the snapshot', async () => {
    const cluster = new MetaCluster(['n1', 'n2', 'n3'], {
      raft: { retainEntries: 0, retainBytes: 0 },
    });
    try {
      await cluster.startAll();
      const leader = await cluster.leader();
      const behind = [...cluster.members.values()].find((m) => m.id !== leader.id)!;
      await behind.node!.close();
      let last = 0;
      for (let k = 0; k < 30; k++) last = await leader.propose(enc.encode(`m${k}`));
      const lm = cluster.members.get(leader.id)!;
      lm.log.snapshotData = enc.encode(`translator@${last}`);
      assert.ok(leader.compact(last));
      await until(() => lm.log.snapshot.lastIndex === last, 'leader compaction');
      const appliedBefore = behind.applied.length;
      const installs: SnapshotMeta[] = [];
      const inner = behind.log.installSnapshot.bind(behind.log);
      behind.log.installSnapshot = async (meta, data) => {
        installs.push(meta);
        assert.equal(new TextDecoder().decode(data), `translator@${last}`);
        return inner(meta, data);
      };
      const node = await cluster.start(behind.id);
      const after = await leader.propose(enc.encode('after'));
      await until(() => node.status().applied >= after, 'the follower applies after');
      assert.deepEqual(
        installs.map((m) => m.lastIndex),
        [last],
      );
      // Nothing at or below the snapshot was applied; everything after it was.
      assert.ok(behind.applied.slice(appliedBefore).every((e) => e.index > last));
      assert.equal(behind.applied[behind.applied.length - 1]!.index, after);
    } finally {
      await cluster.close();
    }
  });

  it('finishes a streamed install that a crash cut short between its two storage calls', async () => {
    await using cluster = await TestCluster.create({ size: 3, raft: { retainEntries: 0 } });
    const leader = await cluster.waitForLeader();
    let last = 0;
    for (let k = 0; k < 40; k++) last = await leader.propose(enc.encode(`c${k}`));
    assert.ok(leader.compact(last));
    await cluster.addMember('n4');
    const n4 = cluster.members.get('n4')!;
    const sm = n4.stateMachine;
    // The state machine's install "crashes": the log's install (the commit point) is done.
    const realInstall = sm.install.bind(sm);
    sm.install = async () => {
      throw new Error('crash between the two storage calls');
    };
    void leader.addLearner('n4', addressOf('n4')).catch(() => undefined);
    await until(() => n4.log.snapshot.lastIndex >= last, 'n4 log install');
    await until(() => cluster.node('n4').status().closed, 'n4 stops on the failed install');
    sm.install = realInstall;
    // Restart with the state machine as it was (nothing applied): the install is finished.
    const node = await cluster.restart('n4', { keepState: true });
    assert.equal(node.status().closed, false);
    await until(() => sm.appliedIndex >= last, 'n4 state machine holds the snapshot');
    assert.equal(sm.installs, 1);
  });

  it('resends a lost chunk, not the whole transfer', async () => {
    await using cluster = await TestCluster.create({ size: 3, raft: { retainEntries: 0 } });
    const leader = await cluster.waitForLeader();
    let last = 0;
    for (let k = 0; k < 64; k++) last = await leader.propose(new Uint8Array(4096).fill(k));
    assert.ok(leader.compact(last));
    const chunks: number[] = [];
    let dropped = false;
    cluster.network.dropIf = (m: WireMessage) => {
      if (m.type !== 'snapshotChunk') return false;
      chunks.push(m.offset);
      // Lose the second chunk once.
      if (!dropped && m.offset > 0) {
        dropped = true;
        return true;
      }
      return false;
    };
    // MemoryStateMachine streams 64 KiB chunks: ~4 chunks for 256 KiB of state.
    cluster.members.get(leader.id)!.stateMachine = cluster.members.get(leader.id)!.stateMachine;
    await cluster.addMember('n4');
    const added = await leader.addLearner('n4', addressOf('n4'));
    await cluster.waitForApplied(added, 10_000);
    const distinct = new Set(chunks).size;
    assert.ok(dropped);
    assert.ok(distinct >= 3, `${distinct} distinct chunks`);
    assert.equal(chunks.filter((o) => o === 0).length, 1, 'the transfer was not restarted');
    // The window again from the lost chunk (the follower drops what follows a gap):
    // never the whole transfer.
    assert.ok(
      chunks.length <= distinct + 4,
      `${chunks.join(' ')}: ${chunks.length} sends of ${distinct} chunks`,
    );
    assert.equal(cluster.members.get('n4')!.stateMachine.installs, 1);
  });
});

describe('RaftNode snapshot backpressure', () => {
  it('keeps at most snapshotWindow chunks unacknowledged', async () => {
    await using cluster = await TestCluster.create({ size: 3, raft: { retainEntries: 0 } });
    const leader = await cluster.waitForLeader();
    let last = 0;
    for (let k = 0; k < 64; k++) last = await leader.propose(new Uint8Array(8192).fill(k));
    assert.ok(leader.compact(last));
    const offsets: number[] = [];
    let blockAcks = true;
    cluster.network.dropIf = (m: WireMessage) => {
      if (m.type === 'snapshotChunk') offsets.push(m.offset);
      return blockAcks && m.type === 'snapshotAck';
    };
    await cluster.addMember('n4');
    const added = leader.addLearner('n4', addressOf('n4'));
    // Without acks the leader resends its window, and never goes beyond it.
    await until(() => offsets.length > 4, 'a resend of the window');
    assert.equal(new Set(offsets).size, 4, `offsets ${offsets.join(' ')}`);
    // Keep acks away until the window went out several times: the follower then holds
    // chunks the leader believes lost, and must say so when they come again.
    await until(() => offsets.filter((o) => o === 0).length >= 4, 'several resends');
    blockAcks = false;
    await cluster.waitForApplied(await added, 10_000);
    assert.ok(new Set(offsets).size > 4, 'the rest followed once acks flowed');
    assert.equal(cluster.members.get('n4')!.stateMachine.installs, 1);
  });
});

describe('RaftNode transport feedback and configuration events', () => {
  it('announces configuration changes with addresses', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const follower = cluster.running().find((n) => n.id !== leader.id)!;
    const seen: ConfState[] = [];
    const off = follower.onConfChange((c) => seen.push(c));
    await leader.propose(enc.encode('first')); // a new leader changes nothing before its first commit
    await cluster.addMember('n4');
    const index = await leader.addLearner('n4', 'n4.example:9000');
    await cluster.waitForApplied(index);
    off();
    const c = seen[seen.length - 1]!;
    assert.deepEqual(c.learners, ['n4']);
    assert.equal(c.addresses.n4, 'n4.example:9000');
  });

  it('a leader asked to remove itself hands over first', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    await leader.propose(enc.encode('x'));
    const err = await leader.removeNode(leader.id).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof NotLeaderError, String(err));
    const next = await cluster.waitForLeader(5000, leader.id);
    assert.equal(err.leaderId, next.id);
    await next.propose(enc.encode('first'));
    const index = await next.removeNode(leader.id);
    await cluster.waitFor(
      () => (next.status().applied >= index ? true : undefined),
      5000,
      'removal applied',
    );
    assert.deepEqual(next.status().config.voters.includes(leader.id), false);
  });

  it('reportUnreachable moves a streaming peer back to probing', async () => {
    await using cluster = await TestCluster.create({ size: 3 });
    const leader = await cluster.waitForLeader();
    const follower = cluster.running().find((n) => n.id !== leader.id)!;
    await leader.propose(enc.encode('x'));
    const state = () => leader.status().peers.find((p) => p.id === follower.id)!.state;
    await until(() => state() === 'replicate', 'replicate');
    cluster.network.isolate(follower.id);
    leader.reportUnreachable(follower.id);
    assert.equal(state(), 'probe');
    cluster.network.heal();
  });

  it('refuses empty node ids', async () => {
    const network = new MemoryNetwork();
    const base = {
      logStorage: new MemoryLogStorage(),
      hardStateStorage: new MemoryHardStateStorage(),
      transport: network.transport('x'),
      apply: () => undefined,
      tickMs: 0,
    };
    await assert.rejects(RaftNode.start({ ...base, id: '' }), RaftConfigError);
    await assert.rejects(
      RaftNode.start({
        ...base,
        id: 'a',
        bootstrap: { voters: ['a', ''], learners: [], addresses: {} },
      }),
      RaftConfigError,
    );
    await using cluster = await TestCluster.create({ size: 1 });
    const leader = await cluster.waitForLeader();
    await assert.rejects(leader.addLearner(''), InvalidConfChangeError);
  });

  it('still refuses to start when the state machine is ahead of its log', async () => {
    const network = new MemoryNetwork();
    const hard = new MemoryHardStateStorage();
    await hard.save({ term: 1, vote: 'a', commit: 0 });
    const sm = new MemoryStateMachine();
    await assert.rejects(
      RaftNode.start({
        id: 'a',
        logStorage: new MemoryLogStorage(),
        hardStateStorage: hard,
        snapshots: sm,
        transport: network.transport('a'),
        apply: sm.apply,
        applied: 5,
        tickMs: 0,
      }),
      RaftStorageError,
    );
  });
});

// Keeps the MetaSnapshotPort type in the test's vocabulary (documented shape).
const _port: MetaSnapshotPort = { kind: 'metadata', blob: () => new Uint8Array(0) };
void _port;

describe('RaftNode under loss, restarts and compaction (metadata snapshots, storage reads)', () => {
  for (const seed of [1, 2, 3]) {
    it(`every member ends with the same entries at the same indexes (10% loss, seed ${seed})`, async () => {
      const cluster = new MetaCluster(['n1', 'n2', 'n3'], {
        raft: { retainEntries: 0, retainBytes: 0, maxMsgBytes: 64, maxInflightMsgs: 2 },
      });
      // Seeded loss (snapshot chunks and acks included). Not periodic: a fixed period
      // can resonate with the heartbeat cycle and drop the same retry every time.
      const rng = new Rng(seed);
      cluster.network.dropIf = () => rng.chance(0.1);
      let installs = 0;
      for (const m of cluster.members.values()) {
        m.log.readDelayMs = 1;
        const inner = m.log.installSnapshot.bind(m.log);
        m.log.installSnapshot = (meta, data) => {
          installs++;
          return inner(meta, data);
        };
      }
      try {
        await cluster.startAll();
        let proposed = 0;
        let away: Member | undefined;
        for (let round = 0; round < 6; round++) {
          const leader = await cluster.leader();
          if (round === 1) {
            // One follower misses rounds 1-3 (and the compactions): it needs a snapshot.
            away = [...cluster.members.values()].find((m) => m.node !== leader)!;
            await away.node!.close();
          }
          if (round === 4) await cluster.start(away!.id);
          for (let k = 0; k < 15; k++) {
            await leader.propose(enc.encode(`r${round}-${k}`)).then(
              () => proposed++,
              () => undefined, // leadership may move under loss: the entry may or may not land
            );
          }
          const lm = [...cluster.members.values()].find((m) => m.node === leader)!;
          leader.compact(leader.status().applied - 3);
          lm.log.snapshotData = enc.encode(`blob-${round}`);
          // Restart a follower from its storage, keeping what it applied.
          const f = [...cluster.members.values()].find(
            (m) => m.node !== leader && m !== away && !m.node!.status().closed,
          );
          if (round !== 1 && round !== 2 && round !== 3 && f) {
            await f.node!.close();
            await cluster.start(f.id);
          }
        }
        assert.ok(proposed > 30, `${proposed} proposals committed`);
        cluster.network.dropIf = undefined;
        const leader = await cluster.leader();
        const last = await leader.propose(enc.encode('final'));
        await until(
          () => [...cluster.members.values()].every((m) => m.node!.status().applied >= last),
          'every member applies the final entry',
          15_000,
        );
        assert.ok(installs >= 1, 'the follower that was away installed a snapshot');
        // Compare what each applied: the same entry at each index everywhere.
        const byIndex = new Map<number, string>();
        for (const m of cluster.members.values()) {
          for (const e of m.applied) {
            const v = `${e.term}:${new TextDecoder().decode(e.data)}`;
            const seen = byIndex.get(e.index);
            if (seen === undefined) byIndex.set(e.index, v);
            else assert.equal(v, seen, `${m.id} applied ${v} at ${e.index}, another ${seen}`);
          }
        }
        for (const m of cluster.members.values()) {
          const idx = m.applied.map((e) => e.index);
          for (let k = 1; k < idx.length; k++) {
            // In order, each once; a jump only over an installed snapshot.
            assert.ok(idx[k]! > idx[k - 1]!, `${m.id} applied ${idx[k]} after ${idx[k - 1]}`);
          }
        }
      } finally {
        await cluster.close();
      }
    });
  }
});
