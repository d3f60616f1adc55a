// Certificate generation with no tool beyond our own package: a CA, server leaves and
// client leaves, ECDSA P-256 through WebCrypto. Keys leave as PKCS#8 PEM, which Node,
// grpc-js and openssl all read.
import 'reflect-metadata'; // @peculiar/x509's decorators need it loaded first
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate as PeculiarCertificate,
  X509CertificateGenerator,
  type Extension,
  type JsonGeneralName,
} from '@peculiar/x509';
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
  readonly certificate: PeculiarCertificate;
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
  const keys = await newKeyPair();
  const name = commonNameDn(options.commonName ?? 'commitlog CA');
  const certificate = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name,
      ...validity(options, 3650),
      keys,
      signingAlgorithm: EC_SIGNING,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(
          KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature,
          true,
        ),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
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
    certificate: new PeculiarCertificate(certPem),
  };
}

async function issue(
  ca: CertificateAuthority,
  commonName: string,
  v: Validity,
  usages: ExtendedKeyUsage[],
  sans: JsonGeneralName[],
): Promise<IssuedCertificate> {
  const keys = await newKeyPair();
  const extensions: Extension[] = [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyAgreement, true),
    new ExtendedKeyUsageExtension(usages, false),
    await SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
    await AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey, false, webcrypto),
  ];
  if (sans.length > 0) extensions.push(new SubjectAlternativeNameExtension(sans, false));
  const certificate = await X509CertificateGenerator.create(
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

function subjectAltNames(hosts: readonly string[]): JsonGeneralName[] {
  const seen = new Set<string>();
  const out: JsonGeneralName[] = [];
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
    [ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth],
    subjectAltNames(options.hosts ?? []),
  );
}

/** A client certificate whose CN is the subject the authorizer sees. */
export async function issueClientCertificate(
  ca: CertificateAuthority,
  options: ClientCertOptions,
): Promise<IssuedCertificate> {
  return issue(ca, options.commonName, options, [ExtendedKeyUsage.clientAuth], []);
}
