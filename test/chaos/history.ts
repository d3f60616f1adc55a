// The record of a chaos run that the checker judges: every client call with its
// outcome and real-time interval, and the final log read back from every replica.

/** How a call ended. `unknown`: it may or may not have taken effect (timeout, cut link). */
export type Outcome =
  | { type: 'ok'; offset: bigint }
  | { type: 'failed'; error: string }
  | { type: 'unknown'; error: string };

export type ProduceApi = 'unary' | 'stream' | 'batch';

/** One record handed to a produce call (a batch or stream of k records is k operations). */
export interface ProduceOp {
  kind: 'produce';
  /** The client process (producer) that made the call. */
  process: string;
  api: ProduceApi;
  /** Node the call was sent to. */
  node: string;
  /** Milliseconds on one monotonic clock: when the call started and when its outcome was known. */
  invoke: number;
  complete: number;
  value: Uint8Array;
  outcome: Outcome;
}

/**
 * One record delivered to a consumer, or (outcome not ok) the end of one of its streams.
 * A consumer's ok operations, in order, are the records it saw.
 */
export interface ConsumeOp {
  kind: 'consume';
  process: string;
  node: string;
  /** The offset the stream that delivered (or lost) this was opened at. */
  from: bigint;
  invoke: number;
  complete: number;
  /** Empty unless ok. */
  value: Uint8Array;
  outcome: Outcome;
}

export type Operation = ProduceOp | ConsumeOp;

export interface StoredRecord {
  offset: bigint;
  value: Uint8Array;
}

/** What one node serves at the end of the run, from offset 0. */
export interface Replica {
  node: string;
  records: StoredRecord[];
}

/** When faults ended and when the cluster was seen whole again (leader known, replicas equal). */
export interface Recovery {
  faultsStoppedAt: number;
  /** Undefined: it never recovered before the run gave up. */
  recoveredAt?: number;
  boundMs: number;
}

export interface History {
  operations: Operation[];
  replicas: Replica[];
  recovery?: Recovery;
}
