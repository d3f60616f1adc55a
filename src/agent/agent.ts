// One node: runs the start steps in order (steps.ts) and, on shutdown or a failed
// start, unwinds what they built in reverse.
import type { TlsReloadEntry } from '../auth/index.js';
import type { Logger } from '../telemetry/index.js';
import type { AgentConfig } from './config.js';
import {
  AGENT_STEPS,
  type AgentOptions,
  StartContext,
  startupLine,
  type Step,
  warnIfExpiring,
} from './steps.js';
import { Teardown } from './teardown.js';

export type { AgentOptions };

export class Agent {
  private stopping: Promise<void> | undefined;
  readonly config: AgentConfig;
  /** Where gRPC listens (host:port, the actual port when 0 was asked for). */
  readonly rpcAddr: string;
  /** Where the HTTP API listens. */
  readonly httpAddr: string;
  /** The node's logger for its own events (component `agent`). */
  readonly logger: Logger;

  private constructor(
    private readonly ctx: StartContext,
    private readonly teardown: Teardown,
  ) {
    this.config = ctx.config;
    this.rpcAddr = ctx.need('rpcAddr');
    this.httpAddr = ctx.need('httpAddr');
    this.logger = ctx.need('logger');
  }

  /** True when clients must present certificates (gRPC and HTTPS). */
  get tls(): boolean {
    return this.ctx.need('security').tls.material('server') !== undefined;
  }

  /** The start-up line (stable form; see `parseStartupLine`). */
  get startupLine(): string {
    return startupLine({
      nodeName: this.config.nodeName,
      rpcAddr: this.rpcAddr,
      httpAddr: this.httpAddr,
      dataDir: this.config.dataDir,
      tls: this.tls,
    });
  }

  /**
   * Starts a node by running `steps` in order; on failure, undoes the steps that ran
   * (in reverse) and rethrows the failure.
   */
  static async start(
    config: AgentConfig,
    options: AgentOptions = {},
    steps: readonly Step[] = AGENT_STEPS,
  ): Promise<Agent> {
    const ctx = new StartContext(config, options);
    const teardown = new Teardown();
    try {
      for (const step of steps) await step.run(ctx, teardown);
    } catch (err) {
      try {
        await teardown.close();
      } catch (closeErr) {
        // The start failure is what the caller must see; the undo's failure is logged.
        ctx.logger?.error({ err: closeErr }, 'undoing a failed start failed');
      }
      throw err;
    }
    ctx.started = true;
    ctx.closeGraceMs = ctx.failedWith ? 0 : (options.shutdownGraceMs ?? 5000);
    return new Agent(ctx, teardown);
  }

  /**
   * Re-reads the ACL model and policy (SIGHUP). Connections stay up; new calls see the
   * new policy. On failure the previous policy stays in force and this rejects with an
   * error naming the file. Without ACL files there is nothing to reload.
   */
  async reloadAcl(): Promise<{ rules: number }> {
    return this.ctx.need('security').authorizer?.reload() ?? { rules: 0 };
  }

  /**
   * Re-reads the TLS certificate, key and CA files of the server and peer identities
   * (SIGHUP) and switches the gRPC and HTTPS APIs, the Raft peer layer and the forwarder
   * to them, all or none: new connections present the new certificate and verify with
   * the new CA, open ones stay up. Logs one line with each new certificate's notAfter
   * (and a warning when it expires within 30 days). On failure (a file missing or wrong,
   * a key that does not match, an expired certificate, a CN that is not the running
   * one) nothing changes, the error is logged naming the file, and this rejects with it.
   * Without TLS there is nothing to reload (resolves with no entries, logs nothing).
   */
  async reloadTls(): Promise<TlsReloadEntry[]> {
    const { tls } = this.ctx.need('security');
    if (tls.uses().length === 0) return [];
    let entries: TlsReloadEntry[];
    try {
      entries = await tls.reload();
    } catch (err) {
      this.logger.error(
        { err },
        `TLS reload failed; the previous certificates stay in force: ${(err as Error).message}`,
      );
      throw err;
    }
    const parts = entries.map(
      (e) =>
        `${e.use} CN ${e.material.commonName ?? '-'} serial ${e.material.serialNumber} ` +
        `notAfter ${e.material.notAfter.toISOString()}${e.changed ? '' : ' (unchanged)'}`,
    );
    this.logger.info(
      {
        tls: entries.map((e) => ({
          use: e.use,
          changed: e.changed,
          certFile: e.material.files.certFile,
          serialNumber: e.material.serialNumber,
          previousSerialNumber: e.previous.serialNumber,
          notAfter: e.material.notAfter.toISOString(),
        })),
      },
      `TLS certificates reloaded: ${parts.join('; ')}`,
    );
    for (const e of entries) warnIfExpiring(this.logger, e.use, e.material);
    return entries;
  }

  /**
   * Settles (never rejects) with the failure that forces the node to stop, if one
   * happens while it runs: Raft stopped after a storage error. Call `shutdown()` then;
   * the durable state is intact and a restart resumes from it.
   */
  get failure(): Promise<Error> {
    return this.ctx.failure;
  }

  /**
   * Stops accepting, lets in-flight calls finish (bounded), then closes the log and
   * flushes telemetry: the start steps undone in reverse. Idempotent.
   */
  shutdown(): Promise<void> {
    this.stopping ??= this.teardown.close();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
