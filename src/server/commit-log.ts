// What the server needs from the log and from the cluster. The agent passes the
// storage engine (and later the replicated log) here; the server never imports them.

/** One stored record. `value` may be a view into a larger buffer. */
export interface CommitLogRecord {
  offset: bigint;
  value: Buffer;
}

export interface CommitLog {
  /** Resolves with the record's offset once it is durable. */
  append(value: Uint8Array): Promise<bigint>;
  /** Resolves with the first offset; the others follow densely. */
  appendBatch(values: readonly Uint8Array[]): Promise<bigint>;
  /** Rejects with an error named `OffsetOutOfRangeError` past either end. */
  read(offset: bigint): Promise<Buffer>;
  /** Yields `from`, `from + 1`, … then waits for new records; ends when `signal` aborts. */
  readFrom(from: bigint, opts?: { signal?: AbortSignal }): AsyncIterable<CommitLogRecord>;
  /** Like readFrom, a batch of consecutive records at a time. */
  readBatchesFrom(
    from: bigint,
    opts?: { signal?: AbortSignal; maxRecords?: number; maxBytes?: number },
  ): AsyncIterable<CommitLogRecord[]>;
}

/** One node as GetServers reports it. */
export interface ServerEntry {
  id: string;
  rpcAddr: string;
  isLeader: boolean;
}

/** Who is in the cluster (the book's GetServerer). */
export interface ServerLister {
  getServers(): Promise<ServerEntry[]>;
}

/** A structured logger (pino's call shape); the server has no global logger. */
export interface ServerLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Discards everything: the default when no logger is given. */
export const silentLogger: ServerLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
