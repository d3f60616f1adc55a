// Loading TLS material from files, with errors that name the file at fault, into the
// buffers grpc-js (`ServerCredentials.createSsl`, `credentials.createSsl`) and
// `https.createServer` take.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions } from 'node:tls';
import { TlsConfigError } from './errors.js';

/** Where a node or client finds its TLS files. */
export interface TlsFiles {
  /** Our certificate (PEM, may hold a chain: leaf first). */
  readonly certFile: string;
  /** The private key of `certFile` (PEM: PKCS#8, PKCS#1 or SEC1). */
  readonly keyFile: string;
  /** The CA bundle that verifies the other side (PEM, one or more certificates). */
  readonly caFile: string;
}

/** Loaded and checked TLS material. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
  /** The subject CN of our own certificate, for logs. */
  readonly commonName: string | undefined;
  /** The leaf's serial number (hex, as Node's `X509Certificate#serialNumber`), for logs. */
  readonly serialNumber: string;
  readonly notAfter: Date;
  readonly files: TlsFiles;
}

export interface LoadTlsOptions {
  /** The moment validity is checked against. Default: now. */
  readonly now?: Date;
}

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

async function readTlsFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES'
          ? 'is not readable (permission denied)'
          : code === 'EISDIR'
            ? 'is a directory'
            : `cannot be read (${(err as Error).message})`;
    throw new TlsConfigError(file, reason, { cause: err });
  }
}

/** Parses every certificate of a PEM file; the file must hold at least one. */
export function parseCertificates(file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('utf8').match(PEM_CERT_RE);
  if (!blocks) throw new TlsConfigError(file, 'holds no PEM certificate (BEGIN CERTIFICATE)');
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new TlsConfigError(file, `certificate #${i + 1} cannot be parsed`, { cause: err });
    }
  });
}

function parseKey(file: string, pem: Buffer): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem.toString('utf8'))) {
    throw new TlsConfigError(file, 'holds no PEM private key (BEGIN PRIVATE KEY)');
  }
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new TlsConfigError(
      file,
      'the private key cannot be parsed (encrypted keys are not supported)',
      {
        cause: err,
      },
    );
  }
}

function checkValidity(file: string, cert: X509Certificate, now: Date) {
  if (now.getTime() < new Date(cert.validFrom).getTime()) {
    throw new TlsConfigError(file, `certificate is not valid before ${cert.validFrom}`);
  }
  if (now.getTime() > new Date(cert.validTo).getTime()) {
    throw new TlsConfigError(file, `certificate expired on ${cert.validTo}`);
  }
}

/** The last CN of a distinguished name in Node's `X509Certificate#subject` text form. */
function commonNameOf(cert: X509Certificate): string | undefined {
  const cns = cert.subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3));
  return cns.at(-1);
}

/**
 * Reads and checks a certificate, its key and a CA bundle: each readable and PEM, the
 * key matching the certificate, the certificate within its validity. Any failure is a
 * `TlsConfigError` naming the file.
 */
export async function loadTlsMaterial(
  files: TlsFiles,
  options: LoadTlsOptions = {},
): Promise<TlsMaterial> {
  // Read together, but report in a fixed order (certificate, key, CA): which read fails
  // first must not decide which file the message names.
  const reads = await Promise.allSettled([
    readTlsFile(files.certFile),
    readTlsFile(files.keyFile),
    readTlsFile(files.caFile),
  ]);
  for (const r of reads) if (r.status === 'rejected') throw r.reason;
  const [cert, key, ca] = reads.map((r) => (r as PromiseFulfilledResult<Buffer>).value) as [
    Buffer,
    Buffer,
    Buffer,
  ];
  const chain = parseCertificates(files.certFile, cert);
  const leaf = chain[0];
  if (!leaf) throw new TlsConfigError(files.certFile, 'holds no certificate');
  const privateKey = parseKey(files.keyFile, key);
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(files.keyFile, `does not match the certificate in ${files.certFile}`);
  }
  checkValidity(files.certFile, leaf, options.now ?? new Date());
  const authorities = parseCertificates(files.caFile, ca);
  if (!authorities.some((c) => c.ca)) {
    throw new TlsConfigError(files.caFile, 'holds no CA certificate (basicConstraints CA:TRUE)');
  }
  return {
    cert,
    key,
    ca,
    commonName: commonNameOf(leaf),
    serialNumber: leaf.serialNumber,
    notAfter: new Date(leaf.validTo),
    files,
  };
}

export interface MutualTlsServerOptions {
  /**
   * true (default): Node refuses an unverified client inside the handshake, silently.
   * false: the connection completes and the caller checks `verifyTlsPeer(socket)`, so
   * it can log why and refuse (destroy, 401, UNAUTHENTICATED) itself.
   */
  readonly rejectAtHandshake?: boolean;
}

/**
 * Options for `https.createServer` / `tls.createServer`: our certificate, and a client
 * certificate signed by the CA requested (and by default required) at the handshake.
 */
export function mutualTlsServerOptions(
  material: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>,
  options: MutualTlsServerOptions = {},
): SecureContextOptions & { requestCert: true; rejectUnauthorized: boolean } {
  return {
    cert: material.cert,
    key: material.key,
    ca: material.ca,
    requestCert: true,
    rejectUnauthorized: options.rejectAtHandshake ?? true,
  };
}

/** Options for a client (`tls.connect`, `https.request`): our identity and the CA. */
export function mutualTlsClientOptions(
  material: Pick<TlsMaterial, 'cert' | 'key' | 'ca'>,
): SecureContextOptions & { rejectUnauthorized: true } {
  return { cert: material.cert, key: material.key, ca: material.ca, rejectUnauthorized: true };
}
