// The steps that make a node a member of a cluster: its identity, the RPC port shared by
// gRPC and Raft, gossip membership, the replicated log, and the loop that turns
// membership into Raft configuration. See CLUSTER.md for the design.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

import {
  AlreadyBootstrappedError,
  bootstrapIdentity,
  ClusterMismatchError,
  DuplicateNodeNameError,
  joinIdentity,
  JoinTimeoutError,
  loadIdentity,
  MembershipLoop,
  nodeNameOf,
  ReplicatedLog,
  TAGS,
  type NodeIdentity,
} from '../cluster/index.js';
import { describeTruncation } from '../log/index.js';
import { Membership, membershipDefaults, type MemberView } from '../membership/index.js';
import { PlainPeerStreamLayer, PortMux, TlsPeerStreamLayer } from '../net/index.js';
import { NotLeaderError as RaftNotLeaderError, StreamTransport } from '../raft/index.js';
import {
  ListenError,
  type ClusterView,
  type LeaderForwarder,
  type LeaderHint,
  type NotLeaderClassifier,
  type ServerEntry,
} from '../server/index.js';
import { bindHost } from './config.js';
import { ClusterMetrics } from './cluster-metrics.js';
import { DiskSpaceGuard } from './disk-space.js';
import { GrpcLeaderForwarder, LeaderUnreachableError } from './forwarder.js';
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

/**
 * Who this node is: its Raft id, made once per data directory, and its cluster. A node
 * with nobody to join starts a cluster here; with join addresses it learns its cluster
 * from them (startMembership), and `--bootstrap` then only starts one when nobody
 * answers with an existing cluster (so a Kubernetes pod 0 that lost its disk rejoins
 * rather than forking the cluster).
 */
export const loadNodeIdentity: Step = {
  name: 'node identity',
  async run(ctx) {
    const { config } = ctx;
    let identity = await loadIdentity(config.dataDir, config.nodeName);
    const seeds = config.membership.startJoinAddrs.length > 0;
    if (!seeds && identity.origin === 'join' && config.raft.bootstrapExplicit) {
      // Bootstrapping over the data of a cluster this node joined would fork it.
      throw new AlreadyBootstrappedError(config.dataDir, identity.clusterId);
    }
    if (!seeds && identity.clusterId === '') {
      identity = await bootstrapIdentity(config.dataDir, identity, false);
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
    const { tls } = ctx.need('security');
    const serverTls = tls.material('server');
    const peerTls = tls.material('peer');
    const netLogger = ctx.need('telemetry').logger.child({ component: 'net' });
    let layer: TlsPeerStreamLayer | PlainPeerStreamLayer;
    if (peerTls) {
      const tlsLayer = new TlsPeerStreamLayer({
        cert: peerTls.cert,
        key: peerTls.key,
        ca: peerTls.ca,
        logger: netLogger,
      });
      teardown.defer(tls.register('peer', (m) => tlsLayer.stageTls(m)));
      layer = tlsLayer;
    } else layer = new PlainPeerStreamLayer({ logger: netLogger });
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
      // A founder restarting, or --bootstrap on a fresh disk, only waits briefly: the
      // others may not be up yet, and none of them holds a cluster before it does.
      const founder = identity.origin === 'bootstrap';
      const patient = identity.clusterId === '' && !config.raft.bootstrapExplicit;
      const waitMs = patient
        ? config.membership.joinTimeoutMs
        : Math.min(3000, config.membership.joinTimeoutMs);
      const answered = await joinWithRetry(membership, seeds, waitMs);
      logger.info(
        { seeds, answered },
        `gossip: ${answered} of ${seeds.length} join address(es) answered`,
      );
      const theirs = await clusterIdOf(membership, identity.raftId, answered > 0 ? waitMs : 0);
      if (theirs !== undefined) {
        if (founder && theirs !== identity.clusterId)
          throw new ClusterMismatchError(identity.clusterId, theirs);
        identity = await joinIdentity(config.dataDir, identity, theirs);
      } else if (identity.clusterId === '') {
        if (!config.raft.bootstrapExplicit)
          throw new JoinTimeoutError(seeds, config.membership.joinTimeoutMs);
        logger.info({ seeds }, 'no join address belongs to a cluster yet: bootstrapping a new one');
        identity = await bootstrapIdentity(config.dataDir, identity, false);
      }
      ctx.identity = identity;
      membership.setTags(tags());
      checkDuplicateName(membership.members(), config.nodeName, identity.raftId);
    }
  },
};

/** Joins through `seeds`, retrying until one answers or `ms` pass; how many answered. */
async function joinWithRetry(m: Membership, seeds: readonly string[], ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await m.join(seeds);
    } catch (err) {
      if (Date.now() >= deadline) return 0;
      await new Promise((r) => setTimeout(r, 250));
      void err; // nobody answered yet: try again until the deadline
    }
  }
}

/** The cluster id the other members announce (they must agree); undefined if none does in time. */
async function clusterIdOf(
  m: Membership,
  self: string,
  timeoutMs: number,
): Promise<string | undefined> {
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
    if (Date.now() >= deadline) return undefined;
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
    const { tls } = ctx.need('security');
    const serverTls = tls.material('server');
    const peerTls = tls.material('peer');
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
      addressOf: (id) => holder.log?.addressOf(id) ?? memberAddr(id),
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
      addressOf: memberAddr,
      observer: telemetry.logObserver(),
    });
    holder.log = log;
    teardown.defer(() => log.close());
    // Fail-stop: a node whose Raft stopped on a storage error (a full disk) would stay in
    // the gossip, serve stale reads and never vote again. Stopping the process lets a
    // supervisor restart it from its durable state once the disk is usable.
    teardown.defer(
      log.onFailure((err) => {
        logger.fatal({ err }, 'raft stopped after a storage failure; the node stops');
        ctx.fail(err);
      }),
    );
    const unwatch = telemetry.metrics?.watchLog(log);
    if (unwatch) teardown.defer(unwatch);
    const { truncated } = log.recovery;
    if (truncated || log.recovery.indexesRebuilt.length > 0) {
      const cut = truncated
        ? `: ${describeTruncation(truncated, 'Raft log entries from index')}`
        : '';
      logger.warn({ recovery: log.recovery }, `log recovered from an unclean shutdown${cut}`);
    }
    ctx.replicatedLog = log;
    ctx.cluster = clusterView(log, membership);
    // Raft's refusal names the leader's address as the configuration recorded it.
    ctx.notLeader = (err) => {
      const refusal = notLeaderOf(err);
      const id = refusal?.leader?.id;
      const addr = id ? log.addressOf(id) : undefined;
      return refusal && id && addr ? { leader: { id, addr } } : refusal;
    };
    const forwarder = new GrpcLeaderForwarder(config.nodeName, serverTls);
    teardown.defer(() => forwarder.close());
    // The forwarder presents the server certificate: it follows server reloads.
    if (serverTls) teardown.defer(tls.register('server', (m) => forwarder.stageTls(m)));
    const registry = telemetry.metrics?.registry;
    const metrics = registry
      ? new ClusterMetrics(registry, { log, transport, membership, mux: ctx.need('portMux') })
      : undefined;
    const space = new DiskSpaceGuard({
      dir: config.dataDir,
      minFreeBytes: config.storage.minFreeBytes,
    });
    ctx.commitLog = space.guard(metrics ? metrics.timedLog(log) : log);
    const counted = metrics ? metrics.countedForwarder(forwarder) : forwarder;
    ctx.forwarder = failoverForwarder(counted, log, config.raft.leaderWaitMs);
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
    // A sole voter elects itself at once: wait for it, so that a single node is ready
    // (and has said who leads) before it announces itself.
    const conf = log.raft.status().config;
    if (conf.voters.length === 1 && conf.voters[0] === identity.raftId) await log.ready(2000);
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

/**
 * A leader that cannot be reached has most likely died: the produce certainly was not
 * sent, so it waits (bounded) for the next election and goes there once, appending
 * here if this node won. Plain clients ride through a failover this way.
 */
export function failoverForwarder(
  inner: LeaderForwarder,
  log: ReplicatedLog,
  waitMs: number,
): LeaderForwarder {
  return {
    async append(values, leader, o) {
      try {
        return await inner.append(values, leader, o);
      } catch (err) {
        if (!(err instanceof LeaderUnreachableError)) throw err;
        const next = await log.nextLeader(leader.id, waitMs, o.signal);
        if (!next) throw err;
        if (next.id === log.id) return log.append(values, o);
        const addr = next.addr ?? log.addressOf(next.id);
        if (!addr) throw err;
        return inner.append(values, { id: next.id, addr }, o);
      }
    },
  };
}

/** Recognises Raft's refusal of an append on a follower, with the leader it names. */
export function notLeaderOf(err: unknown): ReturnType<NotLeaderClassifier> {
  if (!(err instanceof RaftNotLeaderError)) return undefined;
  const leader: LeaderHint | undefined =
    err.leaderId && err.leaderAddress ? { id: err.leaderId, addr: err.leaderAddress } : undefined;
  return leader ? { leader } : {};
}

export function clusterView(log: ReplicatedLog, membership?: Membership): ClusterView {
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
    status: async () => {
      const st = log.raft.status();
      return {
        self: { id: nodeNameOf(st.id), raftId: st.id },
        role: st.role,
        term: st.term,
        commitIndex: st.commit,
        appliedIndex: st.applied,
        lastIndex: st.lastIndex,
        startOffset: log.startOffset,
        endOffset: log.endOffset,
        members: (membership?.members() ?? []).map((m) => ({ id: m.name, state: m.status })),
      };
    },
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
      // A node stopped by a failure is restarted by its supervisor: it keeps its place
      // (and with Raft stopped it could not be removed anyway).
      if (config.membership.leaveOnTerminate && !ctx.failedWith)
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
