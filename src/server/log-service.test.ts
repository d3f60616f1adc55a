// log.v1.Log over fakes behind the server's ports (no disk): the status table with
// registered rows, NOT_LEADER with its ErrorInfo, forwarding to the leader, stored
// wire bytes sent as they are, and GetServers from the cluster view.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import {
  type ConsumeResponse,
  decodeStatusDetails,
  type GetServersResponse,
  LogClient,
  type LogRecord,
  type ProduceResponse,
} from '../api/index.js';
import { errorStatus } from './errors.js';
import { FakeOutOfRangeError, MemoryCommitLog } from './fake-log.test-support.js';
import type { ClusterView, LeaderForwarder, LeaderHint } from './ports.js';
import { ApiServer, type ApiServerOptions } from './server.js';

/** The log's refusal on a follower, as the cluster's error might look. */
class FakeNotLeaderError extends Error {
  override readonly name = 'FakeNotLeaderError';
  constructor(readonly leader?: LeaderHint) {
    super('not the leader');
  }
}

const NO_CLUSTER: ClusterView = { servers: async () => [], leader: () => undefined };
const record = (value: string): LogRecord => ({
  value: Buffer.from(value),
  offset: 0n,
  term: 0n,
  type: 0,
});

const open: (() => Promise<void>)[] = [];
after(() => Promise.all(open.map((close) => close())));

async function serve(
  opts: Partial<ApiServerOptions> & { log: MemoryCommitLog },
): Promise<LogClient> {
  const api = new ApiServer({ cluster: NO_CLUSTER, ...opts });
  const { port } = await api.listenGrpc('127.0.0.1', 0);
  const client = new LogClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  open.push(async () => {
    client.close();
    await api.close(1000);
  });
  return client;
}

function call<Res>(fn: (cb: (err: grpc.ServiceError | null, res?: Res) => void) => void) {
  return new Promise<Res>((resolve, reject) =>
    fn((err, res) => (err ? reject(err) : resolve(res as Res))),
  );
}

async function failure(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  assert.fail('expected the call to fail');
}

const leader: LeaderHint = { id: 'n2', addr: '10.0.0.2:8400' };
const notLeader = (err: unknown) =>
  err instanceof FakeNotLeaderError ? { leader: err.leader } : undefined;

describe('log service over fakes', () => {
  it('matches registered rows by class; an unknown error is INTERNAL without its text', async () => {
    const log = new MemoryCommitLog();
    const client = await serve({
      log,
      errorStatuses: [
        errorStatus(FakeOutOfRangeError, {
          grpc: grpc.status.OUT_OF_RANGE,
          http: 404,
          localized: true,
        }),
      ],
    });
    const outOfRange = await failure(call((cb) => client.consume({ offset: 5n }, cb)));
    assert.equal(outOfRange.code, grpc.status.OUT_OF_RANGE);
    assert.equal(outOfRange.details, 'offset 5 is out of range');
    log.refuse = () => new Error('secret internals');
    const internal = await failure(call((cb) => client.produce({ record: record('x') }, cb)));
    assert.equal(internal.code, grpc.status.INTERNAL);
    assert.equal(internal.details, 'internal error');
  });

  it('answers a follower refusal with NOT_LEADER and the leader in an ErrorInfo', async () => {
    const log = new MemoryCommitLog();
    log.refuse = () => new FakeNotLeaderError(leader);
    const client = await serve({ log, notLeader });
    const err = await failure(
      call<ProduceResponse>((cb) => client.produce({ record: record('x') }, cb)),
    );
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    const [bin] = err.metadata.get('grpc-status-details-bin');
    assert.ok(Buffer.isBuffer(bin));
    const details = decodeStatusDetails(bin);
    assert.deepEqual(details.errorInfo, [
      {
        reason: 'NOT_LEADER',
        domain: 'commitlog',
        metadata: { leader_id: 'n2', leader_addr: '10.0.0.2:8400' },
      },
    ]);
    assert.match(details.localized[0]?.message ?? '', /leader is n2 at 10\.0\.0\.2:8400/);
    // No leader known: still NOT_LEADER, without metadata.
    log.refuse = () => new FakeNotLeaderError();
    const none = await failure(call((cb) => client.produceBatch({ records: [record('y')] }, cb)));
    const [noneBin] = none.metadata.get('grpc-status-details-bin');
    assert.ok(Buffer.isBuffer(noneBin));
    assert.deepEqual(decodeStatusDetails(noneBin).errorInfo[0]?.metadata, {});
  });

  it('forwards a refused produce to the leader once, and answers with its offset', async () => {
    const log = new MemoryCommitLog();
    log.refuse = () => new FakeNotLeaderError(leader);
    const forwarded: { values: string[]; to: LeaderHint }[] = [];
    const forwarder: LeaderForwarder = {
      append: async (values, to) => {
        forwarded.push({ values: values.map((v) => Buffer.from(v).toString()), to });
        return 41n;
      },
    };
    const client = await serve({ log, notLeader, forwarder });
    const res = await call<ProduceResponse>((cb) => client.produce({ record: record('a') }, cb));
    assert.equal(res.offset, 41n);
    const batch = await call<{ firstOffset: bigint; count: number }>((cb) =>
      client.produceBatch({ records: [record('b'), record('c')] }, cb),
    );
    assert.deepEqual(batch, { firstOffset: 41n, count: 2 });
    assert.deepEqual(forwarded, [
      { values: ['a'], to: leader },
      { values: ['b', 'c'], to: leader },
    ]);
    assert.equal(log.appended.length, 0, 'nothing was appended here');
  });

  it('sends stored wire bytes with the offset appended, and the entry term', async () => {
    const log = new MemoryCommitLog(7n);
    log.push(Buffer.from('plain'));
    // A stored Record without its offset: value "wired" (field 1), term 9 (field 3).
    const wire = Buffer.concat([
      Buffer.from([0x0a, 5]),
      Buffer.from('wired'),
      Buffer.from([0x18, 9]),
    ]);
    log.push(Buffer.from('ignored: wire wins'), wire);
    const client = await serve({ log });
    const plain = await call<ConsumeResponse>((cb) => client.consume({ offset: 0n }, cb));
    assert.deepEqual(plain.record, { value: Buffer.from('plain'), offset: 0n, term: 7n, type: 0 });
    const wired = await call<ConsumeResponse>((cb) => client.consume({ offset: 1n }, cb));
    assert.deepEqual(wired.record, { value: Buffer.from('wired'), offset: 1n, term: 9n, type: 0 });
  });

  it('answers GetServers from the cluster view', async () => {
    const cluster: ClusterView = {
      servers: async () => [
        { id: 'n1', rpcAddr: 'a:1', isLeader: false, suffrage: 'voter', matchIndex: 3, lag: 1 },
        { id: 'n2', rpcAddr: 'b:1', isLeader: true },
      ],
      leader: () => leader,
    };
    const client = await serve({ log: new MemoryCommitLog(), cluster });
    const res = await call<GetServersResponse>((cb) => client.getServers({}, cb));
    assert.deepEqual(res.servers, [
      {
        id: 'n1',
        rpcAddr: 'a:1',
        isLeader: false,
        raftId: '',
        suffrage: 'voter',
        matchIndex: 3n,
        lag: 1n,
      },
      {
        id: 'n2',
        rpcAddr: 'b:1',
        isLeader: true,
        raftId: '',
        suffrage: '',
        matchIndex: 0n,
        lag: 0n,
      },
    ]);
  });
});
