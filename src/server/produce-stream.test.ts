// The ProduceStream session alone: a fake sink and appends the test settles by hand.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ProduceStreamSession, type ProduceSink } from './produce-stream.js';

class FakeSink implements ProduceSink {
  readonly acks: bigint[] = [];
  paused = false;
  /** Answer `false` to writes (a full buffer) until drain() is called. */
  full = false;
  private drainWaiters: (() => void)[] = [];

  write(offset: bigint): boolean {
    this.acks.push(offset);
    return !this.full;
  }
  drained(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      this.drainWaiters.push(resolve);
      signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
    });
  }
  drain(): void {
    this.full = false;
    for (const w of this.drainWaiters.splice(0)) w();
  }
  get waitingForDrain(): boolean {
    return this.drainWaiters.length > 0;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  isPaused(): boolean {
    return this.paused;
  }
}

/** Appends that wait until the test settles them, in any order. */
class ManualAppends {
  readonly started: { value: string; resolve: (o: bigint) => void; reject: (e: Error) => void }[] =
    [];
  append = (value: Uint8Array): Promise<bigint> =>
    new Promise((resolve, reject) => {
      this.started.push({ value: Buffer.from(value).toString(), resolve, reject });
    });
  settle(i: number, offset: bigint): void {
    this.started[i]?.resolve(offset);
  }
}

/** Lets every settled promise run its continuations. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
const v = (s: string) => Buffer.from(s);

describe('ProduceStreamSession', () => {
  it('starts appends as requests arrive and acknowledges in request order', async () => {
    const sink = new FakeSink();
    const appends = new ManualAppends();
    const session = new ProduceStreamSession(sink, { append: appends.append, maxInFlight: 8 });
    const done = session.acknowledge();
    for (const s of ['a', 'b', 'c']) session.onData(v(s));
    assert.equal(appends.started.length, 3, 'all three appends started before any finished');
    appends.settle(2, 12n);
    appends.settle(1, 11n);
    await flush();
    assert.deepEqual(sink.acks, [], 'nothing is acknowledged before the first append');
    appends.settle(0, 10n);
    session.onEnd();
    await done;
    assert.deepEqual(sink.acks, [10n, 11n, 12n]);
  });

  it('pauses reading at maxInFlight and resumes below half', async () => {
    const sink = new FakeSink();
    const appends = new ManualAppends();
    const session = new ProduceStreamSession(sink, { append: appends.append, maxInFlight: 4 });
    const done = session.acknowledge();
    for (const s of ['a', 'b', 'c']) session.onData(v(s));
    assert.equal(sink.paused, false);
    session.onData(v('d'));
    assert.equal(sink.paused, true, 'paused with 4 appends unacknowledged');
    appends.settle(0, 0n);
    await flush();
    assert.equal(sink.paused, true, '3 unacknowledged is not below half of 4');
    appends.settle(1, 1n);
    appends.settle(2, 2n);
    await flush();
    assert.equal(sink.paused, false, 'resumed at 1 unacknowledged');
    appends.settle(3, 3n);
    session.onEnd();
    await done;
    assert.deepEqual(sink.acks, [0n, 1n, 2n, 3n]);
  });

  it('refuses in order: acknowledges what came before an invalid request, then fails', async () => {
    const sink = new FakeSink();
    const appends = new ManualAppends();
    const session = new ProduceStreamSession(sink, { append: appends.append, maxInFlight: 8 });
    const done = session.acknowledge();
    session.onData(v('a'));
    const invalid = new Error('record is required');
    session.onInvalid(invalid);
    session.onData(v('after'));
    assert.equal(appends.started.length, 1, 'nothing after the invalid request is appended');
    assert.equal(sink.paused, true, 'and nothing more is read');
    appends.settle(0, 7n);
    await assert.rejects(done, (err) => err === invalid);
    assert.deepEqual(sink.acks, [7n]);
  });

  it('fails the stream with the first failed append, after the acks before it', async () => {
    const sink = new FakeSink();
    const appends = new ManualAppends();
    const session = new ProduceStreamSession(sink, { append: appends.append, maxInFlight: 8 });
    const done = session.acknowledge();
    session.onData(v('a'));
    session.onData(v('b'));
    session.onData(v('c'));
    appends.started[1]?.reject(new Error('disk full'));
    appends.settle(2, 2n);
    appends.settle(0, 0n);
    await assert.rejects(done, /disk full/);
    assert.deepEqual(sink.acks, [0n]);
  });

  it('at stop, acknowledges the appends already started, then fails with the reason', async () => {
    const sink = new FakeSink();
    const appends = new ManualAppends();
    const session = new ProduceStreamSession(sink, { append: appends.append, maxInFlight: 8 });
    const done = session.acknowledge();
    session.onData(v('a'));
    session.onData(v('b'));
    const reason = new Error('shutting down');
    session.stop(reason);
    session.onData(v('late'));
    assert.equal(appends.started.length, 2);
    appends.settle(0, 0n);
    appends.settle(1, 1n);
    await assert.rejects(done, (err) => err === reason);
    assert.deepEqual(sink.acks, [0n, 1n]);
  });

  it('waits for drain when the outgoing buffer is full, and stops on cancel', async () => {
    const sink = new FakeSink();
    sink.full = true;
    const appends = new ManualAppends();
    const session = new ProduceStreamSession(sink, { append: appends.append, maxInFlight: 8 });
    const done = session.acknowledge();
    session.onData(v('a'));
    session.onData(v('b'));
    appends.settle(0, 0n);
    appends.settle(1, 1n);
    await flush();
    assert.deepEqual(sink.acks, [0n], 'the second ack waits for drain');
    assert.equal(sink.waitingForDrain, true);
    sink.drain();
    await flush();
    assert.deepEqual(sink.acks, [0n, 1n]);
    session.onData(v('c'));
    session.onCancel();
    await assert.rejects(done, { name: 'AbortError' });
    appends.settle(2, 2n);
    await flush();
    assert.deepEqual(sink.acks, [0n, 1n], 'nothing is sent after cancel');
  });
});
