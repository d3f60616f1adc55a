// Stream layers for Raft peer connections: dial a peer, and accept the connections the
// port multiplexer routes here. They satisfy raft's StreamLayer structurally.
//
// TLS (production): mutual TLS with ALPN `commitlog-raft/1`. A peer is admitted when
//   1. its certificate chains to the peer CA (--peer-tls-ca-file),
//   2. it carries the serverAuth extended key usage: node certificates do
//      (`commitlog cert server`), client certificates (clientAuth only) do not, so a
//      client certificate cannot open a Raft connection even when the same CA signs
//      both, and
//   3. it has a common name, which is the Raft id the peer may claim.
// A refusal is logged with the certificate's subject and the reason. The material can be
// replaced while running (`stageTls`, certificate rotation): new dials and new accepted
// connections use it, connections already up stay as they are.
// Plain (loopback development): RAFT_MAGIC first, no identity.
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  connect as tlsConnect,
  createSecureContext,
  createServer as createTlsServer,
  type PeerCertificate,
  type SecureContext,
  type Server as TlsServer,
  type TLSSocket,
} from 'node:tls';

import { KeyedRateLog } from './keyed-log.js';
import { RAFT_ALPN, RAFT_MAGIC, type ConnectionInfo, type ConnectionSink } from './port-mux.js';

/** A connected peer stream and, with TLS, the identity its certificate proves. */
export interface PeerStream {
  readonly stream: Duplex;
  /** The certificate's CN; undefined on plaintext layers (nothing is proven). */
  readonly peerId?: string;
}

export interface PeerLogger {
  warn(fields: object, message: string): void;
  info?(fields: object, message: string): void;
}

export interface PeerStreamStats {
  readonly accepted: number;
  readonly dialed: number;
  /** Connections refused (either side) for a certificate or handshake failure. */
  readonly refused: number;
}

/** A TLS handshake with a peer failed, or its certificate is not a peer's. */
export class PeerAuthError extends Error {
  override readonly name = 'PeerAuthError';
  constructor(
    message: string,
    readonly subject: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A dial gave up: aborted, timed out or refused by the network. */
export class PeerDialError extends Error {
  override readonly name = 'PeerDialError';
}

export class StreamLayerClosedError extends Error {
  override readonly name = 'StreamLayerClosedError';
}

const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

/** "CN=n1, O=..." for logs; never throws on odd certificates. */
export function describeSubject(cert: PeerCertificate | undefined): string | undefined {
  const subject = cert?.subject as Record<string, unknown> | undefined;
  if (subject === undefined || subject === null || typeof subject !== 'object') return undefined;
  const parts = Object.entries(subject).map(
    ([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`,
  );
  return parts.length > 0 ? parts.join(', ') : undefined;
}

function commonName(cert: PeerCertificate): string | undefined {
  const cn = (cert.subject as Record<string, unknown> | undefined)?.CN;
  const v: unknown = Array.isArray(cn) ? (cn as unknown[])[cn.length - 1] : cn;
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/**
 * The admission rule (see the file header): returns the peer id or why not. Exported for
 * the agent's diagnostics and for tests.
 */
export function admitPeer(socket: TLSSocket): { id: string } | { refused: string } {
  const cert = socket.getPeerCertificate();
  if (cert === undefined || Object.keys(cert).length === 0)
    return { refused: 'no certificate presented' };
  if (!socket.authorized)
    return {
      refused: `certificate not signed by the peer CA (${String(socket.authorizationError)})`,
    };
  const eku = (cert as PeerCertificate & { ext_key_usage?: string[] }).ext_key_usage;
  if (!eku?.includes(EKU_SERVER_AUTH))
    return {
      refused: 'certificate lacks the serverAuth usage: a client certificate cannot speak Raft',
    };
  if (socket.alpnProtocol !== RAFT_ALPN)
    return { refused: `ALPN ${String(socket.alpnProtocol)} is not ${RAFT_ALPN}` };
  const id = commonName(cert);
  if (id === undefined) return { refused: 'certificate has no common name' };
  return { id };
}

/** A bounded hand-off queue from the accept sink to one `for await` consumer. */
class AcceptQueue {
  private readonly items: PeerStream[] = [];
  private waiter: ((v: IteratorResult<PeerStream>) => void) | undefined;
  private closed = false;

  constructor(private readonly limit: number) {}

  push(s: PeerStream): boolean {
    if (this.closed) return false;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: s, done: false });
      return true;
    }
    if (this.items.length >= this.limit) return false;
    this.items.push(s);
    return true;
  }

  close(): void {
    this.closed = true;
    for (const s of this.items.splice(0)) s.stream.destroy();
    const w = this.waiter;
    this.waiter = undefined;
    w?.({ value: undefined, done: true });
  }

  async *iterate(): AsyncGenerator<PeerStream> {
    for (;;) {
      const next = this.items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.closed) return;
      const r = await new Promise<IteratorResult<PeerStream>>((resolve) => {
        this.waiter = resolve;
      });
      if (r.done === true) return;
      yield r.value;
    }
  }
}

interface LayerCommon {
  /** Accepted streams waiting for the consumer; beyond this they are closed. Default 64. */
  readonly acceptBacklog?: number;
  /** Dial and handshake deadline. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  readonly logger?: PeerLogger;
  /** The same refusal (subject and reason) is logged once per interval. Default 10 s. */
  readonly logIntervalMs?: number;
}

/** This node's peer certificate chain, key, and the peer CA (PEM). */
export interface PeerTlsMaterial {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly ca: string | Buffer | (string | Buffer)[];
}

export interface TlsPeerStreamOptions extends LayerCommon, PeerTlsMaterial {}

abstract class BaseLayer {
  protected readonly queue: AcceptQueue;
  protected readonly handshakeTimeoutMs: number;
  protected closed = false;
  protected readonly log: KeyedRateLog;
  protected readonly counts = { accepted: 0, dialed: 0, refused: 0 };
  private iterated = false;

  constructor(protected readonly common: LayerCommon) {
    this.queue = new AcceptQueue(common.acceptBacklog ?? 64);
    this.handshakeTimeoutMs = common.handshakeTimeoutMs ?? 5000;
    this.log = new KeyedRateLog(common.logger, common.logIntervalMs ?? 10_000);
  }

  /** The PortMux route for Raft connections. */
  readonly sink: ConnectionSink = (socket, info) => this.onConnection(socket, info);

  protected abstract onConnection(socket: Duplex, info: ConnectionInfo): void;

  /** Authenticated inbound streams, until close(). One consumer. */
  accept(): AsyncIterable<PeerStream> {
    if (this.iterated) throw new StreamLayerClosedError('accept() has one consumer');
    this.iterated = true;
    return this.queue.iterate();
  }

  protected deliver(s: PeerStream): void {
    if (this.queue.push(s)) this.counts.accepted++;
    else s.stream.destroy();
  }

  stats(): PeerStreamStats {
    return { ...this.counts };
  }

  close(): Promise<void> {
    this.closed = true;
    this.queue.close();
    return Promise.resolve();
  }
}

/** Resolves when `ready` fires; rejects on error/close/abort/deadline, destroying `s`. */
function settle(
  s: Duplex,
  ready: string,
  ms: number,
  signal: AbortSignal | undefined,
  what: string,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (e?: Error): void => {
      clearTimeout(timer);
      s.removeListener(ready, onReady);
      s.removeListener('error', onError);
      s.removeListener('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (e === undefined) resolve();
      else {
        s.destroy();
        reject(e);
      }
    };
    const onReady = (): void => done();
    const onError = (e: Error): void => done(e);
    const onClose = (): void => done(new PeerDialError(`${what}: connection closed`));
    const onAbort = (): void =>
      done(new PeerDialError(`${what}: aborted`, { cause: signal?.reason }));
    const timer = setTimeout(
      () => done(new PeerDialError(`${what}: no handshake within ${ms} ms`)),
      ms,
    );
    s.once(ready, onReady);
    s.once('error', onError);
    s.once('close', onClose);
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function splitAddr(addr: string): { host: string; port: number } {
  const k = addr.lastIndexOf(':');
  const host = addr.slice(0, k).replace(/^\[(.*)\]$/, '$1');
  const port = Number(addr.slice(k + 1));
  if (k <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
    throw new PeerDialError(`not a host:port address: ${JSON.stringify(addr)}`);
  return { host, port };
}

/** Mutual-TLS peer connections; see the file header for who is admitted. */
export class TlsPeerStreamLayer extends BaseLayer {
  /** What dials present and verify with; replaced by a committed stageTls. */
  private context: SecureContext;
  private readonly tlsServer: TlsServer;

  constructor(o: TlsPeerStreamOptions) {
    super(o);
    this.context = createSecureContext({ cert: o.cert, key: o.key, ca: o.ca });
    // rejectUnauthorized is false so that the handshake completes and the refusal can
    // be logged with the subject; admitPeer() then fails closed on !authorized.
    this.tlsServer = createTlsServer({
      cert: o.cert,
      key: o.key,
      ca: o.ca,
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: [RAFT_ALPN],
      handshakeTimeout: this.handshakeTimeoutMs,
    });
    this.tlsServer.on('secureConnection', (tls: TLSSocket) => this.onSecure(tls));
    this.tlsServer.on('tlsClientError', (e: Error, tls: TLSSocket) =>
      this.refuse(tls, tls.remoteAddress ?? '?', `TLS handshake failed: ${e.message}`),
    );
  }

  /**
   * Prepares a switch to new material: throws now if it cannot be used, else returns the
   * commit (which cannot fail). Once committed, new dials present the new certificate
   * and new accepted connections are checked against the new CA; open streams stay.
   */
  stageTls(material: PeerTlsMaterial): () => void {
    const options = { cert: material.cert, key: material.key, ca: material.ca };
    const context = createSecureContext(options);
    return () => {
      this.context = context;
      // requestCert, rejectUnauthorized and ALPN are the server's settings, not the
      // context's: they stay as constructed.
      this.tlsServer.setSecureContext(options);
    };
  }

  protected onConnection(socket: Duplex): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    // A never-listening tls.Server does the handshake: Node sets `authorized` only for
    // server sockets that belong to a tls.Server (a bare `new TLSSocket({ isServer })`
    // leaves it false), and its handshakeTimeout bounds a peer that stalls mid-way.
    this.tlsServer.emit('connection', socket);
  }

  private onSecure(tls: TLSSocket): void {
    const remote = tls.remoteAddress ?? '?';
    const verdict = admitPeer(tls);
    if ('refused' in verdict) {
      this.refuse(tls, remote, verdict.refused);
      return;
    }
    this.deliver({ stream: tls, peerId: verdict.id });
  }

  private refuse(tls: TLSSocket, remote: string, reason: string): void {
    this.counts.refused++;
    let subject: string | undefined;
    try {
      subject = describeSubject(tls.getPeerCertificate());
    } catch {
      subject = undefined; // the handshake never got as far as a certificate
    }
    tls.destroy();
    this.log.warn(
      `in|${subject}|${reason}`,
      { remote, subject, reason },
      `raft: refused a peer connection from ${remote} (subject ${subject ?? 'none'}): ${reason}`,
    );
  }

  async dial(addr: string, o: { signal?: AbortSignal } = {}): Promise<PeerStream> {
    if (this.closed) throw new StreamLayerClosedError('the stream layer is closed');
    const { host, port } = splitAddr(addr);
    const tls = tlsConnect({
      host,
      port,
      secureContext: this.context,
      ALPNProtocols: [RAFT_ALPN],
      rejectUnauthorized: false, // checked below, to log why
      // Peers are named by certificate CN, not by the address dialled (checked by admitPeer
      // and by the transport against the id it meant to reach).
      checkServerIdentity: () => undefined,
      // Without it Node sends the dialled IP as SNI, which RFC 6066 forbids (and warns).
      servername: 'commitlog-peer',
    });
    tls.setNoDelay(true);
    tls.on('error', () => {});
    await settle(tls, 'secureConnect', this.handshakeTimeoutMs, o.signal, `dial ${addr}`);
    const verdict = admitPeer(tls);
    if ('refused' in verdict) {
      this.counts.refused++;
      const subject = describeSubject(tls.getPeerCertificate());
      tls.destroy();
      this.log.warn(
        `out|${addr}|${subject}|${verdict.refused}`,
        { remote: addr, subject, reason: verdict.refused },
        `raft: refused peer ${addr} (subject ${subject ?? 'none'}): ${verdict.refused}`,
      );
      throw new PeerAuthError(`peer ${addr}: ${verdict.refused}`, subject);
    }
    this.counts.dialed++;
    return { stream: tls, peerId: verdict.id };
  }
}

export type PlainPeerStreamOptions = LayerCommon;

/** Plaintext peer connections for loopback development: RAFT_MAGIC, then frames. */
export class PlainPeerStreamLayer extends BaseLayer {
  protected onConnection(socket: Duplex, info: ConnectionInfo): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    // The mux pushed the magic back; consume it so the stream starts at the frames.
    const take = (): void => {
      const head = socket.read(RAFT_MAGIC.length) as Buffer | null;
      if (head === null) return;
      socket.removeListener('readable', take);
      if (!head.equals(RAFT_MAGIC)) {
        this.counts.refused++;
        socket.destroy();
        this.log.warn(
          `plain|${info.remoteAddress}`,
          { remote: info.remoteAddress },
          `raft: refused ${info.remoteAddress}: no Raft preamble`,
        );
        return;
      }
      this.deliver({ stream: socket });
    };
    socket.on('readable', take);
    take();
  }

  async dial(addr: string, o: { signal?: AbortSignal } = {}): Promise<PeerStream> {
    if (this.closed) throw new StreamLayerClosedError('the stream layer is closed');
    const { host, port } = splitAddr(addr);
    const socket: Socket = netConnect({ host, port, noDelay: true });
    socket.on('error', () => {});
    await settle(socket, 'connect', this.handshakeTimeoutMs, o.signal, `dial ${addr}`);
    socket.write(RAFT_MAGIC);
    this.counts.dialed++;
    return { stream: socket };
  }
}
