// The network and disk fault primitives do what they claim, checked from inside the
// namespaces (skipped where the machine has no namespaces, nft/iptables or root).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { applyRules, clearRules, fillDisk } from './faults.js';
import { createTopology, sh, type Topology } from './hosts.js';

let topo: Topology;
const servers: ChildProcess[] = [];

/** Exit code of a TCP connect from one namespace to an address: 0 connected, else failed. */
function connects(ns: string, addr: string, port: number): Promise<boolean> {
  const code = `const s=require('net').connect(${port},'${addr}');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),700)`;
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: 'ignore' });
    c.once('exit', (status) => resolve(status === 0));
  });
}

describe('chaos fault primitives', async () => {
  topo = await createTopology({ nodes: 2, tmpfsMb: 8 });
  const net = topo.mode === 'netns' && topo.caps.firewall !== undefined;
  const skipNet = net ? false : 'needs network namespaces and nft or iptables';
  const [a, b] = topo.hosts;
  before(async () => {
    if (!net) return;
    for (const h of topo.hosts) {
      const s = spawn(
        'ip',
        [
          'netns',
          'exec',
          h.netns!,
          process.execPath,
          '-e',
          `require('net').createServer(c=>c.end()).listen(9000,'${h.address}')`,
        ],
        { stdio: 'ignore' },
      );
      servers.push(s);
    }
    // the listeners are up once a connect succeeds
    for (let i = 0; i < 50 && !(await connects(a!.netns!, b!.address, 9000)); i++)
      await new Promise((r) => setTimeout(r, 100));
  });
  after(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await topo.close();
  });

  it('a partition rule cuts a link and healing restores it', { skip: skipNet }, async () => {
    assert.equal(await connects(a!.netns!, b!.address, 9000), true, 'linked before the fault');
    await applyRules(topo, b!.netns!, { dropFrom: [a!.address] });
    assert.equal(await connects(a!.netns!, b!.address, 9000), false, 'cut by the partition');
    assert.equal(await connects(b!.netns!, a!.address, 9000), false, 'TCP needs both directions');
    await clearRules(topo, b!.netns!);
    assert.equal(await connects(a!.netns!, b!.address, 9000), true, 'healed');
  });

  it(
    'a 100 % loss rule drops everything into the node until healed',
    { skip: skipNet },
    async () => {
      await applyRules(topo, b!.netns!, { dropFrom: [], lossPct: 100 });
      assert.equal(await connects(a!.netns!, b!.address, 9000), false);
      await clearRules(topo, b!.netns!);
      assert.equal(await connects(a!.netns!, b!.address, 9000), true);
    },
  );

  it(
    'a slow link installs a tbf qdisc that healing removes',
    { skip: topo.caps.tbf ? false : 'needs tc tbf' },
    async () => {
      await sh('ip', [
        'netns',
        'exec',
        a!.netns!,
        'tc',
        'qdisc',
        'replace',
        'dev',
        'eth0',
        'root',
        'tbf',
        'rate',
        '64kbit',
        'burst',
        '16kb',
        'latency',
        '300ms',
      ]);
      assert.match(
        await sh('ip', ['netns', 'exec', a!.netns!, 'tc', 'qdisc', 'show', 'dev', 'eth0']),
        /tbf .*rate 64Kbit/,
      );
    },
  );

  it(
    'fillDisk fills a tmpfs data directory to the last byte',
    { skip: a?.tmpfs ? false : 'needs root for tmpfs' },
    async () => {
      const written = await fillDisk(a!.dataDir, join(a!.dataDir, 'filler'));
      assert.ok(written > 7 * 2 ** 20, `wrote ${written}`);
      const fs = await statfs(a!.dataDir);
      assert.equal(fs.bavail, 0);
    },
  );
});
