#!/usr/bin/env node
// gRPC health check (grpc.health.v1.Health/Check) for probes and HEALTHCHECK, with or
// without mutual TLS. Kubernetes' own gRPC probe speaks plaintext only; this one uses
// the node's certificate when --tls-dir holds ca.crt, tls.crt and tls.key. Node.js only,
// no packages, so it starts fast. Exit 0: SERVING; 1: anything else (printed).
//
//   node health-probe.mjs [--addr 127.0.0.1:8400] [--service log.v1.Log] [--tls-dir DIR]
//                         [--timeout-ms 3000]
//
// Without flags it follows the agent's own environment (as a container's HEALTHCHECK
// needs): the port from COMMITLOG_RPC_PORT, the certificate from
// COMMITLOG_SERVER_TLS_{CERT,KEY,CA}_FILE.
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';

const STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function flags(argv, env) {
  const out = {
    addr: `127.0.0.1:${env.COMMITLOG_RPC_PORT ?? 8400}`,
    service: '',
    'tls-dir': '',
    'timeout-ms': '3000',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    if (!key || !(key in out) || argv[i + 1] === undefined) {
      throw new Error(`usage: health-probe.mjs [--${Object.keys(out).join(' V] [--')} V]`);
    }
    out[key] = argv[i + 1];
  }
  return out;
}

/** HealthCheckRequest { string service = 1 } in a gRPC length-prefixed frame. */
function request(service) {
  const name = Buffer.from(service);
  if (name.length > 127) throw new Error('service name too long');
  const body = name.length
    ? Buffer.concat([Buffer.from([0x0a, name.length]), name])
    : Buffer.alloc(0);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  return frame;
}

/** HealthCheckResponse { ServingStatus status = 1 }: a missing field is 0 (UNKNOWN). */
function status(frame) {
  const body = frame.subarray(5);
  return body.length >= 2 && body[0] === 0x08 ? body[1] : 0;
}

/** The TLS files: the chart's mounted Secret, else the agent's own settings, else none. */
function tlsFiles(tlsDir, env) {
  if (tlsDir) {
    return {
      ca: join(tlsDir, 'ca.crt'),
      cert: join(tlsDir, 'tls.crt'),
      key: join(tlsDir, 'tls.key'),
    };
  }
  const cert = env.COMMITLOG_SERVER_TLS_CERT_FILE;
  const key = env.COMMITLOG_SERVER_TLS_KEY_FILE;
  const ca = env.COMMITLOG_SERVER_TLS_CA_FILE;
  return cert && key && ca ? { ca, cert, key } : undefined;
}

export function check({ addr, service, tlsDir, timeoutMs, env = {} }) {
  const files = tlsFiles(tlsDir, env);
  const tls = files
    ? {
        ca: readFileSync(files.ca),
        cert: readFileSync(files.cert),
        key: readFileSync(files.key),
        ALPNProtocols: ['h2'],
      }
    : {};
  return new Promise((resolve, reject) => {
    const session = connect(`${files ? 'https' : 'http'}://${addr}`, tls);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer from ${addr} within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    };
    session.on('error', fail);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks = [];
    // A "trailers-only" answer (an error) carries grpc-status in its headers.
    let trailers = {};
    stream.on('response', (headers) => (trailers = headers));
    stream.on('data', (c) => chunks.push(c));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('error', fail);
    stream.on('end', () => {
      clearTimeout(timer);
      session.close();
      const code = Number(trailers['grpc-status'] ?? -1);
      if (code !== 0) {
        const message = decodeURIComponent(String(trailers['grpc-message'] ?? ''));
        return reject(new Error(`grpc-status ${code}${message ? `: ${message}` : ''}`));
      }
      resolve(STATUS[status(Buffer.concat(chunks))] ?? 'UNKNOWN');
    });
    stream.end(request(service));
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const f = flags(process.argv.slice(2), process.env);
    const state = await check({
      addr: f.addr,
      service: f.service,
      tlsDir: f['tls-dir'],
      timeoutMs: Number(f['timeout-ms']),
      env: process.env,
    });
    console.log(`${f.service || '(server)'}: ${state}`);
    process.exitCode = state === 'SERVING' ? 0 : 1;
  } catch (err) {
    console.log(`unhealthy: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
