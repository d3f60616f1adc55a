// One node: opens the log, then the API server, then its listeners; shuts them down
// in reverse. Until clustering lands, a node serves alone and answers GetServers
// with itself as leader.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { Log, parseFsyncPolicy } from '../log/index.js';
import { ApiServer, type ServerLogger, silentLogger } from '../server/index.js';
import { type AgentConfig, bindHost } from './config.js';

export interface AgentOptions {
  logger?: ServerLogger;
  /** How long shutdown lets in-flight calls finish (default 5 s). */
  shutdownGraceMs?: number;
}

/** The largest record value; the server refuses larger ones before they reach the log. */
const MAX_RECORD_BYTES = 1024 * 1024;

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class Agent {
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly config: AgentConfig,
    /** Where gRPC listens (host:port, the actual port when 0 was asked for). */
    readonly rpcAddr: string,
    /** Where the HTTP API listens. */
    readonly httpAddr: string,
    private readonly log: Log,
    private readonly server: ApiServer,
    private readonly options: AgentOptions,
  ) {}

  /** Starts a node; on failure, closes whatever had started and rethrows. */
  static async start(config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    const logger = options.logger ?? silentLogger;
    const host = bindHost(config);
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
      server = new ApiServer({ log, servers: self, logger, maxRecordBytes: MAX_RECORD_BYTES });
      const rpc = await server.listenGrpc(host, config.rpcPort);
      rpcAddr = joinHostPort(host, rpc.port);
      const http = await server.listenHttp(host, config.httpPort);
      const agent = new Agent(config, rpcAddr, joinHostPort(host, http.port), log, server, options);
      logger.info({ rpcAddr, httpAddr: agent.httpAddr, dataDir: config.dataDir }, 'node started');
      return agent;
    } catch (err) {
      await server?.close(0);
      await log.close();
      throw err;
    }
  }

  /** Stops accepting, lets in-flight calls finish (bounded), then closes the log. Idempotent. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
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
