// See what a scrape did: /pve?debug=true (a log of every PVE call and collector, then the
// metrics), the recent scrapes on the landing page with their stored logs (/logs?id=N), escaping,
// and the pointer line on /metrics. Against the HTTPS simulator.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import YAML from 'yaml';
import { startSimulator } from '../sim/index.ts';
import { exporterModule } from '../sim/exporter-config.ts';
import type { Simulator } from '../sim/types.ts';
import { get, simModule, simPasswordModule, startExporter, type RunningExporter, useSimAndExporter } from './helpers/exporter.ts';
import { hasTool } from './helpers/tools.ts';
import { SCRAPE_COLLECTORS } from '../src/collectors/registry.ts';
import { DEBUG_LOG_LIMITS, privilegeFor, ScrapeLog, STORED_LOG_LIMITS, STORED_LOG_MAX_CALLS } from '../src/scrape/debug-log.ts';

const TICKET = /PVE:[^:\s]+:[0-9A-F]{8}::/;

/** GET with a Host header of our choosing (fetch does not let one set it). */
function rawGet(base: string, path: string, host: string): Promise<string> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: u.hostname, port: u.port, path, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}

function callsTo(sim: Simulator, path: string): number {
  return sim.stats().calls.get(path) ?? 0;
}

/** The line of the debug log's collector table for `name`. */
function collectorLine(log: string, name: string): string {
  const line = log.split('\n').find((l) => new RegExp(`^  ${name} +(ok|FAILED)`).test(l));
  assert.ok(line, `no collector line for ${name} in:\n${log}`);
  return line;
}

describe('debug=true', () => {
  const env = useSimAndExporter({ args: ['--scrape.cache-ttl', '60'], resetAfterEach: true });

  test('a plain-text log of every call and collector, then the metrics; no token in it', async () => {
    env.sim.addFault({ path: '/cluster/backup-info/not-backed-up', status: 403, reason: 'Permission check failed (/, Sys.Audit)' });
    const res = await get(`${env.exp.url}/pve?target=127.0.0.1&debug=true`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const [log, metrics] = res.body.split('\nMetrics the scrape would have returned:\n');
    assert.ok(metrics, `no metrics section in:\n${res.body.slice(0, 2000)}`);
    assert.match(log, /auth: API token monitoring@pve!exporter/);
    // Every call: method, path, status, duration, bytes.
    assert.match(log, /GET \/cluster\/status +200 +\d+\.\d ms +[\d.]+ (B|KiB)/);
    assert.match(log, /GET \/cluster\/resources +200 /);
    assert.match(log, /GET \/cluster\/backup-info\/not-backed-up +403 /);
    assert.match(log, /GET \/nodes\/[^/]+\/(qemu|lxc)\/\d+\/config +200 .*cache miss/);
    const callLines = log.split('\n').filter((l) => /^ +\+\d+\.\d{3}s  (GET|POST) /.test(l) && !l.includes('cache hit'));
    assert.equal(callLines.length, env.sim.stats().total, 'one line per call the simulator answered');
    // Every collector: success, duration, series, error, and the privilege a 403 needs.
    assert.match(collectorLine(log, 'status'), /ok +\d+\.\d ms +\d+ series/);
    const backup = collectorLine(log, 'backup-info');
    assert.match(backup, /FAILED .* 0 series +\/cluster\/backup-info\/not-backed-up: 403 Permission check failed \(\/, Sys\.Audit\) \((needs|privilege for \/cluster\/backup-info\/not-backed-up:) Sys\.Audit on \/\)/);
    assert.match(log, /^Result: 200, \d+ series/m);
    assert.match(metrics, /^pve_up\{/m);
    assert.match(metrics, /^pve_exporter_collector_success\{collector="backup-info"\} 0$/m);
    assert.ok(!res.body.includes(env.sim.credentials.tokenValue), 'the token value is in the debug log');
  });

  test('a second debug scrape shows the guest config cache hits, and bypasses the result cache', async () => {
    const normal = await get(`${env.exp.url}/pve?target=127.0.0.1`);
    assert.equal(normal.status, 200);
    env.sim.resetStats();
    const res = await get(`${env.exp.url}/pve?target=127.0.0.1&debug=true`);
    assert.ok(callsTo(env.sim, '/cluster/status') >= 1, 'debug=true collected although a cached result was there');
    assert.match(res.body, /guest config cache: [1-9]\d* hit\(s\) \(no call\), 0 miss\(es\)/);
    assert.match(res.body, /GET \/nodes\/[^/]+\/(qemu|lxc)\/\d+\/config +cache hit: no call/);
    const again = await get(`${env.exp.url}/pve?target=127.0.0.1`);
    assert.equal(again.status, 200);
  });

  test('a scrape that fails says why, with no metrics', async () => {
    env.sim.addFault({ path: /.*/, status: 500, reason: 'proxy down' });
    const res = await get(`${env.exp.url}/pve?target=127.0.0.1&debug=true&cluster=0`);
    assert.equal(res.status, 200);
    assert.match(res.body, /^Result: 500 in .*proxy down/m);
    assert.match(res.body, /The scrape would have answered 500: Error scraping target 127\.0\.0\.1: .*proxy down/);
  });

  test('a bad debug value is a 400', async () => {
    const res = await get(`${env.exp.url}/pve?target=127.0.0.1&debug=maybe`);
    assert.equal(res.status, 400);
    assert.match(res.body, /debug must be "true" or "false"/);
  });
});

describe('debug log with password auth', () => {
  test('shows the login call, never the password or the ticket', async () => {
    const sim = await startSimulator({ scenario: 'default' });
    const exp = await startExporter(simPasswordModule(sim));
    try {
      const res = await get(`${exp.url}/pve?target=127.0.0.1&debug=true`);
      assert.equal(res.status, 200);
      assert.match(res.body, /POST \/access\/ticket +200 /);
      assert.match(res.body, /auth: password of monitoring@pve/);
      assert.ok(!res.body.includes(sim.credentials.password), 'the password is in the debug log');
      assert.doesNotMatch(res.body, TICKET);
      assert.ok(!res.body.includes('PVEAuthCookie'));
      // The stored log of the same scrape, too.
      const page = (await get(`${exp.url}/`)).body;
      const id = /logs\?id=(\d+)/.exec(page)?.[1];
      assert.ok(id);
      const stored = (await get(`${exp.url}/logs?id=${id}`)).body;
      assert.match(stored, /POST \/access\/ticket/);
      assert.ok(!stored.includes(sim.credentials.password));
      assert.doesNotMatch(stored, TICKET);
    } finally {
      await exp.close();
      await sim.close();
    }
  });
});

describe('landing page: recent scrapes, modules, configuration', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  const HOSTILE = '<script>alert(1)</script>';
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    const modules = {
      default: exporterModule(sim, { targets: ['127.0.0.1', '*.pve.example.com'] }),
      [HOSTILE]: exporterModule(sim),
    };
    exp = await startExporter(YAML.stringify(modules), ['--web.recent-scrapes', '3']);
  });
  after(async () => {
    await exp.close();
    await sim.close();
  });

  test('a good and a failing scrape: rows with status, failing collectors marked, a log link each', async () => {
    const good = await get(`${exp.url}/pve?target=127.0.0.1`);
    assert.equal(good.status, 200);
    sim.addFault({ path: '/cluster/config/qdevice', status: 403, reason: `Permission check failed ${HOSTILE}` });
    const partial = await get(`${exp.url}/pve?target=127.0.0.1&module=${encodeURIComponent(HOSTILE)}`);
    sim.clearFaults();
    assert.equal(partial.status, 200);
    const page = await get(`${exp.url}/`);
    assert.equal(page.status, 200);
    const html = page.body;
    assert.ok(!html.includes('<script'), 'unescaped <script> on the landing page');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the hostile module name is shown escaped');
    const rows = [...html.matchAll(/<tr class="scrape([^"]*)" data-id="(\d+)">([\s\S]*?)<\/tr>/g)];
    assert.equal(rows.length, 2);
    const [newest, older] = rows;
    assert.match(newest[3], /<span class="failed" title="[^"]*Permission check failed &lt;script&gt;[^"]*">qdevice<\/span>/);
    assert.match(older[3], /<span class="muted">none<\/span>/);
    assert.match(older[3], /<td>127\.0\.0\.1:\d+<\/td><td>cluster, node<\/td><td><span class="ok">200<\/span>/);
    // The stored log of the failing one.
    const log = await get(`${exp.url}/logs?id=${newest[2]}`);
    assert.equal(log.status, 200);
    assert.match(log.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(log.body, /^Scrape #\d+ at .*target 127\.0\.0\.1:\d+/);
    assert.match(collectorLine(log.body, 'qdevice'), /FAILED .*403 .*\((needs|privilege for [^:]+:) Sys\.Audit on \/\)/);
    // Scrape config first, with the exporter's address (the hostile Host header is not used as is).
    assert.ok(html.indexOf('metrics_path: /pve') < html.indexOf('id="recent"'), 'the scrape config comes first');
    assert.ok(html.includes(`replacement: ${new URL(exp.url).host}`), 'the config names the address the page was asked at');
    const hostile = await rawGet(exp.url, '/', `evil${HOSTILE}`);
    assert.ok(!hostile.includes('<script'), 'a hostile Host header reached the page unescaped');
    assert.match(hostile, /replacement: pve-exporter\.example\.com:9221/);
    // Modules with their allow-lists, the config and its load.
    assert.match(html, /<td><code>default<\/code><\/td><td>API token monitoring@pve!exporter<\/td><td><code>127\.0\.0\.1<\/code> <code>\*\.pve\.example\.com<\/code><\/td>/);
    assert.match(html, /any target/);
    assert.match(html, /File: <code>test-pve\.yml<\/code>, <span class="ok">loaded<\/span> \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(start\)/);
    assert.ok(!html.includes(sim.credentials.tokenValue), 'the token value is on the landing page');
  });

  test('the ring buffer keeps the last --web.recent-scrapes; an older log is a 404', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await get(`${exp.url}/pve?target=127.0.0.1&node=0`)).status, 200);
    const html = (await get(`${exp.url}/`)).body;
    const ids = [...html.matchAll(/data-id="(\d+)"/g)].map((m) => Number(m[1]));
    assert.equal(ids.length, 3);
    const gone = await get(`${exp.url}/logs?id=1`);
    assert.equal(gone.status, 404);
    assert.match(gone.body, /not kept \(the last 3 are/);
    assert.equal((await get(`${exp.url}/logs?id=x`)).status, 400);
  });

  test('a failed reload shows on the page, with the reason', async () => {
    const app = exp.app;
    const outcome = app.reload('test');
    // The test config is not a file: the reload fails and the page says so.
    assert.equal(outcome.ok, false);
    const html = (await get(`${exp.url}/`)).body;
    assert.match(html, /<span class="failed">last reload failed<\/span> .*\(test\): /);
  });
});

describe('landing page scrape config', () => {
  test('is the quick start layout (cluster scope once, node scope per node) and passes promtool check config', async (t) => {
    const sim = await startSimulator({ scenario: 'default' });
    const exp = await startExporter(simModule(sim));
    try {
      const html = (await get(`${exp.url}/`)).body;
      const pre = /<pre>([\s\S]*?)<\/pre>/.exec(html);
      assert.ok(pre, 'no <pre> with the scrape config');
      const text = pre[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
      const config = YAML.parse(text, { merge: true }) as { scrape_configs: { job_name: string; metrics_path?: string; params?: Record<string, string[]> }[] };
      const jobs = new Map(config.scrape_configs.map((j) => [j.job_name, j]));
      assert.deepEqual(jobs.get('pve-cluster')?.params, { module: ['default'], cluster: ['1'], node: ['0'] });
      assert.deepEqual(jobs.get('pve-node')?.params, { module: ['default'], cluster: ['0'], node: ['1'] });
      assert.equal(jobs.get('pve-node')?.metrics_path, '/pve');
      assert.ok(jobs.has('pve-exporter'));
      if (!hasTool('promtool')) {
        if (process.env.CI) throw new Error('promtool missing in CI');
        t.skip('install promtool: apt-get install prometheus');
        return;
      }
      const dir = mkdtempSync(path.join(tmpdir(), 'pve-landing-'));
      try {
        writeFileSync(path.join(dir, 'prometheus.yml'), text);
        const r = spawnSync('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stdout + r.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      await exp.close();
      await sim.close();
    }
  });
});

describe('/metrics', () => {
  test('starts with a comment saying where the PVE metrics are; promtool still accepts it', async (t) => {
    const sim = await startSimulator({ scenario: 'default' });
    const exp = await startExporter(simModule(sim));
    try {
      const res = await get(`${exp.url}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.body.split('\n')[0], /^# .*PVE metrics are at \/pve\?target=/);
      assert.match(res.body, /^pve_exporter_scrapes_total\{module="default",result="cached"\} 0$/m);
      if (!hasTool('promtool')) {
        if (process.env.CI) throw new Error('promtool missing in CI');
        t.skip('install promtool: apt-get install prometheus');
        return;
      }
      const r = spawnSync('promtool', ['check', 'metrics'], { input: res.body, encoding: 'utf8' });
      const problems = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() !== '' && !/^nodejs_active_\w+_total non-counter/.test(l));
      assert.deepEqual(problems, []);
    } finally {
      await exp.close();
      await sim.close();
    }
  });
});

describe('ScrapeLog', () => {
  const header = { module: 'm', target: 'pve1:8006', cluster: true, node: false, auth: 'API token a@pve!b' };

  test('bounded(): the ring keeps 200 call lines of a big debug log, counts the rest and the cache hits', () => {
    const log = new ScrapeLog(header, DEBUG_LOG_LIMITS);
    for (let i = 0; i < 250; i++) log.call({ method: 'GET', path: `/nodes/pve1/qemu/${100 + i}/config`, status: 200, seconds: 0.001, bytes: 100 });
    for (let i = 0; i < 50; i++) log.cacheHit(`/nodes/pve1/lxc/${1000 + i}/config`);
    log.finish(200, 10);
    const full = log.render();
    assert.equal(full.split('\n').filter((l) => l.includes('/config')).length, 300);
    assert.match(full, /guest config cache: 50 hit\(s\) \(no call\), 250 miss\(es\)/);
    const kept = log.bounded(STORED_LOG_LIMITS);
    const text = kept.render();
    assert.equal(text.split('\n').filter((l) => /\/config {2,}/.test(l)).length, STORED_LOG_MAX_CALLS);
    assert.ok(!text.includes('cache hit: no call'), 'the ring lists cache hits');
    assert.match(text, /\.\.\. 50 more call\(s\) not listed \(log kept to 200 calls\)/);
    assert.match(text, /PVE calls: 250; guest config cache: 50 hit\(s\) \(no call, listed with debug=true\), 250 miss\(es\)/);
    assert.match(text, /^Result: 200, 10 series/m);
    assert.equal(log.bounded({ calls: 1000, hits: 1000 }), log, 'within the limits: the same log');
    const few = new ScrapeLog(header, DEBUG_LOG_LIMITS);
    for (let i = 0; i < 300; i++) few.cacheHit(`/nodes/pve1/lxc/${1000 + i}/config`);
    assert.equal(few.render().split('\n').filter((l) => l.includes('cache hit: no call')).length, 300);
    assert.doesNotMatch(few.render(), /not listed/);
    assert.doesNotMatch(few.bounded({ calls: 10, hits: 100 }).render(), /more call/);
    assert.match(few.bounded({ calls: 10, hits: 100 }).render(), /\.\.\. 200 more cache hit\(s\) not listed \(log kept to 100 cache hits\)/);
  });

  test('a stored log lists every call of a warm scrape, however many cache hits came first', () => {
    // Regression: hits and calls shared the 200 lines, and a warm scrape of more than 200 guests
    // records its cache hits as soon as the guest list is in, before the calls still running.
    const log = new ScrapeLog(header, STORED_LOG_LIMITS);
    log.call({ method: 'GET', path: '/cluster/resources', status: 200, seconds: 0.01, bytes: 1000 });
    for (let i = 0; i < 2000; i++) log.cacheHit(`/nodes/pve1/qemu/${100 + i}/config`);
    log.call({ method: 'GET', path: '/nodes/pve1/status', status: 500, seconds: 0.02, error: 'boom' });
    log.finish(200, 10);
    const text = log.render();
    assert.match(text, /GET \/cluster\/resources +200/);
    assert.match(text, /GET \/nodes\/pve1\/status +500 .*boom/);
    assert.match(text, /PVE calls: 2; guest config cache: 2000 hit\(s\) \(no call, listed with debug=true\), 0 miss\(es\)/);
    assert.doesNotMatch(text, /not listed/);
  });

  test('privilegeFor: the registry entry of the failing endpoint', () => {
    const config = SCRAPE_COLLECTORS.find((c) => c.name === 'config')!;
    assert.equal(privilegeFor(config, SCRAPE_COLLECTORS, '/nodes/pve2/lxc/200/config'), 'VM.Audit on /vms/{vmid}');
    assert.equal(privilegeFor(config, SCRAPE_COLLECTORS, '/cluster/backup-info/not-backed-up'), 'Sys.Audit on /', 'from another collector');
    assert.equal(privilegeFor(config, SCRAPE_COLLECTORS, '/nowhere'), undefined);
  });
});
