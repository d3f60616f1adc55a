// One node: loads its TLS material and ACL, builds its telemetry, opens the log, then
// the API server, then its listeners; shuts them down in reverse. Until clustering
// lands, a node serves alone and answers GetServers with itself as leader.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { Authorizer, loadTlsMaterial, watchAclFiles, type TlsMaterial } from '../auth/index.js';
import { Log, parseFsyncPolicy } from '../log/index.js';
import { ApiServer } from '../server/index.js';
import { type Logger, TraceFileError } from '../telemetry/index.js';
import { type AgentConfig, bindHost, ConfigError, securitySettings } from './config.js';
import { NodeTelemetry, type NodeTelemetryOptions } from './telemetry.js';

export interface AgentOptions {
  /** Where log lines go (default stdout). */
  logDestination?: NodeTelemetryOptions['logDestination'];
  /** Reload the ACL when its files change (default true; SIGHUP works either way). */
  watchAcl?: boolean;
  /** How long shutdown lets in-flight calls finish (default 5 s). */
  shutdownGraceMs?: number;
}

const VERSION = '0.1.0';

/** The largest record value; the server refuses larger ones before they reach the log. */
const MAX_RECORD_BYTES = 1024 * 1024;

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** What the node secures itself with; loaded before anything else starts. */
interface Security {
  serverTls?: TlsMaterial;
  /** This node's identity towards peers: checked now, used once clustering lands. */
  peerTls?: TlsMaterial;
  authorizer?: Authorizer;
}

/** Loads and checks every TLS and ACL file; errors name the file. */
async function loadSecurity(config: AgentConfig): Promise<Security> {
  const settings = securitySettings(config);
  const [serverTls, peerTls] = await Promise.all([
    settings.serverTls && loadTlsMaterial(settings.serverTls),
    settings.peerTls && loadTlsMaterial(settings.peerTls),
  ]);
  const authorizer = serverTls ? await Authorizer.open(settings.acl ?? {}) : undefined;
  return { serverTls, peerTls, authorizer };
}

function buildTelemetry(config: AgentConfig, options: AgentOptions): NodeTelemetry {
  try {
    return NodeTelemetry.create({
      nodeName: config.nodeName,
      logLevel: config.logLevel,
      logFormat: config.logFormat,
      metrics: config.metrics,
      otlpEndpoint: config.otlpEndpoint,
      traceFile: config.traceFile,
      traceSampleRatio: config.traceSampleRatio,
      version: VERSION,
      logDestination: options.logDestination,
    });
  } catch (err) {
    if (err instanceof TraceFileError)
      throw new ConfigError('trace-file', err.message, { cause: err });
    throw err;
  }
}

export class Agent {
  private stopping: Promise<void> | undefined;
  private stopWatchingAcl: () => void = () => undefined;

  private constructor(
    readonly config: AgentConfig,
    /** Where gRPC listens (host:port, the actual port when 0 was asked for). */
    readonly rpcAddr: string,
    /** Where the HTTP API listens. */
    readonly httpAddr: string,
    private readonly log: Log,
    private readonly server: ApiServer,
    private readonly telemetry: NodeTelemetry,
    /** The node's logger for its own events (component `agent`). */
    readonly logger: Logger,
    private readonly options: AgentOptions,
    private readonly security: Security,
  ) {}

  /** True when clients must present certificates (gRPC and HTTPS). */
  get tls(): boolean {
    return this.security.serverTls !== undefined;
  }

  /** Starts a node; on failure, closes whatever had started and rethrows. */
  static async start(config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    // Before anything else: a bad certificate or policy must not touch the data.
    const security = await loadSecurity(config);
    const telemetry = buildTelemetry(config, options);
    const logger = telemetry.logger.child({ component: 'agent' });
    const host = bindHost(config);
    const dir = join(config.dataDir, 'log');
    let log: Log;
    try {
      await mkdir(dir, { recursive: true });
      log = await Log.open(dir, {
        fsync: parseFsyncPolicy(config.fsync),
        maxStoreBytes: config.segmentMaxBytes,
        maxRecordBytes: MAX_RECORD_BYTES,
        observer: telemetry.logObserver(),
      });
    } catch (err) {
      await telemetry.shutdown();
      throw err;
    }
    telemetry.metrics?.watchLog(log);
    let server: ApiServer | undefined;
    try {
      logger.info(
        {
          dataDir: config.dataDir,
          fsync: config.fsync,
          segmentMaxBytes: config.segmentMaxBytes,
          lowestOffset: log.lowestOffset.toString(),
          highestOffset: log.highestOffset.toString(),
        },
        `data directory ${config.dataDir}`,
      );
      if (log.recovery.truncated || log.recovery.indexesRebuilt.length > 0) {
        logger.warn({ recovery: log.recovery }, 'log recovered from an unclean shutdown');
      }
      if (config.startJoinAddrs.length > 0) {
        logger.warn(
          { startJoinAddrs: config.startJoinAddrs },
          'clustering is not available yet; serving as a single node',
        );
      }
      let rpcAddr = '';
      const self = { getServers: async () => [{ id: config.nodeName, rpcAddr, isLeader: true }] };
      const { serverTls, authorizer } = security;
      server = new ApiServer({
        log,
        servers: self,
        logger: telemetry.logger.child({ component: 'server' }),
        requests: telemetry.requests,
        metrics: telemetry.metrics,
        maxRecordBytes: MAX_RECORD_BYTES,
        security: serverTls && authorizer ? { tls: serverTls, authorizer } : undefined,
      });
      const rpc = await server.listenGrpc(host, config.rpcPort);
      rpcAddr = joinHostPort(host, rpc.port);
      logger.info({ rpcAddr }, `gRPC listening on ${rpcAddr}`);
      const http = await server.listenHttp(host, config.httpPort);
      const httpAddr = joinHostPort(host, http.port);
      const scheme = serverTls ? 'https' : 'http';
      logger.info(
        { httpAddr, metrics: config.metrics ? `${scheme}://${httpAddr}/metrics` : null },
        `HTTP listening on ${scheme}://${httpAddr}`,
      );
      if (telemetry.tracing.enabled) {
        logger.info(
          {
            otlpEndpoint: config.otlpEndpoint ?? null,
            traceFile: config.traceFile ?? null,
            traceSampleRatio: config.traceSampleRatio,
          },
          'tracing on',
        );
      }
      const agent = new Agent(
        config,
        rpcAddr,
        httpAddr,
        log,
        server,
        telemetry,
        logger,
        options,
        security,
      );
      if (authorizer?.mode === 'acl' && options.watchAcl !== false) {
        agent.stopWatchingAcl = watchAclFiles(authorizer, {
          onReload: ({ rules }) => logger.info({ rules }, 'ACL policy reloaded (files changed)'),
          onError: (err) =>
            logger.error({ err }, 'ACL policy reload failed; the previous policy stays in force'),
        });
      }
      // The one line a person looks for; its wording is relied on by scripts and tests.
      logger.info(
        {
          rpcAddr,
          httpAddr,
          dataDir: config.dataDir,
          tls: serverTls !== undefined,
          authorization: authorizer?.mode ?? 'none',
        },
        `commitlog agent ${config.nodeName}: gRPC on ${rpcAddr}, HTTP on ${scheme}://${httpAddr}, data in ${config.dataDir}${serverTls ? ', mutual TLS' : ''}`,
      );
      return agent;
    } catch (err) {
      await server?.close(0);
      await log.close();
      telemetry.metrics?.watchLog(undefined);
      await telemetry.shutdown();
      throw err;
    }
  }

  /**
   * Re-reads the ACL model and policy (SIGHUP). Connections stay up; new calls see the
   * new policy. On failure the previous policy stays in force and this rejects with an
   * error naming the file. Without ACL files there is nothing to reload.
   */
  async reloadAcl(): Promise<{ rules: number }> {
    return this.security.authorizer?.reload() ?? { rules: 0 };
  }

  /** Stops accepting, lets in-flight calls finish (bounded), then closes the log. Idempotent. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopWatchingAcl();
      try {
        await this.server.close(this.options.shutdownGraceMs ?? 5000);
      } finally {
        try {
          await this.log.close();
        } finally {
          this.telemetry.metrics?.watchLog(undefined);
          this.logger.info({}, 'node stopped');
          await this.telemetry.shutdown();
        }
      }
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
