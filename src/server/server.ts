// The node's API surface: one grpc-js server (log.v1.Log, grpc.health.v1.Health,
// server reflection) and one HTTP server (the JSON gateway). Everything it needs
// comes in through the constructor: no globals, so later interceptors (auth,
// telemetry) and several servers per process (tests) need no changes here.
import { readFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext } from 'node:tls';

import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';

import { LOG_SERVICE_NAME, protoRoot } from '../api/index.js';
import { mutualTlsServerOptions, type Authorizer, type TlsMaterial } from '../auth/index.js';
import {
  createAuthInterceptor,
  createHttpAuthenticate,
  createHttpAuthorize,
  MutualTlsCredentialSource,
} from './auth.js';
import { Counter } from 'prom-client';

import { METRIC_PREFIX, type Metrics, type RequestTelemetry } from '../telemetry/index.js';
import { ErrorTable, LimitExceededError, type ErrorStatusRow } from './errors.js';
import { Appender, type NotLeaderClassifier } from './forwarding.js';
import type { ClusterView, CommitLog, LeaderForwarder, ServerLogger } from './ports.js';
import { silentLogger } from './ports.js';
import { createHttpHandler } from './http-gateway.js';
import { createLogService, StreamRegistry } from './log-service.js';
import { instrumentHttp, telemetryInterceptor } from './telemetry.js';
import { FastLogService } from './codec.js';
import {
  DEFAULT_LIMITS,
  UNARY_STREAM_HEADROOM,
  isDescriptorExhaustion,
  parseFdLimits,
  type ServerLimits,
} from './limits.js';

export interface ApiServerOptions {
  log: CommitLog;
  /** Who is in the cluster and who leads it (GetServers). */
  cluster: ClusterView;
  /**
   * Statuses for errors of folders the server does not import (the log's, the
   * cluster's), matched with `instanceof` after the built-in rows; first match wins.
   */
  errorStatuses?: readonly ErrorStatusRow[];
  /** Recognises the log's "not the leader" refusal of an append. */
  notLeader?: NotLeaderClassifier;
  /** Sends refused produces to the leader (one hop); absent, the client gets the hint. */
  forwarder?: LeaderForwarder;
  logger?: ServerLogger;
  /** Run on every gRPC call, health and reflection included (authn, authz). */
  interceptors?: grpc.ServerInterceptor[];
  /**
   * Ends every gRPC call and HTTP request in a log line, the request metrics and a
   * server span; absent, requests are not observed.
   */
  requests?: RequestTelemetry;
  /** Counts records produced and consumed and serves `GET /metrics`; absent, /metrics is 404. */
  metrics?: Metrics;
  /** Default: insecure (the agent refuses non-loopback binds without TLS or --insecure). */
  credentials?: grpc.ServerCredentials;
  /**
   * Mutual TLS and authorization for both APIs: gRPC and HTTPS with client certificates
   * signed by `tls.ca`, every call on the log checked by `authorizer`. Replaces
   * `credentials`; the auth interceptor runs before `interceptors`.
   */
  security?: { tls: TlsMaterial; authorizer: Authorizer };
  /** Largest record value accepted (default 1 MiB, the log's default). */
  maxRecordBytes?: number;
  /** ProduceStream appends in flight before the server stops reading (default 1024). */
  maxInFlight?: number;
  /** ConsumeBatchStream caps per message (defaults 1000 records, 1 MiB). */
  maxBatchRecords?: number;
  maxBatchBytes?: number;
  /** What one client and all clients may hold (streams, connections, buffers); see DEFAULT_LIMITS. */
  limits?: Partial<ServerLimits>;
}

/** A listener could not be opened (address in use, no such interface, …). */
export class ListenError extends Error {
  override name = 'ListenError';
  constructor(
    readonly api: 'gRPC' | 'HTTP',
    readonly address: string,
    cause: Error,
  ) {
    super(`cannot listen for ${api} on ${address}: ${cause.message}`, { cause });
  }
}

/** TLS material was offered to a server that serves without TLS. */
export class TlsNotConfiguredError extends Error {
  override readonly name = 'TlsNotConfiguredError';
  constructor(options?: ErrorOptions) {
    super('this server was started without TLS: there is no TLS material to replace', options);
  }
}

/** An address that a listener is bound to. */
export interface BoundAddress {
  host: string;
  port: number;
}

export class ApiServer {
  readonly grpcServer: grpc.Server;
  readonly httpServer: HttpServer;
  private readonly health: HealthImplementation;
  private readonly streams: StreamRegistry;
  readonly limits: Readonly<ServerLimits>;
  /** Refusals by a limit (labelled with its setting) or for want of file descriptors. */
  private readonly refusals: Counter<'limit'> | undefined;
  private readonly shutdown = new AbortController();
  private readonly logger: ServerLogger;
  private readonly credentials: grpc.ServerCredentials;
  /** With TLS: what replaces the gRPC side's material (stageTls). */
  private readonly tlsSource: MutualTlsCredentialSource | undefined;
  /** With TLS: the HTTPS server (httpServer, typed as what it is). */
  private readonly httpsServer: HttpsServer | undefined;
  private readonly injectors: grpc.ConnectionInjector[] = [];
  private ready = true;
  private closing: Promise<void> | undefined;

  constructor(opts: ApiServerOptions) {
    this.logger = opts.logger ?? silentLogger;
    const limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.limits = limits;
    this.refusals =
      opts.metrics &&
      new Counter({
        name: `${METRIC_PREFIX}limit_refusals_total`,
        help: 'Streams, connections and requests refused by a limit (label: its setting, or file-descriptors)',
        labelNames: ['limit'],
        registers: [opts.metrics.registry],
      });
    this.streams = new StreamRegistry({
      perConnection: limits.streamsPerConnection,
      perNode: limits.streams,
    });
    const maxRecordBytes = opts.maxRecordBytes ?? 1024 * 1024;
    const maxBatchBytes = opts.maxBatchBytes ?? 1024 * 1024;
    const security = opts.security;
    const errors = new ErrorTable(opts.errorStatuses);
    const appender = new Appender(opts.log, {
      notLeader: opts.notLeader,
      forwarder: opts.forwarder,
    });
    this.grpcServer = new grpc.Server({
      interceptors: [
        // Telemetry first: it then sees the calls that later interceptors refuse.
        ...(opts.requests ? [telemetryInterceptor(opts.requests)] : []),
        ...(security
          ? [createAuthInterceptor({ authorizer: security.authorizer, logger: this.logger })]
          : []),
        ...(opts.interceptors ?? []),
      ],
      // A ProduceBatch may carry several maximum-size records; room for framing too.
      'grpc.max_receive_message_length': Math.max(4 * 1024 * 1024, maxRecordBytes + 64 * 1024),
      'grpc.max_send_message_length': Math.max(4 * 1024 * 1024, maxBatchBytes + maxRecordBytes),
      // The protocol's own cap; the stream registry refuses long-lived streams below it
      // with a status that names the setting.
      'grpc.max_concurrent_streams': limits.streamsPerConnection + UNARY_STREAM_HEADROOM,
      // Dead peers and idle connections are dropped rather than held forever.
      'grpc.keepalive_time_ms': limits.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
      'grpc.max_connection_idle_ms': limits.connectionIdleMs,
    });
    this.grpcServer.addService(
      FastLogService,
      createLogService(
        {
          log: opts.log,
          appender,
          cluster: opts.cluster,
          errors,
          logger: this.logger,
          metrics: opts.metrics,
          maxRecordBytes,
          maxInFlight: opts.maxInFlight ?? 1024,
          maxBatchRecords: opts.maxBatchRecords ?? 1000,
          maxBatchBytes,
          maxStreamBufferBytes: limits.streamBufferBytes,
          refused: (limit) => this.refusals?.inc({ limit }),
        },
        this.streams,
      ),
    );
    const { cluster } = opts;
    // With leader changes to follow, log.v1.Log is SERVING only while a leader is known.
    const follows = cluster.leaderChanges !== undefined;
    this.health = new HealthImplementation({
      '': 'SERVING',
      [LOG_SERVICE_NAME]: !follows || cluster.leader() ? 'SERVING' : 'NOT_SERVING',
    });
    this.health.addToServer(this.grpcServer);
    if (follows) this.followLeader(cluster);
    const root = protoRoot();
    const definition = loadSync(join(root, 'log', 'v1', 'log.proto'), {
      includeDirs: [root],
      longs: String,
      keepCase: true,
    });
    new ReflectionService(definition).addToServer(this.grpcServer);
    this.tlsSource = security && new MutualTlsCredentialSource(security.tls);
    this.credentials =
      this.tlsSource?.credentials ?? opts.credentials ?? grpc.ServerCredentials.createInsecure();
    const handler = createHttpHandler({
      log: opts.log,
      appender,
      errors,
      logger: this.logger,
      metrics: opts.metrics,
      maxRecordBytes,
      isReady: () => this.ready,
      shutdownSignal: this.shutdown.signal,
      authorize: security && createHttpAuthorize(security.authorizer, this.logger),
      cluster: opts.cluster,
      authenticate: security && createHttpAuthenticate(this.logger),
    });
    const observed = opts.requests ? instrumentHttp(opts.requests, handler) : handler;
    // With TLS the handshake lets unverified clients finish, so that the probes stay
    // open and a refusal can say why (401); the gateway checks every other route.
    // A client that opens a connection and sends no whole request head (or never
    // finishes TLS) is dropped after handshakeTimeoutMs; Node checks the head timeout on
    // an interval, so the interval is a fraction of it.
    const timeouts = {
      headersTimeout: limits.handshakeTimeoutMs,
      requestTimeout: Math.max(limits.handshakeTimeoutMs, 300_000),
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, limits.handshakeTimeoutMs / 4)),
    };
    this.httpsServer =
      security &&
      createHttpsServer(
        {
          ...mutualTlsServerOptions(security.tls, { rejectAtHandshake: false }),
          ...timeouts,
          handshakeTimeout: limits.handshakeTimeoutMs,
        },
        observed,
      );
    this.httpServer = this.httpsServer ?? createServer(timeouts, observed);
    this.httpServer.maxConnections = this.connectionBudget(limits.connections);
    if (security) answerPlainHttp(this.httpServer, limits.handshakeTimeoutMs);
    this.guardHttpConnections(limits, security !== undefined);
  }

  /**
   * Prepares the switch of both APIs to new TLS material (certificate rotation): throws
   * now if the material cannot be used, else returns the commit, which cannot fail. Once
   * committed, new gRPC and HTTPS connections present the new certificate and verify
   * clients against the new CA; open connections keep the material they started with.
   * Throws `TlsNotConfiguredError` on a server without TLS.
   */
  stageTls(material: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>): () => void {
    const source = this.tlsSource;
    const https = this.httpsServer;
    if (!source || !https) throw new TlsNotConfiguredError();
    const context = { cert: material.cert, key: material.key, ca: material.ca };
    // What setSecureContext will build, built now: the commit must not throw.
    createSecureContext(context);
    return () => {
      // The client-certificate settings (requestCert, rejectUnauthorized) are the
      // server's, not the context's: they stay as constructed.
      https.setSecureContext(context);
      source.update(context);
    };
  }

  /**
   * HTTP connections allowed in total: max-connections, but never more than half the
   * process's open-file limit, so that sockets cannot starve the log of descriptors for
   * new segments (a produce must not fail for a crowd of idle clients).
   */
  private connectionBudget(wanted: number): number {
    let fds: { soft: number; hard: number } | undefined;
    try {
      fds = parseFdLimits(readFileSync('/proc/self/limits', 'utf8'));
    } catch {
      return wanted; // not Linux: the limit is the operator's to check
    }
    if (!fds || wanted <= fds.soft / 2) return wanted;
    const budget = Math.max(16, Math.floor(fds.soft / 2));
    this.logger.warn(
      { maxConnections: wanted, openFileLimit: fds.soft, hardLimit: fds.hard, using: budget },
      `--max-connections ${wanted} is more than half the open-file limit (${fds.soft}); allowing ${budget} HTTP connections. Raise the limit (ulimit -n, systemd LimitNOFILE, docker --ulimit nofile) to allow more`,
    );
    return budget;
  }

  /**
   * At most `connectionsPerAddress` open HTTP connections per client address: past it a
   * plain-HTTP client is told why (429 naming the setting) and the socket is closed; a
   * TLS client just sees the close (no handshake to answer through). Logged at most
   * once per address until its count falls.
   */
  private guardHttpConnections(limits: ServerLimits, tls: boolean): void {
    const open = new Map<string, number>();
    const warned = new Set<string>();
    this.httpServer.on('connection', (socket: Socket) => {
      const address = socket.remoteAddress ?? 'unknown';
      const count = open.get(address) ?? 0;
      if (count >= limits.connectionsPerAddress) {
        const err = new LimitExceededError(
          `HTTP connections from ${address}`,
          limits.connectionsPerAddress,
          'max-connections-per-address',
        );
        this.refusals?.inc({ limit: 'max-connections-per-address' });
        if (!warned.has(address)) {
          warned.add(address);
          this.logger.warn({ address, limit: limits.connectionsPerAddress }, err.message);
        }
        if (tls) socket.destroy();
        else {
          const body = JSON.stringify({ error: err.message, reason: 'LIMIT_EXCEEDED' });
          socket.on('error', () => {});
          // Written, then closed outright: a half-close would keep the descriptor until
          // the client closes its side.
          socket.end(
            `HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n` +
              `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
            () => socket.destroy(),
          );
        }
        return;
      }
      open.set(address, count + 1);
      socket.once('close', () => {
        const left = (open.get(address) ?? 1) - 1;
        if (left === 0) {
          open.delete(address);
          warned.delete(address);
        } else open.set(address, left);
      });
    });
  }

  private followLeader(cluster: ClusterView): void {
    const changes = cluster.leaderChanges?.({ signal: this.shutdown.signal });
    if (!changes) return;
    void (async () => {
      try {
        for await (const leader of changes) {
          if (!this.ready) return;
          this.health.setStatus(LOG_SERVICE_NAME, leader ? 'SERVING' : 'NOT_SERVING');
        }
      } catch (err) {
        if (!this.shutdown.signal.aborted) {
          this.logger.error({ err }, 'following leader changes failed; health stays as it was');
        }
      }
    })();
  }

  /** Binds gRPC to `host:port` (port 0: any free port) and answers what was bound. */
  async listenGrpc(host: string, port: number): Promise<BoundAddress> {
    const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const bound = await new Promise<number>((resolve, reject) => {
      this.grpcServer.bindAsync(target, this.credentials, (err, p) =>
        err ? reject(new ListenError('gRPC', target, err)) : resolve(p),
      );
    });
    return { host, port: bound };
  }

  /**
   * Serves gRPC on connections accepted elsewhere (a port multiplexer): each socket is
   * handed over raw, with any peeked bytes unshifted, and grpc-js does the TLS handshake
   * itself, so the auth interceptor sees the client certificate as on a bound port.
   * Shut down by `close()` like the bound ports.
   */
  grpcSink(): (socket: Duplex) => void {
    const injector = this.grpcServer.createConnectionInjector(this.credentials);
    this.injectors.push(injector);
    return (socket) => injector.injectConnection(socket);
  }

  /** Binds the HTTP API to `host:port` (port 0: any free port). */
  async listenHttp(host: string, port: number): Promise<BoundAddress> {
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => reject(new ListenError('HTTP', `${host}:${port}`, err));
      this.httpServer.once('error', fail);
      this.httpServer.listen(port, host, () => {
        this.httpServer.off('error', fail);
        // Accept errors after start (EMFILE) are the node's state: logged, counted, not fatal.
        this.httpServer.on('error', (err) => {
          if (isDescriptorExhaustion(err)) this.refusals?.inc({ limit: 'file-descriptors' });
          this.logger.error({ err }, `HTTP port: ${err.message}`);
        });
        resolve();
      });
    });
    const address = this.httpServer.address() as AddressInfo;
    return { host, port: address.port };
  }

  /**
   * Stops accepting, ends live streams with UNAVAILABLE, lets unary calls finish for
   * up to `graceMs`, then cuts what is left. Idempotent.
   */
  close(graceMs = 5000): Promise<void> {
    this.closing ??= this.doClose(graceMs);
    return this.closing;
  }

  private async doClose(graceMs: number): Promise<void> {
    this.ready = false;
    this.health.setStatus('', 'NOT_SERVING');
    this.health.setStatus(LOG_SERVICE_NAME, 'NOT_SERVING');
    this.shutdown.abort();
    this.streams.closeAll();
    const deadline = AbortSignal.timeout(graceMs);
    const http = this.httpServer.listening
      ? new Promise<void>((resolve) => this.httpServer.close(() => resolve()))
      : Promise.resolve();
    this.httpServer.closeIdleConnections();
    const grpcDone = new Promise<void>((resolve) => this.grpcServer.tryShutdown(() => resolve()));
    const timedOut = new Promise<'timeout'>((resolve) =>
      deadline.addEventListener('abort', () => resolve('timeout'), { once: true }),
    );
    if ((await Promise.race([Promise.all([http, grpcDone]), timedOut])) === 'timeout') {
      this.logger.warn({ graceMs }, 'calls still running after the grace period; cutting them');
      this.httpServer.closeAllConnections();
      this.grpcServer.forceShutdown();
      await Promise.all([http, grpcDone]);
    }
  }
}

/**
 * On the HTTPS port, a client speaking plain HTTP would see the connection reset (the
 * TLS layer finds no ClientHello) and wonder why. Every connection's first bytes are
 * read before TLS starts: a TLS record (0x16) goes on to the handshake with the bytes
 * put back; anything else gets `400` saying the port speaks HTTPS, as nginx does.
 * Silence is closed after `timeoutMs`, like an unfinished handshake.
 */
function answerPlainHttp(server: HttpServer, timeoutMs: number): void {
  const tlsListeners = server.listeners('connection');
  // node:tls starts the handshake in the server's only 'connection' listener.
  if (tlsListeners.length !== 1) {
    throw new Error(`expected one TLS 'connection' listener, found ${tlsListeners.length}`);
  }
  const startTls = tlsListeners[0] as (this: HttpServer, socket: Socket) => void;
  server.removeListener('connection', startTls);
  server.prependListener('connection', (socket: Socket) => {
    socket.on('error', () => {}); // a reset while waiting is the client's business
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.once('close', () => clearTimeout(timer));
    socket.once('data', (first: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      if (first[0] === 0x16) {
        socket.unshift(first);
        startTls.call(server, socket);
        return;
      }
      const body = plainHttpRefusal(first.toString('latin1'), socket.localPort);
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        () => socket.destroy(),
      );
    });
  });
}

/** The text of the 400: the https:// URL the client meant, when its request says it. */
export function plainHttpRefusal(head: string, port: number | undefined): string {
  const target = /^[A-Z]+ (\/[\x21-\x7e]*) HTTP\/1\.[01]\r?\n/.exec(head)?.[1] ?? '/';
  const host = /\r?\nhost:[ \t]*([A-Za-z0-9.:[\]-]+)[ \t]*\r?\n/i.exec(head)?.[1];
  // A Host without a port meant port 80; the client must name this one.
  const withPort = host && /:\d+$/.test(host) ? host : `${host ?? '<host>'}:${port ?? '<port>'}`;
  const url = `https://${withPort}${target}`;
  return `this port speaks HTTPS: use ${url} (with a client certificate)\n`;
}
