// Certificate generation with no tool beyond our own package: a CA, server leaves and
// client leaves, ECDSA P-256 through WebCrypto. Keys leave as PKCS#8 PEM, which Node,
// grpc-js and openssl all read.
import type * as X509 from '@peculiar/x509';
import { createPrivateKey, X509Certificate, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { CertificateError } from './errors.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;
const EC_KEY: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const EC_SIGNING: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const RSA_SIGNING = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
const DAY_MS = 24 * 60 * 60 * 1000;
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

let x509Module: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509, loaded on first use: it costs about half a second of start-up that
 * nodes and clients, which only read certificates, never need. Its decorators need
 * reflect-metadata loaded before it.
 */
function x509(): Promise<typeof X509> {
  x509Module ??= import('reflect-metadata').then(() => import('@peculiar/x509'));
  return x509Module;
}

/** Names every server certificate carries, so local clients can verify it. */
export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1'];

/** A certificate and its private key, both PEM. */
export interface IssuedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

/** A CA able to sign: its PEM files and the imported signing key. */
export interface CertificateAuthority extends IssuedCertificate {
  readonly signingKey: CryptoKey;
  readonly signingAlgorithm: Algorithm | EcdsaParams;
  readonly certificate: X509.X509Certificate;
}

/** When a certificate is valid. Tests use dates in the past to get an expired one. */
export interface Validity {
  /** Default: now minus one minute, so small clock skew does not reject a fresh cert. */
  readonly notBefore?: Date;
  /** Default: `notBefore` plus `days`. */
  readonly notAfter?: Date;
  /** Used when `notAfter` is not given. CA default 3650, leaves 825. */
  readonly days?: number;
}

export interface CaOptions extends Validity {
  /** Default `commitlog CA`. */
  readonly commonName?: string;
}

export interface ServerCertOptions extends Validity {
  readonly commonName: string;
  /** Extra DNS names or IP addresses, besides localhost, 127.0.0.1 and ::1. */
  readonly hosts?: readonly string[];
}

export interface ClientCertOptions extends Validity {
  /** The subject the authorizer sees. */
  readonly commonName: string;
}

function validity(v: Validity, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const notBefore = v.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = v.notAfter ?? new Date(notBefore.getTime() + (v.days ?? defaultDays) * DAY_MS);
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new CertificateError(
      `notAfter (${notAfter.toISOString()}) must be after notBefore (${notBefore.toISOString()})`,
    );
  }
  return { notBefore, notAfter };
}

/** A positive 128-bit serial (RFC 5280 wants positive, at most 20 bytes). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

/** Distinguished names are built from a CN only; commas and the like would change the DN. */
function commonNameDn(cn: string): string {
  const trimmed = cn.trim();
  if (trimmed === '' || !/^[\w.@:*-][\w .@:*-]*$/.test(trimmed)) {
    throw new CertificateError(
      `invalid common name ${JSON.stringify(cn)}: use letters, digits, space and . _ - @ : *`,
    );
  }
  return `CN=${trimmed}`;
}

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return toPem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

/** Creates a self-signed CA that signs leaves (path length 0: no intermediates). */
export async function createCa(options: CaOptions = {}): Promise<CertificateAuthority> {
  const x = await x509();
  const keys = await newKeyPair();
  const name = commonNameDn(options.commonName ?? 'commitlog CA');
  const certificate = await x.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name,
      ...validity(options, 3650),
      keys,
      signingAlgorithm: EC_SIGNING,
      extensions: [
        new x.BasicConstraintsExtension(true, 0, true),
        new x.KeyUsagesExtension(
          x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign | x.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return {
    certPem: certificate.toString('pem') + '\n',
    keyPem: await privateKeyPem(keys.privateKey),
    signingKey: keys.privateKey,
    signingAlgorithm: EC_SIGNING,
    certificate,
  };
}

/**
 * Loads a CA from PEM (ours, or one made by openssl or cfssl: EC P-256/P-384 or RSA keys,
 * PKCS#8 or the traditional formats) so it can sign more leaves.
 */
export async function loadCa(certPem: string, keyPem: string): Promise<CertificateAuthority> {
  let nodeCert: X509Certificate;
  try {
    nodeCert = new X509Certificate(certPem);
  } catch (err) {
    throw new CertificateError('the CA certificate is not a PEM certificate', { cause: err });
  }
  if (!nodeCert.ca) throw new CertificateError('the CA certificate is not marked as a CA');
  let nodeKey;
  try {
    nodeKey = createPrivateKey(keyPem);
  } catch (err) {
    throw new CertificateError('the CA key is not a PEM private key', { cause: err });
  }
  if (!nodeCert.checkPrivateKey(nodeKey)) {
    throw new CertificateError('the CA key does not match the CA certificate');
  }
  const pkcs8 = nodeKey.export({ type: 'pkcs8', format: 'der' });
  let importAlgorithm: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
  let signingAlgorithm: Algorithm | EcdsaParams;
  const details = nodeKey.asymmetricKeyDetails;
  if (nodeKey.asymmetricKeyType === 'ec' && details?.namedCurve) {
    const curve = { prime256v1: 'P-256', secp384r1: 'P-384' }[details.namedCurve];
    if (!curve) throw new CertificateError(`unsupported CA key curve ${details.namedCurve}`);
    importAlgorithm = { name: 'ECDSA', namedCurve: curve };
    signingAlgorithm = { name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
  } else if (nodeKey.asymmetricKeyType === 'rsa') {
    importAlgorithm = RSA_SIGNING;
    signingAlgorithm = RSA_SIGNING;
  } else {
    throw new CertificateError(
      `unsupported CA key type ${nodeKey.asymmetricKeyType ?? 'unknown'} (use EC or RSA)`,
    );
  }
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, importAlgorithm, false, [
    'sign',
  ]);
  return {
    certPem,
    keyPem,
    signingKey,
    signingAlgorithm,
    certificate: new (await x509()).X509Certificate(certPem),
  };
}

async function issue(
  ca: CertificateAuthority,
  commonName: string,
  v: Validity,
  usages: string[],
  sans: X509.JsonGeneralName[],
): Promise<IssuedCertificate> {
  const x = await x509();
  const keys = await newKeyPair();
  const extensions: X509.Extension[] = [
    new x.BasicConstraintsExtension(false, undefined, true),
    new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature | x.KeyUsageFlags.keyAgreement, true),
    new x.ExtendedKeyUsageExtension(usages, false),
    await x.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
    await x.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey, false, webcrypto),
  ];
  if (sans.length > 0) extensions.push(new x.SubjectAlternativeNameExtension(sans, false));
  const certificate = await x.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: commonNameDn(commonName),
      issuer: ca.certificate.subjectName,
      ...validity(v, 825),
      publicKey: keys.publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: ca.signingAlgorithm,
      extensions,
    },
    webcrypto,
  );
  return {
    certPem: certificate.toString('pem') + '\n',
    keyPem: await privateKeyPem(keys.privateKey),
  };
}

function subjectAltNames(hosts: readonly string[]): X509.JsonGeneralName[] {
  const seen = new Set<string>();
  const out: X509.JsonGeneralName[] = [];
  for (const raw of [...LOOPBACK_HOSTS, ...hosts]) {
    const host = raw.trim().replace(/^\[(.*)\]$/, '$1');
    if (host === '' || seen.has(host.toLowerCase())) continue;
    seen.add(host.toLowerCase());
    if (isIP(host) !== 0) out.push({ type: 'ip', value: host });
    else if (
      /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(
        host,
      )
    )
      out.push({ type: 'dns', value: host });
    else throw new CertificateError(`invalid host ${JSON.stringify(raw)}: not a DNS name or IP`);
  }
  return out;
}

/**
 * A server certificate: SANs localhost, 127.0.0.1, ::1 and `hosts`. Its EKU allows both
 * serverAuth and clientAuth, so a node can present it to other nodes as its identity.
 */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  options: ServerCertOptions,
): Promise<IssuedCertificate> {
  return issue(
    ca,
    options.commonName,
    options,
    [EKU_SERVER_AUTH, EKU_CLIENT_AUTH],
    subjectAltNames(options.hosts ?? []),
  );
}

/** A client certificate whose CN is the subject the authorizer sees. */
export async function issueClientCertificate(
  ca: CertificateAuthority,
  options: ClientCertOptions,
): Promise<IssuedCertificate> {
  return issue(ca, options.commonName, options, [EKU_CLIENT_AUTH], []);
}
