// The subject of a verified peer: the CN of its client certificate. Everything here
// answers `undefined` rather than throwing when there is no verified certificate (the
// book's code panics there), so "unauthenticated" is a value the caller decides on.

/** The shape both grpc-js (`AuthContext.sslPeerCertificate`) and Node's TLS expose. */
export interface PeerCertificateLike {
  readonly subject?: { readonly CN?: string | readonly string[] } | null;
}

/** grpc-js's `call.getAuthContext()`: it is empty unless the TLS peer was verified. */
export interface AuthContextLike {
  readonly transportSecurityType?: string;
  readonly sslPeerCertificate?: PeerCertificateLike;
}

/** What we need of a Node `TLSSocket`. */
export interface TlsSocketLike {
  readonly authorized: boolean;
  readonly authorizationError?: Error | string;
  getPeerCertificate(detailed?: boolean): PeerCertificateLike | object | null;
}

/**
 * Normalises a certificate CN. Node gives an array when the DN holds several CNs; like
 * Go's crypto/x509 (the book), the last one wins. Blank names count as none.
 */
export function normaliseCommonName(
  cn: string | readonly string[] | undefined,
): string | undefined {
  // Defensive about types: the certificate objects come from the wire.
  const value: unknown = Array.isArray(cn) ? (cn as readonly unknown[]).at(-1) : cn;
  const trimmed = typeof value === 'string' ? value.trim() : '';
  return trimmed === '' ? undefined : trimmed;
}

/** The CN of a peer certificate object, or `undefined`. */
export function subjectOfCertificate(
  cert: PeerCertificateLike | object | null | undefined,
): string | undefined {
  if (!cert || !('subject' in cert)) return undefined;
  const subject = cert.subject;
  if (!subject || typeof subject !== 'object') return undefined;
  return normaliseCommonName(subject.CN);
}

/**
 * The subject of a grpc-js call: `subjectOfAuthContext(call.getAuthContext())`. grpc-js
 * fills `sslPeerCertificate` only when the TLS socket is authorized (verified against
 * the server's CA), so presence means verified.
 */
export function subjectOfAuthContext(ctx: AuthContextLike | undefined): string | undefined {
  if (!ctx || ctx.transportSecurityType !== 'ssl') return undefined;
  return subjectOfCertificate(ctx.sslPeerCertificate);
}

/** The subject of a Node TLS socket (e.g. `req.socket` of an HTTPS request), if verified. */
export function subjectOfTlsSocket(socket: TlsSocketLike | object | undefined): string | undefined {
  // Property reads, not `in`: http2 sessions hand out a Proxy of their socket.
  const tls = socket as Partial<TlsSocketLike> | undefined;
  if (tls?.authorized !== true || typeof tls.getPeerCertificate !== 'function') return undefined;
  return subjectOfCertificate(tls.getPeerCertificate());
}

/** The outcome of checking a TLS peer: its subject, or why it is not trusted. */
export type PeerVerification =
  | { readonly verified: true; readonly subject: string }
  | { readonly verified: false; readonly reason: string };

/**
 * Checks the peer of a TLS socket that was accepted with `rejectUnauthorized: false`:
 * verified and carrying a CN, or the reason it is not (for the server's log and for the
 * refusal sent back). OpenSSL's codes are turned into words people search for.
 */
export function verifyTlsPeer(socket: TlsSocketLike): PeerVerification {
  if (socket.authorized !== true) {
    const code = String(socket.authorizationError ?? 'not verified');
    const cert = socket.getPeerCertificate();
    const none = !cert || Object.keys(cert).length === 0;
    return { verified: false, reason: none ? 'no client certificate' : describeVerifyError(code) };
  }
  const subject = subjectOfCertificate(socket.getPeerCertificate());
  if (subject === undefined) {
    return { verified: false, reason: 'client certificate has no subject common name (CN)' };
  }
  return { verified: true, subject };
}

const VERIFY_ERRORS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'client certificate has expired',
  CERT_NOT_YET_VALID: 'client certificate is not yet valid',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'client certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'client certificate is not signed by a trusted CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'client certificate is not signed by a trusted CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'client certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'client certificate chains to an untrusted self-signed CA',
  CERT_SIGNATURE_FAILURE: 'client certificate signature is invalid',
  CERT_REVOKED: 'client certificate is revoked',
  INVALID_PURPOSE: 'client certificate is not allowed for client authentication (EKU)',
};

function describeVerifyError(code: string): string {
  const words = VERIFY_ERRORS[code];
  return words ? `${words} (${code})` : `client certificate not verified (${code})`;
}
