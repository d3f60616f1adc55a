// The batching producer with a scripted sendBatch: batches by size and linger, keeps
// order, bounds memory (ready/sendAll wait), and reports a batch's failure to each
// of its records.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Producer, ProducerClosedError, UnavailableError } from '../src/client/index.js';

/** A log in memory whose sendBatch the test can hold and release. */
class Script {
  readonly batches: string[][] = [];
  next = 0n;
  hold = false;
  private held: (() => void)[] = [];
  fail: Error | undefined;

  readonly send = async (values: Uint8Array[]): Promise<bigint> => {
    this.batches.push(values.map((v) => Buffer.from(v).toString()));
    if (this.hold) await new Promise<void>((r) => this.held.push(r));
    if (this.fail) throw this.fail;
    const first = this.next;
    this.next += BigInt(values.length);
    return first;
  };

  readonly prepare = (values: Uint8Array[]) => () => this.send(values);

  release(): void {
    for (const r of this.held.splice(0)) r();
  }
}

const b = (s: string) => Buffer.from(s);

describe('Producer', () => {
  it('gathers records sent together into one batch and resolves each with its offset', async () => {
    const s = new Script();
    const p = new Producer(s.prepare, { lingerMs: 20 });
    const offsets = await Promise.all(['a', 'b', 'c'].map((x) => p.send(b(x))));
    assert.deepEqual(offsets, [0n, 1n, 2n]);
    assert.deepEqual(s.batches, [['a', 'b', 'c']]);
    await p.close();
  });

  it('sends a batch as soon as it reaches maxBatchBytes, without waiting for linger', async () => {
    const s = new Script();
    const p = new Producer(s.prepare, { lingerMs: 60_000, maxBatchBytes: 4 });
    const acks = ['aa', 'bb', 'cc', 'dd'].map((x) => p.send(b(x)));
    assert.deepEqual(await Promise.all(acks), [0n, 1n, 2n, 3n]);
    assert.deepEqual(s.batches, [
      ['aa', 'bb'],
      ['cc', 'dd'],
    ]);
    await p.close();
  });

  it('keeps order with one batch in flight and applies backpressure through ready()', async () => {
    const s = new Script();
    s.hold = true;
    const p = new Producer(s.prepare, { lingerMs: 1, maxBatchBytes: 2, maxBufferedBytes: 4 });
    const first = [p.send(b('a1')), p.send(b('a2'))];
    assert.equal(p.full, true);
    let roomy = false;
    const room = p.ready().then(() => (roomy = true));
    await new Promise(setImmediate);
    assert.equal(roomy, false, 'ready() waits while 4 bytes are buffered');
    assert.deepEqual(s.batches, [['a1']], 'one batch in flight at a time');
    s.hold = false;
    s.release();
    await room;
    assert.deepEqual(await Promise.all(first), [0n, 1n]);
    assert.deepEqual(s.batches, [['a1'], ['a2']]);
    await p.close();
  });

  it('sendAll yields offsets in order and never buffers more than maxBufferedBytes', async () => {
    const s = new Script();
    const p = new Producer(s.prepare, { lingerMs: 1, maxBatchBytes: 8, maxBufferedBytes: 16 });
    let peak = 0;
    const values = function* () {
      for (let i = 0; i < 50; i++) {
        peak = Math.max(peak, p.bufferedBytes);
        yield b(String(i % 10).repeat(4));
      }
    };
    const got: bigint[] = [];
    for await (const o of p.sendAll(values())) got.push(o);
    assert.deepEqual(
      got,
      Array.from({ length: 50 }, (_, i) => BigInt(i)),
    );
    assert.ok(peak <= 16, `peak ${peak}`);
    assert.ok(s.batches.length >= 25, 'batches of at most 8 bytes');
    await p.close();
  });

  it("rejects every record of a failed batch with the batch's error; refuses sends after close", async () => {
    const s = new Script();
    s.fail = new UnavailableError('down', 14);
    const p = new Producer(s.prepare, { lingerMs: 1 });
    const results = await Promise.allSettled([p.send(b('x')), p.send(b('y'))]);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.equal(r.reason, s.fail);
    }
    await p.close();
    await assert.rejects(p.send(b('z')), ProducerClosedError);
  });

  it('flush() waits for the records sent before it, not for those sent meanwhile', async () => {
    // With a steady stream of sends the producer is never idle: a flush that waited for
    // idleness would never end (close() and disposal would hang).
    const s = new Script();
    const p = new Producer(s.prepare, { lingerMs: 60_000 });
    s.hold = true;
    const x = p.send(b('x'));
    const flushed = p.flush(); // sends [x] now (no linger)
    let zAcked = false;
    const z = p.send(b('z')).then((offset) => ((zAcked = true), offset));
    s.release(); // [x] acknowledged; [z] goes out and is held
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      flushed.then(() => true),
      new Promise<false>((r) => (timer = setTimeout(() => r(false), 2000))),
    ]);
    clearTimeout(timer);
    assert.equal(ended, true, 'flush() ended while a later record was in flight');
    assert.equal(await x, 0n);
    assert.equal(zAcked, false);
    assert.deepEqual(s.batches, [['x'], ['z']]);
    s.hold = false;
    s.release();
    assert.equal(await z, 1n);
    await p.close();
  });
});
