// The steps that make a node a member of a cluster: its identity, the RPC port shared by
// gRPC and Raft, gossip membership, the replicated log, and the loop that turns
// membership into Raft configuration. See CLUSTER.md for the design.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

import {
  bootstrapIdentity,
  ClusterMismatchError,
  DuplicateNodeNameError,
  joinIdentity,
  loadIdentity,
  MembershipLoop,
  nodeNameOf,
  ReplicatedLog,
  TAGS,
  type NodeIdentity,
} from '../cluster/index.js';
import { Membership, membershipDefaults, type MemberView } from '../membership/index.js';
import { PlainPeerStreamLayer, PortMux, TlsPeerStreamLayer } from '../net/index.js';
import { NotLeaderError as RaftNotLeaderError, StreamTransport } from '../raft/index.js';
import {
  ListenError,
  type ClusterView,
  type LeaderHint,
  type NotLeaderClassifier,
  type ServerEntry,
} from '../server/index.js';
import { bindHost } from './config.js';
import { GrpcLeaderForwarder } from './forwarder.js';
import { joinHostPort, MAX_RECORD_BYTES, type Step } from './steps.js';

/** The host other nodes and clients dial: --advertise-host, else the bind host (or this host's name for a wildcard bind). */
export function advertiseHost(config: {
  advertiseHost?: string | undefined;
  bindAddr: string;
}): string {
  if (config.advertiseHost) return config.advertiseHost;
  const host = bindHost(config as Parameters<typeof bindHost>[0]);
  return host === '0.0.0.0' || host === '::' ? hostname() : host;
}

/** Who this node is: its Raft id, made once per data directory, and its cluster. */
export const loadNodeIdentity: Step = {
  name: 'node identity',
  async run(ctx) {
    const { config } = ctx;
    let identity = await loadIdentity(config.dataDir, config.nodeName);
    if (
      identity.clusterId === '' &&
      (config.raft.bootstrap || config.membership.startJoinAddrs.length === 0)
    ) {
      identity = await bootstrapIdentity(config.dataDir, identity, false);
    } else if (config.raft.bootstrapExplicit && identity.origin === 'join') {
      // Bootstrapping over the data of a cluster this node joined would fork it.
      identity = await bootstrapIdentity(config.dataDir, identity, true);
    }
    ctx.identity = identity;
  },
};

/**
 * One TCP port for gRPC and Raft (the book's cmux): TLS from the first byte, routed by
 * ALPN; plaintext (loopback development) routed by the first bytes. The gRPC route is
 * filled once the API server exists; until then such connections are closed.
 */
export const startPortMux: Step = {
  name: 'RPC port',
  async run(ctx, teardown) {
    const { config } = ctx;
    const logger = ctx.need('logger');
    const { peerTls, serverTls } = ctx.need('security');
    const netLogger = ctx.need('telemetry').logger.child({ component: 'net' });
    const layer = peerTls
      ? new TlsPeerStreamLayer({
          cert: peerTls.cert,
          key: peerTls.key,
          ca: peerTls.ca,
          logger: netLogger,
        })
      : new PlainPeerStreamLayer({ logger: netLogger });
    const mux = new PortMux({
      mode: serverTls ? 'tls' : 'plain',
      routes: {
        grpc: (socket, info) => {
          const sink = ctx.grpcSink;
          if (sink) sink(socket, info);
          else socket.destroy();
        },
        raft: layer.sink,
      },
      logger: netLogger,
      maxPerSource: config.limits.connectionsPerAddress,
    });
    const host = bindHost(config);
    const bound = await mux.listen(host, config.rpcPort).catch((err: Error) => {
      throw new ListenError('gRPC', joinHostPort(host, config.rpcPort), err);
    });
    teardown.defer(async () => {
      await mux.close();
      await layer.close();
    });
    ctx.peerLayer = layer;
    ctx.portMux = mux;
    ctx.rpcAddr = joinHostPort(advertiseHost(config), bound.port);
    logger.info({ rpcAddr: ctx.rpcAddr }, `RPC port (gRPC and Raft) on ${ctx.rpcAddr}`);
  },
};

function gossipPort(bindAddr: string): number {
  return Number(bindAddr.slice(bindAddr.lastIndexOf(':') + 1));
}

/** Gossip: finds the other members; a joining node learns its cluster's id here. */
export const startMembership: Step = {
  name: 'membership',
  async run(ctx, teardown) {
    const { config } = ctx;
    const logger = ctx.need('logger');
    let identity = ctx.need('identity');
    const rpcAddr = ctx.need('rpcAddr');
    const host = bindHost(config);
    const port = gossipPort(config.bindAddr);
    const tags = (): Record<string, string> => ({
      [TAGS.raftId]: identity.raftId,
      [TAGS.rpcAddr]: rpcAddr,
      ...(identity.clusterId ? { [TAGS.clusterId]: identity.clusterId } : {}),
    });
    const membership = new Membership({
      name: config.nodeName,
      bindHost: host,
      bindPort: port,
      // Binding a wildcard (or another name) needs an address others can dial; a
      // concrete bind host is advertised with the port actually bound (0 picks one).
      ...(advertiseHost(config) !== host
        ? { advertiseAddress: joinHostPort(advertiseHost(config), port) }
        : {}),
      tags: tags(),
      protocol:
        config.membership.preset === 'local'
          ? membershipDefaults.local()
          : membershipDefaults.lan(),
      ...(config.membership.gossipKey ? { encryptionKey: config.membership.gossipKey } : {}),
    });
    await membership.start();
    // Closing without leaving: the others see this node fail and keep it as a voter
    // (a restart). --leave-on-terminate leaves first (see startMembershipLoop).
    teardown.defer(() => membership.close());
    ctx.membership = membership;
    const seeds = config.membership.startJoinAddrs;
    if (seeds.length > 0) {
      const answered = await membership.join(seeds);
      logger.info(
        { seeds, answered },
        `joined the cluster through ${answered} of ${seeds.length} seed(s)`,
      );
      const theirs = await clusterIdOf(
        membership,
        identity.raftId,
        config.membership.joinTimeoutMs,
      );
      identity = await joinIdentity(config.dataDir, identity, theirs);
      ctx.identity = identity;
      membership.setTags(tags());
      checkDuplicateName(membership.members(), config.nodeName, identity.raftId);
    }
  },
};

/** The cluster id the other members announce (they must agree). */
async function clusterIdOf(m: Membership, self: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ids = new Set(
      m
        .members()
        .filter((v) => v.tags[TAGS.raftId] !== self && v.status === 'alive')
        .map((v) => v.tags[TAGS.clusterId])
        .filter((id): id is string => id !== undefined && id !== ''),
    );
    if (ids.size > 1) throw new ClusterMismatchError([...ids][0]!, [...ids][1]!);
    const [id] = ids;
    if (id !== undefined) return id;
    if (Date.now() > deadline)
      throw new ClusterMismatchError('(none)', '(none)', {
        cause: new Error('no member reached through the join addresses announces a cluster id'),
      });
    await new Promise((r) => setTimeout(r, 50));
  }
}

function checkDuplicateName(members: readonly MemberView[], name: string, raftId: string): void {
  for (const m of members) {
    const id = m.tags[TAGS.raftId];
    if (m.name === name && id !== undefined && id !== raftId && m.status === 'alive')
      throw new DuplicateNodeNameError(name, id);
  }
}

/** The replicated log under <data-dir>/groups/default, Raft over the RPC port. */
export const openReplicatedLog: Step = {
  name: 'replicated log',
  async run(ctx, teardown) {
    const { config } = ctx;
    const logger = ctx.need('logger');
    const identity = ctx.need('identity');
    const membership = ctx.need('membership');
    const layer = ctx.need('peerLayer');
    const { peerTls, serverTls } = ctx.need('security');
    const telemetry = ctx.need('telemetry');
    const holder: { log?: ReplicatedLog } = {};
    const memberAddr = (id: string): string | undefined =>
      membership.members().find((m) => m.tags[TAGS.raftId] === id)?.tags[TAGS.rpcAddr];
    const transport = new StreamTransport({
      id: identity.raftId,
      clusterId: identity.clusterId,
      layer,
      // The configuration's address book first; a member not yet in it (a learner
      // being added, or the leader seen by a new learner) through its gossip tags.
      addressOf: (id) => holder.log?.raft.status().config.addresses[id] ?? memberAddr(id),
      identityOf: nodeNameOf,
      requirePeerIdentity: peerTls !== undefined,
      logger: telemetry.logger.child({ component: 'raft-transport' }),
    });
    teardown.defer(() => transport.close());
    const log = await ReplicatedLog.open({
      dir: join(config.dataDir, 'groups', 'default'),
      id: identity.raftId,
      rpcAddr: ctx.need('rpcAddr'),
      transport,
      fsync: config.storage.fsync,
      maxRecordBytes: MAX_RECORD_BYTES,
      maxStoreBytes: config.storage.segmentMaxBytes,
      bootstrap: identity.origin === 'bootstrap',
      tickMs: config.raft.tickMs,
      raft: { electionTicks: config.raft.electionTicks, heartbeatTicks: 1 },
      leaderWaitMs: config.raft.leaderWaitMs,
      observer: telemetry.logObserver(),
    });
    holder.log = log;
    teardown.defer(() => log.close());
    ctx.replicatedLog = log;
    ctx.commitLog = log;
    ctx.cluster = clusterView(log);
    ctx.notLeader = notLeader;
    ctx.forwarder = new GrpcLeaderForwarder(config.nodeName, serverTls);
    const forwarder = ctx.forwarder;
    teardown.defer(() => forwarder.close());
    let last: string | undefined;
    log.onLeaderChange((hint) => {
      const leader = hint?.id;
      if (leader === last) return;
      last = leader;
      const st = log.raft.status();
      logger.info(
        { leader: leader ?? null, leaderAddr: hint?.addr ?? null, term: st.term, role: st.role },
        leader ? `leader is ${leader} (term ${st.term})` : `no leader (term ${st.term})`,
      );
    });
    logger.info(
      {
        raftId: identity.raftId,
        clusterId: identity.clusterId,
        startOffset: log.startOffset.toString(),
        endOffset: log.endOffset.toString(),
      },
      `member ${identity.raftId} of cluster ${identity.clusterId}`,
    );
  },
};

function notLeaderOf(err: unknown): ReturnType<NotLeaderClassifier> {
  if (!(err instanceof RaftNotLeaderError)) return undefined;
  const leader: LeaderHint | undefined =
    err.leaderId && err.leaderAddress ? { id: err.leaderId, addr: err.leaderAddress } : undefined;
  return leader ? { leader } : {};
}
export const notLeader: NotLeaderClassifier = notLeaderOf;

export function clusterView(log: ReplicatedLog): ClusterView {
  return {
    servers: async (): Promise<ServerEntry[]> =>
      log.servers().map((s) => ({
        id: nodeNameOf(s.id),
        raftId: s.id,
        rpcAddr: s.rpcAddr,
        isLeader: s.isLeader,
        suffrage: s.voter ? 'voter' : 'learner',
        ...(s.matchIndex !== undefined ? { matchIndex: s.matchIndex } : {}),
        ...(s.lag !== undefined ? { lag: s.lag } : {}),
      })),
    leader: () => {
      const h = log.leader();
      return h?.addr ? { id: h.id, addr: h.addr } : undefined;
    },
    leaderChanges: (o = {}) => leaderChanges(log, o.signal),
    removeServer: (id) => log.removeServer(id),
  };
}

async function* leaderChanges(
  log: ReplicatedLog,
  signal: AbortSignal | undefined,
): AsyncIterable<LeaderHint | undefined> {
  const queue: (LeaderHint | undefined)[] = [];
  let wake: (() => void) | undefined;
  const off = log.onLeaderChange((h) => {
    queue.push(h?.addr ? { id: h.id, addr: h.addr } : undefined);
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal?.addEventListener('abort', onAbort);
  try {
    while (!signal?.aborted) {
      if (queue.length > 0) {
        yield queue.shift();
        continue;
      }
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    off();
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Membership → Raft configuration, on the leader. With --leave-on-terminate a stopping
 * node hands over leadership, leaves the gossip and waits (bounded) to be removed.
 */
export const startMembershipLoop: Step = {
  name: 'membership loop',
  async run(ctx, teardown) {
    const { config } = ctx;
    const logger = ctx.need('logger');
    const log = ctx.need('replicatedLog');
    const membership = ctx.need('membership');
    const identity = ctx.need('identity');
    const loop = new MembershipLoop(log, membership, identity.clusterId, {
      minVoters: config.raft.minVoters,
      ...(config.raft.reapAfterMs !== undefined ? { reapAfterMs: config.raft.reapAfterMs } : {}),
      onChange: (change) => logger.info({ change }, `configuration: ${change.type} ${change.id}`),
      onError: (err) => logger.debug({ err }, 'configuration change deferred'),
    });
    loop.start();
    teardown.defer(async () => {
      loop.close();
      if (config.membership.leaveOnTerminate)
        await leaveCluster(ctx.need('logger'), log, membership, identity);
    });
  },
};

async function leaveCluster(
  logger: { info(f: object, m: string): void; warn(f: object, m: string): void },
  log: ReplicatedLog,
  membership: Membership,
  identity: NodeIdentity,
): Promise<void> {
  const st = log.raft.status();
  if (st.role === 'leader') {
    const target = st.peers
      .filter((p) => p.id !== identity.raftId && !p.learner)
      .sort((a, b) => b.match - a.match)[0];
    if (target) {
      await log.raft
        .transferLeadership(target.id)
        .catch((err: unknown) =>
          logger.warn({ err, target: target.id }, 'leadership transfer before leaving failed'),
        );
    }
  }
  await membership.leave();
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const conf = log.raft.status().config;
    if (!conf.voters.includes(identity.raftId) && !conf.learners.includes(identity.raftId)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  logger.info({}, 'left the cluster');
}

/** gRPC connections from the RPC port go to the API server from now on. */
export const routeGrpc: Step = {
  name: 'gRPC route',
  async run(ctx) {
    ctx.grpcSink = ctx.need('server').grpcSink();
  },
};

/**
 * A node restarted without join addresses finds the others through the gossip
 * addresses it saw last time (<data-dir>/gossip-peers). Best effort: Raft reaches its
 * peers through the configuration's addresses whether gossip rejoins or not.
 */
export const rememberGossipPeers: Step = {
  name: 'gossip peers',
  async run(ctx, teardown) {
    const { config } = ctx;
    const membership = ctx.need('membership');
    const logger = ctx.need('logger');
    const file = join(config.dataDir, 'gossip-peers');
    if (config.membership.startJoinAddrs.length === 0) {
      const known = await readGossipPeers(file);
      if (known.length > 0) {
        membership.join(known).then(
          (n) =>
            logger.info({ seeds: known, answered: n }, 'rejoined gossip through remembered peers'),
          () =>
            logger.info(
              { seeds: known },
              'no remembered gossip peer answered; waiting to be found',
            ),
        );
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const save = (): void => {
      timer ??= setTimeout(() => {
        timer = undefined;
        const addrs = membership
          .members()
          .filter((m) => m.name !== config.nodeName && m.status !== 'left')
          .map((m) => m.address);
        writeGossipPeers(file, addrs).catch((err: unknown) =>
          logger.debug({ err }, 'could not remember gossip peers'),
        );
      }, 1000);
    };
    membership.on('event', save);
    save();
    teardown.defer(() => {
      membership.off('event', save);
      if (timer) clearTimeout(timer);
    });
  },
};

async function readGossipPeers(file: string): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  } catch {
    return []; // none remembered yet
  }
}

async function writeGossipPeers(file: string, addrs: readonly string[]): Promise<void> {
  await writeFile(`${file}.tmp`, addrs.join('\n') + '\n');
  await rename(`${file}.tmp`, file);
}
