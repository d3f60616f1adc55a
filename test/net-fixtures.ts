// Shared by the net tests: certificates from commitlog's own CA code, a tiny gRPC echo
// service that answers with the caller's certificate CN, and a log line collector.
import * as grpc from '@grpc/grpc-js';

import {
  createCa,
  issueClientCertificate,
  issueServerCertificate,
  type IssuedCertificate,
} from '../src/auth/index.js';

export interface Pki {
  ca: string;
  otherCa: string;
  nodes: Record<'n1' | 'n2' | 'n3', IssuedCertificate>;
  /** A node certificate signed by another CA. */
  intruder: IssuedCertificate;
  /** A client certificate (clientAuth only) from the peer CA. */
  client: IssuedCertificate;
}

export async function makePki(): Promise<Pki> {
  const ca = await createCa({ commonName: 'peer CA' });
  const other = await createCa({ commonName: 'other CA' });
  const [n1, n2, n3, intruder, client] = await Promise.all([
    issueServerCertificate(ca, { commonName: 'n1' }),
    issueServerCertificate(ca, { commonName: 'n2' }),
    issueServerCertificate(ca, { commonName: 'n3' }),
    issueServerCertificate(other, { commonName: 'n2' }),
    issueClientCertificate(ca, { commonName: 'alice' }),
  ]);
  return { ca: ca.certPem, otherCa: other.certPem, nodes: { n1, n2, n3 }, intruder, client };
}

const identity = (b: Buffer): Buffer => b;
export const echoService: grpc.ServiceDefinition = {
  echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** A grpc-js server whose Echo answers "<caller CN or -> <request>". */
export function echoServer(): grpc.Server {
  const server = new grpc.Server();
  server.addService(echoService, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const cert = call.getAuthContext().sslPeerCertificate;
      const cn = cert?.subject?.CN ?? '-';
      cb(null, Buffer.concat([Buffer.from(`${String(cn)} `), call.request]));
    },
  });
  return server;
}

const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');

export function echoClient(addr: string, creds: grpc.ChannelCredentials): grpc.Client {
  return new EchoClient(addr, creds);
}

export function echo(client: grpc.Client, text: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    (
      client as unknown as {
        echo(
          r: Buffer,
          o: grpc.CallOptions,
          cb: (e: grpc.ServiceError | null, v?: Buffer) => void,
        ): void;
      }
    ).echo(Buffer.from(text), { deadline: Date.now() + timeoutMs }, (e, v) =>
      e ? reject(e) : resolve(String(v)),
    );
  });
}

export interface Line {
  fields: Record<string, unknown>;
  message: string;
}

/** A logger that keeps its lines, and wakes waiters when one matches. */
export class Lines {
  readonly lines: Line[] = [];
  private waiters: { test: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];

  warn(fields: object, message: string): void {
    const line = { fields: fields as Record<string, unknown>, message };
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      if (!w.test(line)) return true;
      w.resolve(line);
      return false;
    });
  }

  info(fields: object, message: string): void {
    this.warn(fields, message);
  }

  /** The first line (past or future) matching `re`, within `ms`. */
  waitFor(re: RegExp, ms = 5000): Promise<Line> {
    const test = (l: Line): boolean => re.test(l.message);
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no log line matching ${re} within ${ms} ms; saw:\n${this.lines.map((l) => l.message).join('\n')}`,
            ),
          ),
        ms,
      );
      this.waiters.push({
        test,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }
}

/** Polls `check` until it holds, or fails after `ms`. */
export async function until(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
