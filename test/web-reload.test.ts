// Reload as blackbox_exporter has it (issue 7, bug 3, app side): one reload for SIGHUP and
// POST /-/reload (behind --web.enable-lifecycle), in-flight scrapes keep their config,
// --config.check, and the reload metrics. Real exporter processes against the simulator.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { simModule } from './helpers/exporter.ts';
import { request, spawnExporter, writeTemp, type ExporterProcess } from './helpers/web.ts';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const GOOD = 'default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: abc\n';

function metric(body: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(body);
  return m ? Number(m[1]) : undefined;
}

describe('SIGHUP during a scrape (bug 3)', () => {
  let sim: Simulator;
  let exp: ExporterProcess;
  let configFile: string;
  before(async () => {
    // Every API call takes 1.5 s: a scrape spans several rounds of calls, so it is in flight for seconds.
    sim = await startSimulator({ scenario: 'default', latencyMs: 1500 });
    configFile = writeTemp('pve.yml', simModule(sim));
    exp = await spawnExporter(['--config.file', configFile, '--log.level', 'info']);
  });
  after(async () => {
    await exp?.stop();
    await sim?.close();
  });

  test('a scrape in flight answers 200 although the config was reloaded under it, and so does the next', async () => {
    const url = `http://${exp.address}/pve?target=127.0.0.1`;
    const headers = { 'x-prometheus-scrape-timeout-seconds': '30' };
    sim.resetStats();
    let firstDone = false;
    const first = request(url, { headers }).finally(() => (firstDone = true));
    // In flight: the first round of API calls has been answered, the next round is pending.
    for (let i = 0; i < 300 && sim.stats().calls.size === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(sim.stats().calls.size > 0, 'the scrape reached the simulator');
    const reloads = (exp.stderr().match(/configuration reloaded/g) ?? []).length;
    exp.child.kill('SIGHUP');
    for (let i = 0; i < 250 && (exp.stderr().match(/configuration reloaded/g) ?? []).length === reloads; i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(exp.stderr(), /configuration reloaded/);
    // A scrape that starts after the reload, while the first one is still running.
    assert.equal(firstDone, false, 'the first scrape is still in flight after the reload');
    const second = request(url, { headers });
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.status, 200, `in-flight scrape: ${a.body.slice(0, 300)}`);
    assert.match(a.body, /^pve_up\{/m);
    assert.equal(b.status, 200, `scrape after the reload: ${b.body.slice(0, 300)}`);
  });
});

describe('lifecycle API and reload metrics', () => {
  let exp: ExporterProcess;
  let plain: ExporterProcess;
  let configFile: string;
  before(async () => {
    configFile = writeTemp('pve.yml', GOOD);
    exp = await spawnExporter(['--config.file', configFile, '--web.enable-lifecycle']);
    plain = await spawnExporter(['--config.file', configFile]);
  });
  after(async () => {
    await exp?.stop();
    await plain?.stop();
  });

  test('without --web.enable-lifecycle: 403 "Lifecycle API is not enabled."; GET is 405', async () => {
    for (const path of ['/-/reload', '/-/quit']) {
      const r = await request(`http://${plain.address}${path}`, { method: 'POST' });
      assert.equal(r.status, 403, path);
      assert.equal(r.body.trim(), 'Lifecycle API is not enabled.');
      const g = await request(`http://${plain.address}${path}`);
      assert.equal(g.status, 405, path);
      assert.equal(g.headers.allow, 'POST, PUT');
    }
    assert.equal(plain.child.exitCode, null, 'still running');
    const home = await request(`http://${plain.address}/`);
    assert.match(home.body, /POST \/-\/reload<\/code>.*disabled/s);
    assert.match(home.body, /Access: plain HTTP, no basic auth/);
  });

  test('the metrics are set at start', async () => {
    const m = (await request(`http://${exp.address}/metrics`)).body;
    assert.equal(metric(m, 'pve_exporter_config_last_reload_successful'), 1);
    const ts = metric(m, 'pve_exporter_config_last_reload_success_timestamp_seconds')!;
    assert.ok(ts > Date.now() / 1000 - 600 && ts <= Date.now() / 1000, String(ts));
  });

  test('POST /-/reload applies a new file; a broken one is a 500 with the reason, keeps the old config, sets the metric to 0', async () => {
    const base = `http://${exp.address}`;
    const before = metric((await request(`${base}/metrics`)).body, 'pve_exporter_config_last_reload_success_timestamp_seconds')!;
    writeFileSync(configFile, GOOD + 'other:\n  user: b@pve\n  password: y\n');
    const ok = await request(`${base}/-/reload`, { method: 'POST' });
    assert.equal(ok.status, 200, ok.body);
    assert.match((await request(`${base}/`)).body, /<code>other<\/code>/);
    let m = (await request(`${base}/metrics`)).body;
    assert.equal(metric(m, 'pve_exporter_config_last_reload_successful'), 1);
    assert.ok(metric(m, 'pve_exporter_config_last_reload_success_timestamp_seconds')! >= before);

    writeFileSync(configFile, GOOD + '  insecure: true\n');
    const bad = await request(`${base}/-/reload`, { method: 'PUT' });
    assert.equal(bad.status, 500);
    assert.match(bad.body, /failed to reload config: .*pve\.yml:5: module "default", key "insecure"/);
    assert.match((await request(`${base}/`)).body, /<code>other<\/code>/, 'old config kept');
    m = (await request(`${base}/metrics`)).body;
    assert.equal(metric(m, 'pve_exporter_config_last_reload_successful'), 0);

    // SIGHUP runs the same reload: a fixed file sets the metric back to 1.
    writeFileSync(configFile, GOOD);
    exp.child.kill('SIGHUP');
    for (let i = 0; i < 250 && metric((await request(`${base}/metrics`)).body, 'pve_exporter_config_last_reload_successful') !== 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(metric((await request(`${base}/metrics`)).body, 'pve_exporter_config_last_reload_successful'), 1);
    assert.doesNotMatch((await request(`${base}/`)).body, /<code>other<\/code>/);
  });

  test('POST /-/quit ends the process with status 0', async () => {
    const r = await request(`http://${exp.address}/-/quit`, { method: 'POST' });
    assert.equal(r.status, 200);
    assert.equal(await exp.exited, 0);
  });
});

describe('--config.check', () => {
  const check = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', MAIN, '--config.check', ...args], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      timeout: 30_000,
    });

  test('a good file: exit 0 and one line', () => {
    const r = check(['--config.file', writeTemp('pve.yml', GOOD)]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^pve-exporter: config \S+pve\.yml OK \(1 module\)\n$/);
    assert.equal(r.stderr, '');
  });

  test('a bad pve.yml or web config: exit 1 and the error', () => {
    const bad = check(['--config.file', writeTemp('pve.yml', GOOD + '  insecure: true\n')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /pve\.yml:5: module "default", key "insecure"/);
    assert.equal(bad.stdout, '');
    const web = check(['--config.file', writeTemp('pve.yml', GOOD), '--web.config.file', writeTemp('web.yml', 'basic_auth_users:\n  u: notahash\n')]);
    assert.equal(web.status, 1);
    assert.match(web.stderr, /web\.yml:2: key "basic_auth_users\.u": not a bcrypt hash/);
    const good = check(['--config.file', writeTemp('pve.yml', GOOD), '--web.config.file', writeTemp('web.yml', 'http_server_config:\n  headers:\n    X-Frame-Options: deny\n')]);
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /web config \S+web\.yml OK \(plain HTTP, no basic auth\)\n$/);
  });
});
