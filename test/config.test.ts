import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

// ---------------------------------------------------------------------------------------------
// YAML 1.1 (PyYAML safe_load), TLS keys, targets, file mode, environment
// ---------------------------------------------------------------------------------------------

const BASE = 'default:\n  user: a@pve\n  password: x\n';

test('YAML 1.1 booleans as PyYAML reads them: yes/no/on/off in three cases', () => {
  for (const [word, value] of [
    ['no', false], ['No', false], ['NO', false], ['off', false], ['Off', false], ['OFF', false], ['false', false], ['False', false],
    ['yes', true], ['Yes', true], ['YES', true], ['on', true], ['On', true], ['ON', true], ['true', true], ['TRUE', true],
  ] as const) {
    const cfg = parseConfigText(`${BASE}  verify_ssl: ${word}\n`, 'pve.yml');
    assert.equal(cfg.modules.get('default')!.verifySsl, value, word);
  }
  // PyYAML keeps y and n as strings; a string is a CA bundle path, so "n" is a file that is not there.
  expectError(`${BASE}  verify_ssl: n\n`, 'key "verify_ssl"', 'cannot read n');
});

test('anchors and <<: merge keys work (YAML 1.1)', () => {
  const cfg = parseConfigText(
    `common: &common
  user: monitoring@pve
  token_name: exporter
  token_value: abc
  verify_ssl: off
  timeout: 1:30
ve-01:
  <<: *common
  port: 443
ve-02:
  <<: *common
  verify_ssl: on
`,
    'pve.yml',
  );
  const a = cfg.modules.get('ve-01')!;
  assert.equal(a.user, 'monitoring@pve');
  assert.equal(a.tokenValue, 'abc');
  assert.equal(a.verifySsl, false);
  assert.equal(a.port, 443);
  assert.equal(a.timeout, 90, 'YAML 1.1 sexagesimal, as PyYAML reads it');
  assert.equal(cfg.modules.get('ve-02')!.verifySsl, true);
});

test('YAML syntax errors name file:line:col', () => {
  expectError('default:\n  user: a@pve\n  password: [x\n', /^config \/etc\/prometheus\/pve\.yml:\d+:\d+: invalid YAML/);
  expectError('default:\n  user: a@pve\n  password: x\n bad: [\n', /^config \/etc\/prometheus\/pve\.yml:4:\d+: invalid YAML/);
});

test('verify_ssl: <path> is ca_file, as in requests; not both', () => {
  const m = parseConfigText(`${BASE}  verify_ssl: ${SIM_CA}\n`, 'pve.yml').modules.get('default')!;
  assert.equal(m.verifySsl, true);
  assert.equal(m.caFile, SIM_CA);
  assert.match(m.ca ?? '', /BEGIN CERTIFICATE/);
  expectError(`${BASE}  verify_ssl: ${SIM_CA}\n  ca_file: ${SIM_CA}\n`, 'key "verify_ssl"', 'keep one of them');
});

test('ca_file is parsed at load: every PEM block must be a certificate', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pvecfg-'));
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const simCa = readFileSync(SIM_CA, 'utf8');
  const key = readFileSync(fileURLToPath(new URL('../sim/tls/server-key.pem', import.meta.url)), 'utf8');
  const garbage = write('garbage.pem', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const withKey = write('with-key.pem', simCa + key);
  const truncated = write('truncated.pem', simCa + simCa.slice(0, 200));
  const empty = write('empty.pem', 'not a pem file\n');
  const bundle = write('bundle.pem', `subject=test\n${simCa}\n${readFileSync(fileURLToPath(new URL('../sim/tls/server.pem', import.meta.url)), 'utf8')}`);
  expectError(`${BASE}  ca_file: ${garbage}\n`, 'pve.yml:4', 'module "default"', 'key "ca_file"', garbage, 'block 1 is not a valid certificate');
  expectError(`${BASE}  ca_file: ${withKey}\n`, 'key "ca_file"', 'block 2 is a PRIVATE KEY, not a CERTIFICATE');
  expectError(`${BASE}  ca_file: ${truncated}\n`, 'key "ca_file"', 'without its END line');
  expectError(`${BASE}  ca_file: ${empty}\n`, 'key "ca_file"', 'holds no PEM certificate');
  const withLeaf = parseConfigText(`${BASE}  ca_file: ${bundle}\n  targets: [pve1]\n`, 'pve.yml');
  assert.match(withLeaf.modules.get('default')!.ca ?? '', /BEGIN CERTIFICATE/);
  // The bundle's second block is the simulator's server certificate: a leaf, not a CA.
  assert.equal(withLeaf.warnings.length, 1);
  assert.match(withLeaf.warnings[0], /key "ca_file".*block 2 \(CN=localhost\) is not a CA certificate.*pve-root-ca\.pem/);
  // A CA that verify_ssl: false or a pin makes useless is pointed out.
  const unused = parseConfigText(`${BASE}  ca_file: ${bundle}\n  verify_ssl: false\n  targets: [pve1]\n`, 'pve.yml');
  assert.match(unused.warnings.join('\n'), /key "ca_file".*not used because verify_ssl is false/);
});

test('fingerprint: a string or a list, each normalised, bad entries named', () => {
  const a = 'ab'.repeat(32);
  const b = Array(32).fill('CD').join(':');
  const m = parseConfigText(`${BASE}  fingerprint:\n    - "${a}"\n    - "${b.toLowerCase()}"\n    - "${a}"\n`, 'pve.yml').modules.get('default')!;
  assert.deepEqual(m.fingerprints, [Array(32).fill('AB').join(':'), b]);
  expectError(`${BASE}  fingerprint: ["${a}", "zz"]\n`, 'key "fingerprint"', 'entry 2', 'SHA-256');
  expectError(`${BASE}  fingerprint: []\n`, 'key "fingerprint"', 'non-empty list');
});

test('server_name must be a DNS name', () => {
  assert.equal(parseConfigText(`${BASE}  server_name: pve.example.com\n`, 'pve.yml').modules.get('default')!.serverName, 'pve.example.com');
  expectError(`${BASE}  server_name: "https://pve"\n`, 'key "server_name"', 'DNS name');
  expectError(`${BASE}  server_name: 10.0.0.1\n`, 'key "server_name"', 'DNS name');
});

test('gzip: on by default, a boolean (YAML 1.1 yes/no too), PVE_GZIP in the environment', () => {
  const read = (text: string) => parseConfigText(text, 'pve.yml').modules.get('default')!.gzip;
  assert.equal(read(BASE), true);
  assert.equal(read(`${BASE}  gzip: false\n`), false);
  assert.equal(read(`${BASE}  gzip: no\n`), false);
  assert.equal(read(`${BASE}  gzip: on\n`), true);
  expectError(`${BASE}  gzip: level6\n`, 'module "default"', 'key "gzip"', 'true or false');
  expectError(`${BASE}  gzip: 1\n`, 'key "gzip"', 'true or false');
  const fromEnv = (value?: string) => loadConfigFromEnv({ PVE_USER: 'a@pve', PVE_PASSWORD: 'p', PVE_GZIP: value }).modules.get('default')!.gzip;
  assert.equal(fromEnv(undefined), true);
  assert.equal(fromEnv('false'), false);
  assert.equal(fromEnv('0'), false);
  assert.equal(fromEnv('1'), true);
  assert.throws(() => fromEnv('maybe'), /environment PVE_GZIP: expected true\/false/);
});

test('targets: an allow-list; bad entries fail at load with file, module, key and entry', () => {
  const m = parseConfigText(`${BASE}  targets:\n    - pve1.example.com\n    - "[fd00::1]:8006"\n    - 10.0.0.0/24\n`, 'pve.yml').modules.get('default')!;
  assert.deepEqual(m.targets?.entries, ['pve1.example.com', '[fd00::1]:8006', '10.0.0.0/24']);
  assert.ok(m.targets!.allows('10.0.0.5', 8006) && !m.targets!.allows('10.0.1.5', 8006));
  expectError(`${BASE}  targets:\n    - pve1\n    - 10.0.0.0/33\n`, 'pve.yml:4', 'module "default"', 'key "targets"', 'entry 2 "10.0.0.0/33"', 'prefix length');
  expectError(`${BASE}  targets: pve1\n`, 'key "targets"', 'list');
  expectError(`${BASE}  targets: []\n`, 'key "targets"', 'at least one');
  expectError(`${BASE}  targets: [8006]\n`, 'key "targets"', 'list of strings');
  // With targets, no warning about them.
  assert.deepEqual(parseConfigText(`${BASE}  targets: [pve1]\n`, 'pve.yml').warnings, []);
});

test('a world-readable pve.yml with secrets gives a warning naming the file and chmod 600', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pvecfg-'));
  const file = path.join(dir, 'pve.yml');
  writeFileSync(file, `${BASE}  targets: [pve1]\n`);
  chmodSync(file, 0o644);
  const open = loadConfigFile(file).warnings.filter((w) => w.includes('readable by every user'));
  assert.equal(open.length, 1);
  assert.ok(open[0].includes(`config ${file}`) && open[0].includes(`chmod 600 ${file}`) && open[0].includes('mode 0644'), open[0]);
  assert.ok(open[0].includes('"default" (password)') && !open[0].includes(': x'), 'names the key, never the value');
  chmodSync(file, 0o640);
  assert.deepEqual(loadConfigFile(file).warnings, []);
});

test('PVE_CA_FILE, PVE_FINGERPRINT, PVE_SERVER_NAME and PVE_TARGETS', () => {
  const fp1 = Array(32).fill('AB').join(':');
  const fp2 = Array(32).fill('CD').join(':');
  const cfg = loadConfigFromEnv({
    PVE_USER: 'a@pve',
    PVE_TOKEN_NAME: 'exporter',
    PVE_TOKEN_VALUE: 'abc',
    PVE_CA_FILE: SIM_CA,
    PVE_FINGERPRINT: `${fp1}, ${fp2.toLowerCase()}`,
    PVE_SERVER_NAME: 'pve.example.com',
    PVE_TARGETS: 'pve1.example.com, 10.0.0.0/24,[fd00::1]:8006',
  });
  const m = cfg.modules.get('default')!;
  assert.equal(m.caFile, SIM_CA);
  assert.deepEqual(m.fingerprints, [fp1, fp2]);
  assert.equal(m.serverName, 'pve.example.com');
  assert.deepEqual(m.targets?.entries, ['pve1.example.com', '10.0.0.0/24', '[fd00::1]:8006']);
  assert.throws(() => loadConfigFromEnv({ PVE_USER: 'a@pve', PVE_PASSWORD: 'p', PVE_TARGETS: 'pve1,10.0.0.0/99' }), /environment \(module "default", PVE_TARGETS\): targets entry 2/);
  assert.throws(() => loadConfigFromEnv({ PVE_USER: 'a@pve', PVE_PASSWORD: 'p', PVE_CA_FILE: '/nonexistent.pem' }), /PVE_CA_FILE.*cannot read/);
  assert.match(loadConfigFromEnv({ PVE_USER: 'a@pve', PVE_PASSWORD: 'p' }).warnings.join('\n'), /PVE_\*\).*no "targets:"/);
});
