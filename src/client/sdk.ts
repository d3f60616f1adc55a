// The SDK: connect() to a cluster by any of its members and produce, read and consume
// without caring which node leads. Calls go through one grpc-js channel with the
// commitlog: resolver and the commitlog_leader policy; this file adds the retry rules
// (errors.ts) and consume streams that resume where they stopped.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import * as grpc from '@grpc/grpc-js';

import {
  type ConsumeBatchResponse,
  type ConsumeResponse,
  type GetServersResponse,
  type RemoveServerResponse,
  LogClient,
  type LogRecord,
  LogService,
  type ProduceBatchResponse,
  type ProduceResponse,
} from '../api/index.js';
import { ROUTE_HEADER, type Route } from './balancer.js';
import { DEFAULT_SERVER_NAME, type ConsumedRecord } from './client.js';
import { Fifo } from './fifo.js';
import {
  CommitLogError,
  NotLeaderError,
  OffsetOutOfRangeError,
  ProduceOutcomeUnknownError,
  UnavailableError,
} from './errors.js';
import { clusterChannelOptions, clusterTarget, registerCommitlogPlugins } from './plugins.js';
import { Producer, type ProducerOptions } from './producer.js';
import { encodeProduceBatch } from './raw.js';

/** Metadata key asking the node for a linearizable read (it confirms leadership first). */
export const CONSISTENCY_HEADER = 'x-commitlog-consistency';

export type Consistency = 'local' | 'linearizable';

/** TLS for a cluster: PEM contents or files. One name is verified on every node. */
export interface TlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /**
   * The DNS name every node's certificate carries (default DEFAULT_SERVER_NAME,
   * `localhost`, which every `commitlog cert server` certificate has).
   */
  serverName?: string;
}

export interface ConnectOptions {
  /** TLS (mutual when cert and key are given); absent means plaintext. */
  tls?: TlsOptions;
  /** Ready-made credentials instead of `tls` (then set `tls.serverName` if needed). */
  credentials?: grpc.ChannelCredentials;
  /** How long connect() waits for a first member list and connection (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Deadline of one call, including waiting for a leader (default 10 000 ms). */
  callTimeoutMs?: number;
  /** Attempts of a call that may be retried (default 20). */
  maxAttempts?: number;
  /** First delay between attempts; doubles up to 1 s (default 50 ms). */
  retryDelayMs?: number;
  /** Routine member-list refresh (default 10 000 ms). */
  refreshIntervalMs?: number;
  /** Member-list retry while no leader is known or nobody answered (default 100 ms). */
  resolveRetryMs?: number;
  channelOptions?: grpc.ChannelOptions;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides ConnectOptions.callTimeoutMs for this call. */
  timeoutMs?: number;
}

export interface ReadOptions extends CallOptions {
  /** `linearizable` reads go to the leader, which confirms it still leads (default `local`). */
  consistency?: Consistency;
}

export interface ConsumeOptions {
  /** First offset to deliver. */
  from: bigint;
  /** Stops the iteration (it then ends without an error). */
  signal?: AbortSignal;
  /** Records per message asked of the node (0: the node's default). */
  maxRecords?: number;
  consistency?: Consistency;
  /** Exclusive end: the iteration ends after offset `to - 1` (default: follow forever). */
  to?: bigint;
  /**
   * Value bytes received ahead of the loop before the stream is paused (cancelled, and
   * opened again when half of them are taken). Default 4 MiB.
   */
  readAheadBytes?: number;
}

/** ConsumeOptions.readAheadBytes by default. */
export const DEFAULT_READ_AHEAD_BYTES = 4 << 20;

/** A member of the cluster as GetServers reports it. */
export interface ServerEntry {
  /** The node's name. */
  id: string;
  rpcAddr: string;
  isLeader: boolean;
  /** The Raft id (name and a per-data-directory suffix), when the node reports it. */
  raftId?: string;
  suffrage?: 'voter' | 'learner';
  /** The leader's view; absent when the answering node does not lead. */
  matchIndex?: bigint;
  lag?: bigint;
}

async function pem(
  value: string | Buffer | undefined,
  file: string | undefined,
): Promise<Buffer | null> {
  if (value !== undefined) return Buffer.from(value);
  return file === undefined ? null : readFile(file);
}

/** Channel credentials for `tls` (plaintext without it). */
export async function tlsCredentials(
  tls: TlsOptions | undefined,
): Promise<grpc.ChannelCredentials> {
  if (tls === undefined) return grpc.credentials.createInsecure();
  const [ca, cert, key] = await Promise.all([
    pem(tls.ca, tls.caFile),
    pem(tls.cert, tls.certFile),
    pem(tls.key, tls.keyFile),
  ]);
  return grpc.credentials.createSsl(ca, key, cert);
}

/** `files` as TlsOptions when any file is named, else undefined (plaintext): for CLIs. */
export function tlsFromFiles(files: {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  serverName?: string | undefined;
}): TlsOptions | undefined {
  if (!files.caFile && !files.certFile && !files.keyFile) return undefined;
  const tls: TlsOptions = {};
  if (files.caFile) tls.caFile = files.caFile;
  if (files.certFile) tls.certFile = files.certFile;
  if (files.keyFile) tls.keyFile = files.keyFile;
  if (files.serverName) tls.serverName = files.serverName;
  return tls;
}

function newRecord(value: Uint8Array): LogRecord {
  return {
    value: Buffer.isBuffer(value) ? value : Buffer.from(value),
    offset: 0n,
    term: 0n,
    type: 0,
  };
}

/** Codes after which a consume stream is opened again (on whichever node the picker chooses). */
const RESUMABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL]);

/**
 * Connects to a cluster named by `target`: `commitlog://h1:8400,h2:8400`, a list
 * `h1:8400,h2:8400`, or one `host:port`. Resolves once a member list is known and a
 * member is connected.
 */
export async function connect(target: string, options: ConnectOptions = {}): Promise<CommitLog> {
  registerCommitlogPlugins();
  const credentials = options.credentials ?? (await tlsCredentials(options.tls));
  const serverName = options.tls?.serverName ?? DEFAULT_SERVER_NAME;
  const channelOptions: grpc.ChannelOptions = {
    'grpc.ssl_target_name_override': serverName,
    'grpc.default_authority': serverName,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    ...clusterChannelOptions({
      credentials,
      ...(options.refreshIntervalMs === undefined
        ? {}
        : { refreshIntervalMs: options.refreshIntervalMs }),
      retryDelayMs: options.resolveRetryMs ?? 100,
    }),
    ...options.channelOptions,
  };
  const log = new CommitLog(
    new LogClient(clusterTarget(target), credentials, channelOptions),
    options,
  );
  try {
    await log.ready(options.connectTimeoutMs ?? 10_000);
  } catch (err) {
    log.close();
    throw err;
  }
  return log;
}

/** A connection to a cluster. `await using log = await connect(…)` closes it. */
export class CommitLog implements AsyncDisposable {
  private readonly callTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly retryDelayMs: number;
  private readonly producers = new Set<Producer>();
  private closed = false;

  /** Prefer connect(); `client` must be on a `commitlog:` target with the plug-ins registered. */
  constructor(
    private readonly client: LogClient,
    options: ConnectOptions = {},
  ) {
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    this.maxAttempts = options.maxAttempts ?? 20;
    this.retryDelayMs = options.retryDelayMs ?? 50;
  }

  /** Resolves when the channel is connected to a member (rejects after `ms`). */
  ready(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + ms, (err) =>
        err
          ? reject(
              new UnavailableError(
                `no member reachable within ${ms} ms: ${err.message}`,
                grpc.status.UNAVAILABLE,
                { cause: err },
              ),
            )
          : resolve(),
      );
    });
  }

  private callOptions(o: CallOptions | undefined): grpc.CallOptions {
    return { deadline: Date.now() + (o?.timeoutMs ?? this.callTimeoutMs) };
  }

  private metadata(route: Route, consistency?: Consistency): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(ROUTE_HEADER, route);
    if (consistency === 'linearizable') md.set(CONSISTENCY_HEADER, consistency);
    return md;
  }

  private unary<Res>(
    invoke: (
      md: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res?: Res) => void,
    ) => grpc.ClientUnaryCall,
    md: grpc.Metadata,
    o: CallOptions | undefined,
  ): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      o?.signal?.throwIfAborted();
      const call = invoke(md, this.callOptions(o), (err, res) => {
        o?.signal?.removeEventListener('abort', onAbort);
        if (err) reject(CommitLogError.fromStatus(err));
        else if (res === undefined) reject(new CommitLogError('no answer', grpc.status.INTERNAL));
        else resolve(res);
      });
      const onAbort = () => call.cancel();
      o?.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Backoff before attempt `n` (1-based): retryDelayMs doubling, at most 1 s. */
  private async pause(attempt: number, signal: AbortSignal | undefined): Promise<void> {
    const ms = Math.min(this.retryDelayMs * 2 ** (attempt - 1), 1000);
    await sleep(ms, undefined, signal ? { signal } : {});
  }

  /**
   * A produce: retried only on NotLeaderError (raised before any append); failures
   * after which the records may have been appended become ProduceOutcomeUnknownError.
   */
  private produceCall<T>(send: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.leaderCall(send, signal, (err) => new ProduceOutcomeUnknownError(err));
  }

  /**
   * A change at the leader: retried only on NotLeaderError (raised before anything
   * happened); a failure after which it may have happened goes through `uncertain`.
   */
  private async leaderCall<T>(
    send: () => Promise<T>,
    signal: AbortSignal | undefined,
    uncertain: (err: CommitLogError) => Error,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        if (err instanceof NotLeaderError && attempt < this.maxAttempts) {
          // The balancer moved leader calls to the hinted leader already; without a hint
          // it is refreshing the member list, which takes a moment.
          if (err.leaderAddr === undefined) await this.pause(attempt, signal);
          continue;
        }
        throw isUncertain(err) ? uncertain(err) : err;
      }
    }
  }

  /** A read: retried on UnavailableError (and NotLeaderError for linearizable reads). */
  private async readCall<T>(send: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        const retry = err instanceof UnavailableError || err instanceof NotLeaderError;
        if (!retry || attempt >= this.maxAttempts || signal?.aborted) throw err;
        await this.pause(attempt, signal);
      }
    }
  }

  /** Appends one record on the leader; resolves with its offset. */
  async produce(value: Uint8Array, o?: CallOptions): Promise<bigint> {
    const req = { record: newRecord(value) };
    const res = await this.produceCall(
      () =>
        this.unary<ProduceResponse>(
          (md, opts, cb) => this.client.produce(req, md, opts, cb),
          this.metadata('leader'),
          o,
        ),
      o?.signal,
    );
    return res.offset;
  }

  /** Appends records in one call (all or none); resolves with their offsets. */
  async produceBatch(values: readonly Uint8Array[], o?: CallOptions): Promise<bigint[]> {
    const first = await this.produceValues(values, o);
    return values.map((_, i) => first + BigInt(i));
  }

  /** Appends records in one call (all or none); resolves with the first offset. */
  async produceValues(values: readonly Uint8Array[], o?: CallOptions): Promise<bigint> {
    if (values.length === 0) throw new RangeError('produceValues needs at least one value');
    // Encoded directly (raw.ts): the generated encoder costs more than the call.
    return this.produceEncoded(encodeProduceBatch(values), values.length, o);
  }

  private async produceEncoded(request: Buffer, count: number, o?: CallOptions): Promise<bigint> {
    const identity = (b: Buffer) => b;
    const res = await this.produceCall(
      () =>
        this.unary<ProduceBatchResponse>(
          (md, opts, cb) =>
            this.client.makeUnaryRequest(
              LogService.produceBatch.path,
              identity,
              LogService.produceBatch.responseDeserialize,
              request,
              md,
              opts,
              cb,
            ),
          this.metadata('leader'),
          o,
        ),
      o?.signal,
    );
    if (res.count !== count) {
      throw new CommitLogError(
        `sent ${count} records, the node appended ${res.count}`,
        grpc.status.INTERNAL,
      );
    }
    return res.firstOffset;
  }

  /** The record at `offset`; OffsetOutOfRangeError past either end. */
  async read(offset: bigint, o?: ReadOptions): Promise<ConsumedRecord> {
    const req = { offset };
    const route: Route = o?.consistency === 'linearizable' ? 'leader' : 'any';
    const res = await this.readCall(
      () =>
        this.unary<ConsumeResponse>(
          (md, opts, cb) => this.client.consume(req, md, opts, cb),
          this.metadata(route, o?.consistency),
          o,
        ),
      o?.signal,
    );
    if (!res.record)
      throw new CommitLogError('the node answered without a record', grpc.status.INTERNAL);
    return { offset: res.record.offset, value: res.record.value };
  }

  /**
   * The offset after the last record, found by probing with reads from `from` (which
   * must hold a record or be the end): O(log n) reads. For `consume({ from, to })`
   * without following.
   */
  async endOffset(from = 0n, o?: ReadOptions): Promise<bigint> {
    const exists = async (offset: bigint) => {
      try {
        await this.read(offset, o);
        return true;
      } catch (err) {
        if (err instanceof OffsetOutOfRangeError) return false;
        throw err;
      }
    };
    if (!(await exists(from))) return from;
    let lo = from; // exists
    let step = 1n;
    while (await exists(lo + step)) {
      lo += step;
      step *= 2n;
    }
    let hi = lo + step; // does not exist
    while (hi - lo > 1n) {
      const mid = lo + (hi - lo) / 2n;
      if (await exists(mid)) lo = mid;
      else hi = mid;
    }
    return hi;
  }

  /** The members as the leader sees them (with each one's lag); queued until a leader is known. */
  async servers(o?: CallOptions): Promise<ServerEntry[]> {
    const res = await this.readCall(
      () =>
        this.unary<GetServersResponse>(
          (md, opts, cb) => this.client.getServers({}, md, opts, cb),
          this.metadata('leader'),
          o,
        ),
      o?.signal,
    );
    const leaderView = res.servers.some((s) => s.matchIndex > 0n);
    return res.servers.map((s) => ({
      id: s.id,
      rpcAddr: s.rpcAddr,
      isLeader: s.isLeader,
      ...(s.raftId ? { raftId: s.raftId } : {}),
      ...(s.suffrage === 'voter' || s.suffrage === 'learner' ? { suffrage: s.suffrage } : {}),
      ...(leaderView ? { matchIndex: s.matchIndex, lag: s.lag } : {}),
    }));
  }

  /**
   * Removes a member (a Raft id, or a name only one member has) from the cluster's
   * configuration, at the leader; resolves with the Raft id removed.
   */
  async removeServer(id: string, o?: CallOptions): Promise<string> {
    const res = await this.leaderCall(
      () =>
        this.unary<RemoveServerResponse>(
          (md, opts, cb) => this.client.removeServer({ id }, md, opts, cb),
          this.metadata('leader'),
          o,
        ),
      o?.signal,
      (err) =>
        retold(
          err,
          `the removal of ${id} may or may not have taken effect (list the members to see): ${err.message}`,
        ),
    );
    return res.raftId;
  }

  /**
   * Records from `from` on, then new ones as they are committed, until `signal`
   * aborts. When the serving node fails the stream is opened again from the next
   * offset not yet received (on whichever member is reachable): no gap, no duplicate.
   * Memory is bounded by `readAheadBytes` (see docs/client.md).
   */
  async *consume(o: ConsumeOptions): AsyncGenerator<ConsumedRecord> {
    if (o.to !== undefined && o.from >= o.to) return;
    const limit = o.readAheadBytes ?? DEFAULT_READ_AHEAD_BYTES;
    const route: Route = o.consistency === 'linearizable' ? 'leader' : 'any';
    // grpc-js reads a stream's messages as fast as they come, whether or not anyone
    // takes them: the stream is cancelled once `limit` bytes wait here, and opened
    // again (from `fetched`) when the loop has taken half of them.
    const buffer = new Fifo<ConsumedRecord>();
    let bufferedBytes = 0;
    let fetched = o.from; // the next offset to receive
    let failures = 0;
    let call: grpc.ClientReadableStream<ConsumeBatchResponse> | undefined;
    /** undefined while the stream runs; then why it stopped ('paused': by us). */
    let stopped: 'paused' | 'ended' | Error | undefined;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const open = () => {
      stopped = undefined;
      const c = this.client.consumeBatchStream(
        { offset: fetched, maxRecords: o.maxRecords ?? 0, maxBytes: 0 },
        this.metadata(route, o.consistency),
      );
      call = c;
      const stop = (why: 'paused' | 'ended' | Error) => {
        if (call !== c || stopped !== undefined) return;
        stopped = why;
        c.cancel();
        notify();
      };
      c.on('data', (res: ConsumeBatchResponse) => {
        if (call !== c || stopped !== undefined) return;
        for (const r of res.records) {
          if (r.offset < fetched) continue; // received before a resume
          if (r.offset > fetched) {
            const msg = `expected offset ${fetched}, the node sent ${r.offset}`;
            return stop(new CommitLogError(msg, grpc.status.DATA_LOSS));
          }
          fetched = r.offset + 1n;
          buffer.push({ offset: r.offset, value: r.value });
          bufferedBytes += r.value.byteLength;
        }
        if (bufferedBytes >= limit) stop('paused');
        else notify();
      });
      c.on('error', (err: Error) => stop(err));
      // A follow stream ends only when the node shuts down: resume like after an error.
      c.on('end', () => stop('ended'));
    };
    const onAbort = () => {
      call?.cancel();
      notify();
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      open();
      while (!o.signal?.aborted) {
        if (buffer.size > 0) {
          const rec = buffer.shift();
          bufferedBytes -= rec.value.byteLength;
          if (stopped === 'paused' && bufferedBytes <= limit / 2) open();
          failures = 0;
          yield rec;
          if (o.to !== undefined && rec.offset + 1n >= o.to) return;
          continue;
        }
        if (stopped === undefined) {
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        if (o.signal?.aborted) return;
        if (stopped !== 'paused') {
          if (stopped instanceof CommitLogError) throw stopped;
          const typed = stopped === 'ended' ? undefined : toTyped(stopped);
          const resumable =
            typed === undefined ||
            typed instanceof NotLeaderError ||
            (typed instanceof CommitLogError && RESUMABLE.has(typed.code));
          if (!resumable) throw typed;
          failures++;
          if (failures >= this.maxAttempts)
            throw typed ?? new UnavailableError('the stream kept ending', grpc.status.UNAVAILABLE);
          try {
            await this.pause(failures, o.signal);
          } catch {
            return; // aborted while waiting
          }
        }
        open();
      }
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      call?.cancel();
    }
  }

  /** A batching producer on this connection (see ProducerOptions). */
  producer(options: ProducerOptions = {}): Producer {
    const p = new Producer(
      (values) => {
        const request = encodeProduceBatch(values);
        return () => this.produceEncoded(request, values.length);
      },
      options,
      () => this.producers.delete(p),
    );
    this.producers.add(p);
    return p;
  }

  /** Closes the channel now; pending calls fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  /** Flushes producers, then closes. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled([...this.producers].map((p) => p.close()));
    this.close();
  }
}

function toTyped(err: Error): Error {
  const typed = CommitLogError.fromStatus(err);
  return typed instanceof Error ? typed : err;
}

/**
 * True when a failed change at the leader may have happened nonetheless (see the retry
 * policy in errors.ts).
 */
function isUncertain(err: unknown): err is CommitLogError {
  return (
    err instanceof CommitLogError &&
    !(err instanceof NotLeaderError) &&
    !(err instanceof OffsetOutOfRangeError) &&
    UNCERTAIN.has(err.code)
  );
}

/** The same kind of error (class and code) with a message that says more. */
function retold(err: CommitLogError, message: string): CommitLogError {
  const Class = err.constructor as new (
    m: string,
    c: grpc.status,
    o?: ErrorOptions,
  ) => CommitLogError;
  return new Class(message, err.code, { cause: err });
}

/** Codes with which a produce may have been appended nonetheless. */
const UNCERTAIN = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED,
  grpc.status.INTERNAL,
  grpc.status.UNKNOWN,
  grpc.status.ABORTED,
]);
