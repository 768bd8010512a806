// The Ansible role deploy/ansible/roles/pve_exporter, checked with Debian's ansible and
// ansible-lint: syntax, lint (production profile), and real `-c local` runs that render pve.yml and
// the Quadlet unit into a scratch root. The rendered pve.yml is then read by the exporter itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config.ts';
import { getFreePort, waitForHttp } from './helpers/net.ts';
import { requireTool } from './helpers/tools.ts';
import { parseUnit } from './helpers/unit-file.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ANSIBLE_DIR = path.join(ROOT, 'deploy/ansible');
const ROLE_DIR = path.join(ANSIBLE_DIR, 'roles/pve_exporter');
const STATIC_QUADLET = path.join(ROOT, 'deploy/quadlet/pve-exporter.container');
const HINT = 'apt-get install ansible ansible-lint';

const scratch = mkdtempSync(path.join(tmpdir(), 'pve-exporter-ansible-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

/** Environment that keeps Ansible's and ansible-lint's state out of $HOME and the repository. */
function ansibleEnv(): NodeJS.ProcessEnv {
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

function run(cmd: string, args: string[], cwd = ANSIBLE_DIR): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env: ansibleEnv(), encoding: 'utf8', timeout: 180_000 });
  if (r.error) throw r.error;
  return r;
}

const out = (r: SpawnSyncReturns<string>): string => `${r.stdout}\n${r.stderr}`;

interface RenderResult {
  root: string;
  result: SpawnSyncReturns<string>;
  pveYml: string;
  quadlet: string;
}

let renderCount = 0;
/** Runs tests/render.yml with the given variables into a fresh scratch root. */
function render(vars: Record<string, unknown>, root?: string): RenderResult {
  const dir = root ?? path.join(scratch, `render-${++renderCount}`);
  const varsFile = path.join(scratch, `vars-${++renderCount}.json`);
  writeFileSync(varsFile, JSON.stringify({ pve_exporter_root_prefix: dir, ...vars }), { mode: 0o600 });
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

function unitAsObject(text: string): Record<string, Record<string, string[]>> {
  const o: Record<string, Record<string, string[]>> = {};
  for (const [s, keys] of parseUnit(text)) o[s] = Object.fromEntries(keys);
  return o;
}

// Fixed test-only credentials; the fingerprint is a syntactically valid SHA-256.
const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7 + 16).toString(16).toUpperCase().padStart(2, '0')).join(':');
const TARGETS = {
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

test('ansible-playbook --syntax-check accepts the test and example playbooks', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  for (const playbook of ['tests/render.yml', 'examples/site.yml']) {
    const r = run('ansible-playbook', ['--syntax-check', '-i', 'localhost,', playbook]);
    assert.equal(r.status, 0, `${playbook}: ${out(r)}`);
    assert.match(r.stdout, new RegExp(`playbook: ${playbook.replace('.', '\\.')}`));
  }
});

test('ansible-lint passes clean with the production profile', (t) => {
  if (!requireTool(t, 'ansible-lint', HINT)) return;
  const config = parseYaml(readFileSync(path.join(ANSIBLE_DIR, '.ansible-lint'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.profile, 'production');
  for (const key of ['skip_list', 'warn_list', 'enable_list']) {
    assert.equal(config[key], undefined, `.ansible-lint must not ${key} rules`);
  }
  const r = run('ansible-lint', ['--offline', '--profile', 'production']);
  assert.equal(r.status, 0, out(r));
  assert.match(out(r), /Passed with production profile: 0 failure\(s\), 0 warning\(s\)/);
  assert.doesNotMatch(out(r), /# noqa/);
});

test('ansible-lint really inspects the role: a bad task in a copy fails', (t) => {
  if (!requireTool(t, 'ansible-lint', HINT)) return;
  const copy = path.join(scratch, 'lint-copy');
  cpSync(ANSIBLE_DIR, copy, { recursive: true });
  appendFileSync(
    path.join(copy, 'roles/pve_exporter/tasks/files.yml'),
    '\n- ansible.builtin.shell: echo unnamed\n',
  );
  const r = run('ansible-lint', ['--offline', '--profile', 'production'], copy);
  assert.notEqual(r.status, 0, out(r));
  assert.match(out(r), /name\[missing\]/);
  assert.match(out(r), /no-changed-when|command-instead-of-shell/);
});

test('no role file carries a noqa marker or lint skip tag', () => {
  const files = spawnSync('find', [ROLE_DIR, path.join(ANSIBLE_DIR, 'tests'), path.join(ANSIBLE_DIR, 'examples'), '-type', 'f'], {
    encoding: 'utf8',
  }).stdout.trim().split('\n');
  assert.ok(files.length >= 10, `role files: ${files.join(', ')}`);
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    assert.doesNotMatch(text, /noqa|skip_ansible_lint/, f);
  }
});

test('the role defaults are exactly the documented ones', () => {
  const defaults = parseYaml(readFileSync(path.join(ROLE_DIR, 'defaults/main.yml'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(
    {
      pve_exporter_user: defaults.pve_exporter_user,
      pve_exporter_app_name: defaults.pve_exporter_app_name,
      pve_exporter_container_image: defaults.pve_exporter_container_image,
      pve_exporter_container_port: defaults.pve_exporter_container_port,
      pve_exporter_service_restart: defaults.pve_exporter_service_restart,
      pve_exporter_service_restart_sec: defaults.pve_exporter_service_restart_sec,
      pve_exporter_pve_targets: defaults.pve_exporter_pve_targets,
      pve_exporter_pve_verify_ssl: defaults.pve_exporter_pve_verify_ssl,
      pve_exporter_collector_config: defaults.pve_exporter_collector_config,
      pve_exporter_root_prefix: defaults.pve_exporter_root_prefix,
    },
    {
      pve_exporter_user: 'monitoring',
      pve_exporter_app_name: 'pve-exporter',
      pve_exporter_container_image: 'ghcr.io/pve-exporter/pve-exporter:latest',
      pve_exporter_container_port: 9221,
      pve_exporter_service_restart: 'always',
      pve_exporter_service_restart_sec: 5,
      pve_exporter_pve_targets: {},
      pve_exporter_pve_verify_ssl: false,
      pve_exporter_collector_config: true,
      pve_exporter_root_prefix: '',
    },
  );
  // Every default is declared in the argument spec with the same default value.
  const specs = parseYaml(readFileSync(path.join(ROLE_DIR, 'meta/argument_specs.yml'), 'utf8')) as {
    argument_specs: { main: { options: Record<string, { default?: unknown }> } };
  };
  const options = specs.argument_specs.main.options;
  for (const [name, value] of Object.entries(defaults)) {
    assert.ok(name in options, `${name} missing from meta/argument_specs.yml`);
    if (typeof value === 'string' && value.includes('{{')) continue; // templated default
    if (name === 'pve_exporter_pve_targets') continue; // required, no default in the spec
    assert.deepEqual(options[name]!.default, value, `argument_specs default of ${name}`);
  }
});

test('a local run renders pve.yml (0600) that the exporter loads and serves', async (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const r = render({
    pve_exporter_pve_targets: TARGETS,
    pve_exporter_collector_config: false,
    pve_exporter_extra_args: ['--log.level=debug'],
  });
  assert.equal(r.result.status, 0, out(r.result));
  assert.match(r.result.stdout, /failed=0/);
  // no_log: the token never appears in Ansible's output, not even in the diff-less result.
  assert.ok(!out(r.result).includes(TARGETS.lab.token_value), 'token value leaked into ansible output');

  const st = statSync(r.pveYml);
  assert.equal(st.mode & 0o777, 0o600, `pve.yml mode ${(st.mode & 0o777).toString(8)}`);
  assert.equal(statSync(path.dirname(r.pveYml)).mode & 0o777, 0o700, 'config directory mode');
  assert.equal(statSync(path.dirname(r.quadlet)).mode & 0o777, 0o700, 'quadlet directory mode');

  // The YAML itself: exactly the two modules, values verbatim, verify_ssl defaulted per module.
  const parsed = parseYaml(readFileSync(r.pveYml, 'utf8')) as Record<string, Record<string, unknown>>;
  assert.deepEqual(parsed, {
    've-01': { ...TARGETS['ve-01'], verify_ssl: false },
    lab: { ...TARGETS.lab },
  });

  // The exporter's own config loader accepts it (no PVE_* environment, so the file is used).
  const config = loadConfig(r.pveYml, {});
  assert.deepEqual([...config.modules.keys()].sort(), ['lab', 've-01']);
  const ve01 = config.modules.get('ve-01')!;
  assert.equal(ve01.tokenValue, TARGETS['ve-01'].token_value);
  assert.equal(ve01.verifySsl, false);
  const lab = config.modules.get('lab')!;
  assert.equal(lab.port, 8443);
  assert.equal(lab.timeout, 12.5);
  assert.deepEqual(lab.fingerprints, [FINGERPRINT]);
  assert.equal(lab.verifySsl, true);

  // And the exporter CLI starts on it and lists the modules on its landing page.
  const port = await getFreePort();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/main.ts', '--config.file', r.pveYml, '--web.listen-address', `127.0.0.1:${port}`],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await waitForHttp(`http://127.0.0.1:${port}/-/healthy`, 20_000).catch((err: Error) => {
      throw new Error(`${err.message}\nexporter stderr:\n${stderr}`);
    });
    const res = await fetch(`http://127.0.0.1:${port}/`);
    const page = await res.text();
    assert.equal(res.status, 200);
    assert.match(page, /<code>ve-01<\/code>/);
    assert.match(page, /<code>lab<\/code>/);
    assert.ok(!page.includes(TARGETS.lab.token_value), 'landing page shows a token');
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  assert.ok(!stderr.includes(TARGETS.lab.token_value), 'exporter logged a token');
});

test('the rendered Quadlet unit has the expected keys, with flags and overrides', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const r = render({
    pve_exporter_pve_targets: TARGETS,
    pve_exporter_collector_config: false,
    pve_exporter_extra_args: ['--log.level=debug'],
    pve_exporter_container_port: 9300,
    pve_exporter_publish_address: '192.0.2.10',
    pve_exporter_service_restart: 'on-failure',
    pve_exporter_service_restart_sec: 11,
    pve_exporter_container_image: 'registry.example.org/mirror/pve-exporter:1.2.3',
  });
  assert.equal(r.result.status, 0, out(r.result));
  assert.equal(statSync(r.quadlet).mode & 0o777, 0o644);
  const unit = unitAsObject(readFileSync(r.quadlet, 'utf8'));
  assert.deepEqual(Object.keys(unit), ['Unit', 'Container', 'Service', 'Install']);
  const c = unit.Container!;
  assert.deepEqual(c.Image, ['registry.example.org/mirror/pve-exporter:1.2.3']);
  assert.deepEqual(c.AutoUpdate, ['registry']);
  assert.deepEqual(c.UserNS, ['keep-id']);
  assert.deepEqual(c.NoNewPrivileges, ['true']);
  assert.deepEqual(c.ReadOnly, ['true']);
  assert.deepEqual(c.DropCapability, ['ALL']);
  assert.deepEqual(c.LogDriver, ['journald']);
  assert.deepEqual(c.PublishPort, ['192.0.2.10:9300:9221']);
  assert.deepEqual(c.Volume, ['%h/.config/pve-exporter/pve.yml:/etc/prometheus/pve.yml:ro,Z']);
  assert.deepEqual(c.Exec, ['--no-collector.config --log.level=debug']);
  assert.deepEqual(c.ContainerName, ['pve-exporter']);
  assert.equal(c.HealthCmd?.length, 1);
  assert.deepEqual(unit.Service!.Restart, ['on-failure']);
  assert.deepEqual(unit.Service!.RestartSec, ['11']);
  assert.deepEqual(unit.Install!.WantedBy, ['default.target']);
});

test('with default variables the rendered Quadlet unit equals deploy/quadlet/pve-exporter.container', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const r = render({ pve_exporter_pve_targets: { default: TARGETS.lab } });
  assert.equal(r.result.status, 0, out(r.result));
  const rendered = unitAsObject(readFileSync(r.quadlet, 'utf8'));
  const shipped = unitAsObject(readFileSync(STATIC_QUADLET, 'utf8'));
  assert.deepEqual(rendered, shipped);
  // Default collector set: no Exec= line, the image's CMD applies.
  assert.equal(rendered.Container!.Exec, undefined);
  assert.deepEqual(rendered.Container!.PublishPort, ['9221:9221']);
  assert.deepEqual(rendered.Service!.Restart, ['always']);
  assert.deepEqual(rendered.Service!.RestartSec, ['5']);
});

test('a second run changes nothing (idempotent)', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const vars = { pve_exporter_pve_targets: TARGETS };
  const first = render(vars);
  assert.equal(first.result.status, 0, out(first.result));
  assert.match(first.result.stdout, /changed=[1-9]/);
  const second = render(vars, first.root);
  assert.equal(second.result.status, 0, out(second.result));
  assert.match(second.result.stdout, /localhost\s+: ok=\d+\s+changed=0\s/);
});

test('an empty pve_exporter_pve_targets fails with a clear message before writing anything', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const r = render({ pve_exporter_pve_targets: {} });
  assert.notEqual(r.result.status, 0);
  assert.match(out(r.result), /pve_exporter_pve_targets is empty: define at least one module/);
  assert.equal(existsSync(r.root), false, 'files were written despite the failed validation');
});

test('a module without token_value fails naming the module and the field, without printing secrets', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const r = render({
    pve_exporter_pve_targets: {
      good: TARGETS.lab,
      'cluster-b': { user: 'monitoring@pve', token_name: 'exporter' },
    },
  });
  assert.notEqual(r.result.status, 0);
  assert.match(out(r.result), /pve_exporter_pve_targets\[\\?"cluster-b\\?"\] is missing \\?"token_value\\?"/);
  assert.doesNotMatch(out(r.result), /\\?"good\\?"\] is missing/);
  assert.ok(!out(r.result).includes(TARGETS.lab.token_value), 'a token value was printed');
  assert.equal(existsSync(r.pveYml), false);
});

test('other invalid entries fail with messages naming module and key', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ a: { ...TARGETS.lab, password: 'x' } }, /\\?"a\\?"\] has unknown keys password/],
    [{ b: { ...TARGETS.lab, user: 'monitoring' } }, /\\?"b\\?"\]\.user must look like name@realm/],
    [{ c: { ...TARGETS.lab, token_name: 'monitoring@pve!exporter' } }, /\\?"c\\?"\]\.token_name must be the token id only/],
    [{ d: { ...TARGETS.lab, user: '' } }, /\\?"d\\?"\] is missing \\?"user\\?"/],
  ];
  for (const [targets, message] of cases) {
    const r = render({ pve_exporter_pve_targets: targets });
    assert.notEqual(r.result.status, 0, JSON.stringify(targets));
    assert.match(out(r.result), message);
  }
});

test('the render playbook refuses to run without a scratch root', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const r = run('ansible-playbook', ['tests/render.yml', '-e', JSON.stringify({ pve_exporter_pve_targets: TARGETS })]);
  assert.notEqual(r.status, 0);
  assert.match(out(r), /set pve_exporter_root_prefix to a scratch directory/);
});

test('the Prometheus configuration in the role README passes promtool check config', (t) => {
  if (!requireTool(t, 'promtool', 'apt-get install prometheus')) return;
  const readme = readFileSync(path.join(ROLE_DIR, 'README.md'), 'utf8');
  const section = readme.split('## Matching Prometheus configuration')[1];
  assert.ok(section, 'README section "Matching Prometheus configuration" missing');
  const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'no yaml block in that section');
  const file = path.join(scratch, 'prometheus.yml');
  writeFileSync(file, block);
  const r = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  // Every job that scrapes /pve names a module the examples define.
  const config = parseYaml(block) as { scrape_configs: { job_name: string; metrics_path?: string; params?: Record<string, string[]> }[] };
  const pveJobs = config.scrape_configs.filter((j) => j.metrics_path === '/pve');
  assert.ok(pveJobs.length >= 2);
  for (const job of pveJobs) assert.deepEqual(job.params?.module, ['cluster-a'], job.job_name);
});
