import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, loadConfigFile, loadConfigFromEnv, parseConfigText } from '../src/config.ts';

const SIM_CA = fileURLToPath(new URL('../sim/tls/ca.pem', import.meta.url));

const GOOD = `default:
  user: monitoring@pve
  token_name: exporter
  token_value: 8a6e5b5e-1c2d-4e3f-9a0b-1c2d3e4f5a6b
  verify_ssl: false
cluster2:
  user: root@pam
  password: "s3cret"
  port: 443
  timeout: 12.5
`;

function expectError(text: string, ...parts: (string | RegExp)[]): void {
  assert.throws(
    () => parseConfigText(text, '/etc/prometheus/pve.yml'),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      for (const p of parts) {
        if (typeof p === 'string') assert.ok(err.message.includes(p), `"${err.message}" should contain "${p}"`);
        else assert.match(err.message, p);
      }
      return true;
    },
  );
}

test('a valid pve.yml gives modules with defaults applied', () => {
  const cfg = parseConfigText(GOOD, 'pve.yml');
  assert.deepEqual([...cfg.modules.keys()], ['default', 'cluster2']);
  const d = cfg.modules.get('default')!;
  assert.equal(d.user, 'monitoring@pve');
  assert.equal(d.tokenName, 'exporter');
  assert.equal(d.verifySsl, false);
  assert.equal(d.port, 8006);
  assert.equal(d.timeout, 5);
  const c = cfg.modules.get('cluster2')!;
  assert.equal(c.password, 's3cret');
  assert.equal(c.verifySsl, true);
  assert.equal(c.port, 443);
  assert.equal(c.timeout, 12.5);
  assert.deepEqual(d.fingerprints, []);
  assert.equal(d.targets, undefined);
  // Without targets: one warning per module, saying the risk and the fix.
  assert.equal(cfg.warnings.length, 2);
  assert.match(cfg.warnings[0], /module "default".*no "targets:" allow-list.*any host a caller names.*targets: \[/);
  assert.match(cfg.warnings[1], /module "cluster2".*no "targets:"/);
});

test('missing file names the file', () => {
  assert.throws(() => loadConfigFile('/nonexistent/pve.yml'), /config \/nonexistent\/pve\.yml: cannot read: file not found/);
});

test('malformed YAML names file, line and column', () => {
  expectError('default:\n  user: [unclosed\n', '/etc/prometheus/pve.yml:', 'invalid YAML');
});

test('empty file and non-mapping are rejected', () => {
  expectError('', 'file is empty');
  expectError('# only a comment\n', 'file is empty');
  expectError('- a\n- b\n', 'expected a mapping', 'a list');
  expectError('just a string\n', 'expected a mapping');
  expectError('default: 42\n', 'module "default"', 'must be a mapping');
});

test('module without credentials, or with half a token, is rejected', () => {
  expectError('default:\n  user: monitoring@pve\n', 'module "default"', 'credentials missing');
  expectError('default:\n  user: a@pve\n  token_name: x\n', 'key "token_name"', 'token_value is required when token_name is set');
  expectError('default:\n  user: a@pve\n  token_value: x\n', 'key "token_value"', 'token_name is required');
  expectError('default:\n  password: x\n', 'module "default"', 'user');
  expectError('default:\n  user: monitoring\n  password: x\n', 'key "user"', 'realm');
});

test('unknown keys are rejected with module, key and line', () => {
  expectError('default:\n  user: a@pve\n  password: x\n  insecure: true\n', 'pve.yml:4', 'module "default"', 'key "insecure"', 'verify_ssl: false');
  expectError('ve-01:\n  user: a@pve\n  password: x\n  host: 10.0.0.1\n', 'module "ve-01"', 'key "host"', 'target');
});

test('proxmoxer options without meaning are accepted with a warning', () => {
  const cfg = parseConfigText('default:\n  user: a@pve\n  password: x\n  backend: https\n  service: PVE\n  targets: [pve1]\n', 'pve.yml');
  assert.equal(cfg.warnings.length, 2);
  assert.match(cfg.warnings[0], /module "default", key "backend".*ignored/);
  assert.match(cfg.warnings[1], /key "service"/);
});

test('wrong types name the key', () => {
  expectError('default:\n  user: a@pve\n  password: x\n  verify_ssl: 42\n', 'key "verify_ssl"', 'true, false, or the path of a CA bundle');
  expectError('default:\n  user: a@pve\n  password: x\n  port: 70000\n', 'key "port"', '1..65535');
  expectError('default:\n  user: a@pve\n  password: x\n  timeout: -1\n', 'key "timeout"', 'greater than 0');
  expectError('default:\n  user: a@pve\n  password: 1234\n', 'key "password"', 'string');
  expectError('default:\n  user: a@pve\n  password: x\n  fingerprint: "zz"\n', 'key "fingerprint"', 'SHA-256');
  expectError('default:\n  user: a@pve\n  password: x\n  ca_file: /nonexistent.pem\n', 'key "ca_file"', 'cannot read');
  expectError('default:\n  user: a@pve\n  token_name: "a!b"\n  token_value: x\n', 'key "token_name"', 'token id only');
});

test('duplicate keys are a YAML error', () => {
  expectError('default:\n  user: a@pve\n  user: b@pve\n  password: x\n', 'invalid YAML');
});

test('fingerprint is normalised and ca_file is read', () => {
  const ca = SIM_CA;
  const fp = 'ab'.repeat(32);
  const cfg = parseConfigText(`default:\n  user: a@pve\n  password: x\n  fingerprint: "${fp}"\n  ca_file: ${ca}\n`, 'pve.yml');
  const m = cfg.modules.get('default')!;
  assert.deepEqual(m.fingerprints, [Array(32).fill('AB').join(':')]);
  assert.match(m.ca ?? '', /BEGIN CERTIFICATE/);
});

test('PVE_* environment replaces the file when PVE_USER is set', () => {
  const cfg = loadConfig('/nonexistent/pve.yml', {
    PVE_USER: 'monitoring@pve',
    PVE_TOKEN_NAME: 'exporter',
    PVE_TOKEN_VALUE: 'abc',
    PVE_VERIFY_SSL: 'false',
  });
  const m = cfg.modules.get('default')!;
  assert.equal(cfg.source, 'environment');
  assert.equal(m.tokenValue, 'abc');
  assert.equal(m.verifySsl, false);
  const named = loadConfigFromEnv({ PVE_USER: 'a@pve', PVE_PASSWORD: 'p', PVE_MODULE: 'mine', PVE_VERIFY_SSL: '0' });
  assert.deepEqual([...named.modules.keys()], ['mine']);
  assert.equal(named.modules.get('mine')!.verifySsl, false);
  assert.equal(loadConfigFromEnv({ PVE_USER: 'a@pve', PVE_PASSWORD: 'p' }).modules.get('default')!.verifySsl, true);
  assert.throws(() => loadConfigFromEnv({ PVE_USER: 'a@pve' }), /environment.*credentials missing/);
  assert.throws(() => loadConfigFromEnv({ PVE_USER: 'a@pve', PVE_PASSWORD: 'p', PVE_VERIFY_SSL: 'maybe' }), /PVE_VERIFY_SSL/);
});

test('config errors never echo a secret', () => {
  const secret = 'TOPSECRET-VALUE-123';
  for (const text of [
    `default:\n  user: a@pve\n  token_value: ${secret}\n`,
    `default:\n  user: nobody\n  password: ${secret}\n`,
    `default:\n  user: a@pve\n  password: ${secret}\n  insecure: 1\n`,
  ]) {
    assert.throws(() => parseConfigText(text, 'pve.yml'), (err: unknown) => !(err as Error).message.includes(secret));
  }
});
