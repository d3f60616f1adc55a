// The SDK against a real node (today's single-node agent): connect through
// GetServers, produce, producer, read and a consume stream that ends on abort.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { connect, OffsetOutOfRangeError } from '../src/client/index.js';
import { startNode, type TestNode } from './support/node.js';

describe('client SDK against a node', () => {
  let node: TestNode;
  before(async () => {
    node = await startNode({ fsync: 'never' });
  });
  after(() => node.cleanup());

  it('produces, reads and consumes', async () => {
    await using log = await connect(node.agent.rpcAddr);
    const [self, ...others] = await log.servers();
    assert.deepEqual(others, []);
    assert.equal(self?.id, 'test-node');
    assert.equal(self?.rpcAddr, node.agent.rpcAddr);
    assert.equal(self?.isLeader, true);
    assert.equal(self?.suffrage, 'voter');
    assert.match(self?.raftId ?? '', /^test-node\.[0-9a-f]{12}$/);
    assert.equal(await log.produce(Buffer.from('r0')), 0n);
    assert.deepEqual(await log.produceBatch([Buffer.from('r1'), Buffer.from('r2')]), [1n, 2n]);
    const producer = log.producer({ lingerMs: 2 });
    const values = Array.from({ length: 100 }, (_, i) => Buffer.from(`p${i}`));
    const offsets: bigint[] = [];
    for await (const o of producer.sendAll(values)) offsets.push(o);
    assert.deepEqual(
      offsets,
      Array.from({ length: 100 }, (_, i) => BigInt(3 + i)),
    );
    assert.equal((await log.read(50n)).value.toString(), 'p47');
    await assert.rejects(log.read(1000n), OffsetOutOfRangeError);
    const ac = new AbortController();
    const seen: bigint[] = [];
    for await (const r of log.consume({ from: 1n, signal: ac.signal })) {
      seen.push(r.offset);
      if (r.offset === 102n) ac.abort();
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 102 }, (_, i) => BigInt(1 + i)),
    );
  });
});
