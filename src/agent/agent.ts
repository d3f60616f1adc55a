// One node: runs the start steps in order (steps.ts) and, on shutdown or a failed
// start, unwinds what they built in reverse.
import type { Logger } from '../telemetry/index.js';
import type { AgentConfig } from './config.js';
import { AGENT_STEPS, type AgentOptions, StartContext, startupLine, type Step } from './steps.js';
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
    return this.ctx.need('security').serverTls !== undefined;
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
