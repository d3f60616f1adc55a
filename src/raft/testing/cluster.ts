// A cluster of RaftNodes over in-memory ports, for tests of anything built on Raft.
import type { ConfState, NodeId, RaftConfig } from '../core/index.js';
import { RaftNode } from '../node/raft-node.js';
import {
  MemoryHardStateStorage,
  MemoryLogStorage,
  MemoryNetwork,
  MemoryStateMachine,
} from './memory.js';

export interface ClusterOptions {
  /** Founding voters n1..nN (default 3). */
  readonly size?: number;
  /** Milliseconds per tick (default 5). */
  readonly tickMs?: number;
  readonly raft?: Omit<RaftConfig, 'id'>;
  /** Campaign on this node at start instead of waiting for a timeout (default n1). */
  readonly campaign?: NodeId | false;
}

/** One member's ports, which outlive its RaftNode across restarts. */
export interface ClusterMember {
  readonly id: NodeId;
  readonly log: MemoryLogStorage;
  readonly hardState: MemoryHardStateStorage;
  stateMachine: MemoryStateMachine;
  node: RaftNode | undefined;
}

export class ClusterTimeoutError extends Error {
  override name = 'ClusterTimeoutError';
}

export class TestCluster implements AsyncDisposable {
  readonly network = new MemoryNetwork();
  readonly members = new Map<NodeId, ClusterMember>();

  private constructor(private readonly opts: ClusterOptions) {}

  static async create(opts: ClusterOptions = {}): Promise<TestCluster> {
    const cluster = new TestCluster(opts);
    const ids = Array.from({ length: opts.size ?? 3 }, (_, k) => `n${k + 1}`);
    const addresses = Object.fromEntries(ids.map((id) => [id, addressOf(id)]));
    const conf: ConfState = { voters: ids, learners: [], addresses };
    for (const id of ids) await cluster.startMember(cluster.newMember(id), conf);
    const first = opts.campaign ?? 'n1';
    if (first !== false) cluster.node(first).campaign();
    return cluster;
  }

  node(id: NodeId): RaftNode {
    const n = this.members.get(id)?.node;
    if (!n) throw new RangeError(`${id} is not running`);
    return n;
  }

  running(): RaftNode[] {
    return [...this.members.values()].flatMap((m) => (m.node ? [m.node] : []));
  }

  /** The node with the highest term that believes it leads, if any. */
  leader(): RaftNode | undefined {
    let best: RaftNode | undefined;
    for (const n of this.running()) {
      const s = n.status();
      if (s.role === 'leader' && (!best || s.term > best.status().term)) best = n;
    }
    return best;
  }

  /** Resolves with a leader, optionally other than `not`, within the deadline. */
  async waitForLeader(timeoutMs = 5000, not?: NodeId): Promise<RaftNode> {
    return this.waitFor(
      () => {
        const l = this.leader();
        return l && l.id !== not ? l : undefined;
      },
      timeoutMs,
      'a leader',
    );
  }

  /** Waits until every running member has applied at least `index`. */
  async waitForApplied(index: number, timeoutMs = 5000): Promise<void> {
    await this.waitFor(
      () => (this.running().every((n) => n.status().applied >= index) ? true : undefined),
      timeoutMs,
      `applied ${index} everywhere`,
    );
  }

  /** Polls `probe` on every leader change and every few milliseconds until it answers. */
  async waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline)
        throw new ClusterTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const unsubscribe = this.running().map((n) => n.onLeaderChange(() => done()));
        const timer = setTimeout(() => done(), 2);
        function done(): void {
          clearTimeout(timer);
          for (const u of unsubscribe) u();
          resolve();
        }
      });
    }
  }

  /** Stops a member's node (its ports keep what was persisted). */
  async stop(id: NodeId): Promise<void> {
    const m = this.members.get(id);
    if (!m?.node) return;
    const node = m.node;
    m.node = undefined;
    await node.close();
  }

  /**
   * Restarts a member from its ports. By default its state machine is volatile and
   * restarts from the snapshot the log starts at; `keepState` keeps what it applied
   * (a durable state machine), so the node resumes applying after it.
   */
  async restart(id: NodeId, options: { keepState?: boolean } = {}): Promise<RaftNode> {
    const m = this.members.get(id);
    if (!m) throw new RangeError(`${id} is not a member`);
    await this.stop(id);
    if (!options.keepState) {
      const sm = new MemoryStateMachine();
      sm.applied = m.stateMachine.applied.slice(0, m.log.snapshot.lastIndex);
      m.stateMachine = sm;
    }
    return this.startMember(m, undefined);
  }

  /** Starts a new, empty member (to be added with addLearner by the leader). */
  async addMember(id: NodeId): Promise<RaftNode> {
    if (this.members.has(id)) throw new RangeError(`${id} exists`);
    return this.startMember(this.newMember(id), undefined);
  }

  async close(): Promise<void> {
    for (const id of this.members.keys()) await this.stop(id);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private newMember(id: NodeId): ClusterMember {
    const m: ClusterMember = {
      id,
      log: new MemoryLogStorage(),
      hardState: new MemoryHardStateStorage(),
      stateMachine: new MemoryStateMachine(),
      node: undefined,
    };
    this.members.set(id, m);
    return m;
  }

  private async startMember(m: ClusterMember, bootstrap: ConfState | undefined): Promise<RaftNode> {
    const sm = m.stateMachine;
    m.node = await RaftNode.start({
      id: m.id,
      logStorage: m.log,
      hardStateStorage: m.hardState,
      snapshots: sm,
      transport: this.network.transport(m.id),
      apply: sm.apply,
      applied: sm.appliedIndex,
      bootstrap,
      tickMs: this.opts.tickMs ?? 5,
      raft: this.opts.raft,
    });
    return m.node;
  }
}

export function addressOf(id: NodeId): string {
  return `${id}.test:8400`;
}
