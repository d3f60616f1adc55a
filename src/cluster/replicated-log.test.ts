import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { NotLeaderError } from '../raft/index.js';
import { MemoryNetwork } from '../raft/testing/index.js';

import type { ClusterMember } from './membership-sync.js';
import { ReplicatedLog } from './replicated-log.js';

// 100–200 ms election timeouts at the 5 ms tick: short, yet long enough that a loaded
// machine rarely moves leadership by accident (the tests cope when it does).
const RAFT = { electionTicks: 20, heartbeatTicks: 2 };

async function until(
  pred: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

class Harness {
  readonly net = new MemoryNetwork();
  readonly logs = new Map<string, ReplicatedLog>();
  constructor(readonly root: string) {}

  async start(id: string, bootstrap = false): Promise<ReplicatedLog> {
    const log = await ReplicatedLog.open({
      dir: join(this.root, id),
      id,
      rpcAddr: `${id}:8400`,
      transport: this.net.transport(id),
      fsync: 'never',
      maxRecordBytes: 1 << 20,
      maxStoreBytes: 64 * 1024,
      bootstrap,
      tickMs: 5,
      raft: RAFT,
      leaderWaitMs: 3000,
    });
    this.logs.set(id, log);
    return log;
  }

  async stop(id: string): Promise<void> {
    await this.logs.get(id)?.close();
    this.logs.delete(id);
  }

  leader(): ReplicatedLog | undefined {
    return [...this.logs.values()].find((l) => l.isLeader());
  }

  /**
   * Appends through whoever leads. A loaded machine can delay ticks past an election
   * timeout and move leadership; NotLeaderError is raised before anything is appended,
   * so trying the new leader cannot duplicate.
   */
  async append(value: string): Promise<bigint> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const l = this.leader();
      if (l) {
        try {
          return await l.append([Buffer.from(value)]);
        } catch (err) {
          if (!(err instanceof NotLeaderError) || Date.now() > deadline) throw err;
        }
      }
      await until(() => this.leader() !== undefined, 'a leader');
    }
  }

  members(ids: string[]): ClusterMember[] {
    return ids.map((id) => ({ raftId: id, rpcAddr: `${id}:8400`, status: 'alive' as const }));
  }

  /** Runs the reconcile loop until the configuration holds `ids` as voters. */
  async form(ids: string[]): Promise<void> {
    await until(
      async () => {
        const l = this.leader();
        if (!l) return false;
        await l
          .reconcile(this.members(ids), { promoteWithin: 10, minVoters: 1 })
          .catch(() => undefined);
        return l.raft.status().config.voters.length === ids.length;
      },
      `voters ${ids.join(',')}`,
    );
  }

  async close(): Promise<void> {
    for (const id of [...this.logs.keys()]) await this.stop(id);
    await rm(this.root, { recursive: true, force: true });
  }
}

async function harness(): Promise<Harness> {
  return new Harness(await mkdtemp(join(tmpdir(), 'replicated-log-')));
}

async function readAll(log: ReplicatedLog, from = 0n): Promise<string[]> {
  const out: string[] = [];
  const ac = new AbortController();
  if (log.endOffset <= from) return out;
  for await (const batch of log.readBatchesFrom(from, { signal: ac.signal })) {
    for (const r of batch) out.push(r.value.toString());
    if (batch[batch.length - 1]!.offset + 1n >= log.endOffset) break;
  }
  return out;
}

test('a bootstrapped node forms a cluster of three; offsets and bytes agree on every replica', async () => {
  const h = await harness();
  try {
    const n1 = await h.start('n1', true);
    await until(() => n1.isLeader(), 'n1 to lead');
    assert.equal(await n1.append([Buffer.from('a')]), 0n);
    await h.start('n2');
    await h.start('n3');
    await h.form(['n1', 'n2', 'n3']);
    assert.equal(await h.append('b'), 1n);
    assert.equal(await h.append('c'), 2n);
    assert.equal(await h.append('d'), 3n);
    // A follower refuses before appending, and names the leader.
    const leader = h.leader()!;
    const follower = [...h.logs.values()].find((l) => l !== leader)!;
    await assert.rejects(follower.append([Buffer.from('x')]), (err: unknown) => {
      assert.ok(err instanceof NotLeaderError);
      // Leadership may move on a loaded machine, but never to nobody known.
      assert.ok(err.leaderId !== undefined, 'the refusal names a leader');
      assert.equal(err.leaderAddress, `${err.leaderId}:8400`);
      return true;
    });
    for (const l of h.logs.values()) {
      await until(() => l.endOffset === 4n, `${l.id} to see 4 records`);
      assert.deepEqual(await readAll(l), ['a', 'b', 'c', 'd']);
      const rec = await l.read(2n);
      assert.equal(rec.value.toString(), 'c');
      assert.ok(rec.term >= 1n);
    }
    await assert.rejects(n1.read(4n), { name: 'OffsetOutOfRangeError' });
  } finally {
    await h.close();
  }
});

test('the leader stops and restarts: a new leader takes over, nothing acknowledged is lost', async () => {
  const h = await harness();
  try {
    const n1 = await h.start('n1', true);
    await until(() => n1.isLeader(), 'n1 to lead');
    await h.start('n2');
    await h.start('n3');
    await h.form(['n1', 'n2', 'n3']);
    const acked: string[] = [];
    for (let k = 0; k < 20; k++) {
      await h.append(`r${k}`);
      acked.push(`r${k}`);
    }
    const stopped = h.leader()!.id;
    await h.stop(stopped);
    for (let k = 20; k < 40; k++) {
      await h.append(`r${k}`);
      acked.push(`r${k}`);
    }
    const back = await h.start(stopped);
    await until(() => back.endOffset === 40n, `${stopped} to catch up`);
    for (const l of h.logs.values()) {
      await until(() => l.endOffset === 40n, `${l.id} at 40`);
      assert.deepEqual(await readAll(l), acked);
    }
  } finally {
    await h.close();
  }
});

test('a consume stream on a follower follows the commit index', async () => {
  const h = await harness();
  try {
    const n1 = await h.start('n1', true);
    await until(() => n1.isLeader(), 'n1 to lead');
    await h.start('n2');
    await h.form(['n1', 'n2']);
    const ac = new AbortController();
    const seen: string[] = [];
    const reader = (async () => {
      for await (const r of h.logs.get('n2')!.readFrom(0n, { signal: ac.signal })) {
        seen.push(r.value.toString());
        if (seen.length === 5) ac.abort();
      }
    })();
    for (let k = 0; k < 5; k++) await h.append(`v${k}`);
    await reader;
    assert.deepEqual(seen, ['v0', 'v1', 'v2', 'v3', 'v4']);
  } finally {
    await h.close();
  }
});

test('a member behind the compaction point catches up by snapshot and serves from there', async () => {
  const h = await harness();
  try {
    const n1 = await h.start('n1', true);
    await until(() => n1.isLeader(), 'n1 to lead');
    for (let k = 0; k < 300; k++) await n1.append([Buffer.from(`value-${k}-${'x'.repeat(200)}`)]);
    const dropped = await n1.compact(200n);
    assert.ok(dropped > 0n && dropped <= 200n, `compacted below ${dropped}`);
    assert.equal(n1.startOffset, dropped);
    await h.start('n2');
    await h.form(['n1', 'n2']);
    const n2 = h.logs.get('n2')!;
    await until(() => n2.endOffset === 300n, 'n2 to catch up');
    // The snapshot is the leader's compaction point: everything above it came as
    // ordinary appends, read from the leader's log on disk.
    const start = n2.startOffset;
    assert.equal(start, dropped);
    await assert.rejects(n2.read(start - 1n), { name: 'OffsetOutOfRangeError' });
    const a = await readAll(n1, start);
    const b = await readAll(n2, start);
    assert.deepEqual(b, a);
    // After a restart, n2 still starts where the snapshot put it.
    await h.stop('n2');
    const again = await h.start('n2');
    assert.equal(again.startOffset, start);
    await until(() => again.endOffset === 300n, 'n2 to reopen');
    assert.deepEqual(await readAll(again, start), a);
    // New records reach it as ordinary appends (through whichever of the two leads now).
    await h.append('after');
    await until(() => again.endOffset === 301n, 'n2 to see a new record');
    assert.equal((await again.read(300n)).value.toString(), 'after');
  } finally {
    await h.close();
  }
});

test('a bootstrapped single node restarts as the leader of its own cluster', async () => {
  const h = await harness();
  try {
    const n1 = await h.start('n1', true);
    await until(() => n1.isLeader(), 'n1 to lead');
    await n1.append([Buffer.from('a')]);
    await h.stop('n1');
    const again = await h.start('n1');
    await until(() => again.isLeader(), 'n1 to lead again');
    assert.deepEqual(again.raft.status().config.voters, ['n1']);
    assert.equal(await again.append([Buffer.from('b')]), 1n);
  } finally {
    await h.close();
  }
});

test('a batch watches its signal once, and an aborted signal appends nothing', async () => {
  const h = await harness();
  try {
    const n1 = await h.start('n1', true);
    await until(() => n1.isLeader(), 'n1 to lead');
    const ac = new AbortController();
    const values = Array.from({ length: 1000 }, (_, k) => Buffer.from(`r${k}`));
    // A listener per record would trip Node's leak warning and cost a thousand
    // registrations per call.
    let registered = 0;
    const add = ac.signal.addEventListener.bind(ac.signal);
    ac.signal.addEventListener = (...args: Parameters<typeof add>) => {
      if (args[0] === 'abort') registered++;
      add(...args);
    };
    assert.equal(await n1.append(values, { signal: ac.signal }), 0n);
    // One for the batch, and one more if it had to wait for the leader's first commit.
    assert.ok(registered <= 2, `${registered} abort listeners for one batch`);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'listener left behind');

    ac.abort(new Error('client went away'));
    await assert.rejects(n1.append([Buffer.from('late')], { signal: ac.signal }), {
      message: 'client went away',
    });
    assert.equal(await n1.append([Buffer.from('next')]), 1000n);
  } finally {
    await h.close();
  }
});
