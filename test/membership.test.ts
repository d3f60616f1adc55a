// Five member processes on 127.0.0.1 join through one seed; one is killed and the others
// report it failed; one leaves and the others report a leave; a tag change reaches all.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import type { MemberEvent } from '../src/membership/index.js';

const CHILD = fileURLToPath(new URL('./membership-child.js', import.meta.url));

interface Child {
  name: string;
  proc: ChildProcessWithoutNullStreams;
  address: string;
  events: MemberEvent[];
  lines: { [k: string]: unknown }[];
  waiters: Set<() => void>;
}

const children: Child[] = [];
after(() => {
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
});

function launch(name: string, key: string): Promise<Child> {
  const proc = spawn(process.execPath, [CHILD, name, key], { stdio: ['pipe', 'pipe', 'pipe'] });
  const child: Child = { name, proc, address: '', events: [], lines: [], waiters: new Set() };
  children.push(child);
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const msg = JSON.parse(line) as { [k: string]: unknown };
    child.lines.push(msg);
    if (msg.event) child.events.push(msg.event as MemberEvent);
    if (typeof msg.ready === 'string') child.address = msg.ready;
    for (const w of child.waiters) w();
  });
  proc.on('exit', () => {
    for (const w of child.waiters) w();
  });
  return waitFor(child, 'ready', () => child.address !== '', 10_000).then(
    () => child,
    (err: unknown) => {
      throw new Error(`${name} did not start: ${stderr}`, { cause: err });
    },
  );
}

/** Waits until `cond` holds after some output of `child`, with a deadline. */
function waitFor(child: Child, what: string, cond: () => boolean, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!cond()) return;
      clearTimeout(timer);
      child.waiters.delete(check);
      resolve();
    };
    const timer = setTimeout(() => {
      child.waiters.delete(check);
      reject(new Error(`${child.name}: ${what} not seen within ${ms} ms`));
    }, ms);
    child.waiters.add(check);
    check();
  });
}

const send = (c: Child, cmd: unknown): void => void c.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
const last = (c: Child, name: string): MemberEvent | undefined =>
  c.events.filter((e) => e.member.name === name).at(-1);

describe('membership across 5 processes', () => {
  it('joins through one seed, reports failed, leave and tag updates', async (t) => {
    const key = randomBytes(32).toString('base64');
    const took = (what: string, since: number): void =>
      t.diagnostic(`${what}: ${(performance.now() - since).toFixed(0)} ms`);
    const all = await Promise.all(['p0', 'p1', 'p2', 'p3', 'p4'].map((n) => launch(n, key)));
    const [seed, p1, p2, p3, p4] = all as [Child, Child, Child, Child, Child];
    let since = performance.now();
    for (const c of all.slice(1)) send(c, { join: [seed.address] });
    await Promise.all(
      all.map((c) =>
        waitFor(c, 'all joins', () => all.every((o) => last(c, o.name)?.type === 'join'), 15_000),
      ),
    );
    took('all joins seen by all', since);
    for (const c of all) {
      assert.deepEqual(last(c, c.name), {
        type: 'join',
        member: { name: c.name, address: c.address, tags: {} },
        local: true,
      });
    }

    since = performance.now();
    p4.proc.kill('SIGKILL');
    const rest = [seed, p1, p2, p3];
    await Promise.all(
      rest.map((c) => waitFor(c, 'p4 failed', () => last(c, 'p4')?.type === 'failed', 15_000)),
    );

    took('kill seen as failed by all', since);
    since = performance.now();
    send(p3, { leave: true });
    const remaining = [seed, p1, p2];
    await Promise.all(
      remaining.map((c) => waitFor(c, 'p3 leave', () => last(c, 'p3')?.type === 'leave', 10_000)),
    );
    took('leave seen by all', since);
    await waitFor(p3, 'p3 exit', () => p3.proc.exitCode !== null, 10_000);
    assert.equal(p3.proc.exitCode, 0);

    since = performance.now();
    send(p2, { tags: { rpc_addr: '127.0.0.1:8400' } });
    await Promise.all(
      [seed, p1].map((c) =>
        waitFor(
          c,
          'p2 update',
          () =>
            last(c, 'p2')?.type === 'update' &&
            last(c, 'p2')?.member.tags.rpc_addr === '127.0.0.1:8400',
          10_000,
        ),
      ),
    );
    took('tag update seen by all', since);
    // Nobody declared a running member failed, and the leaver was never reported failed.
    for (const c of remaining) {
      const wrong = c.events.filter((e) => e.type === 'failed' && e.member.name !== 'p4');
      assert.deepEqual(wrong, [], `${c.name} reported failures of running members`);
    }
  });
});
