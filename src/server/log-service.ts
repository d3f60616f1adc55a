// The handlers of log.v1.Log. Streams honour HTTP/2 flow control: when `write()`
// reports a full buffer the handler waits for 'drain' before it reads more records.
import { once } from 'node:events';

import {
  type Metadata,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  status,
} from '@grpc/grpc-js';

import type {
  ConsumeBatchRequest,
  ConsumeBatchResponse,
  ConsumeRequest,
  ConsumeResponse,
  GetServersRequest,
  GetServersResponse,
  LogServer,
  ProduceBatchRequest,
  ProduceBatchResponse,
  ProduceRequest,
  ProduceResponse,
  RemoveServerRequest,
  RemoveServerResponse,
} from '../api/index.js';
import type { Metrics } from '../telemetry/index.js';
import type { WireRecord } from './codec.js';
import {
  DescriptorsExhaustedError,
  InvalidRequestError,
  LimitExceededError,
  ShuttingDownError,
  ValueTooLargeError,
  type ErrorTable,
} from './errors.js';
import type { Appender } from './forwarding.js';
import { isDescriptorExhaustion } from './limits.js';
import type { ClusterView, CommitLog, CommittedRecord, ServerLogger } from './ports.js';
import { ProduceStreamSession } from './produce-stream.js';
import { grpcScope, traceAppend } from './telemetry.js';

export interface LogServiceOptions {
  log: CommitLog;
  /** Appends through here: to the log, or to the leader when this node is not it. */
  appender: Appender;
  cluster: ClusterView;
  errors: ErrorTable;
  logger: ServerLogger;
  /** Records and bytes produced and consumed, open consume streams. */
  metrics?: Metrics;
  /** Values larger than this are refused before they reach the log. */
  maxRecordBytes: number;
  /** ProduceStream: appends started but not yet acknowledged before reading pauses. */
  maxInFlight: number;
  /** ConsumeBatchStream defaults and caps per message. */
  maxBatchRecords: number;
  maxBatchBytes: number;
  /**
   * Bytes a consume stream may have written but not yet handed to HTTP/2 (what waits
   * beyond the flow-control window); past it the stream stops reading the log. At least
   * one message always goes.
   */
  maxStreamBufferBytes: number;
  /** Counts a refusal by a limit (its setting) or for want of file descriptors. */
  refused?: (limit: string) => void;
}

type Writable<T> = ServerWritableStream<unknown, T> | ServerDuplexStream<unknown, T>;

/** How many long-lived streams one connection and the whole node may hold. */
export interface StreamCaps {
  perConnection: number;
  perNode: number;
}

/**
 * Keeps the live streams, so that shutdown can end them instead of waiting forever, and
 * caps them per connection (keyed by the peer address and port) and per node.
 */
export class StreamRegistry {
  private readonly live = new Map<AbortController, string>();
  private readonly perConnection = new Map<string, number>();
  private closing = false;

  constructor(private readonly caps: StreamCaps = { perConnection: Infinity, perNode: Infinity }) {}

  /** Registers a stream of connection `peer`; LimitExceededError past a cap. */
  open(peer = ''): AbortController {
    if (this.closing) throw new ShuttingDownError();
    const onConnection = this.perConnection.get(peer) ?? 0;
    if (onConnection >= this.caps.perConnection) {
      throw new LimitExceededError(
        'streams on this connection',
        this.caps.perConnection,
        'max-streams-per-connection',
      );
    }
    if (this.live.size >= this.caps.perNode) {
      throw new LimitExceededError('streams on this node', this.caps.perNode, 'max-streams');
    }
    const controller = new AbortController();
    this.live.set(controller, peer);
    this.perConnection.set(peer, onConnection + 1);
    return controller;
  }

  done(controller: AbortController): void {
    const peer = this.live.get(controller);
    if (peer === undefined) return;
    this.live.delete(controller);
    const left = (this.perConnection.get(peer) ?? 1) - 1;
    if (left === 0) this.perConnection.delete(peer);
    else this.perConnection.set(peer, left);
  }

  /** Streams open now. */
  get size(): number {
    return this.live.size;
  }

  /** Aborts every live stream with ShuttingDownError; later streams are refused. */
  closeAll(): void {
    this.closing = true;
    for (const c of this.live.keys()) c.abort(new ShuttingDownError());
    this.live.clear();
    this.perConnection.clear();
  }
}

/** The message for a record; the codec sends `wire` (stored bytes) when the log has them. */
function toRecordMessage(r: CommittedRecord): WireRecord {
  return { value: r.value, offset: r.offset, term: r.term, type: 0, wire: r.wire };
}

/**
 * Per-record streams read the log in small batches, so that a consumer that stops
 * reading stops the server reading after a few records, not a megabyte.
 */
const STREAM_BATCH = { maxRecords: 64, maxBytes: 64 * 1024 };

/** Every committed record from `from` on, waiting for new ones. */
export async function* recordsFrom(
  log: CommitLog,
  from: bigint,
  signal: AbortSignal,
): AsyncGenerator<CommittedRecord, void, undefined> {
  for await (const batch of log.readBatchesFrom(from, { signal, ...STREAM_BATCH })) yield* batch;
}

/** Waits until `call` can take more writes; rejects if `signal` aborts first. */
async function drained(call: Writable<unknown>, signal: AbortSignal): Promise<void> {
  await once(call, 'drain', { signal });
}

/**
 * Writes messages to a stream keeping count of the bytes not yet handed to HTTP/2 (a
 * write's callback runs once the frame is written, which waits for the peer's window).
 * `send` returns once the stream may take more: the writable buffer is not full and
 * the bytes waiting are under `maxBytes`. Counting bytes, not messages, is what bounds
 * memory: 16 waiting messages of 1 MiB each were 16 MiB per stalled stream.
 */
export class BoundedSender<T> {
  private waiting = 0;
  private wake: (() => void) | undefined;

  constructor(
    private readonly call: Writable<T>,
    private readonly maxBytes: number,
  ) {}

  /** Bytes written but not yet sent. */
  get buffered(): number {
    return this.waiting;
  }

  async send(message: T, bytes: number, signal: AbortSignal): Promise<void> {
    this.waiting += bytes;
    const more = this.call.write(message, () => {
      this.waiting -= bytes;
      if (this.waiting <= this.maxBytes) this.wake?.();
    });
    if (!more) await drained(this.call, signal);
    while (this.waiting > this.maxBytes) {
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason as Error);
        signal.addEventListener('abort', onAbort, { once: true });
        this.wake = () => {
          signal.removeEventListener('abort', onAbort);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }
}

/** Bytes of a record on the wire, near enough for buffer accounting. */
function recordBytes(r: CommittedRecord): number {
  return (r.wire?.byteLength ?? r.value.byteLength) + 32;
}

/**
 * A live read ended: by abort (cancel or shutdown, whose reason is thrown) or because
 * the log closed, which only happens when the node stops.
 */
function throwStreamEnd(signal: AbortSignal): never {
  signal.throwIfAborted();
  throw new ShuttingDownError();
}

/**
 * The failure an abort causes: the signal's reason, or (as a cause) the forwarded call
 * it cancelled.
 */
function isAbort(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (e.name === 'AbortError' || (e as { code?: unknown }).code === status.CANCELLED) return true;
  }
  return false;
}

/** Aborts when the client cancels the call. */
function cancelSignal(call: {
  on(event: 'cancelled', listener: () => void): unknown;
}): AbortSignal {
  const controller = new AbortController();
  call.on('cancelled', () => controller.abort());
  return controller.signal;
}

/** The request header that asks for a linearizable read. */
export const CONSISTENCY_HEADER = 'x-commitlog-consistency';

export function createLogService(opts: LogServiceOptions, streams: StreamRegistry): LogServer {
  const { log, appender, errors, logger, metrics } = opts;

  /** Ends a stream with the status for `err`, unless the client already went away. */
  function failStream(call: Writable<unknown>, err: unknown): void {
    if (call.cancelled || call.writableEnded) return;
    call.emit('error', errors.toGrpcStatus(err));
  }

  function traced(
    metadata: Metadata,
    values: readonly Uint8Array[],
    bytes: number,
    signal?: AbortSignal,
  ): Promise<bigint> {
    return traceAppend(grpcScope(metadata), values.length, bytes, () =>
      appender.append(values, signal),
    );
  }

  function reportFailure(method: string, err: unknown): void {
    if (err instanceof LimitExceededError) opts.refused?.(err.setting);
    if (isDescriptorExhaustion(err)) {
      opts.refused?.('file-descriptors');
      logger.error({ err, method }, new DescriptorsExhaustedError().message);
    } else if (!errors.isExpected(err)) logger.error({ err, method }, 'request failed');
  }

  function checkValue(value: Uint8Array | undefined, field: string): Uint8Array {
    if (value === undefined) throw new InvalidRequestError(`${field} is required`, field);
    if (value.byteLength > opts.maxRecordBytes) {
      throw new ValueTooLargeError(`${field}.value`, value.byteLength, opts.maxRecordBytes);
    }
    return value;
  }

  function unary<Req, Res>(
    method: string,
    handle: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  ): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
    return (call, callback) => {
      handle(call.request, call).then(
        (res) => callback(null, res),
        (err: unknown) => {
          // A client that went away (cancel, deadline) aborted the work: the request
          // line already says so; it is not a failure of the node.
          if (call.cancelled && isAbort(err)) {
            logger.debug({ err, method }, 'request abandoned by the client');
            return;
          }
          reportFailure(method, err);
          callback(errors.toGrpcStatus(err));
        },
      );
    };
  }

  /** Runs a server stream under the registry, so shutdown and cancel both end it. */
  function serverStream<T>(
    method: string,
    call: ServerWritableStream<unknown, T>,
    body: (signal: AbortSignal) => Promise<void>,
  ): void {
    let controller: AbortController;
    try {
      controller = streams.open(call.getPeer());
    } catch (err) {
      reportFailure(method, err);
      failStream(call, err);
      return;
    }
    const onCancel = () => controller.abort();
    call.on('cancelled', onCancel);
    metrics?.consumeStreamOpened();
    body(controller.signal).then(
      () => {
        streams.done(controller);
        metrics?.consumeStreamClosed();
        if (!call.cancelled) call.end();
      },
      (err: unknown) => {
        streams.done(controller);
        metrics?.consumeStreamClosed();
        const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
        if (call.cancelled) return;
        reportFailure(method, reason);
        failStream(call, reason);
      },
    );
  }

  return {
    produce: unary<ProduceRequest, ProduceResponse>('Produce', async (req, call) => {
      const value = checkValue(req.record?.value, 'record');
      const signal = cancelSignal(call);
      const offset = await traced(call.metadata, [value], value.byteLength, signal);
      metrics?.produced(1, value.byteLength);
      return { offset };
    }),

    consume: unary<ConsumeRequest, ConsumeResponse>('Consume', async (req, call) => {
      // A client asks for a read that reflects every acknowledged write with this
      // header (the SDK's `consistency: 'linearizable'`); the leader confirms with a
      // quorum first, a follower answers NOT_LEADER.
      const linearizable = call.metadata.get(CONSISTENCY_HEADER)[0] === 'linearizable';
      let record;
      try {
        record = await log.read(req.offset, linearizable ? { consistency: 'linearizable' } : {});
      } catch (err) {
        throw appender.asNotLeader(err) ?? err;
      }
      metrics?.consumed(1, record.value.byteLength);
      return { record: toRecordMessage(record) };
    }),

    produceBatch: unary<ProduceBatchRequest, ProduceBatchResponse>(
      'ProduceBatch',
      async (req, call) => {
        if (req.records.length === 0) {
          throw new InvalidRequestError('records must hold at least one record', 'records');
        }
        const values = req.records.map((r, i) => checkValue(r.value, `records[${i}]`));
        const bytes = values.reduce((sum, v) => sum + v.byteLength, 0);
        const firstOffset = await traced(call.metadata, values, bytes, cancelSignal(call));
        metrics?.produced(values.length, bytes);
        return { firstOffset, count: values.length };
      },
    ),

    getServers: unary<GetServersRequest, GetServersResponse>('GetServers', async () => {
      const servers = await opts.cluster.servers();
      return {
        servers: servers.map((s) => ({
          id: s.id,
          rpcAddr: s.rpcAddr,
          isLeader: s.isLeader,
          raftId: s.raftId ?? '',
          suffrage: s.suffrage ?? '',
          matchIndex: BigInt(s.matchIndex ?? 0),
          lag: BigInt(s.lag ?? 0),
        })),
      };
    }),

    removeServer: unary<RemoveServerRequest, RemoveServerResponse>('RemoveServer', async (req) => {
      const remove = opts.cluster.removeServer?.bind(opts.cluster);
      if (!remove) throw new InvalidRequestError('this node has no cluster to remove from', 'id');
      if (req.id === '') throw new InvalidRequestError('id must name a member', 'id');
      try {
        return { raftId: await remove(req.id) };
      } catch (err) {
        throw appender.asNotLeader(err) ?? err;
      }
    }),

    consumeStream(call: ServerWritableStream<ConsumeRequest, ConsumeResponse>) {
      const sender = new BoundedSender(call, opts.maxStreamBufferBytes);
      serverStream('ConsumeStream', call, async (signal) => {
        for await (const r of recordsFrom(log, call.request.offset, signal)) {
          metrics?.consumed(1, r.value.byteLength);
          await sender.send({ record: toRecordMessage(r) }, recordBytes(r), signal);
        }
        throwStreamEnd(signal);
      });
    },

    consumeBatchStream(call: ServerWritableStream<ConsumeBatchRequest, ConsumeBatchResponse>) {
      const req = call.request;
      const maxRecords = Math.min(req.maxRecords || opts.maxBatchRecords, opts.maxBatchRecords);
      const maxBytes = Math.min(req.maxBytes || opts.maxBatchBytes, opts.maxBatchBytes);
      const sender = new BoundedSender(call, opts.maxStreamBufferBytes);
      serverStream('ConsumeBatchStream', call, async (signal) => {
        const batches = log.readBatchesFrom(req.offset, { signal, maxRecords, maxBytes });
        for await (const batch of batches) {
          metrics?.consumed(
            batch.length,
            batch.reduce((sum, r) => sum + r.value.byteLength, 0),
          );
          const bytes = batch.reduce((sum, r) => sum + recordBytes(r), 0);
          await sender.send({ records: batch.map(toRecordMessage) }, bytes, signal);
        }
        throwStreamEnd(signal);
      });
    },

    produceStream(call: ServerDuplexStream<ProduceRequest, ProduceResponse>) {
      let shutdown: AbortController;
      try {
        shutdown = streams.open(call.getPeer());
      } catch (err) {
        reportFailure('ProduceStream', err);
        failStream(call, err);
        return;
      }
      const session = new ProduceStreamSession(
        {
          write: (offset) => call.write({ offset }),
          drained: (signal) => drained(call, signal),
          pause: () => call.pause(),
          resume: () => call.resume(),
          isPaused: () => call.isPaused(),
        },
        {
          append: (value) => traced(call.metadata, [value], value.byteLength),
          maxInFlight: opts.maxInFlight,
          acknowledged: (bytes) => metrics?.produced(1, bytes),
        },
      );
      call.on('cancelled', () => session.onCancel());
      // At shutdown, read no more requests but acknowledge the appends already started.
      shutdown.signal.addEventListener('abort', () => session.stop(shutdown.signal.reason), {
        once: true,
      });
      call.on('data', (req: ProduceRequest) => {
        let value: Uint8Array;
        try {
          value = checkValue(req.record?.value, 'record');
        } catch (err) {
          session.onInvalid(err);
          return;
        }
        session.onData(value);
      });
      call.on('end', () => session.onEnd());
      session.acknowledge().then(
        () => {
          streams.done(shutdown);
          call.end();
        },
        (err: unknown) => {
          streams.done(shutdown);
          if (call.cancelled) return;
          reportFailure('ProduceStream', err);
          failStream(call, err);
        },
      );
    },
  };
}
