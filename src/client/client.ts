// A small typed client for log.v1.Log: what the CLI and applications call. Offsets
// are bigint; failures are CommitLogError (OffsetOutOfRangeError past the end).
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';

import * as grpc from '@grpc/grpc-js';

import {
  type ConsumeResponse,
  type GetServersResponse,
  LogClient as GeneratedLogClient,
  type LogRecord,
  type ProduceBatchResponse,
  type ProduceResponse,
  type ServerInfo,
} from '../api/index.js';
import { CommitLogError } from './errors.js';
import {
  clusterChannelOptions,
  clusterTarget,
  isClusterTarget,
  registerCommitlogPlugins,
  routeInterceptor,
} from './plugins.js';

/** A record as read back: its offset and value. */
export interface ConsumedRecord {
  offset: bigint;
  value: Buffer;
}

/** Turns a grpc-js error into a CommitLogError (see CommitLogError.fromStatus). */
export function toClientError(err: unknown): unknown {
  return CommitLogError.fromStatus(err);
}

/** TLS files for a connection; none given means plaintext. */
export interface TlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/**
 * The name a client verifies every node's certificate against when it dials an IP
 * address or several nodes: every server certificate `commitlog cert` makes carries
 * it. One name for the whole cluster lets one credentials object verify every node.
 */
export const DEFAULT_SERVER_NAME = 'localhost';

function hostOf(address: string): string {
  const m = /^\[(.*)\](?::\d+)?$/.exec(address) ?? /^([^:]*)(?::\d+)?$/.exec(address);
  return m?.[1] ?? address;
}

/**
 * The TLS server name for `target`: `serverName` when given; for one DNS host, that
 * host (the usual rule); otherwise (an IP address, a list, commitlog://…) the shared
 * DEFAULT_SERVER_NAME.
 */
export function serverNameFor(target: string, serverName?: string): string | undefined {
  if (serverName !== undefined) return serverName;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) && !/^[^:/]+:\d+$/.test(target)) {
    return DEFAULT_SERVER_NAME;
  }
  if (target.includes(',')) return DEFAULT_SERVER_NAME;
  const host = hostOf(target);
  return isIP(host) !== 0 ? DEFAULT_SERVER_NAME : undefined;
}

/**
 * Channel options that make TLS verify `serverName` whatever address a connection
 * goes to (it is also sent as SNI and :authority). Harmless on plaintext channels.
 */
export function serverNameOptions(serverName: string | undefined): grpc.ChannelOptions {
  if (serverName === undefined) return {};
  return { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName };
}

/**
 * Channel credentials from PEM files: TLS when any is given (mutual with cert and key).
 * They verify the chain only against `caFile`; which name the certificate must carry
 * is a channel option (serverNameOptions), so one credentials object serves every node.
 * `_address` is accepted for older callers and not used.
 */
export async function channelCredentials(
  files: TlsFiles,
  _address?: string,
): Promise<grpc.ChannelCredentials> {
  if (!files.caFile && !files.certFile && !files.keyFile) return grpc.credentials.createInsecure();
  const load = (file?: string) => (file ? readFile(file) : Promise.resolve(null));
  const [ca, key, cert] = await Promise.all([
    load(files.caFile),
    load(files.keyFile),
    load(files.certFile),
  ]);
  return grpc.credentials.createSsl(ca, key, cert);
}

export interface ClientOptions {
  /** Default: plaintext. `channelCredentials()` makes TLS ones from PEM files. */
  credentials?: grpc.ChannelCredentials;
  /** The name the node's certificate must carry; default: see serverNameFor. */
  serverName?: string;
  channelOptions?: grpc.ChannelOptions;
}

function settle<T>(resolve: (v: T) => void, reject: (e: unknown) => void) {
  return (err: grpc.ServiceError | null, res: T) =>
    err ? reject(toClientError(err)) : resolve(res);
}

function toConsumed(r: LogRecord | undefined): ConsumedRecord {
  if (r === undefined) {
    throw new CommitLogError('the server answered without a record', grpc.status.INTERNAL);
  }
  return { offset: r.offset, value: r.value };
}

function newRecord(value: Uint8Array): LogRecord {
  return { value: Buffer.from(value), offset: 0n, term: 0n, type: 0 };
}

export class CommitLogClient {
  private readonly raw: GeneratedLogClient;

  /** `address` is host:port of any node's RPC port. */
  /**
   * `address` is host:port of any node's RPC port, or several members (`a:8400,b:8400`
   * or `commitlog://a:8400,b:8400`): then calls go through the cluster plug-ins,
   * produces to the leader and the rest to any member (without the SDK's retries; see
   * connect()).
   */
  constructor(address: string, opts: ClientOptions = {}) {
    const credentials = opts.credentials ?? grpc.credentials.createInsecure();
    const cluster = isClusterTarget(address);
    if (cluster) registerCommitlogPlugins();
    this.raw = new GeneratedLogClient(cluster ? clusterTarget(address) : address, credentials, {
      ...serverNameOptions(serverNameFor(address, opts.serverName)),
      ...(cluster
        ? { ...clusterChannelOptions({ credentials }), interceptors: [routeInterceptor] }
        : {}),
      ...opts.channelOptions,
    });
  }

  /** Appends one record; resolves with its offset. */
  async produce(value: Uint8Array): Promise<bigint> {
    const res = await new Promise<ProduceResponse>((resolve, reject) => {
      this.raw.produce({ record: newRecord(value) }, settle(resolve, reject));
    });
    return res.offset;
  }

  /** Appends many records in one call; offsets are dense from `firstOffset`. */
  async produceBatch(
    values: readonly Uint8Array[],
  ): Promise<{ firstOffset: bigint; count: number }> {
    return new Promise<ProduceBatchResponse>((resolve, reject) => {
      this.raw.produceBatch({ records: values.map(newRecord) }, settle(resolve, reject));
    });
  }

  async consume(offset: bigint): Promise<ConsumedRecord> {
    const res = await new Promise<ConsumeResponse>((resolve, reject) => {
      this.raw.consume({ offset }, settle(resolve, reject));
    });
    return toConsumed(res.record);
  }

  async getServers(): Promise<ServerInfo[]> {
    const res = await new Promise<GetServersResponse>((resolve, reject) => {
      this.raw.getServers({}, settle(resolve, reject));
    });
    return res.servers;
  }

  /** Records from `offset` on, then new ones as they arrive, until `signal` aborts. */
  async *consumeStream(
    offset: bigint,
    opts: { signal?: AbortSignal } = {},
  ): AsyncGenerator<ConsumedRecord> {
    const call = this.raw.consumeStream({ offset });
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const res of call as AsyncIterable<{ record?: LogRecord }>) {
        yield toConsumed(res.record);
      }
    } catch (err) {
      if (opts.signal?.aborted) return;
      throw toClientError(err);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  /** Like consumeStream, many records per message. */
  async *consumeBatches(
    offset: bigint,
    opts: { signal?: AbortSignal; maxRecords?: number; maxBytes?: number } = {},
  ): AsyncGenerator<ConsumedRecord[]> {
    const call = this.raw.consumeBatchStream({
      offset,
      maxRecords: opts.maxRecords ?? 0,
      maxBytes: opts.maxBytes ?? 0,
    });
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const res of call as AsyncIterable<{ records: LogRecord[] }>) {
        yield res.records.map(toConsumed);
      }
    } catch (err) {
      if (opts.signal?.aborted) return;
      throw toClientError(err);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  /**
   * Appends every value over one ProduceStream and yields their offsets in order.
   * Values are sent as fast as flow control allows; the server pipelines them.
   */
  async *produceStream(
    values: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): AsyncGenerator<bigint> {
    const call = this.raw.produceStream();
    let sendError: Error | undefined;
    const send = async () => {
      for await (const value of values) {
        if (!call.write({ record: newRecord(value) })) await once(call, 'drain');
      }
      call.end();
    };
    send().catch((err: unknown) => {
      sendError = err instanceof Error ? err : new Error(String(err));
      call.cancel();
    });
    try {
      for await (const res of call as AsyncIterable<{ offset: bigint }>) yield res.offset;
    } catch (err) {
      throw sendError ?? toClientError(err);
    } finally {
      call.cancel();
    }
    if (sendError !== undefined) throw sendError;
  }

  close(): void {
    this.raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
