// deploy/systemd/pve-exporter.service: the hardening settings, systemd's own verification and
// exposure score (systemd-analyze), and its ExecStart/ExecReload lines run for real against the
// PVE simulator with the bundle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { getFreePort, waitForHttp } from './helpers/net.ts';
import { requireTool } from './helpers/tools.ts';
import { parseUnit } from './helpers/unit-file.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const UNIT_PATH = path.join(ROOT, 'deploy/systemd/pve-exporter.service');
const UNIT_TEXT = readFileSync(UNIT_PATH, 'utf8');
const HINT = 'apt-get install systemd';

const unit = parseUnit(UNIT_TEXT);
const service = unit.get('Service')!;
const one = (key: string): string => {
  const v = service.get(key);
  assert.equal(v?.length, 1, `Service.${key}: ${JSON.stringify(v)}`);
  return v![0]!;
};

const scratch = mkdtempSync(path.join(tmpdir(), 'pve-exporter-systemd-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

test('the unit runs the bundle with the documented command line', () => {
  assert.equal(one('ExecStart'), '/usr/bin/node --max-semi-space-size=4 /opt/pve-exporter/pve-exporter.mjs --config.file=/etc/prometheus/pve.yml');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one('Type'), 'simple');
  assert.equal(one('Restart'), 'on-failure');
  assert.deepEqual(unit.get('Install')!.get('WantedBy'), ['multi-user.target']);
  assert.deepEqual(unit.get('Unit')!.get('After'), ['network-online.target']);
});

test('the unit carries the hardening settings', () => {
  const expected: Record<string, string> = {
    User: 'pve-exporter',
    Group: 'pve-exporter',
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    PrivateDevices: 'yes',
    CapabilityBoundingSet: '',
    AmbientCapabilities: '',
    RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
    RestrictNamespaces: 'yes',
    RestrictSUIDSGID: 'yes',
    LockPersonality: 'yes',
    ProtectKernelTunables: 'yes',
    ProtectKernelModules: 'yes',
    ProtectControlGroups: 'yes',
    SystemCallArchitectures: 'native',
    SystemCallErrorNumber: 'EPERM',
    UMask: '0077',
    MemoryDenyWriteExecute: 'no',
  };
  for (const [key, value] of Object.entries(expected)) assert.equal(one(key), value, key);
  assert.deepEqual(service.get('SystemCallFilter')?.[0], '@system-service');
  assert.match(service.get('SystemCallFilter')?.[1] ?? '', /^~.*@privileged/);
  // The reason MemoryDenyWriteExecute stays off is written next to it.
  const lines = UNIT_TEXT.split('\n');
  const at = lines.findIndex((l) => l.startsWith('MemoryDenyWriteExecute='));
  const comment = lines.slice(Math.max(0, at - 3), at).join(' ');
  assert.match(comment, /JIT/);
  assert.match(comment, /PROT_EXEC|executable/);
});

/** The unit as systemd-analyze should see it: the node path adjusted when /usr/bin/node is absent. */
function unitForAnalysis(): string {
  if (existsSync('/usr/bin/node')) return UNIT_PATH;
  const copy = path.join(scratch, 'pve-exporter.service');
  writeFileSync(copy, UNIT_TEXT.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
  return copy;
}

test('systemd-analyze verify reports nothing', (t) => {
  if (!requireTool(t, 'systemd-analyze', HINT)) return;
  const r = spawnSync('systemd-analyze', ['verify', unitForAnalysis()], { encoding: 'utf8', cwd: scratch });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', `systemd-analyze verify warnings:\n${r.stderr}`);
});

test('systemd-analyze security rates the unit at exposure 2.0 or better', (t) => {
  if (!requireTool(t, 'systemd-analyze', HINT)) return;
  // --threshold counts tenths: 20 = exposure 2.0.
  const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--threshold=20', unitForAnalysis()], {
    encoding: 'utf8',
    cwd: scratch,
  });
  const m = /Overall exposure level for pve-exporter\.service: (\d+\.\d)/.exec(r.stdout);
  assert.ok(m, `no exposure in output:\n${r.stdout}\n${r.stderr}`);
  assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]}`);
  assert.equal(r.status, 0, r.stderr);
});

// ---------------------------------------------------------------------------------------------
// ExecStart and ExecReload, run for real
// ---------------------------------------------------------------------------------------------

let sim: Simulator | undefined;
let child: ChildProcess | undefined;
test.after(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await sim?.close();
});

test('ExecStart starts the exporter; ExecReload (SIGHUP) makes it re-read pve.yml', { timeout: 120_000 }, async () => {
  const bundle = path.join(scratch, 'opt/pve-exporter/pve-exporter.mjs');
  const b = spawnSync('npm', ['run', '--silent', 'bundle', '--', '--outfile', bundle], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(b.status, 0, `npm run bundle:\n${b.stdout}${b.stderr}`);

  sim = await startSimulator({ scenario: 'default' });
  const module = (name: string): string => exporterConfig(sim!, name);
  const config = path.join(scratch, 'etc/prometheus/pve.yml');
  mkdirSync(path.dirname(config), { recursive: true });
  writeFileSync(config, module('default'), { mode: 0o640 });

  // ExecStart's words, with the install paths mapped into the scratch directory.
  const [node, v8flag, script, ...flags] = one('ExecStart').split(' ');
  assert.equal(node, '/usr/bin/node');
  assert.equal(v8flag, '--max-semi-space-size=4');
  assert.equal(script, '/opt/pve-exporter/pve-exporter.mjs');
  const port = await getFreePort();
  const args = [v8flag!, bundle, ...flags.map((f) => f.replace('/etc/prometheus/pve.yml', config)), `--web.listen-address=127.0.0.1:${port}`];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  for (const e of service.get('Environment') ?? []) {
    const [k, v] = e.split('=', 2);
    env[k!] = v!;
  }
  child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  await waitForHttp(`http://127.0.0.1:${port}/-/healthy`, 20_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${output}`);
  });
  const scrape = await fetch(`http://127.0.0.1:${port}/pve?target=127.0.0.1&module=default`);
  const body = await scrape.text();
  assert.equal(scrape.status, 200, body);
  assert.match(body, /^pve_up\{id="node\/[^"]+"\} 1$/m);
  assert.equal((await fetch(`http://127.0.0.1:${port}/pve?target=127.0.0.1&module=second`)).status, 400);

  // Add a module, then run ExecReload with $MAINPID as systemd would.
  writeFileSync(config, module('default') + module('second'));
  const reload = one('ExecReload').replace('$MAINPID', String(child.pid));
  const [killBin, ...killArgs] = reload.split(' ');
  const k = spawnSync(existsSync(killBin!) ? killBin! : 'kill', killArgs, { encoding: 'utf8' });
  assert.equal(k.status, 0, k.stderr);
  const until = Date.now() + 10_000;
  let status = 0;
  while (Date.now() < until) {
    const res = await fetch(`http://127.0.0.1:${port}/pve?target=127.0.0.1&module=second`);
    await res.arrayBuffer();
    status = res.status;
    if (status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 200, `module "second" not served after SIGHUP:\n${output}`);
  assert.equal(child.exitCode, null, 'SIGHUP must not stop the exporter');

  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child!.on('exit', resolve));
  assert.equal(code, 0, output);
});
