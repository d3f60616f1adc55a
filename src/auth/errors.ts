// One error class per failure. None of them knows gRPC or HTTP codes: the server
// maps them (PermissionDenied → PERMISSION_DENIED / 403, Unauthenticated → UNAUTHENTICATED / 401).

/** A TLS file (certificate, key or CA bundle) cannot be used; `file` names it. */
export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`TLS file ${file}: ${reason}`, options);
  }
}

/** The ACL model or policy file cannot be loaded; `file` names it. */
export class AclLoadError extends Error {
  override readonly name = 'AclLoadError';
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`ACL file ${file}: ${reason}`, options);
  }
}

/** The ACL configuration itself is inconsistent (e.g. a model without a policy). */
export class AclConfigError extends Error {
  override readonly name = 'AclConfigError';
}

/** A call came without a verified client certificate. */
export class UnauthenticatedError extends Error {
  override readonly name = 'UnauthenticatedError';
  constructor(reason = 'no verified client certificate', options?: ErrorOptions) {
    super(reason, options);
  }
}

/** The authorizer denied `subject` the `action` on `object`. */
export class PermissionDeniedError extends Error {
  override readonly name = 'PermissionDeniedError';
  constructor(
    readonly subject: string,
    readonly action: string,
    readonly object = '*',
  ) {
    super(
      object === '*'
        ? `${subject} is not permitted to ${action}`
        : `${subject} is not permitted to ${action} on ${object}`,
    );
  }
}

/** Files that would be overwritten without `force`. Nothing was written. */
export class CertFilesExistError extends Error {
  override readonly name = 'CertFilesExistError';
  constructor(readonly files: readonly string[]) {
    super(
      `refusing to overwrite existing file${files.length > 1 ? 's' : ''} ${files.join(', ')} (use --force to replace)`,
    );
  }
}

/** A certificate could not be issued (bad name, unusable CA key, ...). */
export class CertificateError extends Error {
  override readonly name = 'CertificateError';
}

/**
 * A reloaded certificate names another node: its CN differs from the running one. A
 * node's identity is its CN (peers and the Raft transport know it by that name), so it
 * cannot change while the node runs. Nothing was applied.
 */
export class TlsIdentityChangeError extends Error {
  override readonly name = 'TlsIdentityChangeError';
  constructor(
    readonly file: string,
    readonly running: string | undefined,
    readonly next: string | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `TLS file ${file}: the new certificate's CN ${JSON.stringify(next ?? '')} is not the running ` +
        `certificate's CN ${JSON.stringify(running ?? '')}; a node's identity is its CN, so a ` +
        `rotated certificate must keep it (to rename a node, restart it with the new certificate)`,
      options,
    );
  }
}
