// Per-rule table tests, one rule of the Raft paper (§5, §6) or of the thesis per
// table, on a single pure core driven message by message. Each table lists the cases
// that real implementations get wrong (a matching suffix cut, commit past the verified
// prefix, a vote without the log check, an old-term entry committed by counting, ...).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoreNetwork } from '../testing/interaction.js';
import {
  NONE,
  RaftCore,
  encodeConfState,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type RestoreState,
} from './index.js';

const EMPTY = new Uint8Array(0);

/** Entries 1..n with the given terms. */
function logOf(terms: readonly number[]): Entry[] {
  return terms.map((term, k) => ({ index: k + 1, term, type: 'normal', data: EMPTY }));
}

function conf(voters: readonly NodeId[], learners: readonly NodeId[] = []): ConfState {
  return { voters: [...voters], learners: [...learners], addresses: {} };
}

function restoreOf(
  entries: readonly Entry[],
  c: ConfState,
  hard: { term?: number; vote?: NodeId; commit?: number } = {},
): RestoreState {
  const termRuns: [number, number][] = [];
  const configs: { index: number; config: ConfState }[] = [];
  for (const e of entries) {
    if (termRuns.length === 0 || termRuns[termRuns.length - 1]![1] !== e.term)
      termRuns.push([e.index, e.term]);
  }
  const lastTerm = entries.length > 0 ? entries[entries.length - 1]!.term : 0;
  return {
    hardState: { term: hard.term ?? lastTerm, vote: hard.vote ?? NONE, commit: hard.commit ?? 0 },
    snapshot: { lastIndex: 0, lastTerm: 0, config: c },
    lastIndex: entries.length,
    termRuns,
    configs,
    entries: entries.slice(),
    applied: 0,
  };
}

interface CoreSpec {
  id?: NodeId;
  voters?: readonly NodeId[];
  learners?: readonly NodeId[];
  terms?: readonly number[];
  term?: number;
  vote?: NodeId;
  commit?: number;
  cfg?: Partial<RaftConfig>;
}

function newCore(spec: CoreSpec = {}): RaftCore {
  const id = spec.id ?? '1';
  return new RaftCore(
    { preVote: false, checkQuorum: false, ...spec.cfg, id },
    restoreOf(logOf(spec.terms ?? []), conf(spec.voters ?? ['1', '2', '3'], spec.learners), {
      term: spec.term,
      vote: spec.vote,
      commit: spec.commit,
    }),
  );
}

/** Takes a Ready, treats it as done, and returns it. */
function drain(core: RaftCore): Ready {
  const rd = core.ready();
  core.advance(rd);
  return rd;
}

function sent(core: RaftCore): readonly Message[] {
  return drain(core).messages;
}

function termsOf(core: RaftCore): number[] {
  const out: number[] = [];
  for (let i = core.log.snapIndex + 1; i <= core.log.lastIndex; i++) out.push(core.log.term(i)!);
  return out;
}

/** Makes core '1' the leader of `term` (its stored term + 1) with grants from `grants`. */
function elect(core: RaftCore, grants: readonly NodeId[] = ['2']): void {
  core.campaign();
  for (const from of grants) {
    core.step({ type: 'voteResp', from, to: core.id, term: core.term, pre: false, reject: false });
  }
  assert.equal(core.role, 'leader', 'elected');
  drain(core);
}

function append(
  from: NodeId,
  to: NodeId,
  term: number,
  prevIndex: number,
  prevTerm: number,
  entryTerms: readonly [number, number][],
  commit: number,
): Message {
  return {
    type: 'append',
    from,
    to,
    term,
    prevIndex,
    prevTerm,
    entries: entryTerms.map(([index, t]) => ({ index, term: t, type: 'normal', data: EMPTY })),
    commit,
  };
}

function appendResp(from: NodeId, to: NodeId, term: number, index: number): Message {
  return { type: 'appendResp', from, to, term, index, reject: false, hintIndex: 0, hintTerm: 0 };
}

function vote(
  from: NodeId,
  to: NodeId,
  term: number,
  lastIndex: number,
  lastTerm: number,
  pre = false,
): Message {
  return { type: 'vote', from, to, term, pre, lastIndex, lastTerm, force: false };
}

function only<T extends Message['type']>(
  msgs: readonly Message[],
  type: T,
): Extract<Message, { type: T }> {
  const found = msgs.filter((m) => m.type === type);
  assert.equal(found.length, 1, `one ${type} in ${JSON.stringify(msgs)}`);
  return found[0] as Extract<Message, { type: T }>;
}

describe('§5.1 terms', () => {
  for (const role of ['follower', 'candidate', 'leader'] as const) {
    it(`a ${role} that sees a higher term adopts it and becomes a follower`, () => {
      const core = newCore({ terms: [1], term: 1 });
      if (role !== 'follower') core.campaign();
      if (role === 'leader') elect(core, ['2']);
      core.step(append('2', '1', 5, 1, 1, [], 0));
      assert.equal(core.term, 5);
      assert.equal(core.role, 'follower');
      assert.equal(core.leader, '2');
      const rd = drain(core);
      assert.equal(rd.hardState?.term, 5);
      assert.equal(rd.hardState?.vote, NONE, 'a new term starts without a vote');
    });
  }

  it('a stale append is answered with the current term and changes nothing', () => {
    const core = newCore({ terms: [1, 2], term: 3 });
    core.step(append('2', '1', 2, 2, 2, [[3, 2]], 3));
    const resp = only(sent(core), 'appendResp');
    assert.equal(resp.term, 3);
    assert.equal(resp.reject, true);
    assert.deepEqual(termsOf(core), [1, 2], 'the stale entries are not appended');
    assert.equal(core.log.committed, 0, 'the stale commit index is ignored');
    assert.equal(core.leader, NONE, 'the stale sender is not taken for the leader');
  });

  it('a leader ignores answers from an older term', () => {
    const core = newCore({ terms: [1], term: 1 });
    elect(core, ['2']); // term 2, no-op at 2
    core.step(appendResp('2', '1', 1, 2)); // from term 1: must not count
    core.step(appendResp('3', '1', 1, 2));
    assert.equal(core.log.committed, 0);
    const peers = core.status().peers.filter((p) => p.id !== '1');
    assert.deepEqual(
      peers.map((p) => p.match),
      [0, 0],
    );
  });

  it('a candidate ignores vote grants from an older term', () => {
    const core = newCore({ terms: [1], term: 1 });
    core.campaign(); // term 2
    core.step({ type: 'voteResp', from: '2', to: '1', term: 1, pre: false, reject: false });
    core.step({ type: 'voteResp', from: '3', to: '1', term: 1, pre: false, reject: false });
    assert.equal(core.role, 'candidate');
  });
});

describe('§5.2 elections', () => {
  // etcd's TestLeaderElectionInOneRoundRPC: cluster size, answers -> resulting role.
  const cases: [number, Record<string, boolean>, string][] = [
    [1, {}, 'leader'],
    [3, { 2: true, 3: true }, 'leader'],
    [3, { 2: true }, 'leader'],
    [5, { 2: true, 3: true, 4: true, 5: true }, 'leader'],
    [5, { 2: true, 3: true, 4: true }, 'leader'],
    [5, { 2: true, 3: true }, 'leader'],
    [3, { 2: false, 3: false }, 'follower'],
    [5, { 2: false, 3: false, 4: false, 5: false }, 'follower'],
    [5, { 2: true, 3: false, 4: false, 5: false }, 'follower'],
    [3, {}, 'candidate'],
    [5, { 2: true }, 'candidate'],
    [5, { 2: false, 3: false }, 'candidate'],
    [5, {}, 'candidate'],
  ];
  for (const [size, answers, want] of cases) {
    it(`size ${size}, answers ${JSON.stringify(answers)} -> ${want}`, () => {
      const voters = Array.from({ length: size }, (_, k) => String(k + 1));
      const core = newCore({ voters });
      core.campaign();
      const asked = sent(core).filter((m) => m.type === 'vote');
      assert.deepEqual(
        asked.map((m) => m.to),
        voters.slice(1),
        'asks every other voter',
      );
      for (const [from, granted] of Object.entries(answers)) {
        core.step({ type: 'voteResp', from, to: '1', term: 1, pre: false, reject: !granted });
      }
      assert.equal(core.role, want);
      assert.equal(core.term, 1);
    });
  }

  // etcd's TestFollowerVote: who we voted for, who asks -> refused?
  const voteCases: [NodeId, NodeId, boolean][] = [
    [NONE, '2', false],
    [NONE, '3', false],
    ['2', '2', false],
    ['3', '3', false],
    ['2', '3', true],
    ['3', '2', true],
  ];
  for (const [voted, from, reject] of voteCases) {
    it(`voted for ${voted || 'nobody'} in this term, ${from} asks -> ${reject ? 'refused' : 'granted'}`, () => {
      const core = newCore({ terms: [], term: 1, vote: voted });
      core.step(vote(from, '1', 1, 0, 0));
      const rd = drain(core);
      const resp = only(rd.messages, 'voteResp');
      assert.equal(resp.reject, reject);
      if (!reject) assert.equal(core.vote, from);
      // A new vote in the same term must reach the disk before the grant leaves.
      if (!reject && voted === NONE) {
        assert.deepEqual(rd.hardState, { term: 1, vote: from, commit: 0 });
        assert.equal(rd.mustSync, true);
      }
    });
  }

  it('a granted vote is in the same Ready as its answer, marked for a synced write', () => {
    const core = newCore({ terms: [1], term: 1 });
    core.step(vote('2', '1', 2, 1, 1));
    const rd = core.ready();
    assert.equal(only(rd.messages, 'voteResp').reject, false);
    assert.deepEqual(rd.hardState, { term: 2, vote: '2', commit: 0 });
    assert.equal(rd.mustSync, true, 'the vote must be durable before the answer leaves');
    core.advance(rd);
    // Restart from what was persisted: the vote survives, a second candidate is refused.
    const restarted = new RaftCore(
      { id: '1', preVote: false, checkQuorum: false },
      restoreOf(logOf([1]), conf(['1', '2', '3']), rd.hardState),
    );
    restarted.step(vote('3', '1', 2, 1, 1));
    assert.equal(only(sent(restarted), 'voteResp').reject, true);
  });

  it('a commit-only change of the hard state needs no synced write', () => {
    const core = newCore({ terms: [1, 1], term: 1 });
    core.step(append('2', '1', 1, 2, 1, [], 2));
    const rd = drain(core);
    assert.equal(rd.hardState?.commit, 2);
    assert.equal(rd.mustSync, false);
  });

  it('a campaign persists the new term and the self-vote before asking for votes', () => {
    const core = newCore({ terms: [1], term: 1 });
    core.campaign();
    const rd = drain(core);
    assert.deepEqual(rd.hardState, { term: 2, vote: '1', commit: 0 });
    assert.equal(rd.mustSync, true);
    assert.equal(rd.messages.filter((m) => m.type === 'vote').length, 2);
  });

  it('a learner never campaigns, and a candidate does not ask or count learners', () => {
    const learner = newCore({ id: '4', voters: ['1', '2', '3'], learners: ['4'] });
    for (let k = 0; k < 100; k++) learner.tick();
    assert.equal(learner.role, 'follower');
    learner.campaign();
    assert.equal(learner.role, 'follower');
    assert.equal(sent(learner).length, 0);

    const core = newCore({ voters: ['1', '2', '3'], learners: ['4', '5'] });
    core.campaign();
    assert.deepEqual(
      sent(core).map((m) => m.to),
      ['2', '3'],
    );
    for (const from of ['4', '5']) {
      core.step({ type: 'voteResp', from, to: '1', term: 1, pre: false, reject: false });
    }
    assert.equal(core.role, 'candidate', 'grants from learners do not count');
  });

  it('a learner that is asked still answers (it may have been promoted without knowing)', () => {
    const learner = newCore({ id: '4', voters: ['1', '2', '3'], learners: ['4'] });
    learner.step(vote('2', '4', 1, 0, 0));
    assert.equal(only(sent(learner), 'voteResp').reject, false);
  });
});

describe('§5.4.1 the vote up-to-date check', () => {
  // etcd's TestVoter: voter log terms, candidate (lastIndex, lastTerm) -> refused?
  const cases: [number[], number, number, boolean][] = [
    // same last term
    [[1], 1, 1, false],
    [[1], 2, 1, false],
    [[1, 1], 1, 1, true],
    // the candidate's last term is higher: its length does not matter
    [[1], 1, 2, false],
    [[1], 2, 2, false],
    [[1, 1], 1, 2, false],
    [[1, 1, 1, 1], 1, 3, false],
    // the candidate's last term is lower: a longer log does not help
    [[2], 1, 1, true],
    [[2], 2, 1, true],
    [[2, 2], 5, 1, true],
    [[1, 2], 1, 1, true],
    [[1, 2], 3, 1, true],
    // an empty voter log grants anything, an empty candidate log gets nothing
    [[], 0, 0, false],
    [[1], 0, 0, true],
  ];
  for (const [terms, lastIndex, lastTerm, reject] of cases) {
    for (const pre of [false, true]) {
      it(`voter [${terms.join(',')}] vs candidate ${lastIndex}/${lastTerm}${pre ? ' (pre-vote)' : ''} -> ${reject ? 'refused' : 'granted'}`, () => {
        const core = newCore({ terms, term: 2, cfg: { preVote: pre } });
        core.step(vote('2', '1', 3, lastIndex, lastTerm, pre));
        const resp = only(sent(core), 'voteResp');
        assert.equal(resp.reject, reject);
        assert.equal(resp.pre, pre);
        if (pre) {
          assert.equal(core.term, 2, 'a pre-vote never changes the term');
          assert.equal(core.vote, NONE, 'a pre-vote is no vote');
        } else {
          assert.equal(core.term, 3);
          assert.equal(core.vote, reject ? NONE : '2');
        }
      });
    }
  }

  it('a pre-candidate keeps its term; only a won pre-vote moves it on', () => {
    const core = newCore({ terms: [1], term: 1, cfg: { preVote: true } });
    core.campaign();
    assert.equal(core.role, 'preCandidate');
    assert.equal(core.term, 1);
    const rd = drain(core);
    assert.equal(rd.hardState, undefined, 'nothing to persist for a pre-vote');
    for (const m of rd.messages) {
      assert.ok(m.type === 'vote' && m.pre && m.term === 2, 'asks for the next term');
    }
    core.step({ type: 'voteResp', from: '2', to: '1', term: 2, pre: true, reject: false });
    assert.equal(core.role, 'candidate');
    assert.equal(core.term, 2);
  });

  it('a refused pre-vote from a higher term makes the pre-candidate a follower of that term', () => {
    const core = newCore({ terms: [1], term: 1, cfg: { preVote: true } });
    core.campaign();
    core.step({ type: 'voteResp', from: '2', to: '1', term: 4, pre: true, reject: true });
    assert.equal(core.term, 4);
    assert.equal(core.role, 'follower');
  });
});

describe('§5.3 a follower appends (consistency check on index and term)', () => {
  // The follower holds [1:1, 2:2] (terms by index). Message: prevIndex, prevTerm,
  // entries [index, term]; expected: refused?, terms after, answer index.
  const cases: [number, number, [number, number][], boolean, number[], number, string][] = [
    [2, 2, [[3, 3]], false, [1, 2, 3], 3, 'appends after a matching last entry'],
    [1, 1, [], false, [1, 2], 1, 'an empty append after a matching entry keeps the rest'],
    [0, 0, [[1, 1]], false, [1, 2], 1, 'a matching prefix keeps the suffix after it'],
    [1, 1, [[2, 2]], false, [1, 2], 2, 'entries it already holds change nothing'],
    [
      0,
      0,
      [
        [1, 1],
        [2, 3],
      ],
      false,
      [1, 3],
      2,
      'a conflicting entry is replaced',
    ],
    [
      1,
      1,
      [
        [2, 3],
        [3, 4],
      ],
      false,
      [1, 3, 4],
      3,
      'a conflicting suffix is cut and replaced',
    ],
    [0, 0, [[1, 3]], false, [3], 1, 'a conflict at the first index replaces everything'],
    [2, 3, [], true, [1, 2], 2, 'refused: the index matches but not the term'],
    [3, 2, [], true, [1, 2], 3, 'refused: the previous index is beyond the log'],
    [3, 3, [[4, 3]], true, [1, 2], 3, 'refused: a gap, nothing appended'],
    [1, 2, [[2, 2]], true, [1, 2], 1, 'refused: wrong term at a lower index'],
  ];
  for (const [prevIndex, prevTerm, ents, reject, want, index, name] of cases) {
    it(name, () => {
      const core = newCore({ terms: [1, 2], term: 2 });
      core.step(append('2', '1', 5, prevIndex, prevTerm, ents, 0));
      const resp = only(sent(core), 'appendResp');
      assert.equal(resp.reject, reject);
      assert.equal(resp.index, index);
      assert.equal(resp.term, 5);
      assert.deepEqual(termsOf(core), want);
      assert.equal(core.log.committed, 0);
    });
  }

  it('a refusal hints at the last index of a term <= prevTerm (skips a whole term)', () => {
    // A deposed leader of term 5 left entries 3..6; the new leader holds term 4 at 6.
    const core = newCore({ terms: [1, 1, 5, 5, 5, 5], term: 5 });
    core.step(append('2', '1', 6, 6, 4, [], 0));
    const resp = only(sent(core), 'appendResp');
    assert.equal(resp.reject, true);
    assert.equal(resp.hintIndex, 2, 'the term-5 run cannot match a term-4 prefix');
    assert.equal(resp.hintTerm, 1);
  });
});

describe('§5.3 a follower commits min(leaderCommit, index of the last new entry)', () => {
  // The follower holds [1:1, 2:2, 3:2]; entry 3 is not known to match the leader unless
  // the message covers it. Message: prevIndex, prevTerm, entries, leader commit.
  const cases: [number, number, [number, number][], number, number, string][] = [
    [3, 2, [], 3, 3, 'covers the whole log'],
    [3, 2, [], 2, 2, 'the leader commit is lower'],
    [1, 1, [], 3, 1, 'an empty append verifies only its previous entry'],
    [1, 1, [[2, 2]], 3, 2, 'the verified prefix ends at the last new entry'],
    [
      2,
      2,
      [
        [3, 2],
        [4, 2],
      ],
      3,
      3,
      'entries beyond the leader commit stay uncommitted',
    ],
    [2, 2, [[3, 5]], 3, 3, 'a replaced entry is committed as replaced'],
    [0, 0, [], 3, 0, 'an empty append at 0 verifies nothing'],
    [3, 2, [[4, 2]], 9, 4, 'a leader commit beyond the log is clamped'],
  ];
  for (const [prevIndex, prevTerm, ents, commit, want, name] of cases) {
    it(name, () => {
      const core = newCore({ terms: [1, 2, 2], term: 2 });
      core.step(append('2', '1', 5, prevIndex, prevTerm, ents, commit));
      assert.equal(only(sent(core), 'appendResp').reject, false);
      assert.equal(core.log.committed, want);
    });
  }

  it('the commit index never goes back', () => {
    const core = newCore({ terms: [1, 2, 2], term: 2, commit: 3 });
    drain(core);
    core.step(append('2', '1', 5, 3, 2, [], 1));
    core.step({ type: 'heartbeat', from: '2', to: '1', term: 5, commit: 1, context: 0 });
    assert.equal(core.log.committed, 3);
    const rd = drain(core);
    assert.equal(rd.hardState?.commit ?? 3, 3);
  });

  it('an append below the commit index is answered with the commit index', () => {
    const core = newCore({ terms: [1, 2, 2], term: 2, commit: 3 });
    drain(core);
    core.step(append('2', '1', 5, 1, 1, [[2, 9]], 3));
    const resp = only(sent(core), 'appendResp');
    assert.equal(resp.reject, false);
    assert.equal(resp.index, 3);
    assert.deepEqual(termsOf(core), [1, 2, 2], 'a committed entry is never replaced');
  });

  it('a heartbeat commit is clamped to the log (the leader sends at most our match)', () => {
    const core = newCore({ terms: [1, 1], term: 1 });
    core.step({ type: 'heartbeat', from: '2', to: '1', term: 1, commit: 5, context: 0 });
    assert.equal(core.log.committed, 2);
  });
});

describe('§5.3 the leader replicates and commits', () => {
  // etcd's TestLeaderAcknowledgeCommit: size, followers that acknowledge -> committed?
  const cases: [number, NodeId[], boolean][] = [
    [1, [], true],
    [3, [], false],
    [3, ['2'], true],
    [3, ['2', '3'], true],
    [5, [], false],
    [5, ['2'], false],
    [5, ['2', '3'], true],
    [5, ['2', '3', '4'], true],
    [5, ['2', '3', '4', '5'], true],
  ];
  for (const [size, acks, committed] of cases) {
    it(`size ${size}, acknowledged by ${JSON.stringify(acks)} -> ${committed ? 'committed' : 'not committed'}`, () => {
      const voters = Array.from({ length: size }, (_, k) => String(k + 1));
      const core = newCore({ voters });
      core.campaign();
      for (const from of voters.slice(1)) {
        core.step({ type: 'voteResp', from, to: '1', term: 1, pre: false, reject: false });
      }
      assert.equal(core.role, 'leader');
      drain(core);
      const res = core.propose([new Uint8Array([1])]);
      assert.ok(res.ok);
      drain(core);
      for (const from of acks) core.step(appendResp(from, '1', 1, res.index));
      assert.equal(core.log.committed >= res.index, committed);
    });
  }

  it('learners receive the log but their acknowledgements do not commit', () => {
    const core = newCore({ voters: ['1', '2', '3'], learners: ['4', '5'] });
    elect(core, ['2']);
    for (const from of ['2', '3', '4', '5']) core.step(appendResp(from, '1', 1, 1));
    drain(core);
    const res = core.propose([new Uint8Array([1])]);
    assert.ok(res.ok);
    const appends = sent(core).filter((m) => m.type === 'append');
    assert.deepEqual(appends.map((m) => m.to).sort(), ['2', '3', '4', '5']);
    core.step(appendResp('4', '1', 1, res.index));
    core.step(appendResp('5', '1', 1, res.index));
    assert.ok(core.log.committed < res.index, 'two learners are no quorum');
    core.step(appendResp('2', '1', 1, res.index));
    assert.equal(core.log.committed, res.index);
  });

  it('commits the preceding entries with the current one (log matching)', () => {
    const core = newCore({ terms: [1, 1, 2], term: 2 });
    elect(core, ['2']); // term 3, no-op at 4
    core.step(appendResp('2', '1', 3, 4));
    assert.equal(core.log.committed, 4);
    const rd = drain(core);
    assert.deepEqual(
      rd.committed.map((e) => e.index),
      [1, 2, 3, 4],
    );
  });

  it('a heartbeat carries min(commit, the follower match), never an unverified commit', () => {
    const core = newCore({ voters: ['1', '2', '3'] });
    elect(core, ['2']);
    core.propose([new Uint8Array([1]), new Uint8Array([2])]);
    drain(core);
    core.step(appendResp('2', '1', 1, 3));
    assert.equal(core.log.committed, 3);
    drain(core);
    core.tick(); // heartbeatTicks = 1
    const beats = sent(core).filter((m) => m.type === 'heartbeat');
    const commitTo = Object.fromEntries(
      beats.map((m) => [m.to, m.type === 'heartbeat' ? m.commit : -1]),
    );
    assert.deepEqual(commitTo, { '2': 3, '3': 0 });
  });
});

describe('§5.4.2 a leader commits only entries of its own term by counting', () => {
  // etcd's TestLeaderOnlyCommitsLogFromCurrentTerm: the leader holds [1:1, 2:2] and
  // wins term 3 (no-op at 3). A follower acknowledges up to index -> commit.
  const cases: [number, number][] = [
    [1, 0],
    [2, 0],
    [3, 3],
  ];
  for (const [index, want] of cases) {
    it(`acknowledged up to ${index} -> commit ${want}`, () => {
      const core = newCore({ terms: [1, 2], term: 2 });
      elect(core, ['2']);
      assert.equal(core.term, 3);
      core.step(appendResp('2', '1', 3, index));
      assert.equal(core.log.committed, want);
    });
  }

  it('in a five-node cluster, four replicas of an old-term entry still do not commit it', () => {
    const core = newCore({ voters: ['1', '2', '3', '4', '5'], terms: [1, 2], term: 2 });
    elect(core, ['2', '3']);
    for (const from of ['2', '3', '4', '5']) core.step(appendResp(from, '1', 3, 2));
    assert.equal(core.log.committed, 0);
    core.step(appendResp('2', '1', 3, 3));
    core.step(appendResp('3', '1', 3, 3));
    assert.equal(core.log.committed, 3);
  });
});

describe('§5.3 figure 7: a new leader brings every follower log in line', () => {
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers: [string, number[]][] = [
    ['a (missing one entry)', [1, 1, 1, 4, 4, 5, 5, 6, 6]],
    ['b (missing many entries)', [1, 1, 1, 4]],
    ['c (one extra entry of the same term)', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]],
    ['d (extra entries of a later term)', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]],
    ['e (missing entries, extra of an older term)', [1, 1, 1, 4, 4, 4, 4]],
    ['f (a long run of terms it never committed)', [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]],
    ['g (empty)', []],
  ];
  for (const [name, terms] of followers) {
    it(name, () => {
      const net = new CoreNetwork([], { preVote: false, checkQuorum: false });
      const voters = conf(['1', '2', '3']);
      const leader = net.addWithState('1', restoreOf(logOf(leaderTerms), voters, { term: 7 }));
      const followerTerm = Math.max(0, ...terms, 7);
      const follower = net.addWithState(
        '2',
        restoreOf(logOf(terms), voters, { term: followerTerm }),
      );
      leader.campaign(); // term 8
      // '3' (not simulated) grants its vote.
      leader.step({ type: 'voteResp', from: '3', to: '1', term: 8, pre: false, reject: false });
      net.stabilize();
      assert.equal(leader.role, 'leader');
      assert.equal(leader.term, 8);
      net.tick(2);
      assert.deepEqual(termsOf(follower), [...leaderTerms, 8]);
      assert.equal(leader.log.committed, 11, "committed with the follower's acknowledgement");
      assert.equal(follower.log.committed, 11);
    });
  }
});

describe('§6 configuration changes', () => {
  it('one uncommitted configuration at a time', () => {
    const core = newCore();
    elect(core, ['2']);
    core.step(appendResp('2', '1', 1, 1));
    const first = core.proposeConfChange({ type: 'addLearner', id: '4' });
    assert.ok(first.ok);
    drain(core);
    for (const change of [
      { type: 'addLearner', id: '5' },
      { type: 'promote', id: '4' },
      { type: 'remove', id: '3' },
    ] as const) {
      assert.deepEqual(core.proposeConfChange(change), {
        ok: false,
        reason: 'confPending',
        leader: '1',
      });
    }
    core.step(appendResp('2', '1', 1, first.index));
    assert.equal(core.log.committed, first.index);
    assert.ok(core.proposeConfChange({ type: 'promote', id: '4' }).ok);
  });

  it("none before the new leader's first commit (an older uncommitted change may exist)", () => {
    const core = newCore();
    elect(core, ['2']);
    assert.deepEqual(core.proposeConfChange({ type: 'addLearner', id: '4' }), {
      ok: false,
      reason: 'confPending',
      leader: '1',
    });
    core.step(appendResp('2', '1', 1, 1));
    assert.ok(core.proposeConfChange({ type: 'addLearner', id: '4' }).ok);
  });

  it('a leader that inherits an uncommitted configuration waits for it', () => {
    const c4: Entry = {
      index: 2,
      term: 1,
      type: 'config',
      data: encodeConfState(conf(['1', '2', '3'], ['4'])),
    };
    const state = restoreOf([logOf([1])[0]!, c4], conf(['1', '2', '3']), { term: 1 });
    const core = new RaftCore(
      { id: '1', preVote: false, checkQuorum: false },
      { ...state, configs: [{ index: 2, config: conf(['1', '2', '3'], ['4']) }] },
    );
    assert.deepEqual(core.conf.learners, ['4'], 'in force from its append');
    elect(core, ['2']); // term 2, no-op at 3
    assert.equal(core.proposeConfChange({ type: 'promote', id: '4' }).ok, false);
    core.step(appendResp('2', '1', 2, 3));
    assert.equal(core.log.committed, 3);
    assert.ok(core.proposeConfChange({ type: 'promote', id: '4' }).ok);
  });

  const invalid: [string, Parameters<RaftCore['proposeConfChange']>[0]][] = [
    ['promote a voter', { type: 'promote', id: '2' }],
    ['promote a stranger', { type: 'promote', id: '9' }],
    ['add a voter as learner', { type: 'addLearner', id: '3' }],
    ['add the empty id', { type: 'addLearner', id: NONE }],
    ['remove a stranger', { type: 'remove', id: '9' }],
  ];
  for (const [name, change] of invalid) {
    it(`refuses to ${name}`, () => {
      const core = newCore();
      elect(core, ['2']);
      core.step(appendResp('2', '1', 1, 1));
      assert.deepEqual(core.proposeConfChange(change), {
        ok: false,
        reason: 'invalidConf',
        leader: '1',
      });
    });
  }

  it('learners do not keep a leader alive under check-quorum', () => {
    const core = newCore({
      voters: ['1', '2', '3'],
      learners: ['4', '5'],
      cfg: { checkQuorum: true, electionTicks: 10 },
    });
    elect(core, ['2']);
    for (let k = 0; k < 25; k++) {
      core.tick();
      for (const from of ['4', '5']) {
        core.step({ type: 'heartbeatResp', from, to: '1', term: 1, context: 0 });
      }
      drain(core);
    }
    assert.equal(core.role, 'follower', 'two learners are no quorum');
  });

  it('one active voter keeps a three-voter leader alive under check-quorum', () => {
    const core = newCore({
      voters: ['1', '2', '3'],
      cfg: { checkQuorum: true, electionTicks: 10 },
    });
    elect(core, ['2']);
    for (let k = 0; k < 25; k++) {
      core.tick();
      core.step({ type: 'heartbeatResp', from: '2', to: '1', term: 1, context: 0 });
      drain(core);
    }
    assert.equal(core.role, 'leader');
  });
});

describe('ReadIndex (thesis §6.4): a quorum of voters confirms leadership', () => {
  function readyLeader(voters: NodeId[], learners: NodeId[] = []): RaftCore {
    const core = newCore({ voters, learners });
    core.campaign();
    for (const from of voters.slice(1)) {
      core.step({ type: 'voteResp', from, to: '1', term: 1, pre: false, reject: false });
    }
    drain(core);
    for (const from of voters.slice(1)) core.step(appendResp(from, '1', 1, 1));
    assert.equal(core.log.committed, 1);
    drain(core);
    return core;
  }

  function ack(core: RaftCore, from: NodeId, context: number): number[] {
    core.step({ type: 'heartbeatResp', from, to: '1', term: core.term, context });
    return drain(core).readStates.map((r) => r.context);
  }

  it('a read waits for a voter quorum; learner acknowledgements do not count', () => {
    const core = readyLeader(['1', '2', '3'], ['4', '5']);
    assert.ok(core.readIndex(7).ok);
    const rd = drain(core);
    assert.deepEqual(rd.readStates, []);
    const beats = rd.messages.filter((m) => m.type === 'heartbeat');
    assert.deepEqual(beats.map((m) => m.to).sort(), ['2', '3', '4', '5']);
    assert.ok(beats.every((m) => m.type === 'heartbeat' && m.context === 7));
    assert.deepEqual(ack(core, '4', 7), []);
    assert.deepEqual(ack(core, '5', 7), []);
    assert.deepEqual(ack(core, '2', 7), [7]);
  });

  it('five voters: one acknowledgement is not enough, two are', () => {
    const core = readyLeader(['1', '2', '3', '4', '5']);
    assert.ok(core.readIndex(3).ok);
    drain(core);
    assert.deepEqual(ack(core, '2', 3), []);
    assert.deepEqual(ack(core, '2', 3), [], 'the same voter twice is still one');
    assert.deepEqual(ack(core, '4', 3), [3]);
  });

  it('an acknowledgement of an older round does not confirm a newer read', () => {
    const core = readyLeader(['1', '2', '3']);
    assert.ok(core.readIndex(1).ok);
    drain(core);
    assert.ok(core.readIndex(2).ok);
    drain(core);
    assert.deepEqual(ack(core, '2', 1), [1]);
    assert.deepEqual(ack(core, '3', 2), [2]);
  });

  it('the read index is the commit index when the read was asked', () => {
    const core = readyLeader(['1', '2', '3']);
    const res = core.readIndex(9);
    assert.ok(res.ok);
    assert.equal(res.index, 1);
    drain(core);
    core.propose([new Uint8Array([1])]);
    core.step(appendResp('2', '1', 1, 2));
    core.step({ type: 'heartbeatResp', from: '3', to: '1', term: 1, context: 9 });
    const rd = drain(core);
    assert.deepEqual(rd.readStates, [{ context: 9, index: 1 }]);
  });

  it('a single-voter leader serves a read at once', () => {
    const core = newCore({ voters: ['1'] });
    core.campaign();
    drain(core);
    assert.ok(core.readIndex(4).ok);
    assert.deepEqual(drain(core).readStates, [{ context: 4, index: 1 }]);
  });
});

describe('stable-to checks the term (asynchronous storage)', () => {
  it('an entry replaced while its write was in flight is written again', () => {
    const core = newCore({ terms: [], term: 1 });
    core.step(
      append(
        '2',
        '1',
        1,
        0,
        0,
        [
          [1, 1],
          [2, 1],
          [3, 1],
        ],
        0,
      ),
    );
    const inFlight = core.ready(); // the driver starts writing 1..3 (term 1)
    assert.deepEqual(
      inFlight.entries.map((e) => `${e.index}/${e.term}`),
      ['1/1', '2/1', '3/1'],
    );
    // Meanwhile a new leader of term 2 replaces index 3.
    core.step(append('3', '1', 2, 2, 1, [[3, 2]], 0));
    core.advance(inFlight); // the old write completes: 3/1 is durable, 3/2 is not
    assert.equal(core.log.stableIndex < 3, true, 'index 3 of term 2 is not stable');
    const next = core.ready();
    assert.ok(
      next.entries.some((e) => e.index === 3 && e.term === 2),
      `the replacement is handed out: ${JSON.stringify(next.entries.map((e) => `${e.index}/${e.term}`))}`,
    );
    assert.equal(next.mustSync, true);
    core.advance(next);
    assert.equal(core.log.stableIndex, 3);
    assert.deepEqual(core.ready().entries, []);
  });

  it('a write that completes after a snapshot replaced the log does not mark entries stable', () => {
    const core = newCore({ terms: [], term: 1 });
    core.step(
      append(
        '2',
        '1',
        1,
        0,
        0,
        [
          [1, 1],
          [2, 1],
        ],
        0,
      ),
    );
    const inFlight = core.ready();
    core.step({
      type: 'snapshot',
      from: '2',
      to: '1',
      term: 2,
      meta: { lastIndex: 5, lastTerm: 2, config: conf(['1', '2', '3']) },
    });
    core.advance(inFlight);
    assert.equal(core.log.lastIndex, 5);
    assert.equal(core.log.stableIndex, 5, 'the snapshot itself is the stable point');
    const next = core.ready();
    assert.equal(next.snapshot?.lastIndex, 5, 'the snapshot still has to be installed');
    core.advance(next);
  });
});
