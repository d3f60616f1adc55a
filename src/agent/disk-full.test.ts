// A full disk as clients see it: RESOURCE_EXHAUSTED (gRPC) and 507 (HTTP) saying so,
// for a write that hit ENOSPC and for the free-space reserve; and produces succeed
// again once space returns, without a restart.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { LogClient } from '../api/index.js';
import { Log } from '../log/index.js';
import { faultyFs, type FaultyFs } from '../log/testing/index.js';
import { ApiServer } from '../server/index.js';
import { DiskSpaceGuard } from './disk-space.js';
import { LOG_ERROR_STATUSES } from './error-statuses.js';
import { LocalCommitLog } from './local-log.js';

describe('a full disk, through the APIs', () => {
  let dir: string;
  let fs: FaultyFs;
  let log: Log;
  let api: ApiServer;
  let client: LogClient;
  let http: string;
  let free = Number.MAX_SAFE_INTEGER;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-disk-full-'));
    fs = faultyFs();
    log = await Log.open(dir, { fs });
    const space = new DiskSpaceGuard({
      dir,
      minFreeBytes: 1024,
      freeBytes: async () => free,
      maxAgeMs: 0,
    });
    api = new ApiServer({
      log: space.guard(new LocalCommitLog(log)),
      cluster: { servers: async () => [], leader: () => undefined },
      errorStatuses: LOG_ERROR_STATUSES,
    });
    const rpc = await api.listenGrpc('127.0.0.1', 0);
    const bound = await api.listenHttp('127.0.0.1', 0);
    http = `http://127.0.0.1:${bound.port}`;
    client = new LogClient(`127.0.0.1:${rpc.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await api?.close(1000);
    await log?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function produce(value: string): Promise<bigint> {
    return new Promise((resolve, reject) =>
      client.produce(
        { record: { value: Buffer.from(value), offset: 0n, term: 0n, type: 0 } },
        (err, res) => (err ? reject(err) : resolve(res?.offset ?? -1n)),
      ),
    );
  }

  async function post(value: string): Promise<{ status: number; body: { error?: string } }> {
    const res = await fetch(`${http}/v1/records`, {
      method: 'POST',
      body: JSON.stringify({ value: Buffer.from(value).toString('base64') }),
    });
    return { status: res.status, body: (await res.json()) as { error?: string } };
  }

  it('a write that hits ENOSPC: RESOURCE_EXHAUSTED and 507 saying so; then produces go on', async () => {
    assert.equal(await produce('before'), 0n);
    fs.fail({ op: 'write', path: /\.store$/, code: 'ENOSPC', partial: true, sticky: true });
    await assert.rejects(produce('full'), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(
        err.details,
        /no space left on the device holding .*: the records were not written/,
      );
      return true;
    });
    const refused = await post('full');
    assert.equal(refused.status, 507);
    assert.match(refused.body.error ?? '', /no space left on the device/);
    fs.clear(); // space returns
    assert.equal(await produce('after'), 1n);
    assert.equal((await post('after http')).status, 200);
  });

  it('below the free-space reserve: refused before writing, naming --min-free-bytes', async () => {
    free = 100;
    await assert.rejects(produce('low'), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(err.details, /100 bytes free, below --min-free-bytes 1024/);
      return true;
    });
    assert.equal((await post('low')).status, 507);
    free = Number.MAX_SAFE_INTEGER;
    assert.equal(await produce('space again'), 3n);
  });
});
