// Appends as the server makes them: to the local log, and when the log refuses because
// this node is not the leader, to the leader through the forwarder (one hop), or back
// to the client as a NotLeaderError carrying the leader hint. The caller's identity was
// checked by this node's ACL; the leader trusts this node's peer identity, so the check
// happens once, here.
import { NotLeaderError } from './errors.js';
import type { CommitLog, LeaderForwarder, LeaderHint } from './ports.js';

/**
 * Recognises the log's "not the leader" refusal (an error of a folder the server does
 * not import): undefined for any other error; `{ leader }` when it is one, with the
 * leader when known.
 */
export type NotLeaderClassifier = (err: unknown) => { leader?: LeaderHint } | undefined;

export interface AppenderOptions {
  notLeader?: NotLeaderClassifier;
  /** Absent: a follower answers NotLeaderError with the hint instead of forwarding. */
  forwarder?: LeaderForwarder;
}

/** Never aborts: for callers that cannot cancel. */
const NEVER = new AbortController().signal;

export class Appender {
  constructor(
    private readonly log: CommitLog,
    private readonly options: AppenderOptions = {},
  ) {}

  /** The log's "not the leader" refusal as the server's NotLeaderError; undefined otherwise. */
  asNotLeader(err: unknown): NotLeaderError | undefined {
    const refusal = this.options.notLeader?.(err);
    return refusal ? new NotLeaderError(refusal.leader, { cause: err }) : undefined;
  }

  /** Resolves with the first offset of `values`, wherever they were appended. */
  async append(values: readonly Uint8Array[], signal?: AbortSignal): Promise<bigint> {
    try {
      return await this.log.append(values, { signal });
    } catch (err) {
      const refusal = this.options.notLeader?.(err);
      if (!refusal) throw err;
      const { forwarder } = this.options;
      if (forwarder && refusal.leader) {
        return forwarder.append(values, refusal.leader, { signal: signal ?? NEVER });
      }
      throw new NotLeaderError(refusal.leader, { cause: err });
    }
  }
}
