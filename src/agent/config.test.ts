import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  CONFIG_ROWS,
  ConfigError,
  defaultConfig,
  defaultText,
  envName,
  formatFsync,
  resolveConfig,
  securitySettings,
  valueAt,
} from './config.js';

describe('agent configuration', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commitlog-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  it('has the book-compatible single-node defaults', async () => {
    const config = await resolveConfig({});
    assert.equal(config.dataDir, './data');
    assert.equal(config.bindAddr, '127.0.0.1:8401');
    assert.equal(config.rpcPort, 8400);
    assert.equal(config.httpPort, 8080);
    assert.equal(config.storage.fsync, 'always');
    assert.equal(config.raft.bootstrap, true, 'bootstrap is implied without join addresses');
    assert.equal(envName('segment-max-bytes'), 'COMMITLOG_SEGMENT_MAX_BYTES');
  });

  it('takes flags over environment over config file over defaults', async () => {
    const yaml = await file(
      'a.yaml',
      'data-dir: /from/file\nrpc-port: 1001\nhttp-port: 2001\nfsync: never\n',
    );
    const config = await resolveConfig({
      flags: { 'config-file': yaml, 'rpc-port': '1003' },
      env: { COMMITLOG_RPC_PORT: '1002', COMMITLOG_HTTP_PORT: '2002' },
    });
    assert.equal(config.rpcPort, 1003, 'flag wins');
    assert.equal(config.httpPort, 2002, 'environment beats the file');
    assert.equal(config.dataDir, '/from/file', 'file beats the default');
    assert.equal(config.storage.fsync, 'never');
    assert.equal(config.nodeName, defaultConfig().nodeName);
  });

  it('reads JSON config files and lists for start-join-addrs', async () => {
    const json = await file(
      'a.json',
      JSON.stringify({
        'start-join-addrs': ['127.0.0.1:9401', '127.0.0.1:9402'],
        bootstrap: false,
      }),
    );
    const config = await resolveConfig({ flags: { 'config-file': json } });
    assert.deepEqual(config.membership.startJoinAddrs, ['127.0.0.1:9401', '127.0.0.1:9402']);
    assert.equal(config.raft.bootstrap, false);
    const fromEnv = await resolveConfig({ env: { COMMITLOG_START_JOIN_ADDRS: 'a:1, b:2' } });
    assert.deepEqual(fromEnv.membership.startJoinAddrs, ['a:1', 'b:2']);
  });

  it('reads the telemetry keys, with metrics on and tracing off by default', async () => {
    const defaults = await resolveConfig({});
    assert.equal(defaults.telemetry.logFormat, 'auto');
    assert.equal(defaults.telemetry.metrics, true);
    assert.equal(defaults.telemetry.otlpEndpoint, undefined);
    assert.equal(defaults.telemetry.traceFile, undefined);
    assert.equal(defaults.telemetry.traceSampleRatio, 1);
    const set = await resolveConfig({
      flags: { 'log-level': 'DEBUG', 'trace-file': '/tmp/t.jsonl', 'trace-sample-ratio': '0.1' },
      env: { COMMITLOG_METRICS: 'false', COMMITLOG_OTLP_ENDPOINT: 'http://collector:4318' },
    });
    assert.equal(set.telemetry.logLevel, 'debug');
    assert.equal(set.telemetry.metrics, false);
    assert.equal(set.telemetry.otlpEndpoint, 'http://collector:4318');
    assert.equal(set.telemetry.traceFile, '/tmp/t.jsonl');
    assert.equal(set.telemetry.traceSampleRatio, 0.1);
  });

  it('names the key and its source for every bad value', async () => {
    const cases: [Parameters<typeof resolveConfig>[0], string, RegExp][] = [
      [{ flags: { 'rpc-port': '70000' } }, 'rpc-port', /from 0 to 65535.*flag --rpc-port/],
      [
        { env: { COMMITLOG_HTTP_PORT: '' } },
        'http-port',
        /environment variable COMMITLOG_HTTP_PORT/,
      ],
      [{ flags: { fsync: 'sometimes' } }, 'fsync', /always, never or interval:<ms>/],
      [{ flags: { 'log-level': 'loud' } }, 'log-level', /one of fatal, error, warn, info, debug/],
      [{ flags: { 'log-format': 'xml' } }, 'log-format', /one of auto, json, pretty.*"xml"/],
      [{ env: { COMMITLOG_METRICS: 'no' } }, 'metrics', /true or false.*COMMITLOG_METRICS/],
      [{ flags: { 'otlp-endpoint': 'localhost:4318' } }, 'otlp-endpoint', /http:\/\/ or https/],
      [{ flags: { 'trace-sample-ratio': '2' } }, 'trace-sample-ratio', /from 0 to 1, got "2"/],
      [{ flags: { 'bind-addr': 'nohost' } }, 'bind-addr', /host:port/],
      [{ flags: { insecure: 'yes' } }, 'insecure', /true or false/],
      [{ flags: { 'segment-max-bytes': '12' } }, 'segment-max-bytes', /from 1024/],
      [{ flags: { 'start-join-addrs': 'a:1,b' } }, 'start-join-addrs[1]', /host:port/],
    ];
    for (const [sources, key, message] of cases) {
      await assert.rejects(resolveConfig(sources), (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.key, key);
        assert.match(err.message, message);
        return true;
      });
    }
  });

  it('refuses unknown keys, non-mapping files and unreadable files', async () => {
    const typo = await file('typo.yaml', 'data_dir: /x\n');
    await assert.rejects(
      resolveConfig({ flags: { 'config-file': typo } }),
      /data_dir: unknown key in config file/,
    );
    const list = await file('list.yaml', '- a\n- b\n');
    await assert.rejects(
      resolveConfig({ flags: { 'config-file': list } }),
      /config-file: .* must hold a mapping/,
    );
    const nested = await file('nested.yaml', 'data-dir:\n  path: /x\n');
    await assert.rejects(
      resolveConfig({ flags: { 'config-file': nested } }),
      /data-dir: has an unsupported value/,
    );
    await assert.rejects(
      resolveConfig({ flags: { 'config-file': join(dir, 'missing.yaml') } }),
      /config-file: cannot read/,
    );
  });

  it('refuses a misspelled COMMITLOG_* environment variable, suggesting the key', async () => {
    await assert.rejects(
      resolveConfig({ env: { COMMITLOG_RPCPORT: '9000' } }),
      /COMMITLOG_RPCPORT: unknown environment variable \(did you mean COMMITLOG_RPC_PORT\?/,
    );
    // The client commands' variable and other programs' variables are not the agent's concern.
    const config = await resolveConfig({
      env: { COMMITLOG_ADDR: 'a:1', COMMITLOG_RPC_PORT: '9000', HOME: '/root' },
    });
    assert.equal(config.rpcPort, 9000);
  });

  it('refuses a non-loopback bind without TLS unless --insecure', async () => {
    await assert.rejects(
      resolveConfig({ flags: { 'bind-addr': '0.0.0.0:8401' } }),
      /^ConfigError: bind-addr: 0\.0\.0\.0 is not a loopback address; serving it without TLS needs --insecure/,
    );
    const open = await resolveConfig({ flags: { 'bind-addr': '0.0.0.0:8401', insecure: true } });
    assert.equal(open.insecure, true);
    const tls = await resolveConfig({
      flags: {
        'bind-addr': '0.0.0.0:8401',
        'server-tls-cert-file': 'server.pem',
        'server-tls-key-file': 'server-key.pem',
        'server-tls-ca-file': 'ca.pem',
      },
    });
    assert.deepEqual(securitySettings(tls).serverTls, {
      certFile: 'server.pem',
      keyFile: 'server-key.pem',
      caFile: 'ca.pem',
    });
  });

  it('takes TLS files three at a time and ACL files two at a time, ACLs only with TLS', async () => {
    await assert.rejects(
      resolveConfig({ flags: { 'server-tls-cert-file': 'server.pem' } }),
      /server-tls-cert-file: needs .* together \(missing --server-tls-key-file, --server-tls-ca-file\)/,
    );
    await assert.rejects(
      resolveConfig({ env: { COMMITLOG_PEER_TLS_CA_FILE: 'ca.pem' } }),
      /peer-tls-ca-file: needs .* together/,
    );
    await assert.rejects(
      resolveConfig({ flags: { 'acl-policy-file': 'policy.csv' } }),
      /acl-policy-file: needs --acl-model-file and --acl-policy-file together/,
    );
    await assert.rejects(
      resolveConfig({ flags: { 'acl-model-file': 'model.conf', 'acl-policy-file': 'policy.csv' } }),
      /acl-model-file: ACLs need server TLS/,
    );
  });

  it("takes the log library's fsync grammar, interval:100ms included", async () => {
    const plain = await resolveConfig({ flags: { fsync: 'interval:100' } });
    assert.deepEqual(plain.storage.fsync, { intervalMs: 100 });
    const withUnit = await resolveConfig({ env: { COMMITLOG_FSYNC: 'interval:100ms' } });
    assert.deepEqual(withUnit.storage.fsync, { intervalMs: 100 });
    assert.equal(formatFsync(withUnit.storage.fsync), 'interval:100');
  });

  it('keeps the reason and the origin of a bad value as fields', async () => {
    await assert.rejects(resolveConfig({ flags: { 'rpc-port': 'x' } }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.reason, 'must be an integer from 0 to 65535, got "x"');
      assert.equal(err.origin, 'flag --rpc-port');
      return true;
    });
  });

  it('has one row per key, each landing in its own place in the grouped config', () => {
    const defaults = defaultConfig();
    const paths = new Set<string>();
    for (const row of CONFIG_ROWS) {
      const parent = row.path.slice(0, -1);
      assert.equal(typeof valueAt(defaults, parent), 'object', `${row.key}: ${row.path.join('.')}`);
      assert.ok(!paths.has(row.path.join('.')), `${row.key} shares its place`);
      paths.add(row.path.join('.'));
      assert.ok(row.help.length > 0);
    }
    assert.equal(defaultText(CONFIG_ROWS.find((r) => r.key === 'rpc-port')!), '8400');
    assert.equal(defaultText(CONFIG_ROWS.find((r) => r.key === 'fsync')!), 'always');
  });

  it('derives bootstrap without mutating through the security check', async () => {
    const config = await resolveConfig({});
    const before = structuredClone(config);
    securitySettings(config);
    assert.deepEqual(config, before);
  });
});
