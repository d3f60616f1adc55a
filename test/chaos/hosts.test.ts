// Nothing a chaos run creates outlives it: not on a clean exit, not on a crash of
// the harness (kill -9), and `cleanup` finds what is left by name.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { cleanupLeftovers, createTopology } from './hosts.js';
import { pause } from './rng.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** Names of namespaces, links and mounts that mention `run`. */
function traces(run: string): string[] {
  const out: string[] = [];
  try {
    out.push(
      ...execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(run)),
    );
    out.push(
      ...execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(run)),
    );
  } catch {
    // no `ip`: loopback only, nothing of the kind to leave behind
  }
  if (existsSync('/proc/mounts'))
    out.push(
      ...readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .filter((l) => l.includes(run)),
    );
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ms: number, pred: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await pause(100);
  }
}

describe('chaos hosts', () => {
  it('close() removes every namespace, link and mount of the run', async () => {
    const topo = await createTopology({ nodes: 2 });
    if (topo.mode === 'netns') assert.ok(traces(topo.run).length >= 4, traces(topo.run).join('\n'));
    await topo.close();
    assert.deepEqual(traces(topo.run), []);
    assert.equal(existsSync(topo.root), false);
  });

  it('cleanup removes the leftovers of a run by name', async () => {
    const topo = await createTopology({ nodes: 1 });
    const removed = await cleanupLeftovers({ run: topo.run, all: true });
    assert.ok(
      removed.some((r) => r.includes(topo.run)),
      removed.join('\n'),
    );
    assert.deepEqual(traces(topo.run), []);
    assert.equal(existsSync(topo.root), false);
  });

  it(
    'a harness killed with SIGKILL leaves no namespace, link, mount or node behind',
    { timeout: 60_000 },
    async () => {
      const child = spawn(
        process.execPath,
        [MAIN, '--nodes', '1', '--seconds', '600', '--seed', '5', '--faults', 'pause'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let run = '';
      for await (const line of createInterface({ input: child.stdout })) {
        const m = /, run (\w+)$/.exec(line);
        if (m) run = m[1]!;
        if (/^fault /.test(line)) break; // the node is up and the workload running
      }
      assert.notEqual(run, '', 'the harness printed no run id');
      const state = JSON.parse(
        readFileSync(join(tmpdir(), `commitlog-chaos-${run}`, 'state.json'), 'utf8'),
      ) as {
        pids: number[];
      };
      assert.ok(state.pids.length > 0);
      child.kill('SIGKILL');
      await until(
        `run ${run} cleaned up by its reaper`,
        20_000,
        () => traces(run).length === 0 && state.pids.every((p) => !alive(p)),
      );
      await until(
        'run folder removed',
        5000,
        () => !existsSync(join(tmpdir(), `commitlog-chaos-${run}`)),
      );
    },
  );

  it(
    'Ctrl-C stops the faults, checks what was done, prints the summary and cleans up',
    { timeout: 90_000 },
    async () => {
      const child = spawn(
        process.execPath,
        [MAIN, '--nodes', '1', '--seconds', '600', '--seed', '6', '--faults', 'kill'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      const exited = new Promise<number | null>((resolve) =>
        child.once('exit', (code) => resolve(code)),
      );
      let run = '';
      let summary = '';
      for await (const line of createInterface({ input: child.stdout })) {
        const m = /, run (\w+)$/.exec(line);
        if (m) run = m[1]!;
        if (/^fault /.test(line) && !child.killed) child.kill('SIGINT');
        if (line.startsWith('chaos: ') && line.includes(' operations, ')) summary = line;
      }
      assert.equal(await exited, 0, 'the interrupted run found violations or failed');
      assert.match(summary, /^chaos: \d+ operations, \d+ faults, 0 lost, 0 violations$/);
      assert.deepEqual(traces(run), []);
      assert.equal(existsSync(join(tmpdir(), `commitlog-chaos-${run}`)), false);
    },
  );
});
