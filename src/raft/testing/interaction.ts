// A synchronous network of pure cores for scripted interaction tests: messages are
// delivered in FIFO order by stabilize(), links can be cut, and every node's applied
// entries are recorded. Persistence is implied (each Ready is taken as durable).
import {
  RaftCore,
  bootstrapState,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadState,
  type RestoreState,
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
