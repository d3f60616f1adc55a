// Public surface of auth/: TLS material (loading, generating a CA and certificates),
// the subject of a verified peer, and the Casbin authorizer. Imports nothing of ours.
export {
  AclConfigError,
  AclLoadError,
  CertFilesExistError,
  CertificateError,
  PermissionDeniedError,
  TlsConfigError,
  TlsIdentityChangeError,
  UnauthenticatedError,
} from './errors.js';
export {
  LOOPBACK_HOSTS,
  createCa,
  issueClientCertificate,
  issueServerCertificate,
  loadCa,
  type CaOptions,
  type CertificateAuthority,
  type ClientCertOptions,
  type IssuedCertificate,
  type ServerCertOptions,
  type Validity,
} from './certs.js';
export {
  BOOK_FILES,
  DEFAULT_MODEL_CONF,
  DEFAULT_POLICY_CSV,
  certificateFiles,
  writeBookFileSet,
  writeFileSet,
  type BookFileSetOptions,
  type FileToWrite,
  type WriteOptions,
} from './files.js';
export {
  loadTlsMaterial,
  mutualTlsClientOptions,
  mutualTlsServerOptions,
  parseCertificates,
  type LoadTlsOptions,
  type MutualTlsServerOptions,
  type TlsFiles,
  type TlsMaterial,
} from './tls.js';
export {
  EXPIRY_WARNING_DAYS,
  TLS_USES,
  TlsReloader,
  TlsUseNotConfiguredError,
  daysLeft,
  expiresSoon,
  type TlsReloadEntry,
  type TlsReloaderOptions,
  type TlsStage,
  type TlsUse,
} from './reload.js';
export {
  normaliseCommonName,
  subjectOfAuthContext,
  subjectOfCertificate,
  subjectOfTlsSocket,
  verifyTlsPeer,
  type AuthContextLike,
  type PeerCertificateLike,
  type PeerVerification,
  type TlsSocketLike,
} from './peer.js';
export {
  ACTION_CONSUME,
  ACTION_PRODUCE,
  Authorizer,
  OBJECT_WILDCARD,
  type AclFiles,
  type AuthorizerMode,
  type AuthorizerOptions,
  type AuthorizerStats,
} from './authorizer.js';
export { watchAclFiles, type AclWatchOptions } from './watch.js';
