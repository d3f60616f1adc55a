import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ACTION_CONSUME,
  ACTION_PRODUCE,
  AclConfigError,
  AclLoadError,
  Authorizer,
  DEFAULT_MODEL_CONF,
  DEFAULT_POLICY_CSV,
  OBJECT_WILDCARD,
  PermissionDeniedError,
  watchAclFiles,
} from './index.js';

const ALL = OBJECT_WILDCARD;

describe('Authorizer', () => {
  let dir: string;
  let modelFile: string;
  let policyFile: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-acl-'));
    modelFile = join(dir, 'model.conf');
    policyFile = join(dir, 'policy.csv');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function fresh(policy = DEFAULT_POLICY_CSV) {
    await writeFile(modelFile, DEFAULT_MODEL_CONF);
    await writeFile(policyFile, policy);
    return Authorizer.open({ modelFile, policyFile });
  }

  it("applies the book's policy: root produces and consumes, nobody does neither", async () => {
    const authz = await fresh();
    assert.equal(authz.mode, 'acl');
    assert.equal(authz.rules, 2);
    assert.equal(authz.authorize('root', ALL, ACTION_PRODUCE), true);
    assert.equal(authz.authorize('root', ALL, ACTION_CONSUME), true);
    assert.equal(authz.authorize('nobody', ALL, ACTION_PRODUCE), false);
    assert.equal(authz.authorize('nobody', ALL, ACTION_CONSUME), false);
    assert.equal(
      authz.authorize('', ALL, ACTION_CONSUME),
      false,
      'a blank subject is never allowed',
    );
  });

  it('check() throws PermissionDeniedError naming subject and action', async () => {
    const authz = await fresh();
    authz.check('root', ALL, ACTION_PRODUCE);
    assert.throws(
      () => authz.check('nobody', ALL, ACTION_PRODUCE),
      (err: unknown) =>
        err instanceof PermissionDeniedError &&
        err.subject === 'nobody' &&
        err.action === 'produce' &&
        err.message === 'nobody is not permitted to produce',
    );
  });

  it('caches each (subject, object, action) decision', async () => {
    const authz = await fresh();
    for (let i = 0; i < 1000; i++) {
      authz.authorize('root', ALL, ACTION_PRODUCE);
      authz.authorize('nobody', ALL, ACTION_PRODUCE);
    }
    assert.equal(authz.stats.evaluations, 2);
    assert.equal(authz.stats.cacheHits, 1998);
  });

  it('bounds the cache and starts over when it is full', async () => {
    await writeFile(modelFile, DEFAULT_MODEL_CONF);
    await writeFile(policyFile, DEFAULT_POLICY_CSV);
    const authz = await Authorizer.open({ modelFile, policyFile, cacheSize: 2 });
    authz.authorize('a', ALL, ACTION_PRODUCE);
    authz.authorize('b', ALL, ACTION_PRODUCE);
    authz.authorize('c', ALL, ACTION_PRODUCE); // clears, then caches c
    authz.authorize('a', ALL, ACTION_PRODUCE);
    assert.equal(authz.stats.evaluations, 4);
    authz.authorize('a', ALL, ACTION_PRODUCE);
    assert.equal(authz.stats.cacheHits, 1);
  });

  it('reload() picks up a policy change and drops cached decisions', async () => {
    const authz = await fresh();
    assert.equal(authz.authorize('nobody', ALL, ACTION_CONSUME), false);
    await writeFile(policyFile, `${DEFAULT_POLICY_CSV}p, nobody, *, consume\n`);
    assert.equal(authz.authorize('nobody', ALL, ACTION_CONSUME), false, 'not before reload');
    assert.deepEqual(await authz.reload(), { rules: 3 });
    assert.equal(authz.authorize('nobody', ALL, ACTION_CONSUME), true);
    assert.equal(authz.authorize('nobody', ALL, ACTION_PRODUCE), false);
    assert.equal(authz.stats.loads, 2);
  });

  it('a bad new policy keeps the old one and reports the file', async () => {
    const authz = await fresh();
    authz.authorize('root', ALL, ACTION_PRODUCE);
    for (const [bad, reason] of [
      ['p, root, *\n', /line 1: p takes 3 values, found 2/],
      ['p, root, *, produce\nq, root, *, consume\n', /line 2: unknown policy type "q"/],
    ] as const) {
      await writeFile(policyFile, bad);
      await assert.rejects(authz.reload(), (err: unknown) => {
        assert.ok(err instanceof AclLoadError);
        assert.equal(err.file, policyFile);
        assert.match(err.message, reason);
        return true;
      });
      assert.equal(authz.authorize('root', ALL, ACTION_CONSUME), true, 'old policy still in force');
    }
    await rm(policyFile);
    await assert.rejects(authz.reload(), (err: unknown) => {
      assert.ok(err instanceof AclLoadError);
      assert.equal(err.file, policyFile);
      assert.match(err.message, /does not exist/);
      return true;
    });
    await writeFile(modelFile, '[request_definition]\nr = sub, obj, act\n');
    await writeFile(policyFile, DEFAULT_POLICY_CSV);
    await assert.rejects(authz.reload(), (err: unknown) => {
      assert.ok(err instanceof AclLoadError);
      assert.equal(err.file, modelFile);
      assert.match(err.message, /missing required sections/);
      return true;
    });
    assert.equal(authz.authorize('root', ALL, ACTION_PRODUCE), true);
    assert.equal(authz.stats.loads, 1);
  });

  it('an empty policy denies everyone', async () => {
    const authz = await fresh('');
    assert.equal(authz.rules, 0);
    assert.equal(authz.authorize('root', ALL, ACTION_PRODUCE), false);
  });

  it('start-up fails naming an unreadable or invalid file', async () => {
    await assert.rejects(
      Authorizer.open({ modelFile: join(dir, 'missing.conf'), policyFile }),
      (err: unknown) => err instanceof AclLoadError && err.file === join(dir, 'missing.conf'),
    );
    await writeFile(modelFile, 'not a model');
    await assert.rejects(
      Authorizer.open({ modelFile, policyFile }),
      (err: unknown) => err instanceof AclLoadError && err.file === modelFile,
    );
    await writeFile(
      modelFile,
      DEFAULT_MODEL_CONF.replace('r.act == p.act', 'noSuchFunction(r.act)'),
    );
    await writeFile(policyFile, DEFAULT_POLICY_CSV);
    await assert.rejects(
      Authorizer.open({ modelFile, policyFile }),
      (err: unknown) =>
        err instanceof AclLoadError && err.file === modelFile && /matcher/.test(err.message),
    );
  });

  it('a model without a policy (or the reverse) is a configuration error', async () => {
    await assert.rejects(Authorizer.open({ modelFile }), AclConfigError);
    await assert.rejects(Authorizer.open({ policyFile }), /needs a model file/);
  });

  it('without ACL files, every authenticated subject is allowed', async () => {
    const authz = await Authorizer.open();
    assert.equal(authz.mode, 'allow-authenticated');
    assert.equal(authz.authorize('anyone', ALL, ACTION_PRODUCE), true);
    assert.equal(authz.authorize('', ALL, ACTION_PRODUCE), false);
    assert.deepEqual(await authz.reload(), { rules: 0 });
  });

  it('concurrent reloads run in order and the last file wins', async () => {
    const authz = await fresh();
    await writeFile(policyFile, 'p, alice, *, produce\n');
    const first = authz.reload();
    const second = authz.reload();
    await Promise.all([first, second]);
    assert.equal(authz.authorize('alice', ALL, ACTION_PRODUCE), true);
    assert.equal(authz.authorize('root', ALL, ACTION_PRODUCE), false);
  });

  it('watchAclFiles reloads when the policy file is replaced', async () => {
    const authz = await fresh();
    const reloaded = new Promise<{ rules: number }>((resolve, reject) => {
      const stop = watchAclFiles(authz, {
        debounceMs: 20,
        onReload: (r) => {
          if (authz.authorize('nobody', ALL, ACTION_PRODUCE)) {
            stop();
            resolve(r);
          }
        },
        onError: (err) => {
          stop();
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      });
      setTimeout(() => {
        stop();
        reject(new Error('no reload within 5 s'));
      }, 5000).unref();
    });
    // Like an editor: write beside, then rename over the original.
    const tmp = join(dir, 'policy.csv.new');
    await writeFile(tmp, `${DEFAULT_POLICY_CSV}p, nobody, *, produce\n`);
    await rename(tmp, policyFile);
    assert.deepEqual(await reloaded, { rules: 3 });
  });
});
