// How the workload files a client error: failed (certainly not applied) or unknown.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { outcomeOfError } from './workload.js';

function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), {
    code,
    details,
    metadata: new grpc.Metadata(),
  });
}

describe('chaos workload outcomes', () => {
  it('a full disk is a failed produce, whether answered RESOURCE_EXHAUSTED or INTERNAL', () => {
    const full = outcomeOfError(
      grpcError(grpc.status.RESOURCE_EXHAUSTED, 'the disk is full: ENOSPC'),
    );
    assert.equal(full.type, 'failed');
    const internal = outcomeOfError(
      grpcError(grpc.status.INTERNAL, 'ENOSPC: no space left on device, write'),
    );
    assert.equal(internal.type, 'failed');
  });

  it('other INTERNAL errors, timeouts and cut links stay unknown', () => {
    for (const [code, details] of [
      [grpc.status.INTERNAL, 'internal error'],
      [grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'],
      [grpc.status.UNAVAILABLE, 'read ECONNRESET'],
      [grpc.status.UNAVAILABLE, 'the raft node is shut down'],
    ] as const) {
      assert.equal(outcomeOfError(grpcError(code, details)).type, 'unknown', details);
    }
  });

  it('a call grpc-js never sent is failed', () => {
    const o = outcomeOfError(
      grpcError(grpc.status.UNAVAILABLE, 'No connection established. Last error: ECONNREFUSED'),
    );
    assert.equal(o.type, 'failed');
  });
});
