// The cluster's instruments, on the node's registry: Raft's state (read when scraped),
// leader changes, proposal latency, forwarded produces, the Raft transport, the RPC
// port's refusals and gossip members. Listed in docs/observability.md.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

import type { ReplicatedLog } from '../cluster/index.js';
import type { Membership } from '../membership/index.js';
import type { PortMux } from '../net/index.js';
import type { StreamTransport } from '../raft/index.js';
import type { CommitLog, LeaderForwarder } from '../server/index.js';
import { METRIC_PREFIX } from '../telemetry/index.js';

const P = METRIC_PREFIX;
const ROLES = ['follower', 'preCandidate', 'candidate', 'leader'] as const;

export interface ClusterParts {
  readonly log: ReplicatedLog;
  readonly transport: StreamTransport;
  readonly membership: Membership;
  readonly mux: PortMux;
}

export class ClusterMetrics {
  readonly leaderChanges: Counter;
  readonly proposalSeconds: Histogram;
  readonly forwarded: Counter<'outcome'>;

  constructor(registry: Registry, parts: ClusterParts) {
    const { log, transport, membership, mux } = parts;
    const registers = [registry];
    const status = () => log.raft.status();
    new Gauge({
      name: `${P}raft_term`,
      help: 'Current Raft term',
      registers,
      collect() {
        this.set(status().term);
      },
    });
    new Gauge({
      name: `${P}raft_role`,
      help: 'Raft role of this node (1 for the current role)',
      labelNames: ['role'],
      registers,
      collect() {
        const role = status().role;
        for (const r of ROLES) this.set({ role: r }, r === role ? 1 : 0);
      },
    });
    const index = (name: string, help: string, read: () => number) =>
      new Gauge({
        name: `${P}raft_${name}`,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    index('commit_index', 'Highest Raft index known committed', () => status().commit);
    index('applied_index', 'Highest Raft index visible to readers here', () => status().applied);
    index('last_index', 'Last Raft index in the local log', () => status().lastIndex);
    new Gauge({
      name: `${P}raft_peer_match_index`,
      help: "Leader only: each member's highest replicated index",
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const p of status().peers) this.set({ peer: p.id }, p.match);
      },
    });
    new Gauge({
      name: `${P}raft_peer_lag`,
      help: 'Leader only: entries each member is behind the leader',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        const st = status();
        for (const p of st.peers) this.set({ peer: p.id }, Math.max(0, st.lastIndex - p.match));
      },
    });
    this.leaderChanges = new Counter({
      name: `${P}raft_leader_changes_total`,
      help: 'Leader changes seen by this node',
      registers,
    });
    log.onLeaderChange(() => this.leaderChanges.inc());
    this.proposalSeconds = new Histogram({
      name: `${P}raft_proposal_seconds`,
      help: 'Appends on this node, from proposal to commit (the leader) or refusal',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.forwarded = new Counter({
      name: `${P}forwarded_produces_total`,
      help: 'Produces a follower sent to the leader, by outcome (ok or the error name)',
      labelNames: ['outcome'],
      registers,
    });
    const perPeer = (
      name: string,
      help: string,
      key:
        | 'sentMessages'
        | 'sentBytes'
        | 'receivedMessages'
        | 'receivedBytes'
        | 'queueDepth'
        | 'drops'
        | 'reconnects'
        | 'handshakeFailures',
    ) =>
      new Gauge({
        name: `${P}raft_transport_${name}`,
        help,
        labelNames: ['peer'],
        registers,
        collect() {
          for (const [peer, s] of Object.entries(transport.stats().peers))
            this.set({ peer }, s[key]);
        },
      });
    perPeer('sent_messages', 'Raft messages sent to each peer (cumulative)', 'sentMessages');
    perPeer('sent_bytes', 'Bytes sent to each peer (cumulative)', 'sentBytes');
    perPeer(
      'received_messages',
      'Raft messages received from each peer (cumulative)',
      'receivedMessages',
    );
    perPeer('received_bytes', 'Bytes received from each peer (cumulative)', 'receivedBytes');
    perPeer('queue_depth', 'Messages waiting to be sent to each peer', 'queueDepth');
    perPeer(
      'drops',
      'Messages dropped for each peer: queue full or unreachable (cumulative)',
      'drops',
    );
    perPeer('reconnects', 'Reconnections to each peer (cumulative)', 'reconnects');
    perPeer(
      'handshake_failures',
      'Failed handshakes with each peer (cumulative)',
      'handshakeFailures',
    );
    new Gauge({
      name: `${P}rpc_port_refused`,
      help: 'Connections the RPC port closed unclassified, by reason (cumulative)',
      labelNames: ['reason'],
      registers,
      collect() {
        for (const [reason, n] of Object.entries(mux.stats().refused)) this.set({ reason }, n);
      },
    });
    new Gauge({
      name: `${P}gossip_members`,
      help: 'Gossip members as this node sees them, by status',
      labelNames: ['status'],
      registers,
      collect() {
        const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0 };
        for (const m of membership.members()) counts[m.status] = (counts[m.status] ?? 0) + 1;
        for (const [s, n] of Object.entries(counts)) this.set({ status: s }, n);
      },
    });
  }

  /** The commit log the server uses, timing each append. */
  timedLog(log: CommitLog): CommitLog {
    return {
      append: async (values, o) => {
        const end = this.proposalSeconds.startTimer();
        try {
          return await log.append(values, o);
        } finally {
          end();
        }
      },
      read: (offset, o) => log.read(offset, o),
      readBatchesFrom: (from, o) => log.readBatchesFrom(from, o),
      get endOffset() {
        return log.endOffset;
      },
    };
  }

  /** The forwarder, counting outcomes. */
  countedForwarder(f: LeaderForwarder): LeaderForwarder {
    return {
      append: async (values, leader, o) => {
        try {
          const offset = await f.append(values, leader, o);
          this.forwarded.inc({ outcome: 'ok' });
          return offset;
        } catch (err) {
          this.forwarded.inc({ outcome: err instanceof Error ? err.name : 'error' });
          throw err;
        }
      },
    };
  }
}
