// The single-node storage engine as the server's CommitLog: a record is committed once
// it is durable (by the fsync policy), every entry has term 0, and there are no stored
// wire bytes (the log stores values, not Records).
import type { Log } from '../log/index.js';
import type { CommitLog, CommittedRecord, ReadBatchOptions } from '../server/index.js';

export class LocalCommitLog implements CommitLog {
  constructor(private readonly log: Log) {}

  /** The signal is not passed on: an append the log has queued cannot be taken back. */
  append(values: readonly Uint8Array[]): Promise<bigint> {
    return values.length === 1
      ? this.log.append(values[0] as Uint8Array)
      : this.log.appendBatch(values);
  }

  /** One node is its own quorum: every read is linearizable. */
  async read(offset: bigint): Promise<CommittedRecord> {
    return { offset, value: await this.log.read(offset), term: 0n };
  }

  get endOffset(): bigint {
    return this.log.committedEnd;
  }

  async *readBatchesFrom(from: bigint, o: ReadBatchOptions = {}): AsyncIterable<CommittedRecord[]> {
    for await (const batch of this.log.readBatchesFrom(from, o)) {
      yield batch.map((r) => ({ offset: r.offset, value: r.value, term: 0n }));
    }
  }
}
