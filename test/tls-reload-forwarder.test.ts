// Certificate rotation in the forwarder (follower → leader produces): after stageTls()()
// new forwarded calls present the new certificate through a new client; the old client
// is closed at once when idle, or once the call it still carries has settled.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { GrpcLeaderForwarder } from '../src/agent/index.js';
import {
  Authorizer,
  BOOK_FILES,
  issueServerCertificate,
  loadCa,
  loadTlsMaterial,
  writeBookFileSet,
  type TlsMaterial,
} from '../src/auth/index.js';
import { ApiServer, type CommitLog, type CommittedRecord } from '../src/server/index.js';
import { until, within } from './support/wait.js';

/** A leader's log that only appends (counting), and holds appends while `gate` is set. */
class GatedLog implements CommitLog {
  gate: Promise<void> | undefined;
  waiting = 0;
  private next = 0n;
  async append(values: readonly Uint8Array[]): Promise<bigint> {
    if (this.gate) {
      this.waiting++;
      await this.gate;
      this.waiting--;
    }
    const first = this.next;
    this.next += BigInt(values.length);
    return first;
  }
  read(offset: bigint): Promise<CommittedRecord> {
    return Promise.reject(new RangeError(`no record ${offset}: this log only appends`));
  }
  // eslint-disable-next-line require-yield
  async *readBatchesFrom(): AsyncIterable<CommittedRecord[]> {
    return;
  }
}

describe('forwarder: certificate rotation', () => {
  let dir: string;
  let leader: ApiServer;
  let leaderAddr: string;
  const log = new GatedLog();
  /** The serial number each call's client certificate had, as the leader saw it. */
  const seen: string[] = [];
  let first: TlsMaterial;
  let second: TlsMaterial;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-forwarder-tls-'));
    await writeBookFileSet(dir);
    const files = (cert: string, key: string) => ({
      certFile: join(dir, cert),
      keyFile: join(dir, key),
      caFile: join(dir, BOOK_FILES.caCert),
    });
    first = await loadTlsMaterial(files(BOOK_FILES.serverCert, BOOK_FILES.serverKey));
    const ca = await loadCa(
      await readFile(join(dir, BOOK_FILES.caCert), 'utf8'),
      await readFile(join(dir, BOOK_FILES.caKey), 'utf8'),
    );
    const next = await issueServerCertificate(ca, { commonName: 'server' });
    await writeFile(join(dir, 'next.pem'), next.certPem);
    await writeFile(join(dir, 'next-key.pem'), next.keyPem);
    second = await loadTlsMaterial(files('next.pem', 'next-key.pem'));
    const capture: grpc.ServerInterceptor = (_descriptor, call) => {
      const serial = call.getAuthContext().sslPeerCertificate?.serialNumber;
      if (serial) seen.push(serial);
      return new grpc.ServerInterceptingCall(call);
    };
    leader = new ApiServer({
      log,
      cluster: { servers: async () => [], leader: () => undefined },
      security: { tls: first, authorizer: await Authorizer.open({}) },
      interceptors: [capture],
    });
    const bound = await leader.listenGrpc('127.0.0.1', 0);
    leaderAddr = `localhost:${bound.port}`;
  });
  after(async () => {
    await leader?.close(1000);
    await rm(dir, { recursive: true, force: true });
  });

  const serial = (m: TlsMaterial) => new X509Certificate(m.cert).serialNumber;
  const hint = () => ({ id: 'leader', addr: leaderAddr });
  const append = (f: GrpcLeaderForwarder, value: string) =>
    within(
      5000,
      `forwarded produce ${value}`,
      f.append([Buffer.from(value)], hint(), { signal: new AbortController().signal }),
    );

  it('new calls present the new certificate; the idle old client is closed at once', async () => {
    const forwarder = new GrpcLeaderForwarder('follower', first);
    try {
      seen.length = 0;
      await append(forwarder, 'a');
      assert.deepEqual(seen, [serial(first)]);
      forwarder.stageTls(second)();
      assert.deepEqual(forwarder.openClients(), { current: 0, draining: 0 });
      await append(forwarder, 'b');
      assert.deepEqual(seen, [serial(first), serial(second)]);
    } finally {
      forwarder.close();
    }
  });

  it('a client with a call in flight is closed once that call has settled', async () => {
    const forwarder = new GrpcLeaderForwarder('follower', first);
    let open!: () => void;
    try {
      seen.length = 0;
      log.gate = new Promise<void>((resolve) => (open = resolve));
      const held = append(forwarder, 'held');
      await until(() => log.waiting === 1, { what: 'the forwarded call reaches the leader' });
      forwarder.stageTls(second)();
      assert.deepEqual(forwarder.openClients(), { current: 0, draining: 1 });
      log.gate = undefined;
      const fresh = append(forwarder, 'fresh');
      assert.equal(typeof (await fresh), 'bigint', 'a new call goes through at once');
      open();
      assert.equal(typeof (await held), 'bigint', 'the call in flight completes');
      assert.deepEqual(forwarder.openClients(), { current: 1, draining: 0 });
      assert.deepEqual(seen, [serial(first), serial(second)]);
    } finally {
      open?.();
      log.gate = undefined;
      forwarder.close();
    }
  });
});
