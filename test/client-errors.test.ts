// CommitLogError.fromStatus: one class per failure, from the status code and details.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { encodeStatusDetails, ProduceBatchRequest } from '../src/api/index.js';
import {
  CommitLogError,
  DeadlineExceededError,
  NotLeaderError,
  OffsetOutOfRangeError,
  PermissionDeniedError,
  ProduceOutcomeUnknownError,
  raw,
  registerCommitlogPlugins,
  UnauthenticatedError,
  UnavailableError,
} from '../src/client/index.js';
import { statusWithErrorInfo } from './client-fakes.js';

function serviceError(code: grpc.status, details: string, bin?: Buffer): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (bin) metadata.set('grpc-status-details-bin', bin);
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata });
}

describe('CommitLogError.fromStatus', () => {
  it('builds one class per status code', () => {
    const cases: [grpc.status, new (...a: never[]) => CommitLogError][] = [
      [grpc.status.OUT_OF_RANGE, OffsetOutOfRangeError],
      [grpc.status.UNAVAILABLE, UnavailableError],
      [grpc.status.PERMISSION_DENIED, PermissionDeniedError],
      [grpc.status.UNAUTHENTICATED, UnauthenticatedError],
      [grpc.status.DEADLINE_EXCEEDED, DeadlineExceededError],
    ];
    for (const [code, Class] of cases) {
      const e = CommitLogError.fromStatus(serviceError(code, 'why'));
      assert.ok(e instanceof Class, `${code} → ${String(e)}`);
      assert.equal(e.code, code);
      assert.equal(e.name, Class.name);
      assert.equal(e.message, 'why');
    }
    const other = CommitLogError.fromStatus(serviceError(grpc.status.INTERNAL, 'bad'));
    assert.equal((other as Error).constructor, CommitLogError);
  });

  it('reads NOT_LEADER with the leader from an ErrorInfo detail', () => {
    const bin = statusWithErrorInfo(grpc.status.FAILED_PRECONDITION, 'not the leader', {
      reason: 'NOT_LEADER',
      metadata: { leader_id: 'n2', leader_addr: '10.0.0.2:8400' },
    });
    const e = CommitLogError.fromStatus(serviceError(grpc.status.FAILED_PRECONDITION, 'x', bin));
    assert.ok(e instanceof NotLeaderError);
    assert.equal(e.leaderId, 'n2');
    assert.equal(e.leaderAddr, '10.0.0.2:8400');
    const bare = CommitLogError.fromStatus(
      serviceError(
        grpc.status.UNAVAILABLE,
        'x',
        statusWithErrorInfo(grpc.status.UNAVAILABLE, 'no leader', {
          reason: 'NOT_LEADER',
          metadata: {},
        }),
      ),
    );
    assert.ok(bare instanceof NotLeaderError);
    assert.equal(bare.leaderAddr, undefined);
  });

  it('prefers the LocalizedMessage and ignores details it cannot decode', () => {
    const bin = encodeStatusDetails(grpc.status.OUT_OF_RANGE, 'raw', [
      { localized: { locale: 'en-US', message: 'offset 9 is past the end' } },
    ]);
    const e = CommitLogError.fromStatus(serviceError(grpc.status.OUT_OF_RANGE, 'raw', bin));
    assert.ok(e instanceof OffsetOutOfRangeError);
    assert.equal(e.message, 'offset 9 is past the end');
    const junk = CommitLogError.fromStatus(
      serviceError(grpc.status.UNAVAILABLE, 'down', Buffer.from([0xff, 0xff])),
    );
    assert.ok(junk instanceof UnavailableError);
    assert.equal(junk.message, 'down');
  });

  it('returns what is not a gRPC error unchanged; ProduceOutcomeUnknownError keeps its cause', () => {
    const plain = new Error('plain');
    assert.equal(CommitLogError.fromStatus(plain), plain);
    const cause = new UnavailableError('connection dropped', grpc.status.UNAVAILABLE);
    const unknown = new ProduceOutcomeUnknownError(cause);
    assert.equal(unknown.cause, cause);
    assert.equal(unknown.code, grpc.status.UNAVAILABLE);
    assert.equal(unknown.name, 'ProduceOutcomeUnknownError');
  });

  it('registers the grpc-js plug-ins idempotently', () => {
    registerCommitlogPlugins();
    registerCommitlogPlugins();
    assert.ok(grpc.experimental.isLoadBalancerNameRegistered('commitlog_leader'));
  });
});

describe('raw.encodeProduceBatch', () => {
  it('encodes what the generated encoder encodes', () => {
    const values = [
      Buffer.alloc(0),
      Buffer.from('a'),
      Buffer.alloc(200, 'b'),
      Buffer.alloc(70_000, 'c'),
    ];
    const generated = ProduceBatchRequest.encode({
      records: values.map((value) => ({ value, offset: 0n, term: 0n, type: 0 })),
    }).finish();
    assert.deepEqual(raw.encodeProduceBatch(values), Buffer.from(generated));
    assert.deepEqual(
      ProduceBatchRequest.decode(raw.encodeProduceBatch(values)).records.map((r) => r.value.length),
      [0, 1, 200, 70_000],
    );
  });
});
