// One node: loads its TLS material and ACL, opens the log, then the API server, then
// its listeners; shuts them down in reverse. Until clustering lands, a node serves
// alone and answers GetServers with itself as leader.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { Authorizer, loadTlsMaterial, watchAclFiles, type TlsMaterial } from '../auth/index.js';
import { Log, parseFsyncPolicy } from '../log/index.js';
import { ApiServer, type ServerLogger, silentLogger } from '../server/index.js';
import { type AgentConfig, bindHost, securitySettings } from './config.js';

export interface AgentOptions {
  logger?: ServerLogger;
  /** Reload the ACL when its files change (default true; SIGHUP works either way). */
  watchAcl?: boolean;
  /** How long shutdown lets in-flight calls finish (default 5 s). */
  shutdownGraceMs?: number;
}

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
    private readonly options: AgentOptions,
    private readonly security: Security,
  ) {}

  /** True when clients must present certificates (gRPC and HTTPS). */
  get tls(): boolean {
    return this.security.serverTls !== undefined;
  }

  /** Starts a node; on failure, closes whatever had started and rethrows. */
  static async start(config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    const logger = options.logger ?? silentLogger;
    const host = bindHost(config);
    // Before the log opens: a bad certificate or policy must not touch the data.
    const security = await loadSecurity(config);
    const dir = join(config.dataDir, 'log');
    await mkdir(dir, { recursive: true });
    const log = await Log.open(dir, {
      fsync: parseFsyncPolicy(config.fsync),
      maxStoreBytes: config.segmentMaxBytes,
      maxRecordBytes: MAX_RECORD_BYTES,
    });
    let server: ApiServer | undefined;
    try {
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
        logger,
        maxRecordBytes: MAX_RECORD_BYTES,
        security: serverTls && authorizer ? { tls: serverTls, authorizer } : undefined,
      });
      const rpc = await server.listenGrpc(host, config.rpcPort);
      rpcAddr = joinHostPort(host, rpc.port);
      const http = await server.listenHttp(host, config.httpPort);
      const agent = new Agent(
        config,
        rpcAddr,
        joinHostPort(host, http.port),
        log,
        server,
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
      logger.info(
        {
          rpcAddr,
          httpAddr: agent.httpAddr,
          dataDir: config.dataDir,
          tls: serverTls !== undefined,
          authorization: authorizer?.mode ?? 'none',
        },
        'node started',
      );
      return agent;
    } catch (err) {
      await server?.close(0);
      await log.close();
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
        await this.log.close();
      }
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
