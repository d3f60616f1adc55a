// The main barrel carries the library only: the seeded simulator lives in ./testing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as lib from './index.js';
import * as testing from './testing/index.js';

describe('membership entry points', () => {
  it('keeps the simulator out of the main barrel', () => {
    const leaked = Object.keys(testing).filter((name) => name in lib);
    assert.deepEqual(leaked, []);
    for (const name of ['SimCluster', 'SimNetwork', 'runScenario'])
      assert.equal(name in lib, false, name);
  });

  it('exports the simulator from ./testing', () => {
    assert.equal(typeof testing.SimCluster, 'function');
    assert.equal(typeof testing.runScenario, 'function');
  });
});
