// The agent's start-up as ordered steps. Each step reads what earlier steps put in the
// context, adds its own part, and defers how that part is undone; a failed start and a
// shutdown unwind the same Teardown in reverse. Adding a part of the node (membership,
// Raft, the port multiplexer, forwarding) means adding a step here.

import type { Duplex } from 'node:stream';

import { Gauge } from 'prom-client';

import {
  Authorizer,
  daysLeft,
  EXPIRY_WARNING_DAYS,
  expiresSoon,
  loadTlsMaterial,
  TlsReloader,
  watchAclFiles,
  type TlsMaterial,
  type TlsUse,
} from '../auth/index.js';
import type { NodeIdentity, ReplicatedLog } from '../cluster/index.js';
import type { Membership } from '../membership/index.js';
import type {
  ConnectionInfo,
  PlainPeerStreamLayer,
  PortMux,
  TlsPeerStreamLayer,
} from '../net/index.js';
import {
  ApiServer,
  type ClusterView,
  type CommitLog,
  type LeaderForwarder,
  type NotLeaderClassifier,
} from '../server/index.js';
import { type Logger, METRIC_PREFIX, TraceFileError } from '../telemetry/index.js';
import { type AgentConfig, bindHost, ConfigError, securitySettings } from './config.js';
import { CLUSTER_ERROR_STATUSES, LOG_ERROR_STATUSES } from './error-statuses.js';
import {
  loadNodeIdentity,
  openReplicatedLog,
  rememberGossipPeers,
  routeGrpc,
  startMembership,
  startMembershipLoop,
  startPortMux,
} from './cluster-steps.js';
import type { Teardown } from './teardown.js';
import { NodeTelemetry, type NodeTelemetryOptions } from './telemetry.js';
import { VERSION } from './version.js';

export interface AgentOptions {
  /** Where log lines go (default stdout). */
  logDestination?: NodeTelemetryOptions['logDestination'];
  /** Reload the ACL when its files change (default true; SIGHUP works either way). */
  watchAcl?: boolean;
  /** How long shutdown lets in-flight calls finish (default 5 s). */
  shutdownGraceMs?: number;
}

/** The largest record value; the server refuses larger ones before they reach the log. */
export const MAX_RECORD_BYTES = 1024 * 1024;

/** What the node secures itself with; loaded before anything else starts. */
export interface Security {
  authorizer?: Authorizer;
  /**
   * The TLS material in force, by use (`material('server')`: what clients reach;
   * `material('peer')`: this node's identity towards peers), and what replaces it in every
   * part that uses it (SIGHUP; see Agent.reloadTls). Absent material: plaintext.
   */
  tls: TlsReloader;
}

/** A step read a part that no earlier step provided: the step list is out of order. */
export class StepOrderError extends Error {
  override readonly name = 'StepOrderError';
  constructor(
    readonly part: string,
    options?: ErrorOptions,
  ) {
    super(`start step needs ${part}, which no earlier step provided`, options);
  }
}

/** What the steps build, filled in as they run. */
export class StartContext {
  security?: Security;
  telemetry?: NodeTelemetry;
  /** The node's logger for its own events (component `agent`). */
  logger?: Logger;
  /** What the server appends to and reads from. */
  commitLog?: CommitLog;
  /** Who this node is in its cluster (Raft id, cluster id). */
  identity?: NodeIdentity;
  /** The RPC port, shared by gRPC and Raft. */
  portMux?: PortMux;
  /** Raft's peer connections, routed here by the port multiplexer. */
  peerLayer?: TlsPeerStreamLayer | PlainPeerStreamLayer;
  /** Where the port multiplexer sends gRPC connections, once the server exists. */
  grpcSink?: (socket: Duplex, info: ConnectionInfo) => void;
  membership?: Membership;
  replicatedLog?: ReplicatedLog;
  /** Recognises the replicated log's refusal of an append on a follower. */
  notLeader?: NotLeaderClassifier;
  forwarder?: LeaderForwarder;
  /** GetServers and the leader hint. */
  cluster?: ClusterView;
  server?: ApiServer;
  /** host:port actually bound (the real port when 0 was asked for). */
  rpcAddr?: string;
  httpAddr?: string;
  /** How long the server's close lets calls finish: 0 while starting, the grace once up. */
  closeGraceMs = 0;
  /** True once every step ran. */
  started = false;
  /**
   * Settles with the first failure a running part cannot recover from (Raft stopped
   * after a storage error): the node must stop, and a supervisor restarts it.
   */
  readonly failure: Promise<Error>;
  /** The failure reported, if any: the shutdown that follows is a restart, not a leave. */
  failedWith: Error | undefined;
  /** Reports such a failure; only the first counts. */
  readonly fail: (err: Error) => void;

  constructor(
    readonly config: AgentConfig,
    readonly options: AgentOptions,
  ) {
    let settle!: (err: Error) => void;
    this.failure = new Promise<Error>((resolve) => (settle = resolve));
    this.fail = (err) => {
      if (this.failedWith) return;
      this.failedWith = err;
      // Calls in flight cannot complete on a stopped Raft: no point waiting for them.
      this.closeGraceMs = 0;
      settle(err);
    };
  }

  /** A part an earlier step provided. */
  need<K extends keyof StartContext>(part: K): NonNullable<StartContext[K]> {
    const value = this[part];
    if (value === undefined || value === null) throw new StepOrderError(part);
    return value;
  }
}

export interface Step {
  /** For logs and errors: what the step starts. */
  name: string;
  run(ctx: StartContext, teardown: Teardown): Promise<void>;
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Every TLS and ACL file, loaded and checked before anything touches the data. */
export const loadSecurity: Step = {
  name: 'security',
  async run(ctx) {
    const settings = securitySettings(ctx.config);
    const [serverTls, peerTls] = await Promise.all([
      settings.serverTls && loadTlsMaterial(settings.serverTls),
      settings.peerTls && loadTlsMaterial(settings.peerTls),
    ]);
    const authorizer = serverTls ? await Authorizer.open(settings.acl ?? {}) : undefined;
    const tls = new TlsReloader({ server: serverTls, peer: peerTls });
    ctx.security = { authorizer, tls };
  },
};

/** Logger, metrics, tracing; flushed last, after everything else has stopped. */
export const startTelemetry: Step = {
  name: 'telemetry',
  async run(ctx, teardown) {
    const { config, options } = ctx;
    const t = config.telemetry;
    let telemetry: NodeTelemetry;
    try {
      telemetry = NodeTelemetry.create({
        nodeName: config.nodeName,
        logLevel: t.logLevel,
        logFormat: t.logFormat,
        metrics: t.metrics,
        otlpEndpoint: t.otlpEndpoint,
        traceFile: t.traceFile,
        traceSampleRatio: t.traceSampleRatio,
        version: VERSION,
        logDestination: options.logDestination,
      });
    } catch (err) {
      if (err instanceof TraceFileError) {
        throw new ConfigError('trace-file', err.message, { cause: err });
      }
      throw err;
    }
    const logger = telemetry.logger.child({ component: 'agent' });
    ctx.telemetry = telemetry;
    ctx.logger = logger;
    teardown.defer(async () => {
      if (ctx.started) logger.info({}, 'node stopped');
      await telemetry.shutdown();
    });
  },
};

/**
 * The certificates' expiry: a gauge per use (server, peer) read at each scrape, so it
 * follows reloads, and a warning now for a certificate that expires within 30 days.
 */
export const watchTlsExpiry: Step = {
  name: 'TLS expiry',
  async run(ctx) {
    const { tls } = ctx.need('security');
    if (tls.uses().length === 0) return;
    const registry = ctx.need('telemetry').metrics?.registry;
    if (registry) {
      new Gauge({
        name: `${METRIC_PREFIX}tls_certificate_expiry_timestamp_seconds`,
        help: "The notAfter of the node's TLS certificate in force (Unix seconds), by use: server (gRPC and HTTPS) or peer (Raft)",
        labelNames: ['use'],
        registers: [registry],
        collect() {
          for (const use of tls.uses()) {
            const m = tls.material(use);
            if (m) this.set({ use }, Math.floor(m.notAfter.getTime() / 1000));
          }
        },
      });
    }
    const logger = ctx.need('logger');
    for (const use of tls.uses()) warnIfExpiring(logger, use, tls.material(use)!);
  },
};

/** A warning when `material` expires within EXPIRY_WARNING_DAYS (at start and on reload). */
export function warnIfExpiring(
  logger: Pick<Logger, 'warn'>,
  use: TlsUse,
  material: TlsMaterial,
  now: Date = new Date(),
): void {
  if (!expiresSoon(material, now)) return;
  const days = daysLeft(material, now);
  logger.warn(
    {
      use,
      certFile: material.files.certFile,
      serialNumber: material.serialNumber,
      notAfter: material.notAfter.toISOString(),
      daysLeft: days,
    },
    `${use} TLS certificate ${material.files.certFile} (CN ${material.commonName ?? '-'}) expires ` +
      `${material.notAfter.toISOString()}, in ${days} day(s) (less than ${EXPIRY_WARNING_DAYS}): ` +
      'replace its files and send SIGHUP',
  );
}

/** The gRPC and HTTP API over the commit log; closed first, so calls end before the log. */
export const createApiServer: Step = {
  name: 'API server',
  async run(ctx, teardown) {
    const telemetry = ctx.need('telemetry');
    const { authorizer, tls } = ctx.need('security');
    const serverTls = tls.material('server');
    const server = new ApiServer({
      log: ctx.need('commitLog'),
      cluster: ctx.need('cluster'),
      errorStatuses: [...LOG_ERROR_STATUSES, ...CLUSTER_ERROR_STATUSES],
      ...(ctx.notLeader ? { notLeader: ctx.notLeader } : {}),
      ...(ctx.forwarder ? { forwarder: ctx.forwarder } : {}),
      logger: telemetry.logger.child({ component: 'server' }),
      requests: telemetry.requests,
      metrics: telemetry.metrics,
      maxRecordBytes: MAX_RECORD_BYTES,
      limits: ctx.config.limits,
      security: serverTls && authorizer ? { tls: serverTls, authorizer } : undefined,
    });
    teardown.defer(() => server.close(ctx.closeGraceMs));
    if (serverTls) teardown.defer(tls.register('server', (m) => server.stageTls(m)));
    ctx.server = server;
  },
};

/** The HTTP API on bind host:http-port. */
export const listenHttp: Step = {
  name: 'HTTP listener',
  async run(ctx) {
    const host = bindHost(ctx.config);
    const bound = await ctx.need('server').listenHttp(host, ctx.config.httpPort);
    const httpAddr = joinHostPort(host, bound.port);
    ctx.httpAddr = httpAddr;
    const scheme = ctx.need('security').tls.material('server') ? 'https' : 'http';
    ctx.need('logger').info(
      {
        httpAddr,
        metrics: ctx.config.telemetry.metrics ? `${scheme}://${httpAddr}/metrics` : null,
      },
      `HTTP listening on ${scheme}://${httpAddr}`,
    );
  },
};

/** Reloads the ACL when its files change (SIGHUP is the CLI's). */
export const watchAcl: Step = {
  name: 'ACL watch',
  async run(ctx, teardown) {
    const { authorizer } = ctx.need('security');
    if (authorizer?.mode !== 'acl' || ctx.options.watchAcl === false) return;
    const logger = ctx.need('logger');
    teardown.defer(
      watchAclFiles(authorizer, {
        onReload: ({ rules }) => logger.info({ rules }, 'ACL policy reloaded (files changed)'),
        onError: (err) =>
          logger.error({ err }, 'ACL policy reload failed; the previous policy stays in force'),
      }),
    );
  },
};

/** The start-up log lines: tracing, then the one line a person looks for. */
export const announce: Step = {
  name: 'announce',
  async run(ctx) {
    const { config } = ctx;
    const logger = ctx.need('logger');
    const { authorizer, tls } = ctx.need('security');
    const serverTls = tls.material('server');
    const t = config.telemetry;
    if (ctx.need('telemetry').tracing.enabled) {
      logger.info(
        {
          otlpEndpoint: t.otlpEndpoint ?? null,
          traceFile: t.traceFile ?? null,
          traceSampleRatio: t.traceSampleRatio,
        },
        'tracing on',
      );
    }
    logger.info(
      {
        rpcAddr: ctx.need('rpcAddr'),
        httpAddr: ctx.need('httpAddr'),
        dataDir: config.dataDir,
        tls: serverTls !== undefined,
        authorization: authorizer?.mode ?? 'none',
      },
      startupLine({
        nodeName: config.nodeName,
        rpcAddr: ctx.need('rpcAddr'),
        httpAddr: ctx.need('httpAddr'),
        dataDir: config.dataDir,
        tls: serverTls !== undefined,
      }),
    );
  },
};

/** The steps of a node, in order; the teardown undoes them in reverse. */
export const AGENT_STEPS: readonly Step[] = [
  loadSecurity, // before anything else: a bad certificate or policy must not touch the data
  startTelemetry,
  watchTlsExpiry,
  loadNodeIdentity,
  startPortMux,
  startMembership,
  rememberGossipPeers,
  openReplicatedLog,
  startMembershipLoop,
  createApiServer,
  routeGrpc,
  listenHttp,
  watchAcl,
  announce,
];

/** What the start-up line says. */
export interface StartupInfo {
  nodeName: string;
  rpcAddr: string;
  httpAddr: string;
  dataDir: string;
  tls: boolean;
}

/**
 * The one line a person (and a script) looks for. Its form is a contract, parsed by
 * parseStartupLine: `commitlog agent <name>: gRPC on <addr>, HTTP on <scheme>://<addr>,
 * data in <dir>[, mutual TLS]`.
 */
export function startupLine(s: StartupInfo): string {
  const scheme = s.tls ? 'https' : 'http';
  return `commitlog agent ${s.nodeName}: gRPC on ${s.rpcAddr}, HTTP on ${scheme}://${s.httpAddr}, data in ${s.dataDir}${s.tls ? ', mutual TLS' : ''}`;
}

const STARTUP_RE =
  /commitlog agent (\S+): gRPC on (\S+), HTTP on (https?):\/\/(\S+), data in (.*?)(, mutual TLS)?$/m;

/** Reads a start-up line back (from a process's output); undefined when `text` has none. */
export function parseStartupLine(text: string): StartupInfo | undefined {
  const m = STARTUP_RE.exec(text);
  if (!m) return undefined;
  const [, nodeName, rpcAddr, , httpAddr, dataDir, tls] = m;
  if (!nodeName || !rpcAddr || !httpAddr || dataDir === undefined) return undefined;
  return { nodeName, rpcAddr, httpAddr, dataDir, tls: tls !== undefined };
}
