// Frame and inbound checks of StreamTransport, over in-memory streams (the socket tests
// are in test/net-transport.test.ts).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Duplex, PassThrough } from 'node:stream';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { encodeMessage } from './codec.js';
import type { WireMessage } from './messages.js';
import {
  encodeFrame,
  FrameError,
  FrameReader,
  StreamTransport,
  type PeerStream,
  type StreamLayer,
} from './stream-transport.js';

/** Two connected in-memory duplex ends. */
function pair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

/** Resolves when `s` closes; an in-memory pair ends in an AbortError, which is expected. */
function closed(s: Duplex): Promise<void> {
  s.on('error', () => {});
  return new Promise((resolve) => s.once('close', () => resolve()));
}

/** A layer whose inbound streams the test pushes. */
class FakeLayer implements StreamLayer {
  private readonly pending: PeerStream[] = [];
  private wake: (() => void) | undefined;

  push(s: PeerStream): void {
    this.pending.push(s);
    this.wake?.();
  }

  dial(): Promise<PeerStream> {
    return Promise.reject(new Error('no dialling here'));
  }

  async *accept(): AsyncGenerator<PeerStream> {
    for (;;) {
      const s = this.pending.shift();
      if (s) yield s;
      else await new Promise<void>((r) => (this.wake = r));
    }
  }
}

const hb = (from: string): WireMessage => ({
  type: 'heartbeat',
  from,
  to: 'n2',
  term: 1,
  commit: 0,
  context: 0,
});

async function connected(
  peerId: string | undefined,
  claim: string,
): Promise<{ t: StreamTransport; remote: Duplex; got: WireMessage[] }> {
  const layer = new FakeLayer();
  const t = new StreamTransport({ id: 'n2', clusterId: 'c', layer, addressOf: () => undefined });
  const got: WireMessage[] = [];
  t.listen((m) => got.push(m));
  const [local, remote] = pair();
  remote.on('error', () => {}); // the in-memory pair ends in an AbortError on close
  layer.push({ stream: local, ...(peerId !== undefined ? { peerId } : {}) });
  const hello = { p: 'commitlog-raft', min: 1, max: 1, cluster: 'c', group: 'default' };
  remote.write(
    encodeFrame(
      Buffer.from(JSON.stringify({ ...hello, from: claim, to: 'n2', channel: 'control' })),
    ),
  );
  const reader = new FrameReader(1 << 20);
  let frames: Buffer[] = [];
  while (frames.length === 0) {
    const [chunk] = (await once(remote, 'data')) as [Buffer];
    frames = reader.push(chunk);
  }
  assert.deepEqual(JSON.parse(String(frames[0])), { ok: true, version: 1, id: 'n2' });
  return { t, remote, got };
}

describe('StreamTransport frames', () => {
  it('reads back any frames split at any points', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (payloads, cuts) => {
          const bytes = Buffer.concat(payloads.map(encodeFrame));
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort(
            (a, b) => a - b,
          );
          const reader = new FrameReader(1 << 20);
          const out: Buffer[] = [];
          let at = 0;
          for (const p of [...points, bytes.length]) {
            out.push(...reader.push(bytes.subarray(at, p)));
            at = p;
          }
          assert.deepEqual(
            out.map((b) => Buffer.from(b)),
            payloads.map((p) => Buffer.from(p)),
          );
        },
      ),
    );
  });

  it('refuses a corrupted frame and an oversized one', () => {
    const frame = encodeFrame(Buffer.from('hello'));
    frame[frame.length - 1]! ^= 1;
    assert.throws(() => new FrameReader(100).push(frame), FrameError);
    assert.throws(() => new FrameReader(4).push(encodeFrame(Buffer.from('hello'))), /exceeds/);
  });

  it('delivers messages whose `from` is the bound id', async () => {
    const { t, remote, got } = await connected('n1', 'n1');
    remote.write(encodeFrame(encodeMessage(hb('n1'))));
    while (got.length === 0) await new Promise((r) => setImmediate(r));
    assert.equal(got[0]!.from, 'n1');
    await t.close();
  });

  it('closes a connection that sends a message with a foreign `from`', async () => {
    const { t, remote, got } = await connected('n1', 'n1');
    remote.write(encodeFrame(encodeMessage(hb('n3'))));
    await closed(remote);
    assert.equal(got.length, 0);
    assert.equal(t.stats().badFrames, 1);
    await t.close();
  });

  it('closes a connection on a checksum mismatch', async () => {
    const { t, remote, got } = await connected(undefined, 'n1');
    const frame = encodeFrame(encodeMessage(hb('n1')));
    frame[10]! ^= 0xff;
    remote.write(frame);
    await closed(remote);
    assert.equal(got.length, 0);
    assert.equal(t.stats().badFrames, 1);
    await t.close();
  });
});
