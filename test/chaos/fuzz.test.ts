// Bounded port fuzz in `npm test`; `npm run chaos:fuzz` is the 1,000,000-input soak.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { mutate, runFuzz } from './fuzz.js';
import { Rng } from './rng.js';

const INPUTS = Number(process.env.FUZZ_INPUTS ?? 5000);
const SEED = Number(process.env.FUZZ_SEED ?? 4242);

describe('port fuzz', () => {
  it('mutations are reproducible from the seed and vary in shape', () => {
    const seeds = [
      Buffer.from('POST / HTTP/1.1\r\n\r\n'),
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    ];
    const a = Array.from(
      { length: 200 },
      (
        (r) => () =>
          mutate(r, seeds)
      )(new Rng(9)),
    );
    const b = Array.from(
      { length: 200 },
      (
        (r) => () =>
          mutate(r, seeds)
      )(new Rng(9)),
    );
    assert.deepEqual(a, b);
    assert.ok(new Set(a.map((x) => x.toString('hex'))).size > 150);
    assert.ok(a.some((x) => x.length === 0) || a.some((x) => x.length > 512));
  });

  it(
    `${INPUTS} inputs at the gRPC (and Raft), HTTP and gossip ports: no crash, no loss, bounded RSS (seed ${SEED})`,
    { timeout: 180_000 },
    async () => {
      const r = await runFuzz({ inputs: INPUTS, seed: SEED, maxRssBytes: 512 * 2 ** 20 });
      assert.ok(r.ok, r.summary);
      assert.equal(r.crashes, 0);
      assert.equal(r.lost, 0);
      assert.ok(r.acknowledged > 0, r.summary);
      assert.ok(
        r.inputs.grpc > 0 && r.inputs.raft > 0 && r.inputs.http > 0 && r.inputs.gossip > 0,
        r.summary,
      );
    },
  );
});
