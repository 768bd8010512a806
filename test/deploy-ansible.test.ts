// The Ansible role deploy/ansible/roles/pve_exporter, checked with Debian's ansible and
// ansible-lint: syntax, lint (production profile), and real `-c local` runs that render pve.yml and
// the Quadlet unit into a scratch root. The rendered pve.yml is then read by the exporter itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadConfig, parseConfigText } from '../src/config.ts';
import { getFreePort, waitForHttp } from './helpers/net.ts';
import {
  scratch,
  ROOT,
  STATIC_QUADLET,
  ROLE_DIR,
  ANSIBLE_DIR,
  HINT,
  ME,
  MY_GROUP,
  TARGETS,
  FINGERPRINT,
  ONE_MODULE,
  run,
  out,
  render,
  unitAsObject,
  stubbedWorld,
  runStubbed,
  takeCalls,
  startExporter,
  ROLE_MIN_ANSIBLE,
  MACHINE_ANSIBLE,
  versionAtLeast,
  nextId,
} from './helpers/ansible-role.ts';
import { requireTool } from './helpers/tools.ts';
import { parseUnit } from './helpers/unit-file.ts';


test('ansible-playbook --syntax-check accepts the test and example playbooks', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  for (const playbook of ['tests/render.yml', 'tests/stubbed.yml', 'examples/site.yml']) {
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

// ---- Preflight, install and uninstall against stubbed system commands ----------------------
// No systemd as PID 1 here and no users to spare: tests/stubbed.yml runs the whole role with

test('preflight: an Ansible older than the role minimum fails first, naming the version found', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  assert.ok(MACHINE_ANSIBLE, 'ansible --version names no core version');
  const meta = parseYaml(readFileSync(path.join(ROLE_DIR, 'meta/main.yml'), 'utf8')) as { galaxy_info: { min_ansible_version: string } };
  assert.equal(meta.galaxy_info.min_ansible_version, '2.15');
  assert.equal(ROLE_MIN_ANSIBLE, '2.15');

  // A minimum above any real version: refused before validation or any file.
  const r = render({ pve_exporter_pve_targets: ONE_MODULE, pve_exporter_min_ansible_version: '99.1' });
  assert.notEqual(r.result.status, 0);
  assert.match(out(r.result), new RegExp(`Ansible ${MACHINE_ANSIBLE!.replaceAll('.', '\\.')} found on the controller; the role pve_exporter needs ansible-core 99\\.1 or newer`));
  assert.equal(existsSync(r.root), false, 'files were written despite the failed preflight');

  // The role's own minimum against the machine's Ansible, without the test override.
  const dir = path.join(scratch, `render-${nextId()}`);
  const varsFile = path.join(scratch, `vars-${nextId()}.json`);
  writeFileSync(varsFile, JSON.stringify({ pve_exporter_root_prefix: dir, pve_exporter_pve_targets: ONE_MODULE }));
  const own = run('ansible-playbook', ['tests/render.yml', '-e', `@${varsFile}`]);
  if (versionAtLeast(MACHINE_ANSIBLE!, '2.15')) {
    assert.equal(own.status, 0, out(own));
  } else {
    assert.notEqual(own.status, 0);
    assert.match(out(own), new RegExp(`Ansible ${MACHINE_ANSIBLE!.replaceAll('.', '\\.')} found on the controller; the role pve_exporter needs ansible-core 2\\.15 or newer`));
  }
});

test('preflight: Podman older than 4.6 (Quadlet 4.4 without the unit\'s keys) fails early, naming the version found, before the user exists', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const world = stubbedWorld();
  const r = runStubbed(world, { pve_exporter_pve_targets: ONE_MODULE }, { STUB_PODMAN_VERSION: '4.3.1' });
  assert.notEqual(r.status, 0, out(r));
  assert.match(out(r), /Podman 4\.3\.1 found on localhost; the Quadlet unit\s+this role writes needs Podman 4\.6 or newer/);
  assert.deepEqual(takeCalls(world), [], 'the role changed something before failing');
  assert.equal(existsSync(path.join(world.home, '.config')), false);

  // Quadlet without the unit's keys (4.5) is refused too; 4.6.0 passes and the run goes on.
  const older = runStubbed(stubbedWorld(), { pve_exporter_pve_targets: ONE_MODULE }, { STUB_PODMAN_VERSION: '4.5.1' });
  assert.match(out(older), /Podman 4\.5\.1 found on localhost/);
  const ok = runStubbed(stubbedWorld(), { pve_exporter_pve_targets: ONE_MODULE, pve_exporter_health_check: false }, { STUB_PODMAN_VERSION: '4.6.0' });
  assert.equal(ok.status, 0, out(ok));
});

test('preflight: a host without systemd user services fails, saying what is missing', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const world = stubbedWorld({ systemd: false });
  const r = runStubbed(world, { pve_exporter_pve_targets: ONE_MODULE });
  assert.notEqual(r.status, 0);
  assert.match(out(r), /systemd user services are not available on localhost \(systemd is not the init system: no \/run\/systemd\/system\)/);
  assert.deepEqual(takeCalls(world), []);
});

test('install: user with system-allocated subids, journal group, linger, dirs, unit, timer, health check', async (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  if (MY_GROUP !== ME.username) return t.skip(`the test user's primary group (${MY_GROUP}) is not named like the user`);
  const exporter = await startExporter();
  try {
    const world = stubbedWorld();
    const vars = { pve_exporter_pve_targets: ONE_MODULE, pve_exporter_container_port: exporter.port, pve_exporter_health_retries: 3 };
    const r = runStubbed(world, vars);
    assert.equal(r.status, 0, out(r));
    assert.match(out(r), /Wait for \/-\/healthy to answer 200\] \*+\nok: \[localhost\]/);
    const user = ME.username;
    assert.deepEqual(takeCalls(world), [
      `useradd --system --user-group --create-home --home-dir /home/${user} --shell /usr/sbin/nologin --comment pve-exporter (rootless Podman) --add-subids-for-system ${user} [unit=absent config=absent]`,
      `usermod --append --groups systemd-journal ${user} [unit=absent config=absent]`,
      `loginctl enable-linger ${user} [unit=absent config=absent]`,
      'systemctl --user daemon-reload [unit=present config=present]',
      'systemctl --user start pve-exporter.service [unit=present config=present]',
      'systemctl --user enable podman-auto-update.timer [unit=present config=present]',
      'systemctl --user start podman-auto-update.timer [unit=present config=present]',
    ]);
    // The range was allocated by "useradd" after the existing one, not a fixed start.
    assert.equal(readFileSync(path.join(world.root, 'etc/subuid'), 'utf8'), `other:100000:65536\n${user}:165536:65536\n`);
    assert.ok(existsSync(path.join(world.root, 'var/lib/systemd/linger', user)));
    for (const d of ['.config/containers/systemd', '.local/share/containers/storage', '.config/pve-exporter']) {
      assert.equal(statSync(path.join(world.home, d)).mode & 0o777, 0o700, d);
    }
    assert.equal(statSync(path.join(world.home, '.config/pve-exporter/pve.yml')).mode & 0o777, 0o600);

    // A second run changes nothing and calls nothing that changes the system.
    const again = runStubbed(world, vars);
    assert.equal(again.status, 0, out(again));
    assert.match(again.stdout, /localhost\s+: ok=\d+\s+changed=0\s/);
    assert.deepEqual(takeCalls(world), []);
  } finally {
    await exporter.stop();
  }
});

test('install: a user without subordinate ids (older useradd) gets the next free range', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  if (MY_GROUP !== ME.username) return t.skip(`the test user's primary group (${MY_GROUP}) is not named like the user`);
  const world = stubbedWorld({ subuid: 'a:100000:65536\nb:300000:1000\n' });
  const r = runStubbed(world, { pve_exporter_pve_targets: ONE_MODULE, pve_exporter_health_check: false }, { STUB_OLD_SHADOW: '1' });
  assert.equal(r.status, 0, out(r));
  const calls = takeCalls(world);
  assert.doesNotMatch(calls[0]!, /--add-subids-for-system/);
  assert.equal(calls[1], `usermod --add-subuids 301000-366535 --add-subgids 301000-366535 ${ME.username} [unit=absent config=absent]`);
  assert.match(readFileSync(path.join(world.root, 'etc/subgid'), 'utf8'), new RegExp(`\\n${ME.username}:301000:65536\\n$`));
});

test('install: a failed health check fails the play with the unit\'s last log lines', async (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  if (MY_GROUP !== ME.username) return t.skip(`the test user's primary group (${MY_GROUP}) is not named like the user`);
  const world = stubbedWorld();
  const closedPort = await getFreePort(); // nothing listens there
  const r = runStubbed(world, { pve_exporter_pve_targets: ONE_MODULE, pve_exporter_container_port: closedPort });
  assert.notEqual(r.status, 0);
  assert.match(out(r), new RegExp(`pve-exporter did not answer http://127\\.0\\.0\\.1:${closedPort}/-/healthy with 200`));
  assert.match(out(r), /Last 50 lines of journalctl --user -u pve-exporter\.service/);
  assert.match(out(r), /stub-journal line 3: pve-exporter\.service/);
  assert.equal(takeCalls(world).at(-1), 'journalctl --user --unit pve-exporter.service --lines 50 --no-pager [unit=present config=present]');
});

test('uninstall (state absent): stop, timer, unit, reload, image, config, linger, user, in that order', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  if (MY_GROUP !== ME.username) return t.skip(`the test user's primary group (${MY_GROUP}) is not named like the user`);
  const world = stubbedWorld();
  const install = runStubbed(world, { pve_exporter_pve_targets: ONE_MODULE, pve_exporter_health_check: false });
  assert.equal(install.status, 0, out(install));
  takeCalls(world);

  const r = runStubbed(world, { pve_exporter_state: 'absent' });
  assert.equal(r.status, 0, out(r));
  const user = ME.username;
  // The bracket is what existed at the call: the unit is gone before the reload, the config
  // after the image.
  assert.deepEqual(takeCalls(world), [
    'systemctl --user stop pve-exporter.service [unit=present config=present]',
    'systemctl --user disable podman-auto-update.timer [unit=present config=present]',
    'systemctl --user stop podman-auto-update.timer [unit=present config=present]',
    'systemctl --user daemon-reload [unit=absent config=present]',
    'podman rmi --ignore ghcr.io/pve-exporter/pve-exporter:latest [unit=absent config=present]',
    `loginctl disable-linger ${user} [unit=absent config=absent]`,
    `userdel --remove ${user} [unit=absent config=absent]`,
  ]);
  assert.equal(existsSync(path.join(world.root, 'var/lib/systemd/linger', user)), false);

  const again = runStubbed(world, { pve_exporter_state: 'absent' });
  assert.equal(again.status, 0, out(again));
  assert.match(again.stdout, /localhost\s+: ok=\d+\s+changed=0\s/);
  assert.deepEqual(takeCalls(world), []);
});

test('the role README carries the operations of seed 000', () => {
  const readme = readFileSync(path.join(ROLE_DIR, 'README.md'), 'utf8');
  const ops = readme.split('## Operations')[1]?.split('## Testing the role')[0];
  assert.ok(ops, 'README section "Operations" missing');
  for (const needle of [
    'systemctl --user status pve-exporter.service',
    'systemctl --user restart pve-exporter.service',
    'journalctl --user -u pve-exporter.service',
    'podman ps',
    'podman inspect',
    'podman images',
    'podman image prune',
    '/etc/subuid',
    'Linger=yes',
    '/usr/libexec/podman/quadlet --dryrun --user',
    'podman auto-update',
    '### Backup',
    'curl -k https://pve1.example.com:8006/api2/json/version',
    'PVEAPIToken=',
    '## Uninstall',
  ]) {
    assert.ok(ops.includes(needle), `Operations section lacks ${needle}`);
  }
  // Every role variable is documented.
  const defaults = parseYaml(readFileSync(path.join(ROLE_DIR, 'defaults/main.yml'), 'utf8')) as Record<string, unknown>;
  for (const name of Object.keys(defaults)) assert.ok(readme.includes(`\`${name}\``), `README does not document ${name}`);
});

test('the example playbook sets an allow-list on every module', () => {
  const site = parseYaml(readFileSync(path.join(ANSIBLE_DIR, 'examples/site.yml'), 'utf8')) as {
    roles: { vars: { pve_exporter_pve_targets: Record<string, { targets?: string[] }> } }[];
  }[];
  const modules = Object.entries(site[0]!.roles[0]!.vars.pve_exporter_pve_targets);
  assert.ok(modules.length >= 2);
  for (const [name, m] of modules) assert.ok((m.targets?.length ?? 0) > 0, `example module ${name} has no targets`);
});

test('ca_file, fingerprint lists, server_name, gzip and targets: rendered, the CA copied and mounted', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const caKey = path.join(scratch, 'ca.key');
  const caPem = path.join(scratch, 'pve-root-ca.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', caKey, '-out', caPem, '-subj', '/CN=PVE Cluster Manager CA', '-days', '2'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  const targets = {
    'cluster a': { ...TARGETS['ve-01'], ca_file: caPem, server_name: 'pve.example.com', targets: ['*.pve.example.com', '192.0.2.0/24'] },
    pinned: { ...TARGETS.lab, fingerprint: [FINGERPRINT, FINGERPRINT.replaceAll(':', '').toLowerCase()], gzip: false },
    open: { ...TARGETS.lab },
  };
  const r = render({ pve_exporter_pve_targets: targets, pve_exporter_pve_allowed_targets: ['pve9.example.com:8006'] });
  assert.equal(r.result.status, 0, out(r.result));
  const parsed = parseYaml(readFileSync(r.pveYml, 'utf8')) as Record<string, Record<string, unknown>>;
  assert.deepEqual(parsed['cluster a'], {
    ...TARGETS['ve-01'],
    verify_ssl: true, // a CA is only used when verifying
    ca_file: '/etc/prometheus/ca/cluster_a.pem',
    server_name: 'pve.example.com',
    targets: ['*.pve.example.com', '192.0.2.0/24'],
  });
  assert.deepEqual(parsed.pinned!.fingerprint, targets.pinned.fingerprint);
  assert.equal(parsed.pinned!.gzip, false);
  assert.deepEqual(parsed.pinned!.targets, ['pve9.example.com:8006'], 'role-wide allow-list');
  assert.doesNotMatch(out(r.result), /module \\?"pinned\\?" has no targets/);

  // The CA on the host, and the Volume= that puts it where pve.yml says.
  const hostCa = path.join(path.dirname(r.pveYml), 'ca/cluster_a.pem');
  assert.equal(readFileSync(hostCa, 'utf8'), readFileSync(caPem, 'utf8'));
  assert.equal(statSync(hostCa).mode & 0o777, 0o644);
  const volumes = unitAsObject(readFileSync(r.quadlet, 'utf8')).Container!.Volume!;
  assert.deepEqual(volumes, [
    '%h/.config/pve-exporter/pve.yml:/etc/prometheus/pve.yml:ro,Z',
    '%h/.config/pve-exporter/ca:/etc/prometheus/ca:ro,Z',
  ]);

  // The exporter loads the file as the container sees it: each Volume= maps a host path (%h is
  // the user's home) to a container path, so rewrite the container paths back to the host's.
  const home = path.dirname(path.dirname(path.dirname(r.pveYml)));
  let asContainerSeesIt = readFileSync(r.pveYml, 'utf8');
  for (const v of volumes) {
    const [host, inContainer] = v.split(':') as [string, string];
    asContainerSeesIt = asContainerSeesIt.replaceAll(`"${inContainer}/`, `"${host.replace('%h', home)}/`);
  }
  const config = parseConfigText(asContainerSeesIt, r.pveYml);
  const clusterA = config.modules.get('cluster a')!;
  assert.equal(clusterA.caFile, hostCa);
  assert.match(clusterA.ca ?? '', /-----BEGIN CERTIFICATE-----/);
  assert.equal(clusterA.verifySsl, true);
  assert.equal(clusterA.serverName, 'pve.example.com');
  assert.deepEqual(clusterA.targets?.entries, ['*.pve.example.com', '192.0.2.0/24']);
  assert.equal(clusterA.targets?.allows('pve2.pve.example.com', 8006), true);
  assert.equal(clusterA.targets?.allows('catcher.example.org', 8006), false);
  assert.deepEqual(config.modules.get('pinned')!.fingerprints, [FINGERPRINT]);
  assert.equal(config.modules.get('pinned')!.gzip, false);
  assert.equal(clusterA.gzip, true, 'not written: the exporter\'s default');
  assert.equal(config.modules.get('pinned')!.targets?.allows('pve9.example.com', 8006), true);
  assert.equal(config.modules.get('pinned')!.targets?.allows('pve9.example.com', 8007), false);
  // No module is left without an allow-list, so the exporter has nothing to warn about.
  assert.deepEqual(config.warnings.filter((w) => /allow-list/.test(w)), []);

  // Without an allow-list anywhere, the role warns per module.
  const open = render({ pve_exporter_pve_targets: { open: TARGETS.lab } });
  assert.equal(open.result.status, 0, out(open.result));
  assert.match(out(open.result), /WARNING: module \\?"open\\?" has no targets allow-list/);

  // Bad values fail naming the module.
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ x: { ...TARGETS.lab, fingerprint: ['AB:CD'] } }, /\\?"x\\?"\]: fingerprint must be a SHA-256 fingerprint/],
    [{ x: { ...TARGETS.lab, targets: 'pve1' } }, /\\?"x\\?"\]: fingerprint must be .* targets a\s+list/],
    [{ x: { ...TARGETS.lab, gzip: 'level6' } }, /\\?"x\\?"\]: fingerprint must be .* gzip true\s+or false/],
    [{ x: { ...TARGETS.lab, ca_file: path.join(scratch, 'missing.pem') } }, /\\?"x\\?"\]\.ca_file must be a PEM file on the controller/],
    [{ x: { ...TARGETS.lab, ca_file: caPem, verify_ssl: false } }, /verify_ssl must not be false/],
  ];
  for (const [bad, message] of cases) {
    const b = render({ pve_exporter_pve_targets: bad });
    assert.notEqual(b.result.status, 0, JSON.stringify(bad));
    assert.match(out(b.result), message);
  }
});

test('uninstall of a render-only setup removes the rendered files and touches nothing else', (t) => {
  if (!requireTool(t, 'ansible-playbook', HINT)) return;
  const first = render({ pve_exporter_pve_targets: TARGETS });
  assert.equal(first.result.status, 0, out(first.result));
  assert.ok(existsSync(first.quadlet) && existsSync(first.pveYml));
  const gone = render({ pve_exporter_state: 'absent' }, first.root);
  assert.equal(gone.result.status, 0, out(gone.result));
  assert.equal(existsSync(first.quadlet), false);
  assert.equal(existsSync(path.dirname(first.pveYml)), false);
  // The system side (user lookup, systemctl, podman, userdel) is skipped as a whole.
  const systemSide = gone.result.stdout.split('TASK [pve_exporter : Look up the service user]')[1]?.split('PLAY RECAP')[0];
  assert.ok(systemSide?.includes('Remove the service user'), gone.result.stdout);
  assert.doesNotMatch(systemSide!, /^(ok|changed|fatal):/m);
  const bad = render({ pve_exporter_state: 'gone', pve_exporter_pve_targets: TARGETS });
  assert.notEqual(bad.result.status, 0);
  assert.match(out(bad.result), /value of pve_exporter_state must be one of: present, absent|pve_exporter_state must be present or absent/);
});
