// Authentication and authorization at the server's edge: mutual-TLS credentials for
// grpc-js, one interceptor that turns the peer certificate into a subject and asks the
// authorizer, and the same check for the HTTP gateway. Handlers never see any of it.
import * as grpc from '@grpc/grpc-js';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

import {
  ACTION_CONSUME,
  ACTION_PRODUCE,
  OBJECT_WILDCARD,
  PermissionDeniedError,
  UnauthenticatedError,
  subjectOfAuthContext,
  verifyTlsPeer,
  type Authorizer,
  type PeerVerification,
  type TlsMaterial,
} from '../auth/index.js';
import { toGrpcStatus } from './errors.js';

/** The action of cluster administration (RemoveServer). */
export const ACTION_ADMIN = 'admin';

/** The action each gRPC method needs. Methods not listed are open or, if unknown, denied. */
export const GRPC_METHOD_ACTIONS: Readonly<Record<string, string>> = {
  '/log.v1.Log/Produce': ACTION_PRODUCE,
  '/log.v1.Log/ProduceStream': ACTION_PRODUCE,
  '/log.v1.Log/ProduceBatch': ACTION_PRODUCE,
  '/log.v1.Log/Consume': ACTION_CONSUME,
  '/log.v1.Log/ConsumeStream': ACTION_CONSUME,
  '/log.v1.Log/ConsumeBatchStream': ACTION_CONSUME,
  // Who is in the cluster is read access, as in the book.
  '/log.v1.Log/GetServers': ACTION_CONSUME,
  // Changing who is in the cluster is an operator's act, granted apart from writes.
  '/log.v1.Log/RemoveServer': ACTION_ADMIN,
};

/** Services anyone may call, with or without a certificate: probes and tooling. */
const OPEN_SERVICES = [
  '/grpc.health.v1.Health/',
  '/grpc.reflection.v1.ServerReflection/',
  '/grpc.reflection.v1alpha.ServerReflection/',
];

export function isOpenGrpcMethod(path: string): boolean {
  return OPEN_SERVICES.some((prefix) => path.startsWith(prefix));
}

/** The part of the server's logger that auth uses (pino's call shape). */
export interface AuthLogger {
  warn(fields: object, message: string): void;
}

/**
 * grpc-js credentials for mutual TLS that let the handshake finish even when the client
 * certificate does not verify, so the interceptor can refuse with UNAUTHENTICATED and we
 * can log why; `createSsl(…, true)` would drop such clients silently inside the handshake.
 * Open services (health, reflection) stay reachable without a certificate.
 *
 * The certificate, key and CA can be replaced while serving (`update`, certificate
 * rotation): grpc-js calls `setSecureContext` on every server and connection injector
 * made from `credentials`, so new connections use the new material and open ones stay.
 */
export class MutualTlsCredentialSource implements grpc.experimental.CertificateProvider {
  readonly credentials: grpc.ServerCredentials;
  private material: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>;
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly identityListeners =
    new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(material: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>) {
    this.material = material;
    // One object is both the CA and the identity provider: grpc-js 1.14's factory hands
    // its two providers to the constructor in the opposite order to their names.
    // requireClientCertificate=false gives requestCert (a CA provider is present) with
    // rejectUnauthorized false: the certificate is asked for, and an unverified one
    // reaches the auth interceptor, which refuses it and logs why.
    this.credentials = grpc.experimental.createCertificateProviderServerCredentials(
      this,
      this,
      false,
    );
  }

  /** New connections use `material` from now on (it must have been checked: see TlsReloader). */
  update(material: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>): void {
    this.material = material;
    for (const listener of this.caListeners) listener(this.caUpdate());
    for (const listener of this.identityListeners) listener(this.identityUpdate());
  }

  private caUpdate(): grpc.experimental.CaCertificateUpdate {
    return { caCertificate: this.material.ca };
  }

  private identityUpdate(): grpc.experimental.IdentityCertificateUpdate {
    return { certificate: this.material.cert, privateKey: this.material.key };
  }

  // The first answer comes on the next tick, as grpc-js's own file provider does: grpc-js
  // adds these listeners before it registers the server that waits for the answer, so a
  // synchronous one would reach no server (which then drops every connection).
  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => {
      if (this.caListeners.has(listener)) listener(this.caUpdate());
    });
  }

  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(
    listener: grpc.experimental.IdentityCertificateUpdateListener,
  ): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener(this.identityUpdate());
    });
  }

  removeIdentityCertificateListener(
    listener: grpc.experimental.IdentityCertificateUpdateListener,
  ): void {
    this.identityListeners.delete(listener);
  }
}

export function mutualTlsServerCredentials(
  material: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>,
): grpc.ServerCredentials {
  return new MutualTlsCredentialSource(material).credentials;
}

/**
 * Why a call carries no verified certificate. grpc-js exposes the verified certificate
 * (`getAuthContext`) but not the refusal reason, so for the log and the status message
 * we look at the TLS socket under the interceptor chain (interceptors before this one
 * wrap the call; `nextCall` leads down to grpc-js's own call, which holds the stream).
 * This reads grpc-js internals (pinned version) only for wording: the decision itself
 * never depends on it.
 */
function refusalReason(call: grpc.ServerInterceptingCallInterface): string {
  interface Internals {
    nextCall?: Internals;
    stream?: { session?: { socket?: Partial<TLSSocket> } };
  }
  let internals = call as unknown as Internals | undefined;
  for (let depth = 0; internals?.stream === undefined && depth < 16; depth++) {
    internals = internals?.nextCall;
  }
  const socket = internals?.stream?.session?.socket;
  // Read properties rather than test with `in`: http2 hands out a Proxy of the socket.
  if (
    socket &&
    typeof socket.getPeerCertificate === 'function' &&
    typeof socket.authorized === 'boolean'
  ) {
    const verification = verifyTlsPeer(socket as TLSSocket);
    if (!verification.verified) return verification.reason;
  }
  return 'no verified client certificate';
}

/**
 * Decides one call: returns the verified subject allowed to perform `action`, or throws
 * `UnauthenticatedError` / `PermissionDeniedError` saying why not. An unauthenticated
 * call never reaches the authorizer; an action of `undefined` (a method nobody mapped)
 * is refused rather than left open by mistake.
 */
export function authorizeSubject(
  authorizer: Authorizer,
  peer: PeerVerification,
  action: string | undefined,
  what = 'this call',
): string {
  if (!peer.verified) throw new UnauthenticatedError(peer.reason);
  if (action === undefined) throw new PermissionDeniedError(peer.subject, `make ${what}`);
  authorizer.check(peer.subject, OBJECT_WILDCARD, action);
  return peer.subject;
}

export interface AuthInterceptorOptions {
  authorizer: Authorizer;
  logger: AuthLogger;
  /** Method path → action. Default: `GRPC_METHOD_ACTIONS`. */
  actions?: Readonly<Record<string, string>>;
}

/**
 * The gRPC authorization interceptor (`new grpc.Server({ interceptors: [it] })`). Refuses
 * before the handler starts: UNAUTHENTICATED without a verified certificate,
 * PERMISSION_DENIED naming subject and action when the policy says no. The decision is
 * the authorizer's cached one, taken once per call, not per message.
 */
export function createAuthInterceptor(options: AuthInterceptorOptions): grpc.ServerInterceptor {
  const actions = options.actions ?? GRPC_METHOD_ACTIONS;
  const { authorizer, logger } = options;
  return (method, call) => {
    if (isOpenGrpcMethod(method.path)) return new grpc.ServerInterceptingCall(call);
    const action = actions[method.path];
    const subject = subjectOfAuthContext(call.getAuthContext());
    const peer: PeerVerification =
      subject === undefined
        ? { verified: false, reason: refusalReason(call) }
        : { verified: true, subject };
    let refusal: UnauthenticatedError | PermissionDeniedError | undefined;
    try {
      authorizeSubject(authorizer, peer, action, method.path);
    } catch (err) {
      if (!(err instanceof UnauthenticatedError || err instanceof PermissionDeniedError)) throw err;
      refusal = err;
      logger.warn(
        { method: method.path, peer: call.getPeer(), subject, action, reason: err.message },
        err instanceof UnauthenticatedError ? 'unauthenticated call refused' : 'permission denied',
      );
    }
    if (!refusal) return new grpc.ServerInterceptingCall(call);
    const status = toGrpcStatus(refusal);
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((_metadata, _next) => call.sendStatus(status))
      .build();
    return new grpc.ServerInterceptingCall(
      call,
      new grpc.ResponderBuilder().withStart((next) => next(listener)).build(),
    );
  };
}

/** Checks one HTTP request for `action`; throws the refusal (mapped to 401 / 403). */
export type HttpAuthorize = (req: IncomingMessage, action: string) => void;

/**
 * The HTTP gateway's check: the verified subject of the HTTPS connection, asked about
 * the route's action, like the gRPC interceptor. Refusals are logged with the reason.
 */
export function createHttpAuthorize(authorizer: Authorizer, logger: AuthLogger): HttpAuthorize {
  return (req, action) => {
    const socket = req.socket as Partial<TLSSocket>;
    const peer: PeerVerification =
      socket.encrypted === true
        ? verifyTlsPeer(socket as TLSSocket)
        : { verified: false, reason: 'not a TLS connection' };
    try {
      authorizeSubject(authorizer, peer, action);
    } catch (err) {
      if (err instanceof UnauthenticatedError || err instanceof PermissionDeniedError) {
        logger.warn(
          {
            method: req.method,
            url: req.url,
            peer: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
            subject: peer.verified ? peer.subject : undefined,
            action,
            reason: err.message,
          },
          err instanceof UnauthenticatedError
            ? 'unauthenticated request refused'
            : 'permission denied',
        );
      }
      throw err;
    }
  };
}

/** Checks that an HTTP request comes with a verified client certificate; throws the 401. */
export type HttpAuthenticate = (req: IncomingMessage) => void;

/**
 * The check for routes that need a client certificate but no ACL action (GET /metrics):
 * any client whose certificate the CA signed may read them, as a scraper does.
 */
export function createHttpAuthenticate(logger: AuthLogger): HttpAuthenticate {
  return (req) => {
    const socket = req.socket as Partial<TLSSocket>;
    const peer: PeerVerification =
      socket.encrypted === true
        ? verifyTlsPeer(socket as TLSSocket)
        : { verified: false, reason: 'not a TLS connection' };
    if (peer.verified) return;
    logger.warn(
      {
        method: req.method,
        url: req.url,
        peer: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
        reason: peer.reason,
      },
      'unauthenticated request refused',
    );
    throw new UnauthenticatedError(peer.reason);
  };
}
