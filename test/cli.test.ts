// The command as operators run it: flags, --help, --version, config errors, env config, reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import semver from 'semver';
import { COLLECTORS } from '../src/collectors/registry.ts';
import { tempFile } from './helpers/exporter.ts';
import { getFreePort, waitForHttp } from './helpers/net.ts';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    timeout: 30_000,
  });
}

const GOOD = 'default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: abc\n';

test('--help lists every flag with its default', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0, r.stderr);
  const help = r.stdout.replace(/\s+/g, ' ');
  for (const [flag, def] of [
    ['--config.file', '/etc/prometheus/pve.yml'],
    ['--web.listen-address', '[::]:9221'],
    ['--pve.concurrency', '8'],
    ['--pve.config-cache-ttl', '300'],
    ['--scrape.default-timeout', '10'],
    ['--scrape.cache-ttl', '0'],
    ['--web.recent-scrapes', '50'],
    ['--log.level', 'info'],
  ]) {
    assert.ok(help.includes(flag), flag);
    assert.ok(help.includes(`default: "${def}"`) || help.includes(`default: ${def}`), `${flag} default ${def}`);
  }
  assert.ok(help.includes('--server.keyfile') && help.includes('--server.certfile'));
  for (const flag of ['--web.config.file <path>', '--web.enable-lifecycle', '--config.check']) assert.ok(help.includes(flag), flag);
  for (const c of COLLECTORS) {
    assert.ok(help.includes(`--collector.${c.name} `), c.name);
    assert.ok(help.includes(`--no-collector.${c.name} `), c.name);
    assert.ok(help.includes(`default: ${c.defaultEnabled ? 'on' : 'off'}`));
  }
});

test('--version prints the package version', () => {
  const r = run(['--version']);
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('config errors exit non-zero and name file, module and key', () => {
  const missing = run(['--config.file', '/nonexistent/pve.yml']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /config \/nonexistent\/pve\.yml: cannot read: file not found/);
  const bad = tempFile('pve.yml', 'default:\n  user: a@pve\n  password: x\n  insecure: true\n');
  const r = run(['--config.file', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /pve\.yml:4: module "default", key "insecure"/);
});

test('bad flags exit non-zero with a message', () => {
  const r = run(['--pve.concurrency', 'lots']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--pve\.concurrency must be a whole number/);
  const unknown = run(['--collector.nosuch']);
  assert.notEqual(unknown.status, 0);
  assert.match(unknown.stderr, /unknown option/);
  const half = run(['--server.keyfile', '/tmp/k.pem']);
  assert.notEqual(half.status, 0);
  assert.match(half.stderr, /go together/);
});

test('a bad --web.config.file stops the start with file, key and line', () => {
  const web = tempFile('web.yml', 'tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n');
  const r = run(['--config.file', tempFile('pve.yml', GOOD), '--web.listen-address', '127.0.0.1:0', '--web.config.file', web]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot start: web config \S+web\.yml:2: key "tls_server_config\.cert_file": cannot read \/nonexistent\.pem: file not found/);
});

test('a mistyped flag gets the error and a suggestion, not the whole help (issue 7, part 5)', () => {
  const r = run(['--web.listen-adress', '127.0.0.1:9221']);
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines[0], "error: unknown option '--web.listen-adress'");
  assert.equal(lines[1], '(Did you mean --web.listen-address?)');
  assert.match(lines[2], /see 'pve-exporter --help'/);
  assert.equal(lines.length, 3, r.stderr);
  assert.ok(!r.stderr.includes('Usage:') && !r.stdout.includes('Usage:'), 'no help text after the error');
  const collector = run(['--colector.status']);
  assert.match(collector.stderr, /\(Did you mean --collector\.status\?\)/);
});

async function withServer(args: string[], env: NodeJS.ProcessEnv, fn: (url: string, child: ReturnType<typeof spawn>, stderr: () => string) => Promise<void>) {
  const port = await getFreePort();
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--web.listen-address', `127.0.0.1:${port}`, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  try {
    await waitForHttp(`http://127.0.0.1:${port}/-/healthy`);
    await fn(`http://127.0.0.1:${port}`, child, () => err);
  } finally {
    // An exporter that already exited (a crash, a signal) fires no 'exit' any more: waiting for it
    // would leave the test pending until node:test cancels it, hiding the cause.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    assert.ok(child.signalCode === null || child.signalCode === 'SIGTERM', `exporter died of ${child.signalCode}; stderr:\n${err}`);
  }
}

test('PVE_USER selects environment config; proxmoxer keys warn; SIGHUP reloads the file', async () => {
  await withServer(['--config.file', '/nonexistent.yml'], { PVE_USER: 'monitoring@pve', PVE_TOKEN_NAME: 'x', PVE_TOKEN_VALUE: 'ENV-SECRET-1', PVE_MODULE: 'envmod' }, async (url, _c, stderr) => {
    const home = await (await fetch(`${url}/`)).text();
    assert.match(home, /<code>envmod<\/code>/);
    assert.match(home, /from environment/);
    assert.ok(!stderr().includes('ENV-SECRET-1'));
  });
  const file = tempFile('pve.yml', GOOD + '  backend: https\n');
  await withServer(['--config.file', file], {}, async (url, child, stderr) => {
    assert.match(stderr(), /key \\"backend\\".*ignored/);
    writeFileSync(file, GOOD + 'other:\n  user: b@pve\n  password: y\n');
    child.kill('SIGHUP');
    for (let i = 0; i < 50 && !stderr().includes('configuration reloaded'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(await (await fetch(`${url}/`)).text(), /<code>other<\/code>/);
    writeFileSync(file, 'broken: [\n');
    child.kill('SIGHUP');
    for (let i = 0; i < 50 && !stderr().includes('reload failed'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(stderr(), /reload failed; keeping the old one/);
    assert.match(await (await fetch(`${url}/`)).text(), /<code>other<\/code>/);
  });
});

test('package.json engines covers what every runtime dependency needs (bug 8)', () => {
  // Every Node version the exporter's engines range admits must be admitted by each installed
  // runtime dependency (lru-cache 11 skips Node 21, commander 14 needs 20).
  const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8')) as {
    packages: Record<string, { dev?: boolean; engines?: { node?: string } | string[] }>;
  };
  const own = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { engines: { node: string } }).engines.node;
  const checked: string[] = [];
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (where === '' || entry.dev || Array.isArray(entry.engines) || !entry.engines?.node) continue;
    checked.push(where);
    assert.ok(semver.subset(own, entry.engines.node), `engines.node "${own}" admits versions ${where} (node ${entry.engines.node}) does not`);
  }
  assert.ok(checked.includes('node_modules/lru-cache'), 'lru-cache checked');
});
