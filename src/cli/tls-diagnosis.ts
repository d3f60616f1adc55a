// Why a client command cannot reach a node, in words that say what to do. The SDK only
// learns "no member reachable"; a TLS handshake of our own to the first address tells a
// plaintext client from a TLS node, a CA that did not sign the node's certificate, and
// a node that does not speak TLS; one GetServers call tells a refused identity
// (PERMISSION_DENIED, UNAUTHENTICATED) from a node that is down.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

import * as grpc from '@grpc/grpc-js';

import { UsageError } from './errors.js';

export interface ClientTlsFlags {
  addr: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** A client command could not reach the cluster; the message says why and what to do. */
export class CannotConnectError extends Error {
  override readonly name = 'CannotConnectError';
}

const PROBE_MS = 3000;

/** Every PEM certificate in `file` must parse; a usage error names the file otherwise. */
export async function checkCaFile(file: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError('ca-file', `cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks) {
    throw new UsageError(
      'ca-file',
      `${file} is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block); pass the CA certificate that signed the node's certificate (commitlog cert init writes it as ca.pem)`,
    );
  }
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new UsageError(
        'ca-file',
        `${file} holds a certificate that does not parse: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
}

/** The first host:port of `--addr` (a list, or commitlog://a,b,c). */
export function firstAddress(addr: string): { host: string; port: number } | undefined {
  const first =
    addr
      .replace(/^commitlog:\/\//, '')
      .split(',')[0]
      ?.trim() ?? '';
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(first);
  if (!m) return undefined;
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}

type Handshake = { ok: true } | { ok: false; code: string; message: string };

function handshake(options: ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ ...options, ALPNProtocols: ['h2'] });
    const done = (result: Handshake) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => done({ ok: false, code: 'ETIMEDOUT', message: 'no TLS answer' }),
      PROBE_MS,
    );
    timer.unref();
    socket.once('secureConnect', () => done({ ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done({ ok: false, code: err.code ?? 'ERROR', message: err.message }),
    );
  });
}

const VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
]);

/** One GetServers call (an empty request) to the address: its status, if refused. */
function getServersStatus(
  target: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions = {},
): Promise<grpc.ServiceError | undefined> {
  const client = new grpc.Client(target, credentials, options);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      '/log.v1.Log/GetServers',
      () => Buffer.alloc(0),
      (b: Buffer) => b,
      {},
      { deadline: Date.now() + PROBE_MS },
      (err) => {
        client.close();
        resolve(err ?? undefined);
      },
    );
  });
}

/**
 * What is wrong between this client and the first node of `--addr`, or undefined when
 * nothing this can tell (the node may simply be down or busy).
 */
export async function diagnoseConnection(flags: ClientTlsFlags): Promise<string | undefined> {
  const at = firstAddress(flags.addr);
  if (!at) return undefined;
  const where = `${at.host}:${at.port}`;
  const target = at.host.includes(':') ? `[${at.host}]:${at.port}` : where;
  if (flags.caFile === undefined) {
    const probe = await handshake({ host: at.host, port: at.port, rejectUnauthorized: false });
    if (probe.ok) {
      return `the node at ${where} speaks TLS and this client does not: pass --ca-file with the CA that signed the node's certificate, and --cert-file/--key-file for mutual TLS (e.g. certs/ca.pem, certs/root-client.pem, certs/root-client-key.pem from commitlog cert init)`;
    }
    return refusal(await getServersStatus(target, grpc.credentials.createInsecure()));
  }
  const read = (f: string | undefined) => (f === undefined ? undefined : readFile(f));
  const [ca, cert, key] = [
    await read(flags.caFile),
    await read(flags.certFile),
    await read(flags.keyFile),
  ];
  const probe = await handshake({
    host: at.host,
    port: at.port,
    ...(isIP(at.host) === 0 && { servername: at.host }),
    ...(ca && { ca }),
    ...(cert && { cert }),
    ...(key && { key }),
  });
  if (!probe.ok) {
    if (VERIFY_CODES.has(probe.code)) {
      return `the node at ${where} has a certificate not signed by the CA in --ca-file ${flags.caFile} (${probe.code}): pass the CA that signed the node's certificate`;
    }
    if (probe.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return `the node's certificate does not name ${at.host} (${probe.message}): dial a name it has, or make its certificate with --host ${at.host}`;
    }
    if (probe.code === 'CERT_HAS_EXPIRED') {
      return `the node at ${where} has an expired certificate: renew it (commitlog cert server)`;
    }
    if (
      /wrong version number|packet length too long|ECONNRESET|socket disconnected/i.test(
        `${probe.code} ${probe.message}`,
      )
    ) {
      return `the node at ${where} does not speak TLS: drop --ca-file, --cert-file and --key-file, or start the node with --server-tls-cert-file, --server-tls-key-file and --server-tls-ca-file`;
    }
    return undefined;
  }
  // The handshake above checked the node's name; this call only wants the status (and an
  // IP address as the TLS server name makes Node warn).
  const credentials = grpc.credentials.createSsl(ca, key ?? null, cert ?? null, {
    checkServerIdentity: () => undefined,
  });
  return refusal(
    await getServersStatus(target, credentials, { 'grpc.ssl_target_name_override': 'node' }),
  );
}

/** A refusal of the identity, in the `CODE: reason` form the docs show. */
function refusal(err: grpc.ServiceError | undefined): string | undefined {
  if (err === undefined) return undefined;
  if (err.code === grpc.status.PERMISSION_DENIED) {
    return `PERMISSION_DENIED: ${err.details} (finding the cluster's members needs the consume permission; see docs/security.md)`;
  }
  if (err.code === grpc.status.UNAUTHENTICATED) {
    return `UNAUTHENTICATED: ${err.details}: pass --cert-file and --key-file with a client certificate signed by the node's CA`;
  }
  return undefined;
}
