// Shared by the Ansible role tests (test/deploy-ansible*.test.ts): ansible runs with their state
// kept out of $HOME, the render playbook into a scratch root, and the stubbed-system runs
// (tests/stubbed.yml with tests/stubs/stub.sh first on PATH). Split out so that the role's tests
// can live in more than one file, each within the per-file test timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { getFreePort, waitForHttp } from './net.ts';
import { parseUnit } from './unit-file.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ANSIBLE_DIR = path.join(ROOT, 'deploy/ansible');
export const ROLE_DIR = path.join(ANSIBLE_DIR, 'roles/pve_exporter');
export const STATIC_QUADLET = path.join(ROOT, 'deploy/quadlet/pve-exporter.container');
export const HINT = 'apt-get install ansible ansible-lint';

export const scratch = mkdtempSync(path.join(tmpdir(), 'pve-exporter-ansible-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

/** Environment that keeps Ansible's and ansible-lint's state out of $HOME and the repository. */
export function ansibleEnv(): NodeJS.ProcessEnv {
  const state = path.join(scratch, 'ansible-state');
  return {
    ...process.env,
    ANSIBLE_CONFIG: path.join(ANSIBLE_DIR, 'ansible.cfg'),
    ANSIBLE_ROLES_PATH: path.join(ANSIBLE_DIR, 'roles'),
    ANSIBLE_HOME: state,
    ANSIBLE_LOCAL_TEMP: path.join(state, 'tmp'),
    ANSIBLE_REMOTE_TEMP: path.join(state, 'remote-tmp'),
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_STDOUT_CALLBACK: 'default',
    XDG_CACHE_HOME: path.join(state, 'cache'),
    NO_COLOR: '1',
    PY_COLORS: '0',
  };
}

export function run(cmd: string, args: string[], cwd = ANSIBLE_DIR): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env: ansibleEnv(), encoding: 'utf8', timeout: 180_000 });
  if (r.error) throw r.error;
  return r;
}

export const out = (r: SpawnSyncReturns<string>): string => `${r.stdout}\n${r.stderr}`;

export interface RenderResult {
  root: string;
  result: SpawnSyncReturns<string>;
  pveYml: string;
  quadlet: string;
}

/** The machine's ansible-core version ("2.14.18"), from `ansible --version`. */
export function machineAnsibleVersion(): string | undefined {
  const r = spawnSync('ansible', ['--version'], { encoding: 'utf8' });
  return /\[core ([0-9.]+)\]/.exec(r.stdout ?? '')?.[1];
}
export const versionAtLeast = (found: string, min: string): boolean => {
  const a = found.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
};
export const ROLE_MIN_ANSIBLE = (parseYaml(readFileSync(path.join(ROLE_DIR, 'vars/main.yml'), 'utf8')) as Record<string, string>)
  .pve_exporter_min_ansible_version!;
export const MACHINE_ANSIBLE = machineAnsibleVersion();
// Debian 12 (this machine, CI) ships ansible-core 2.14, below the role's supported minimum. The
// runs that test other things lower the minimum to the version found; the preflight test below
// runs without this and checks the assert itself.
export const ANSIBLE_VERSION_OVERRIDE: Record<string, string> =
  MACHINE_ANSIBLE && !versionAtLeast(MACHINE_ANSIBLE, ROLE_MIN_ANSIBLE) ? { pve_exporter_min_ansible_version: MACHINE_ANSIBLE } : {};

let renderCount = 0;
/** A fresh number for scratch file names. */
export function nextId(): number {
  return ++renderCount;
}
/** Runs tests/render.yml with the given variables into a fresh scratch root. */
export function render(vars: Record<string, unknown>, root?: string): RenderResult {
  const dir = root ?? path.join(scratch, `render-${++renderCount}`);
  const varsFile = path.join(scratch, `vars-${++renderCount}.json`);
  writeFileSync(varsFile, JSON.stringify({ pve_exporter_root_prefix: dir, ...ANSIBLE_VERSION_OVERRIDE, ...vars }), { mode: 0o600 });
  const result = run('ansible-playbook', ['tests/render.yml', '-e', `@${varsFile}`]);
  const home = path.join(dir, 'home', String(vars.pve_exporter_user ?? 'monitoring'));
  const app = String(vars.pve_exporter_app_name ?? 'pve-exporter');
  return {
    root: dir,
    result,
    pveYml: path.join(home, '.config', app, 'pve.yml'),
    quadlet: path.join(home, '.config/containers/systemd', `${app}.container`),
  };
}

export function unitAsObject(text: string): Record<string, Record<string, string[]>> {
  const o: Record<string, Record<string, string[]>> = {};
  for (const [s, keys] of parseUnit(text)) o[s] = Object.fromEntries(keys);
  return o;
}

// Fixed test-only credentials; the fingerprint is a syntactically valid SHA-256.
export const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7 + 16).toString(16).toUpperCase().padStart(2, '0')).join(':');
export const TARGETS = {
  've-01': {
    user: 'monitoring@pve',
    token_name: 'exporter',
    // Characters that break naive YAML templating: quotes, colon-space, hash, backslash.
    token_value: `a1'b2"c3: d4 #e5\\f6`,
  },
  lab: {
    user: 'metrics@pam',
    token_name: 'lab-token',
    token_value: '0c9f3a52-1d1e-4f6a-9d55-8e2f8d8b7c11',
    verify_ssl: true,
    port: 8443,
    timeout: 12.5,
    fingerprint: FINGERPRINT,
  },
};

// sudo, systemctl, podman, loginctl, journalctl, useradd, usermod, userdel and getent replaced by
// tests/stubs/stub.sh (first on PATH), which logs every changing call with what existed then.
// The service user is the user running the test, so the role's chown calls resolve.

export const STUB_COMMANDS = ['sudo', 'systemctl', 'podman', 'loginctl', 'journalctl', 'useradd', 'usermod', 'userdel', 'getent'];
export const ME = userInfo();
export const MY_GROUP = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();

export interface StubbedWorld {
  root: string;
  bin: string;
  log: string;
  state: string;
  home: string;
  env: NodeJS.ProcessEnv;
}

let worldCount = 0;
/** A scratch root that looks like a systemd host, with the stub commands in bin/. */
export function stubbedWorld(opts: { systemd?: boolean; subuid?: string } = {}): StubbedWorld {
  const root = path.join(scratch, `world-${++worldCount}`);
  const bin = path.join(root, 'stub-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(path.join(bin, '.pve-exporter-stubs'), '');
  for (const c of STUB_COMMANDS) symlinkSync(path.join(ANSIBLE_DIR, 'tests/stubs/stub.sh'), path.join(bin, c));
  if (opts.systemd !== false) {
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
    mkdirSync(path.join(root, 'usr/lib/systemd/system'), { recursive: true });
    writeFileSync(path.join(root, 'usr/lib/systemd/system/user@.service'), '');
  }
  mkdirSync(path.join(root, `run/user/${ME.uid}`), { recursive: true });
  writeFileSync(path.join(root, `run/user/${ME.uid}/bus`), '');
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  for (const f of ['subuid', 'subgid']) writeFileSync(path.join(root, 'etc', f), opts.subuid ?? 'other:100000:65536\n');
  const home = path.join(root, 'home', ME.username);
  const log = path.join(root, 'calls.log');
  const state = path.join(root, 'stub-state');
  const env: NodeJS.ProcessEnv = {
    ...ansibleEnv(),
    PATH: `${bin}:${process.env.PATH}`,
    STUB_LOG: log,
    STUB_STATE: state,
    STUB_ROOT: root,
    STUB_USER: ME.username,
    STUB_UID: String(ME.uid),
    STUB_UNIT_FILE: path.join(home, '.config/containers/systemd/pve-exporter.container'),
    STUB_CONFIG_DIR: path.join(home, '.config/pve-exporter'),
  };
  // The safety net of the whole approach: every command the role runs resolves to a stub.
  for (const c of STUB_COMMANDS) {
    const r = spawnSync('sh', ['-c', `command -v ${c}`], { env, encoding: 'utf8' });
    assert.equal(r.stdout.trim(), path.join(bin, c), `${c} does not resolve to the stub`);
  }
  return { root, bin, log, state, home, env };
}

export function runStubbed(world: StubbedWorld, vars: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const varsFile = path.join(scratch, `stub-vars-${++renderCount}.json`);
  writeFileSync(
    varsFile,
    JSON.stringify({
      pve_exporter_root_prefix: world.root,
      pve_exporter_user: ME.username,
      ansible_become_exe: path.join(world.bin, 'sudo'),
      pve_exporter_health_retries: 1,
      pve_exporter_health_delay: 0,
      ...ANSIBLE_VERSION_OVERRIDE,
      ...vars,
    }),
    { mode: 0o600 },
  );
  const r = spawnSync('ansible-playbook', ['tests/stubbed.yml', '-e', `@${varsFile}`], {
    cwd: ANSIBLE_DIR,
    env: { ...world.env, ...env },
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.error) throw r.error;
  return r;
}

/** The logged calls, and then the log emptied for the next run. */
export function takeCalls(world: StubbedWorld): string[] {
  if (!existsSync(world.log)) return [];
  const lines = readFileSync(world.log, 'utf8').trim().split('\n').filter(Boolean);
  writeFileSync(world.log, '');
  return lines;
}

/** A real exporter on a free loopback port, so the role's health check has something to ask. */
export async function startExporter(): Promise<{ port: number; stop: () => Promise<void> }> {
  const config = path.join(scratch, `exporter-${++renderCount}.yml`);
  writeFileSync(config, 'default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: x\n', { mode: 0o600 });
  const port = await getFreePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config.file', config, '--web.listen-address', `127.0.0.1:${port}`], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await waitForHttp(`http://127.0.0.1:${port}/-/healthy`, 20_000).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}\n${stderr}`);
  });
  return { port, stop: async () => { child.kill('SIGTERM'); await exited; } };
}

export const ONE_MODULE = { default: { ...TARGETS.lab, targets: ['pve1.example.com'] } };
