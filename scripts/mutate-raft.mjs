// Mutation check for the Raft core: applies each deliberate bug below to a copy of the
// compiled library (never to the source tree), runs the Raft tests and a short
// simulation against it, and prints which tests caught each bug and how fast. A bug
// that no test catches fails the run: add a test until it is caught.
//
//   npm run build && node scripts/mutate-raft.mjs [--only id,id] [--seeds N] [--keep]
//
// Each patch is a text replacement in src/raft/core/*.ts (or, with a folder in `file`,
// in another file under src/raft, such as the driver) that must match exactly once;
// the patched file is transpiled alone into the copy. A patch that no longer matches
// (the core changed) is reported as an error, not silently skipped.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The deliberate bugs: rule, file, the exact text and its replacement. */
export const MUTATIONS = [
  {
    id: 'old-term-commit',
    rule: '§5.4.2 commit only entries of the current term (figure 8)',
    file: 'raft.ts',
    find: 'if (index <= this.rlog.committed || this.rlog.term(index) !== this.curTerm) return false;',
    replace: 'if (index <= this.rlog.committed) return false;',
  },
  {
    id: 'vote-without-log-check',
    rule: '§5.4.1 grant only to an up-to-date candidate',
    file: 'raft.ts',
    find: 'if (canVote && this.rlog.isUpToDate(m.lastIndex, m.lastTerm)) {',
    replace: 'if (canVote) {',
  },
  {
    id: 'keep-conflicting-suffix',
    rule: '§5.3 a conflicting entry and all after it are replaced',
    file: 'raft.ts',
    find: 'if (e.index > log.lastIndex || log.term(e.index) !== e.term) break;',
    replace: 'if (e.index > log.lastIndex) break;',
  },
  {
    id: 'consistency-check-index-only',
    rule: '§5.3 the consistency check compares index and term',
    file: 'log.ts',
    find: 'return this.term(i) === term;',
    replace: 'return this.term(i) !== undefined;',
  },
  {
    id: 'vote-not-recorded',
    rule: '§5.2 one vote per term, remembered (persisted) before answering',
    file: 'raft.ts',
    find: 'this.electionElapsed = 0;\n        this.votedFor = m.from;',
    replace: 'this.electionElapsed = 0;',
  },
  {
    id: 'vote-not-synced',
    rule: 'a new vote is written with fsync before the grant is sent',
    file: 'raft.ts',
    find: '(hardChanged && (hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote))',
    replace: '(hardChanged && hs.term !== this.prevHard.term)',
  },
  {
    id: 'learners-count-for-commit',
    rule: '§6 learners do not count in the commit quorum',
    file: 'raft.ts',
    find: 'const matches: number[] = [];\n    for (const id of this.curConf.voters) {',
    replace:
      'const matches: number[] = [];\n    for (const id of [...this.curConf.voters, ...this.curConf.learners]) {',
  },
  {
    id: 'learner-votes-count',
    rule: '§6 learners do not vote in elections',
    file: 'raft.ts',
    find: 'for (const v of this.curConf.voters) {\n      const g = this.votes.get(v);',
    replace:
      'for (const v of [...this.curConf.voters, ...this.curConf.learners]) {\n      const g = this.votes.get(v);',
  },
  {
    id: 'read-index-counts-learners',
    rule: 'ReadIndex: a quorum of voters only confirms leadership',
    file: 'raft.ts',
    find: 'const voters = this.curConf.voters;\n    while (this.pendingReads.length > 0) {',
    replace:
      'const voters = [...this.curConf.voters, ...this.curConf.learners];\n    while (this.pendingReads.length > 0) {',
  },
  {
    id: 'read-index-without-quorum',
    rule: 'ReadIndex: no read is served before a quorum confirms leadership',
    file: 'raft.ts',
    find: 'if (!this.releaseReads()) this.broadcastHeartbeat();',
    replace:
      'this.readStates.push(...this.pendingReads);\n    this.pendingReads = [];\n    this.broadcastHeartbeat();',
  },
  {
    id: 'commit-past-verified-prefix',
    rule: '§5.3 follower commit = min(leaderCommit, index of the last new entry)',
    file: 'raft.ts',
    find: 'log.commitTo(Math.min(m.commit, lastNew));',
    replace: 'log.commitTo(Math.min(m.commit, log.lastIndex));',
  },
  {
    id: 'commit-equals-leader-commit',
    rule: '§5.3 follower commit = min(leaderCommit, ...), not leaderCommit',
    file: 'raft.ts',
    find: 'log.commitTo(Math.min(m.commit, lastNew));',
    replace: 'log.commitTo(m.commit);',
  },
  {
    id: 'heartbeat-commit-unclamped',
    rule: "a heartbeat's commit is at most the follower's match",
    file: 'raft.ts',
    find: 'commit: Math.min(pr.match, this.rlog.committed),',
    replace: 'commit: this.rlog.committed,',
  },
  {
    id: 'commit-index-regression',
    rule: 'the commit index never goes back',
    file: 'log.ts',
    find: 'if (index <= this.committed) return false;',
    replace: 'if (index === this.committed) return false;',
  },
  {
    id: 'append-term-check-missing',
    rule: '§5.1 an append from an older term is refused',
    file: 'raft.ts',
    find: '} else if (m.term < this.curTerm) {',
    replace: "} else if (m.term < this.curTerm && m.type !== 'append') {",
  },
  {
    id: 'stale-term-response-accepted',
    rule: '§5.1 answers from an older term are ignored',
    file: 'raft.ts',
    find: '} else if (m.term < this.curTerm) {',
    replace:
      "} else if (m.term < this.curTerm && m.type !== 'appendResp' && m.type !== 'voteResp') {",
  },
  {
    id: 'pre-vote-changes-term',
    rule: 'a pre-vote request never changes the receiver term',
    file: 'raft.ts',
    find: "if (m.type === 'vote' && m.pre) {\n        // A pre-vote never changes our term.",
    replace:
      "if (m.type === 'vote' && m.pre && m.term < 0) {\n        // A pre-vote never changes our term.",
  },
  {
    id: 'lease-ignored',
    rule: 'check-quorum lease: voters that hear a leader ignore candidates',
    file: 'raft.ts',
    find: 'if (inLease && !m.force) return;',
    replace: 'if (inLease && !m.force && m.term < 0) return;',
  },
  {
    id: 'check-quorum-ignored',
    rule: 'check-quorum: a leader without an active quorum steps down',
    file: 'raft.ts',
    find: 'return active >= majority(this.curConf.voters.length);',
    replace: 'return active >= 0;',
  },
  {
    id: 'two-pending-conf-changes',
    rule: '§6 one uncommitted configuration change at a time',
    file: 'raft.ts',
    find: 'lastConfIndex > this.rlog.committed ||\n      this.rlog.term(this.rlog.committed) !== this.curTerm\n',
    replace: 'this.rlog.term(this.rlog.committed) !== this.curTerm\n',
  },
  {
    id: 'conf-change-before-first-commit',
    rule: "§6 no configuration change before the new leader's first commit",
    file: 'raft.ts',
    find: 'lastConfIndex > this.rlog.committed ||\n      this.rlog.term(this.rlog.committed) !== this.curTerm\n',
    replace: 'lastConfIndex > this.rlog.committed\n',
  },
  {
    id: 'stable-to-without-term',
    rule: 'asynchronous storage: stable-to checks the term of the written entry',
    file: 'log.ts',
    find: 'if (index > this.stableIndex && this.term(index) === term) this.stableIndex = index;',
    replace: 'if (index > this.stableIndex) this.stableIndex = index;',
  },
  {
    id: 'quorum-off-by-one',
    rule: 'a majority is floor(n/2)+1',
    file: 'conf.ts',
    find: 'return (n >> 1) + 1;',
    replace: 'return n >> 1;',
  },
  {
    id: 'learner-refuses-vote',
    rule: '§6 a node that thinks it is a learner still answers votes (it may be promoted)',
    file: 'raft.ts',
    find: 'if (canVote && this.rlog.isUpToDate(m.lastIndex, m.lastTerm)) {',
    replace:
      'if (canVote && isVoter(this.curConf, this.id) && this.rlog.isUpToDate(m.lastIndex, m.lastTerm)) {',
  },
  {
    id: 'removed-leader-keeps-leading',
    rule: '§6 a leader that removed itself steps down once the removal commits',
    file: 'raft.ts',
    // Neither hands over nor steps down: it keeps leading a configuration without it.
    find: "      if (heir !== undefined) this.send({ type: 'timeoutNow', to: heir, term: this.curTerm });\n      this.becomeFollower(this.curTerm, NONE);\n",
    replace: '      void heir;\n',
  },
  {
    id: 'snapshot-ack-ignored',
    rule: 'an append response at the snapshot index ends the snapshot state',
    file: 'raft.ts',
    find: 'if (pr.match >= pr.pendingSnapshot) pr.becomeReplicate();',
    replace: 'if (pr.match < 0) pr.becomeReplicate();',
  },
  // The driver (RaftNode): durability order, bootstrap, snapshot streams.
  {
    id: 'send-before-persist',
    rule: 'no message leaves before the term, vote and entries it depends on are durable',
    file: 'node/raft-node.ts',
    find: 'const early =\n      this.opts.leaderSendsBeforeSync === true &&',
    replace: 'const early =\n      true ||',
  },
  {
    id: 'term-vote-not-synced',
    rule: 'term and vote are synced before any message that depends on them',
    file: 'node/raft-node.ts',
    find: 'await hardStateStorage.save(rd.hardState, { sync: termOrVote });',
    replace: 'await hardStateStorage.save(rd.hardState, { sync: false });',
  },
  {
    id: 'commit-only-synced',
    rule: 'a commit-only hard-state change is written without fsync',
    file: 'node/raft-node.ts',
    find: 'await hardStateStorage.save(rd.hardState, { sync: termOrVote });',
    replace: 'await hardStateStorage.save(rd.hardState, { sync: true });',
  },
  {
    id: 'bootstrap-in-memory',
    rule: 'the bootstrap configuration is persisted before anything else',
    file: 'node/raft-node.ts',
    find: 'await opts.logStorage.installSnapshot({ lastIndex: 0, lastTerm: 0, config: opts.bootstrap });',
    replace: 'void 0;',
  },
  {
    id: 'snapshot-resume-from-zero',
    rule: 'a restarted snapshot stream skips what the follower kept (a lost chunk is resent, not the transfer)',
    file: 'node/raft-node.ts',
    find: 'if (!done && offset + data.byteLength <= out.acked) {',
    replace: 'if (false) {',
  },
  {
    id: 'snapshot-straddle-dropped',
    rule: 'a restarted stream whose chunk straddles what the follower kept delivers its new part',
    file: 'node/raft-node.ts',
    find: 'if (c.offset < cur.offset && c.offset + data.byteLength > cur.offset && !cur.done) {',
    replace: 'if (false) {',
  },
  {
    id: 'superseded-stream-fails-retry',
    rule: 'the outcome of a superseded snapshot stream is not reported against its retry',
    file: 'node/raft-node.ts',
    find: '    if (this.outgoing.has(out.to)) return;\n',
    replace: '',
  },
  {
    id: 'snapshot-progress-ignored',
    rule: 'a snapshot transfer that moves is not abandoned at the snapshot timeout',
    file: 'node/raft-node.ts',
    find: '      this.core.reportSnapshotProgress(out.to);\n',
    replace: '',
  },
];

/** Test files in the order they run (fast, specific ones first); `sim` is the simulation. */
const ORDER = [
  'core/paper.test.js',
  'core/transcript.test.js',
  'core/raft.test.js',
  'core/interaction.test.js',
  'node/',
  'testing/sim.test.js',
];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    seeds: { type: 'string', default: '100' },
    keep: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});

if (!values['no-build']) {
  const built = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) process.exit(built.status ?? 1);
}

const work = mkdtempSync(join(tmpdir(), 'mutate-raft-'));
let cleaned = false;
function cleanup() {
  if (cleaned || values.keep) return;
  cleaned = true;
  rmSync(work, { recursive: true, force: true });
}
// The source tree is never written; only the scratch copy needs removing.
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

const distRaft = join(work, 'dist/src/raft');
cpSync(join(root, 'dist/src/raft'), distRaft, { recursive: true });
cpSync(join(root, 'src/raft/testdata'), join(work, 'src/raft/testdata'), { recursive: true });
writeFileSync(join(work, 'package.json'), JSON.stringify({ type: 'module' }));
symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'), 'dir');
const pristine = new Map();
for (const dir of ['core', 'node']) {
  for (const f of readdirSync(join(distRaft, dir))) {
    const rel = join(dir, f);
    if (f.endsWith('.js')) pristine.set(rel, readFileSync(join(distRaft, rel), 'utf8'));
  }
}

function walk(dir, out) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const rank = (f) => {
  const rel = relative(distRaft, f);
  const k = ORDER.findIndex((o) => rel.startsWith(o));
  return k === -1 ? ORDER.length : k;
};
const testFiles = walk(distRaft, []).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

writeFileSync(
  join(work, 'sim-check.mjs'),
  `import { runSimulation } from './dist/src/raft/testing/sim.js';
const seeds = Number(process.argv[2]);
const started = Date.now();
for (let seed = 1; seed <= seeds; seed++) {
  const r = runSimulation({ seed, steps: 1500 });
  if (r.violation !== undefined) {
    console.log(JSON.stringify({ seed, violation: r.violation, ms: Date.now() - started }));
    process.exit(1);
  }
}
console.log(JSON.stringify({ ms: Date.now() - started }));
`,
);

function transpile(source, fileName) {
  return ts.transpileModule(source, {
    fileName,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      // ES modules, as the package is ("type": "module").
      module: ts.ModuleKind.ES2022,
    },
  }).outputText;
}

function restoreCore() {
  for (const [f, text] of pristine) writeFileSync(join(distRaft, f), text);
}

/** Runs one test file; returns the names of failing tests (empty: it passed). */
function runFile(file) {
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], {
    cwd: work,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status === 0) return [];
  const names = [];
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /^(\s*)not ok \d+ - (.*)$/.exec(line);
    // A todo test (a known bug, marked) fails without failing the file.
    if (m && !/ # TODO\b/.test(m[2])) names.push({ depth: m[1].length, name: m[2] });
  }
  // Keep the leaves: TAP prints a failing suite after its failing tests, deeper.
  const leaves = names.filter((n, k) => k === 0 || names[k - 1].depth <= n.depth);
  const out = leaves
    .map((n) => n.name)
    .filter((n) => !n.startsWith('/'))
    .filter((n, k, a) => a.indexOf(n) === k);
  return out.length > 0 ? out : [`exit ${r.status ?? r.signal}`];
}

function runMutation() {
  const started = Date.now();
  const caught = [];
  let firstMs;
  for (const file of testFiles) {
    const failed = runFile(file);
    if (failed.length > 0) {
      caught.push({ file: relative(distRaft, file).replace(/\.test\.js$/, ''), tests: failed });
      firstMs ??= Date.now() - started;
    }
  }
  const sim = spawnSync(process.execPath, [join(work, 'sim-check.mjs'), values.seeds], {
    cwd: work,
    encoding: 'utf8',
    timeout: 300_000,
  });
  let simResult;
  try {
    simResult = JSON.parse(sim.stdout.trim().split('\n').pop() ?? '{}');
  } catch {
    simResult = { violation: `crashed: ${sim.stderr.split('\n')[0]}`, seed: 0, ms: 0 };
  }
  return { caught, firstMs, sim: simResult, totalMs: Date.now() - started };
}

const selected = values.only
  ? MUTATIONS.filter((m) => values.only.split(',').includes(m.id))
  : MUTATIONS;

console.log(
  `mutate-raft: ${selected.length} mutations, ${testFiles.length} test files, sim ${values.seeds} seeds`,
);
console.log('baseline (no mutation) ...');
const baseline = runMutation();
if (baseline.caught.length > 0 || baseline.sim.violation !== undefined) {
  console.log(`baseline fails: ${JSON.stringify(baseline.caught)} ${JSON.stringify(baseline.sim)}`);
  process.exit(1);
}
console.log(`baseline passes in ${(baseline.totalMs / 1000).toFixed(1)} s`);

const rows = [];
let survivors = 0;
let broken = 0;
for (const m of selected) {
  const rel = m.file.includes('/') ? m.file : join('core', m.file);
  const srcPath = join(root, 'src/raft', rel);
  const source = readFileSync(srcPath, 'utf8');
  const hits = source.split(m.find).length - 1;
  if (hits !== 1) {
    broken++;
    rows.push({ m, error: `patch matches ${hits} times in ${m.file}` });
    console.log(`${m.id}: PATCH DOES NOT APPLY (${hits} matches)`);
    continue;
  }
  restoreCore();
  writeFileSync(
    join(distRaft, rel.replace(/\.ts$/, '.js')),
    transpile(source.replace(m.find, m.replace), m.file),
  );
  const r = runMutation();
  restoreCore();
  const simCaught = r.sim.violation !== undefined;
  if (r.caught.length === 0 && !simCaught) survivors++;
  rows.push({ m, ...r });
  const summary = r.caught.map((c) => `${c.file}(${c.tests.length})`).join(' ');
  console.log(
    `${m.id}: ${r.caught.length > 0 || simCaught ? 'caught' : 'SURVIVED'} ${summary}${simCaught ? ` sim(seed ${r.sim.seed})` : ''}`,
  );
}

const ms = (v) => (v === undefined ? '-' : `${(v / 1000).toFixed(1)} s`);
const cell = (s) => s.replace(/\|/g, '\\|');
console.log('\n| # | bug | rule | caught by | first catch | sim (seeds 1..N) |');
console.log('|---|---|---|---|---|---|');
rows.forEach((r, k) => {
  if (r.error) {
    console.log(
      `| ${k + 1} | ${r.m.id} | ${cell(r.m.rule)} | PATCH DOES NOT APPLY: ${r.error} | - | - |`,
    );
    return;
  }
  const by = r.caught
    .map((c) => {
      const names = c.tests.slice(0, 2).map((t) => `"${t}"`);
      const more = c.tests.length > 2 ? ` +${c.tests.length - 2}` : '';
      return `${c.file}: ${names.join(', ')}${more}`;
    })
    .join('; ');
  const sim =
    r.sim.violation !== undefined
      ? `seed ${r.sim.seed} after ${ms(r.sim.ms)}: ${r.sim.violation.slice(0, 60)}`
      : 'no violation';
  console.log(
    `| ${k + 1} | ${r.m.id} | ${cell(r.m.rule)} | ${cell(by || 'NOTHING')} | ${ms(r.firstMs)} | ${cell(sim)} |`,
  );
});
console.log(
  `\nmutate-raft: ${rows.length} mutations, ${rows.length - survivors - broken} caught, ${survivors} survived, ${broken} did not apply`,
);
if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 2));
process.exit(survivors > 0 || broken > 0 ? 1 : 0);
