// A synchronous network of pure cores for scripted interaction tests: messages are
// delivered in FIFO order by stabilize(), links can be cut, and every node's applied
// entries are recorded. Persistence is implied (each Ready is taken as durable).
import {
  RaftCore,
  bootstrapState,
  decodeConfState,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type RaftConfig,
  type ProposeResult,
  type ReadState,
  type Ready,
  type RestoreState,
  type SnapshotMeta,
} from '../core/index.js';

export class CoreNetwork {
  readonly cores = new Map<NodeId, RaftCore>();
  readonly applied = new Map<NodeId, Entry[]>();
  /** Reads served by each node. */
  readonly reads = new Map<NodeId, ReadState[]>();
  /** Every message delivered, in order (for assertions on traffic). */
  readonly delivered: Message[] = [];
  private readonly cut = new Set<string>();
  private readonly down = new Set<NodeId>();
  /** Return true to drop a message. */
  dropIf: ((m: Message) => boolean) | undefined;
  private queue: Message[] = [];

  constructor(
    ids: readonly NodeId[],
    private readonly config: Partial<RaftConfig> = {},
  ) {
    const conf: ConfState = { voters: [...ids], learners: [], addresses: {} };
    for (const id of ids) this.add(id, conf);
  }

  /** Adds a node with an empty log and the given configuration (empty: a joiner). */
  add(id: NodeId, conf: ConfState = { voters: [], learners: [], addresses: {} }): RaftCore {
    return this.addWithState(id, bootstrapState(conf));
  }

  /** Adds a node that starts from the given stored state (a log built by a test). */
  addWithState(id: NodeId, state: RestoreState): RaftCore {
    const core = new RaftCore(
      { checkQuorum: true, preVote: true, ...this.config, id, seed: this.cores.size + 1 },
      state,
    );
    this.cores.set(id, core);
    this.applied.set(id, []);
    this.reads.set(id, []);
    return core;
  }

  core(id: NodeId): RaftCore {
    const c = this.cores.get(id);
    if (!c) throw new RangeError(`no node ${id}`);
    return c;
  }

  /** Cuts both directions between a and b. */
  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }

  /** Cuts every link of id. */
  isolate(id: NodeId): void {
    for (const other of this.cores.keys()) if (other !== id) this.cutLink(id, other);
  }

  heal(): void {
    this.cut.clear();
  }

  /** A stopped node neither ticks nor receives; its state stays as it was. */
  stop(id: NodeId): void {
    this.down.add(id);
  }

  start(id: NodeId): void {
    this.down.delete(id);
  }

  campaign(id: NodeId): void {
    this.core(id).campaign();
    this.stabilize();
  }

  /** Ticks the given nodes (default: all running) n times, stabilizing after each. */
  tick(n = 1, ids?: readonly NodeId[]): void {
    for (let k = 0; k < n; k++) {
      for (const id of ids ?? [...this.cores.keys()]) if (!this.down.has(id)) this.core(id).tick();
      this.stabilize();
    }
  }

  propose(id: NodeId, ...data: string[]): ReturnType<RaftCore['propose']> {
    const res = this.core(id).propose(data.map((d) => new TextEncoder().encode(d)));
    this.stabilize();
    return res;
  }

  /** Processes Readies and delivers messages until nothing is left. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      for (const [id, core] of this.cores) {
        if (this.down.has(id)) continue;
        while (core.hasReady()) {
          const rd = core.ready();
          if (rd.snapshot) this.applied.set(id, []);
          this.applied.get(id)!.push(...rd.committed);
          this.reads.get(id)!.push(...rd.readStates);
          for (const m of rd.messages) this.queue.push(m);
          core.advance(rd);
        }
      }
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (
          this.down.has(m.to) ||
          this.down.has(m.from) ||
          this.cut.has(`${m.from}>${m.to}`) ||
          this.dropIf?.(m)
        )
          continue;
        const to = this.cores.get(m.to);
        if (!to) continue;
        this.delivered.push(m);
        to.step(m);
      }
    }
    throw new Error('network did not stabilize');
  }

  /** Applied data (normal entries) of a node, as strings. */
  data(id: NodeId): string[] {
    return this.applied
      .get(id)!
      .filter((e) => e.type === 'normal')
      .map((e) => new TextDecoder().decode(e.data));
  }

  leader(): RaftCore | undefined {
    let best: RaftCore | undefined;
    for (const [id, c] of this.cores) {
      if (!this.down.has(id) && c.role === 'leader' && (!best || c.term > best.term)) best = c;
    }
    return best;
  }
}

// ---- transcripts ----------------------------------------------------------------
//
// A readable script drives a cluster of pure cores command by command; every Ready,
// every delivered or dropped message and every state change is printed. Transcript
// tests keep the expected output next to each command (see src/raft/testdata), in the
// spirit of etcd's datadriven tests: a behaviour change shows up as a readable diff.

/** A command of a transcript file, with the output recorded for it. */
export interface ScriptBlock {
  /** Lines before the command (blank lines and # comments), kept verbatim. */
  readonly preamble: readonly string[];
  readonly command: string;
  readonly expected: readonly string[];
  /** 1-based line of the command, for messages. */
  readonly line: number;
}

export class TranscriptSyntaxError extends Error {
  override readonly name = 'TranscriptSyntaxError';
}

/** Splits a transcript into blocks: a command line, `----`, output lines up to a blank line. */
export function parseTranscript(text: string): { blocks: ScriptBlock[]; trailer: string[] } {
  const lines = text.split('\n');
  const blocks: ScriptBlock[] = [];
  let preamble: string[] = [];
  let k = 0;
  while (k < lines.length) {
    const line = lines[k]!;
    if (line.trim() === '' || line.startsWith('#')) {
      preamble.push(line);
      k++;
      continue;
    }
    const command = line;
    const at = k + 1;
    if (lines[k + 1] !== '----') {
      throw new TranscriptSyntaxError(`line ${at}: expected ---- after the command "${command}"`);
    }
    k += 2;
    const expected: string[] = [];
    while (k < lines.length && lines[k]!.trim() !== '') expected.push(lines[k++]!);
    blocks.push({ preamble, command, expected, line: at });
    preamble = [];
  }
  while (preamble.length > 0 && preamble[preamble.length - 1] === '') preamble.pop();
  return { blocks, trailer: preamble };
}

/** The transcript text with each block's output replaced by `outputs[k]`. */
export function formatTranscript(
  parsed: { blocks: readonly ScriptBlock[]; trailer: readonly string[] },
  outputs: readonly (readonly string[])[],
): string {
  const out: string[] = [];
  parsed.blocks.forEach((b, k) => {
    out.push(...b.preamble, b.command, '----', ...outputs[k]!);
  });
  out.push(...parsed.trailer);
  return `${out.join('\n')}\n`;
}

interface ScriptDisk {
  hard: HardState;
  snap: SnapshotMeta;
  entries: Entry[];
}

interface ScriptNode {
  readonly id: NodeId;
  core: RaftCore | undefined;
  readonly config: RaftConfig;
  disk: ScriptDisk;
  /** A Ready taken but not yet written (asynchronous storage). */
  held: Ready | undefined;
  /** Messages addressed to this node, waiting for delivery. */
  inbox: Message[];
}

/**
 * The cluster behind a transcript. Storage is synchronous unless a test takes a Ready
 * with `ready` and completes its write later with `persist`: meanwhile the node keeps
 * receiving messages, and what it sends waits for the write (the Ready contract).
 */
export class ScriptedCluster {
  private readonly nodes = new Map<NodeId, ScriptNode>();
  private readonly cut = new Set<string>();
  private nextId = 1;
  private out: string[] = [];

  /** Runs one command line and returns what it printed. */
  run(command: string): string[] {
    this.out = [];
    const [name, ...rest] = command.trim().split(/\s+/);
    const args = rest.filter((a) => !a.includes('='));
    const kv = new Map(
      rest.filter((a) => a.includes('=')).map((a) => a.split('=', 2) as [string, string]),
    );
    const before = this.snapshotStates();
    let readyCommand = false;
    switch (name) {
      case 'add-nodes':
        this.addNodes(Number(args[0] ?? 1), kv);
        break;
      case 'campaign':
        this.core(args[0]).campaign();
        break;
      case 'tick': {
        const n = Number(kv.get('n') ?? 1);
        for (let k = 0; k < n; k++) for (const id of this.ids(args)) this.core(id).tick();
        break;
      }
      case 'propose': {
        const [id, ...data] = args;
        const res = this.core(id).propose(data.map((d) => encoder.encode(d)));
        this.print(fmtResult(res));
        break;
      }
      case 'propose-conf-change': {
        const change = parseChange(kv);
        this.print(fmtResult(this.core(args[0]).proposeConfChange(change)));
        break;
      }
      case 'read-index':
        this.print(fmtResult(this.core(args[0]).readIndex(Number(args[1]))));
        break;
      case 'transfer-leadership':
        this.print(fmtResult(this.core(args[0]).transferLeadership(args[1]!)));
        break;
      case 'compact': {
        const meta = this.core(args[0]).compact(Number(args[1]));
        this.print(meta ? `compacted to ${fmtSnap(meta)}` : 'nothing to compact');
        break;
      }
      case 'report-snapshot':
        this.core(args[0]).reportSnapshot(args[1]!, args[2] === 'ok');
        break;
      case 'report-unreachable':
        this.core(args[0]).reportUnreachable(args[1]!);
        break;
      case 'stabilize':
        readyCommand = true;
        this.stabilize(this.ids(args));
        break;
      case 'process-ready':
        readyCommand = true;
        for (const id of this.ids(args)) this.processReady(this.node(id));
        break;
      case 'deliver-msgs':
        readyCommand = true;
        for (const id of this.ids(args)) this.deliver(this.node(id), kv.get('drop') === 'true');
        break;
      case 'ready':
        readyCommand = true;
        for (const id of this.ids(args)) this.takeReady(this.node(id));
        break;
      case 'persist':
        readyCommand = true;
        for (const id of this.ids(args)) this.persistHeld(this.node(id));
        break;
      case 'isolate':
        for (const id of args) {
          for (const other of this.nodes.keys()) {
            if (other !== id) this.cut.add(`${id}>${other}`).add(`${other}>${id}`);
          }
        }
        break;
      case 'cut':
        this.cut.add(`${args[0]}>${args[1]}`).add(`${args[1]}>${args[0]}`);
        break;
      case 'cut-one-way':
        this.cut.add(`${args[0]}>${args[1]}`);
        break;
      case 'heal':
        this.cut.clear();
        break;
      case 'stop':
        for (const id of args) this.stop(this.node(id));
        break;
      case 'restart':
        for (const id of args) this.restart(this.node(id));
        break;
      case 'status':
        for (const id of this.ids(args)) this.printStatus(this.node(id));
        break;
      case 'log':
        for (const id of this.ids(args)) this.printLog(this.node(id));
        break;
      default:
        throw new TranscriptSyntaxError(`unknown command "${name}"`);
    }
    if (!readyCommand) this.printChanges(before);
    return this.out.length > 0 ? this.out : ['ok'];
  }

  private print(line: string): void {
    this.out.push(line);
  }

  private node(id: string | undefined): ScriptNode {
    const n = id === undefined ? undefined : this.nodes.get(id);
    if (!n) throw new TranscriptSyntaxError(`no node ${id}`);
    return n;
  }

  private core(id: string | undefined): RaftCore {
    const c = this.node(id).core;
    if (!c) throw new TranscriptSyntaxError(`node ${id} is stopped`);
    return c;
  }

  /** The given ids, or every running node. */
  private ids(args: readonly string[]): string[] {
    return args.length > 0
      ? [...args]
      : [...this.nodes.keys()].filter((id) => this.nodes.get(id)!.core);
  }

  private addNodes(n: number, kv: Map<string, string>): void {
    const ids = Array.from({ length: n }, () => String(this.nextId++));
    const list = (key: string, dflt: string[]): string[] => {
      const v = kv.get(key);
      return v === undefined ? dflt : v.split(',').filter((x) => x !== '');
    };
    const conf: ConfState = {
      voters: list('voters', ids),
      learners: list('learners', []),
      addresses: {},
    };
    const flag = (key: string, dflt: boolean) => (kv.has(key) ? kv.get(key) === 'true' : dflt);
    const num = (key: string) => (kv.has(key) ? Number(kv.get(key)) : undefined);
    for (const id of ids) {
      const config: RaftConfig = {
        id,
        preVote: flag('pre-vote', true),
        checkQuorum: flag('check-quorum', true),
        electionTicks: num('election') ?? 10,
        heartbeatTicks: num('heartbeat') ?? 1,
        retainEntries: num('retain') ?? 10_000,
        maxInflightMsgs: num('max-inflight') ?? 256,
        maxMsgBytes: num('max-msg-bytes') ?? 1024 * 1024,
        seed: Number(id),
      };
      const state = bootstrapState(conf);
      const node: ScriptNode = {
        id,
        core: new RaftCore(config, state),
        config,
        disk: { hard: state.hardState, snap: state.snapshot, entries: [] },
        held: undefined,
        inbox: [],
      };
      this.nodes.set(id, node);
      this.print(
        `${id}: ${fmtCoreLine(node.core!)} voters=${conf.voters.join(',')} learners=${conf.learners.join(',')}`,
      );
    }
  }

  private stabilize(ids: readonly string[]): void {
    for (let round = 0; round < 1000; round++) {
      let worked = false;
      for (const id of ids) {
        const node = this.node(id);
        if (node.core && !node.held && node.core.hasReady()) {
          this.processReady(node);
          worked = true;
        }
      }
      for (const id of ids) {
        const node = this.node(id);
        if (node.inbox.length > 0 && node.core) {
          this.deliver(node, false);
          worked = true;
        }
      }
      if (!worked) return;
    }
    throw new TranscriptSyntaxError('stabilize did not settle within 1000 rounds');
  }

  private processReady(node: ScriptNode): void {
    if (!node.core || node.held || !node.core.hasReady()) return;
    this.takeReady(node, false);
    this.persistHeld(node, false);
  }

  private takeReady(node: ScriptNode, announce = true): void {
    const core = node.core;
    if (!core) throw new TranscriptSyntaxError(`node ${node.id} is stopped`);
    if (node.held) throw new TranscriptSyntaxError(`node ${node.id} already holds a Ready`);
    if (!core.hasReady()) {
      this.print(`> ${node.id} has no Ready`);
      return;
    }
    const rd = core.ready();
    node.held = rd;
    this.print(`> ${node.id} handling Ready${announce ? ' (write in flight)' : ''}`);
    for (const line of fmtReady(rd)) this.print(`  ${line}`);
  }

  /** Completes the held Ready: write, then send, then apply, then advance. */
  private persistHeld(node: ScriptNode, announce = true): void {
    const rd = node.held;
    if (!rd || !node.core) {
      if (announce) this.print(`> ${node.id} has no write in flight`);
      return;
    }
    if (announce) this.print(`> ${node.id} write done`);
    const d = node.disk;
    if (rd.snapshot) {
      d.snap = rd.snapshot;
      d.entries = [];
    }
    if (rd.entries.length > 0) {
      const keep = rd.entries[0]!.index - d.snap.lastIndex - 1;
      d.entries.length = Math.max(0, keep);
      d.entries.push(...rd.entries);
    }
    if (rd.hardState) d.hard = rd.hardState;
    for (const m of rd.messages) {
      if (announce) this.print(`  send ${fmtMsg(m)}`);
      this.nodes.get(m.to)?.inbox.push(m);
    }
    if (rd.compacted) {
      const drop = rd.compacted.lastIndex - d.snap.lastIndex;
      if (drop > 0) {
        d.entries = d.entries.slice(drop);
        d.snap = rd.compacted;
      }
    }
    node.held = undefined;
    node.core.advance(rd);
  }

  private deliver(node: ScriptNode, drop: boolean): void {
    const msgs = node.inbox;
    node.inbox = [];
    if (msgs.length === 0 || !node.core) return;
    this.print(`> ${node.id} receiving messages`);
    for (const m of msgs) {
      if (drop || this.cut.has(`${m.from}>${m.to}`)) {
        this.print(`  ${fmtMsg(m)} DROPPED`);
        continue;
      }
      this.print(`  ${fmtMsg(m)}`);
      const before = fmtCoreLine(node.core);
      node.core.step(m);
      const after = fmtCoreLine(node.core);
      if (after !== before) this.print(`  ~ ${node.id}: ${before} -> ${after}`);
    }
  }

  private stop(node: ScriptNode): void {
    node.core = undefined;
    node.held = undefined;
    node.inbox = [];
    this.print(`${node.id} stopped (unwritten state lost)`);
  }

  private restart(node: ScriptNode): void {
    const d = node.disk;
    const termRuns: [number, number][] = [];
    const configs: { index: number; config: ConfState }[] = [];
    for (const e of d.entries) {
      if (termRuns.length === 0 || termRuns[termRuns.length - 1]![1] !== e.term)
        termRuns.push([e.index, e.term]);
      if (e.type === 'config') configs.push({ index: e.index, config: decodeConfState(e.data) });
    }
    node.core = new RaftCore(node.config, {
      hardState: d.hard,
      snapshot: d.snap,
      lastIndex: d.snap.lastIndex + d.entries.length,
      termRuns,
      configs,
      entries: d.entries.slice(),
      applied: d.snap.lastIndex,
    });
    node.held = undefined;
    node.inbox = [];
    this.print(`${node.id} restarted: ${fmtCoreLine(node.core)} hard=${fmtHard(d.hard)}`);
  }

  private printStatus(node: ScriptNode): void {
    const c = node.core;
    if (!c) {
      this.print(`${node.id}: stopped`);
      return;
    }
    const s = c.status();
    this.print(
      `${node.id}: ${fmtCoreLine(c)} commit=${s.commit} applied=${s.applied} log=${s.firstIndex}..${s.lastIndex} voters=${s.config.voters.join(',')} learners=${s.config.learners.join(',')}`,
    );
    for (const p of s.peers) {
      if (p.id === node.id) continue;
      this.print(
        `  ${p.id}: ${p.state} match=${p.match} next=${p.next}${p.learner ? ' learner' : ''}`,
      );
    }
  }

  private printLog(node: ScriptNode): void {
    const c = node.core;
    if (!c) {
      this.print(`${node.id}: stopped`);
      return;
    }
    const mem: string[] = [];
    for (let i = c.log.snapIndex + 1; i <= c.log.lastIndex; i++) mem.push(`${i}/${c.log.term(i)}`);
    this.print(
      `${node.id}: snap=${c.log.snapIndex}/${c.log.snapTerm} [${mem.join(' ')}] stable=${c.log.stableIndex}`,
    );
    const d = node.disk;
    this.print(
      `  disk: snap=${d.snap.lastIndex}/${d.snap.lastTerm} [${d.entries.map((e) => `${e.index}/${e.term}`).join(' ')}] hard=${fmtHard(d.hard)}`,
    );
  }

  private snapshotStates(): Map<NodeId, string> {
    const m = new Map<NodeId, string>();
    for (const [id, n] of this.nodes) if (n.core) m.set(id, fmtCoreLine(n.core));
    return m;
  }

  private printChanges(before: Map<NodeId, string>): void {
    for (const [id, n] of this.nodes) {
      if (!n.core) continue;
      const was = before.get(id);
      const now = fmtCoreLine(n.core);
      if (was !== undefined && was !== now) this.print(`~ ${id}: ${was} -> ${now}`);
    }
  }
}

/** Runs a whole transcript; returns each block's output. */
export function runTranscript(blocks: readonly ScriptBlock[]): string[][] {
  const cluster = new ScriptedCluster();
  return blocks.map((b) => {
    try {
      return cluster.run(b.command);
    } catch (err) {
      if (err instanceof TranscriptSyntaxError) {
        throw new TranscriptSyntaxError(`line ${b.line}: ${err.message}`, { cause: err });
      }
      // Errors of the core (invariant checks) are output: a test expects them or not.
      return [`error: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`];
    }
  });
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parseChange(kv: Map<string, string>): ConfChange {
  const add = kv.get('add-learner');
  if (add !== undefined) return { type: 'addLearner', id: add };
  const promote = kv.get('promote');
  if (promote !== undefined) return { type: 'promote', id: promote };
  const remove = kv.get('remove');
  if (remove !== undefined) return { type: 'remove', id: remove };
  throw new TranscriptSyntaxError('propose-conf-change needs add-learner=, promote= or remove=');
}

function fmtResult(res: ProposeResult): string {
  return res.ok
    ? `ok index=${res.index} term=${res.term}`
    : `refused ${res.reason} leader=${res.leader || '-'}`;
}

function fmtCoreLine(c: RaftCore): string {
  return `${c.role} term=${c.term} leader=${c.leader || '-'}`;
}

function fmtHard(h: HardState): string {
  return `term=${h.term} vote=${h.vote || '-'} commit=${h.commit}`;
}

function fmtConf(c: ConfState): string {
  return `voters=${c.voters.join(',')} learners=${c.learners.join(',')}`;
}

function fmtSnap(s: SnapshotMeta): string {
  return `${s.lastIndex}/${s.lastTerm} ${fmtConf(s.config)}`;
}

function fmtEntry(e: Entry): string {
  switch (e.type) {
    case 'noop':
      return `${e.index}/${e.term} noop`;
    case 'config':
      return `${e.index}/${e.term} conf ${fmtConf(decodeConfState(e.data))}`;
    case 'normal':
      return `${e.index}/${e.term} "${decoder.decode(e.data)}"`;
  }
}

function fmtEntries(es: readonly Entry[]): string {
  return `[${es.map(fmtEntry).join(', ')}]`;
}

export function fmtMsg(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'vote':
      return `${head}${m.pre ? ' pre' : ''} last=${m.lastIndex}/${m.lastTerm}${m.force ? ' force' : ''}`;
    case 'voteResp':
      return `${head}${m.pre ? ' pre' : ''} ${m.reject ? 'rejected' : 'granted'}`;
    case 'append':
      return `${head} prev=${m.prevIndex}/${m.prevTerm} commit=${m.commit} entries=${fmtEntries(m.entries)}`;
    case 'appendResp':
      return m.reject
        ? `${head} rejected index=${m.index} hint=${m.hintIndex}/${m.hintTerm}`
        : `${head} index=${m.index}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.context ? ` ctx=${m.context}` : ''}`;
    case 'heartbeatResp':
      return `${head}${m.context ? ` ctx=${m.context}` : ''}`;
    case 'snapshot':
      return `${head} snap=${fmtSnap(m.meta)}`;
    case 'timeoutNow':
      return head;
  }
}

function fmtReady(rd: Ready): string[] {
  const out: string[] = [];
  if (rd.softState) {
    const s = rd.softState;
    out.push(`soft: ${s.role} term=${s.term} leader=${s.leader || '-'}`);
  }
  if (rd.hardState) out.push(`hard: ${fmtHard(rd.hardState)}`);
  if (rd.snapshot) out.push(`snapshot: ${fmtSnap(rd.snapshot)}`);
  if (rd.entries.length > 0) out.push(`entries: ${fmtEntries(rd.entries)}`);
  if (rd.mustSync) out.push('must-sync');
  for (const m of rd.messages) out.push(`send ${fmtMsg(m)}`);
  if (rd.committed.length > 0) out.push(`apply: ${fmtEntries(rd.committed)}`);
  for (const r of rd.readStates) out.push(`read-state ctx=${r.context} index=${r.index}`);
  if (rd.compacted) out.push(`compacted: ${fmtSnap(rd.compacted)}`);
  return out;
}
