// The handlers of log.v1.Log. Streams honour HTTP/2 flow control: when `write()`
// reports a full buffer the handler waits for 'drain' before it reads more records.
import { once } from 'node:events';

import type {
  sendUnaryData,
  ServerDuplexStream,
  ServerUnaryCall,
  ServerWritableStream,
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
} from '../api/index.js';
import type { CommitLog, CommitLogRecord, ServerLister, ServerLogger } from './commit-log.js';
import {
  InvalidRequestError,
  isExpectedError,
  ShuttingDownError,
  toGrpcStatus,
  ValueTooLargeError,
} from './errors.js';

export interface LogServiceOptions {
  log: CommitLog;
  servers: ServerLister;
  logger: ServerLogger;
  /** Values larger than this are refused before they reach the log. */
  maxRecordBytes: number;
  /** ProduceStream: appends started but not yet acknowledged before reading pauses. */
  maxInFlight: number;
  /** ConsumeBatchStream defaults and caps per message. */
  maxBatchRecords: number;
  maxBatchBytes: number;
}

type Writable<T> = ServerWritableStream<unknown, T> | ServerDuplexStream<unknown, T>;

/** Keeps the live streams, so that shutdown can end them instead of waiting forever. */
export class StreamRegistry {
  private readonly live = new Set<AbortController>();
  private closing = false;

  open(): AbortController {
    if (this.closing) throw new ShuttingDownError();
    const controller = new AbortController();
    this.live.add(controller);
    return controller;
  }

  done(controller: AbortController): void {
    this.live.delete(controller);
  }

  /** Aborts every live stream with ShuttingDownError; later streams are refused. */
  closeAll(): void {
    this.closing = true;
    for (const c of this.live) c.abort(new ShuttingDownError());
    this.live.clear();
  }
}

function toRecordMessage(r: CommitLogRecord) {
  return { value: r.value, offset: r.offset, term: 0n, type: 0 };
}

/** Waits until `call` can take more writes; rejects if `signal` aborts first. */
async function drained(call: Writable<unknown>, signal: AbortSignal): Promise<void> {
  await once(call, 'drain', { signal });
}

/**
 * A live read ended: by abort (cancel or shutdown, whose reason is thrown) or because
 * the log closed, which only happens when the node stops.
 */
function endOfLog(signal: AbortSignal): never {
  signal.throwIfAborted();
  throw new ShuttingDownError();
}

/** Ends a stream with the status for `err`, unless the client already went away. */
function failStream(call: Writable<unknown>, err: unknown): void {
  if (call.cancelled || call.writableEnded) return;
  call.emit('error', toGrpcStatus(err));
}

export function createLogService(opts: LogServiceOptions, streams: StreamRegistry): LogServer {
  const { log, logger } = opts;

  function report(method: string, err: unknown): void {
    if (!isExpectedError(err)) logger.error({ err, method }, 'request failed');
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
    handle: (req: Req) => Promise<Res>,
  ): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
    return (call, callback) => {
      handle(call.request).then(
        (res) => callback(null, res),
        (err: unknown) => {
          report(method, err);
          callback(toGrpcStatus(err));
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
      controller = streams.open();
    } catch (err) {
      failStream(call, err);
      return;
    }
    const onCancel = () => controller.abort();
    call.on('cancelled', onCancel);
    body(controller.signal).then(
      () => {
        streams.done(controller);
        if (!call.cancelled) call.end();
      },
      (err: unknown) => {
        streams.done(controller);
        const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
        if (call.cancelled) return;
        report(method, reason);
        failStream(call, reason);
      },
    );
  }

  return {
    produce: unary<ProduceRequest, ProduceResponse>('Produce', async (req) => {
      const value = checkValue(req.record?.value, 'record');
      return { offset: await log.append(value) };
    }),

    consume: unary<ConsumeRequest, ConsumeResponse>('Consume', async (req) => {
      const value = await log.read(req.offset);
      return { record: toRecordMessage({ offset: req.offset, value }) };
    }),

    produceBatch: unary<ProduceBatchRequest, ProduceBatchResponse>('ProduceBatch', async (req) => {
      if (req.records.length === 0) {
        throw new InvalidRequestError('records must hold at least one record', 'records');
      }
      const values = req.records.map((r, i) => checkValue(r.value, `records[${i}]`));
      const firstOffset = await log.appendBatch(values);
      return { firstOffset, count: values.length };
    }),

    getServers: unary<GetServersRequest, GetServersResponse>('GetServers', async () => {
      return { servers: await opts.servers.getServers() };
    }),

    consumeStream(call: ServerWritableStream<ConsumeRequest, ConsumeResponse>) {
      serverStream('ConsumeStream', call, async (signal) => {
        for await (const r of log.readFrom(call.request.offset, { signal })) {
          if (!call.write({ record: toRecordMessage(r) })) await drained(call, signal);
        }
        endOfLog(signal);
      });
    },

    consumeBatchStream(call: ServerWritableStream<ConsumeBatchRequest, ConsumeBatchResponse>) {
      const req = call.request;
      const maxRecords = Math.min(req.maxRecords || opts.maxBatchRecords, opts.maxBatchRecords);
      const maxBytes = Math.min(req.maxBytes || opts.maxBatchBytes, opts.maxBatchBytes);
      serverStream('ConsumeBatchStream', call, async (signal) => {
        const batches = log.readBatchesFrom(req.offset, { signal, maxRecords, maxBytes });
        for await (const batch of batches) {
          if (!call.write({ records: batch.map(toRecordMessage) })) await drained(call, signal);
        }
        endOfLog(signal);
      });
    },

    produceStream(call: ServerDuplexStream<ProduceRequest, ProduceResponse>) {
      let shutdown: AbortController;
      try {
        shutdown = streams.open();
      } catch (err) {
        failStream(call, err);
        return;
      }
      const cancel = new AbortController();
      // Appends start as requests arrive (the log groups them into one write and one
      // fsync); `pending` holds their outcomes in request order for the acks.
      type Outcome = { offset: bigint } | { error: unknown };
      const pending: Promise<Outcome>[] = [];
      let inputEnded = false;
      let wake: (() => void) | undefined;
      const poke = () => {
        wake?.();
        wake = undefined;
      };
      const stopReading = () => {
        call.pause();
        inputEnded = true;
        poke();
      };
      call.on('cancelled', () => {
        cancel.abort();
        poke();
      });
      // At shutdown, read no more requests but acknowledge the appends already started.
      shutdown.signal.addEventListener('abort', stopReading, { once: true });

      call.on('data', (req: ProduceRequest) => {
        if (inputEnded) return;
        let outcome: Promise<Outcome>;
        try {
          const value = checkValue(req.record?.value, 'record');
          outcome = log.append(value).then(
            (offset) => ({ offset }),
            (error: unknown) => ({ error }),
          );
        } catch (error) {
          // Refuse in order: read nothing after an invalid request.
          outcome = Promise.resolve({ error });
          stopReading();
        }
        pending.push(outcome);
        if (pending.length >= opts.maxInFlight) call.pause();
        poke();
      });
      call.on('end', () => {
        inputEnded = true;
        poke();
      });

      const acknowledge = async () => {
        for (;;) {
          cancel.signal.throwIfAborted();
          // Peek, not shift: the append being awaited still counts against maxInFlight.
          const next = pending[0];
          if (next === undefined) {
            if (inputEnded) break;
            await new Promise<void>((resolve) => (wake = resolve));
            continue;
          }
          const outcome = await next;
          void pending.shift(); // settled: it is `next`, awaited above
          cancel.signal.throwIfAborted();
          if ('error' in outcome) throw outcome.error;
          if (!call.write({ offset: outcome.offset })) await drained(call, cancel.signal);
          if (call.isPaused() && !inputEnded && pending.length < opts.maxInFlight / 2) {
            call.resume();
          }
        }
        if (shutdown.signal.aborted) throw shutdown.signal.reason;
      };
      acknowledge().then(
        () => {
          streams.done(shutdown);
          call.end();
        },
        (err: unknown) => {
          streams.done(shutdown);
          if (call.cancelled) return;
          report('ProduceStream', err);
          failStream(call, err);
        },
      );
    },
  };
}
