// Chunked snapshot streams across restarts of the stream: a follower that kept part of a
// transfer is resumed from there, a superseded stream does not fail its successor, and
// a transfer that keeps moving is not abandoned by the leader's snapshot timeout.
// Ticks are driven by hand (tickMs 0), so the counts below do not depend on load.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SnapshotMeta } from '../core/index.js';
import { TestCluster, addressOf } from '../testing/index.js';
import type { WireMessage } from './messages.js';
import type { RaftNode } from './raft-node.js';

const CHUNK = 64 * 1024; // MemoryStateMachine's chunk size
const WINDOW = 4; // RaftNode's default snapshotWindow

const immediate = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function tick(cluster: TestCluster, times = 1): Promise<void> {
  for (let k = 0; k < times; k++) {
    for (const n of cluster.running()) n.tick();
    await immediate();
    await immediate();
  }
}

/** Ticks until `probe` holds; fails after `maxTicks`. */
async function tickUntil(
  cluster: TestCluster,
  probe: () => boolean,
  what: string,
  maxTicks = 2000,
): Promise<number> {
  for (let k = 0; k < maxTicks; k++) {
    if (probe()) return k;
    await tick(cluster);
  }
  assert.fail(`no ${what} within ${maxTicks} ticks`);
}

interface Setup {
  cluster: TestCluster;
  leader: RaftNode;
  /** Snapshot streams the leader opened (each reads its state machine once). */
  streams: () => number;
  /** Every snapshot chunk the network carried, by offset. */
  chunks: number[];
  /** Makes streams from the n-th on cut their chunks at `bytes` instead of 64 KiB. */
  rechunk: (fromStream: number, bytes: number) => void;
}

/** A leader with entries × 8 KiB of compacted state and a new learner n4 to feed. */
async function setup(raft: { snapshotTimeoutTicks?: number } = {}, entries = 64): Promise<Setup> {
  const cluster = await TestCluster.create({
    size: 3,
    tickMs: 0,
    raft: { retainEntries: 0, electionTicks: 10, ...raft },
  });
  await tickUntil(cluster, () => cluster.leader() !== undefined, 'leader');
  const leader = cluster.leader()!;
  let last = 0;
  for (let k = 0; k < entries; k++) last = await leader.propose(new Uint8Array(8192).fill(k));
  assert.ok(leader.compact(last));
  const sm = cluster.members.get(leader.id)!.stateMachine;
  let reads = 0;
  let cut: { from: number; bytes: number } | undefined;
  const read = sm.read.bind(sm);
  sm.read = (meta: SnapshotMeta) => {
    reads++;
    return cut && reads >= cut.from ? recut(read(meta), cut.bytes) : read(meta);
  };
  const chunks: number[] = [];
  await cluster.addMember('n4');
  return {
    cluster,
    leader,
    streams: () => reads,
    chunks,
    rechunk: (from, bytes) => (cut = { from, bytes }),
  };
}

/** The same bytes in chunks of `size`. */
async function* recut(chunks: AsyncIterable<Uint8Array>, size: number): AsyncIterable<Uint8Array> {
  let buf = new Uint8Array(0);
  for await (const c of chunks) {
    const next = new Uint8Array(buf.byteLength + c.byteLength);
    next.set(buf);
    next.set(c, buf.byteLength);
    buf = next;
    while (buf.byteLength >= size) {
      yield buf.slice(0, size);
      buf = buf.slice(size);
    }
  }
  if (buf.byteLength > 0) yield buf;
}

/**
 * A streamed snapshot stands for the applied state: the first stream (opened before the
 * learner's own entry applied) is of an older index. Starve it of acks until the leader
 * gives up and streams the snapshot at that entry; let that one deliver more than a
 * window (chunks 0..11 reach n4), then starve it too until a third stream of the same
 * snapshot starts, cut in chunks of `thirdChunkBytes`.
 */
async function resume(thirdChunkBytes: number): Promise<void> {
  const { cluster, leader, streams, chunks, rechunk } = await setup({}, 128); // 16 chunks
  rechunk(3, thirdChunkBytes);
  await using _ = cluster;
  let blockAcks = true;
  cluster.network.dropIf = (m: WireMessage) => {
    if (m.type === 'snapshotChunk') {
      chunks.push(m.offset);
      if (streams() === 2 && m.offset >= 8 * CHUNK) blockAcks = true;
    }
    return blockAcks && m.type === 'snapshotAck';
  };
  const added = leader.addLearner('n4', addressOf('n4'));
  const index = await added;
  await tickUntil(cluster, () => streams() >= 2, 'second stream');
  blockAcks = false;
  await tickUntil(cluster, () => streams() >= 3, 'third stream');
  const before = chunks.length;
  blockAcks = false;
  cluster.network.dropIf = (m: WireMessage) => {
    if (m.type === 'snapshotChunk') chunks.push(m.offset);
    return false;
  };
  await tickUntil(
    cluster,
    () => cluster.node('n4').status().applied >= index,
    'n4 applied the snapshot',
  );
  const after = chunks.slice(before);
  const below = after.filter((o) => o + thirdChunkBytes <= 12 * CHUNK);
  // The new stream's first window (and one resend of it) before the first ack said
  // where n4 stands; nothing n4 kept is sent again and again.
  assert.ok(below.length <= 2 * WINDOW, `resent below the kept part: ${below.join(' ')}`);
  assert.equal(streams(), 3);
  assert.equal(cluster.members.get('n4')!.stateMachine.installs, 1);
}

describe('RaftNode snapshot streams that restart', () => {
  it('resumes a restarted stream from what the follower kept (not from 0, and not for ever)', () =>
    resume(CHUNK));

  it('resumes a restarted stream that cuts its chunks elsewhere (one straddles the kept part)', () =>
    resume(40_000));

  it('a stream superseded by a retry does not fail the retry', async () => {
    // The core's snapshot timeout (20 ticks) retries before the stream's own resends
    // give up (about 33 ticks): the old stream ends as superseded, and its failure must
    // not be reported against the new one (that would retry at every heartbeat answer).
    const { cluster, leader, streams } = await setup({ snapshotTimeoutTicks: 20 });
    await using _ = cluster;
    let blockAcks = true;
    cluster.network.dropIf = (m) => blockAcks && m.type === 'snapshotAck';
    const added = leader.addLearner('n4', addressOf('n4'));
    await tickUntil(cluster, () => streams() >= 1, 'first stream');
    await tick(cluster, 200);
    assert.ok(streams() <= 200 / 20 + 2, `${streams()} streams in 200 ticks`);
    blockAcks = false;
    const index = await added;
    await tickUntil(cluster, () => cluster.node('n4').status().applied >= index, 'n4 caught up');
  });

  it('a transfer that keeps moving outlives the snapshot timeout', async () => {
    // The follower's acks are held back and released one per tick, oldest first: each
    // tick moves the transfer on by one chunk, so the 64 chunks take far longer than the
    // 20-tick timeout, yet the leader keeps the one stream. Which ack goes through is
    // chosen by the test, not by timing, so a loaded machine cannot starve a tick.
    const { cluster, leader, streams } = await setup({ snapshotTimeoutTicks: 20 }, 512);
    await using _ = cluster;
    const held: WireMessage[] = [];
    const released = new Set<WireMessage>();
    let streaming = false;
    cluster.network.dropIf = (m) => {
      if (m.type === 'snapshotChunk') streaming = !m.done;
      if (m.type !== 'snapshotAck' || m.done || released.has(m)) return false;
      held.push(m);
      return true;
    };
    const added = leader.addLearner('n4', addressOf('n4'));
    const index = await added;
    const caughtUp = () => cluster.node('n4').status().applied >= index;
    let ticks = 0;
    while (!caughtUp()) {
      if (streaming) {
        // Mid-transfer, a tick waits for an ack to release (the chunks' writes are
        // asynchronous); the deadline only bounds a broken run.
        const deadline = Date.now() + 10_000;
        while (held.length === 0 && Date.now() < deadline) await immediate();
        const ack = held.shift();
        assert.ok(ack, 'no snapshot ack within 10 s of a chunk');
        released.add(ack);
        cluster.network.transport(ack.from).send(ack);
        await immediate();
      }
      await tick(cluster);
      if (++ticks > 2000) assert.fail('n4 did not catch up within 2000 ticks');
    }
    assert.ok(ticks > 20, `the transfer took ${ticks} ticks, no more than the timeout`);
    assert.equal(streams(), 1);
  });
});
