// A node whose disk fills up while it runs: Raft stops on the failed write (fail-stop),
// and the process must stop too, with exit code 1 and a message that says why, rather
// than linger as a member that never votes again. Restarted once space is back, it
// serves everything it acknowledged and takes new records.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { spawnAgent, type AgentProcess } from './support/agent-process.js';
import { tempDir } from './support/node.js';
import { within } from './support/wait.js';

const run = promisify(execFile);

async function canMountTmpfs(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs as the data directory';
  const probe = await tempDir('tmpfs-probe');
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]);
    await run('umount', [probe]);
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]})`;
  } finally {
    await rm(probe, { recursive: true, force: true });
  }
}

const skip = await canMountTmpfs();
let mnt: string | undefined;
let mounted = false;

before(async () => {
  if (skip) return;
  mnt = await tempDir('full-disk');
  await run('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
  mounted = true;
});

after(async () => {
  if (mounted) await run('umount', ['-l', mnt!]);
  if (mnt) await rm(mnt, { recursive: true, force: true });
});

function startAgent(dataDir: string): Promise<AgentProcess> {
  return spawnAgent(
    // --min-free-bytes 0: no early refusal of produces, so the disk really fills and a
    // write of Raft's fails (as it does on a follower, which takes no produces).
    [
      '--data-dir',
      dataDir,
      '--rpc-port',
      '0',
      '--http-port',
      '0',
      '--node-name',
      'disk',
      '--min-free-bytes',
      '0',
    ],
    { startTimeoutMs: 20_000 },
  );
}

async function produce(agent: AgentProcess, value: Buffer): Promise<Response> {
  return fetch(`http://${agent.httpAddr}/`, {
    method: 'POST',
    body: JSON.stringify({ record: { value: value.toString('base64') } }),
    signal: AbortSignal.timeout(10_000),
  });
}

/** Writes `path` until the file system is full; returns the bytes written. */
async function fillUp(path: string): Promise<number> {
  const fh = await open(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  try {
    for (;;) written += (await fh.write(chunk)).bytesWritten;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return written;
}

test(
  'a full disk stops the node with exit code 1; after a restart with space it lost nothing',
  { skip },
  async () => {
    const data = join(mnt!, 'data');
    const agent = await startAgent(data);
    const acked = new Map<number, string>();
    try {
      for (let k = 0; k < 20; k++) {
        const value = Buffer.from(`before-${k}`);
        const res = await produce(agent, value);
        const body = await res.text();
        assert.equal(res.status, 200, body);
        acked.set((JSON.parse(body) as { offset: number }).offset, value.toString());
      }
      const filler = join(mnt!, 'filler');
      assert.ok((await fillUp(filler)) > 0);
      // Produces now fail; the first write Raft cannot make stops it, and the node with it.
      const value = Buffer.alloc(32 * 1024, 7);
      for (let k = 0; k < 50 && agent.child.exitCode === null; k++) {
        const res = await produce(agent, value).catch(() => undefined);
        if (res?.status === 200) assert.fail('a produce succeeded on a full disk');
      }
      const { code } = await within(
        20_000,
        'the node to exit after the failed write',
        agent.exited,
      );
      assert.equal(code, 1, agent.stderr());
      assert.match(agent.stderr(), /the node stopped: .*storage/);
      assert.match(agent.stdout(), /raft stopped after a storage failure/);

      await rm(filler);
      const again = await startAgent(data);
      try {
        for (const [offset, v] of acked) {
          const res = await fetch(`http://${again.httpAddr}/v1/records/${offset}`);
          assert.equal(res.status, 200, `offset ${offset}`);
          const rec = ((await res.json()) as { record: { value: string } }).record;
          assert.equal(Buffer.from(rec.value, 'base64').toString(), v);
        }
        const res = await produce(again, Buffer.from('after'));
        assert.equal(res.status, 200, await res.text());
      } finally {
        await again.stop();
      }
    } finally {
      await agent.kill();
    }
  },
);
