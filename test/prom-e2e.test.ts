// End to end with a real Prometheus: simulator (every node on its own loopback address) ->
// pve-exporter (child process) -> Prometheus (child process) configured from the shipped
// deploy/prometheus/prometheus.service-discovery.yml with loopback addresses substituted and
// loading the shipped rule files. Checked through the Prometheus HTTP API.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { SCRAPE_COLLECTORS } from '../src/collectors/registry.ts';
import { hasTool, requireTool } from './helpers/tools.ts';
import { compatFile } from './helpers/fixtures.ts';
import {
  PROMETHEUS_ACCEPT,
  activeTargets,
  alerts,
  moduleFor,
  openMetricsToText,
  query,
  renderExampleConfig,
  ruleFilesWithFor,
  startExporter,
  startPrometheus,
  waitUntil,
  type Exporter,
  type Prometheus,
} from './helpers/prom-stack.ts';

const HINT = 'apt-get install prometheus';
const haveTools = hasTool('promtool') && hasTool('prometheus');

let tmp = '';
let sim: Simulator | undefined;
let exporter: Exporter | undefined;
let prom: Prometheus | undefined;
let seed = '';

// The guests, nodes, storages and the cluster of the reference output for the default scenario:
// what pve_up must hold, by id.
function referenceUpIds(): string[] {
  const ref = compatFile('default', 'cluster-1_node-1');
  return [...ref.matchAll(/^pve_up\{id="([^"]+)"\}/gm)].map((m) => m[1]).sort();
}

before(async () => {
  if (!haveTools) return;
  tmp = mkdtempSync(path.join(os.tmpdir(), 'prom-e2e-'));
  sim = await startSimulator({ loopbackNodes: true });
  seed = sim.nodeAddresses.get('pve1')!;
  exporter = await startExporter(tmp, { default: moduleFor(sim) });
  // The shipped PveGuestNotRunning waits 10 minutes before firing (reboots, stop-mode backups
  // and planned restarts must not page anyone). The test copy of the rules shortens only that
  // `for`, so that the pending -> firing transition can be watched in seconds.
  const rules = ruleFilesWithFor(tmp, { PveGuestNotRunning: '2s' });
  const config = renderExampleConfig('prometheus.service-discovery.yml', {
    replace: { 'pve-exporter.example.com:9221': exporter.address, 'pve1.example.com': seed },
    ruleFiles: rules,
    scrapeInterval: '1s',
    evaluationInterval: '1s',
    sdRefresh: '2s',
  });
  prom = await startPrometheus(tmp, config);
});

after(async () => {
  await prom?.stop();
  await exporter?.stop();
  await sim?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function diagnostics(): string {
  return `\n--- exporter ---\n${exporter?.output().slice(-3000)}\n--- prometheus ---\n${prom?.output().slice(-3000)}`;
}

test('every target of the shipped SD layout is discovered and scraped successfully', async (t) => {
  if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT)) return;
  const nodeAddrs = [...sim!.nodeAddresses.values()].sort();
  const targets = await waitUntil(
    'all targets up',
    async () => {
      const ts = await activeTargets(prom!.url);
      const pool = (p: string): number => ts.filter((x) => x.scrapePool === p && x.health === 'up').length;
      return pool('pve-cluster') === 1 && pool('pve-node') === nodeAddrs.length && pool('pve-exporter') === 1 ? ts : undefined;
    },
    30_000,
  ).catch((err: Error) => {
    throw new Error(err.message + diagnostics());
  });
  for (const x of targets) {
    // Prometheus negotiates OpenMetrics by default; a body its parser rejects shows up here.
    assert.equal(x.health, 'up', `${x.scrapeUrl}: ${x.lastError}`);
    assert.equal(x.lastError, '', x.scrapeUrl);
  }
  const nodeTargets = targets.filter((x) => x.scrapePool === 'pve-node');
  assert.deepEqual(nodeTargets.map((x) => x.labels.instance).sort(), nodeAddrs);
  for (const x of nodeTargets) {
    const u = new URL(x.scrapeUrl);
    assert.equal(u.host, exporter!.address, 'node targets are scraped through the exporter');
    assert.equal(u.pathname, '/pve');
    assert.equal(u.searchParams.get('target'), x.labels.instance);
    assert.equal(u.searchParams.get('module'), 'default');
    assert.equal(u.searchParams.get('cluster'), '0');
    assert.equal(u.searchParams.get('node'), '1');
    assert.equal(x.labels.cluster, 'pvec', 'cluster label from __meta_pve_cluster');
    assert.equal(sim!.nodeAddresses.get(x.labels.pve_node), x.labels.instance, 'pve_node label from __meta_pve_node');
  }
  const clusterTarget = targets.find((x) => x.scrapePool === 'pve-cluster')!;
  const cu = new URL(clusterTarget.scrapeUrl);
  assert.equal(cu.host, exporter!.address);
  assert.equal(cu.searchParams.get('target'), seed);
  assert.equal(cu.searchParams.get('cluster'), '1');
  assert.equal(cu.searchParams.get('node'), '0');
  assert.equal(clusterTarget.labels.instance, seed);

  const up = await query(prom!.url, 'up');
  assert.equal(up.length, 2 + nodeAddrs.length);
  for (const s of up) assert.equal(s.value[1], '1', JSON.stringify(s.metric));
  const nodeUp = await query(prom!.url, 'up{job="pve-node"} == 1');
  assert.deepEqual(nodeUp.map((s) => s.metric.instance).sort(), nodeAddrs);
});

test('pve_up has every reference series, with instance relabelled to the PVE target', async (t) => {
  if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT)) return;
  const expected = referenceUpIds();
  const series = await waitUntil(
    'pve_up series',
    async () => {
      const r = await query(prom!.url, 'pve_up');
      return r.length >= expected.length ? r : undefined;
    },
    20_000,
  );
  // Cluster-wide series come once, from the pve-cluster job only (no duplicates from the nodes).
  assert.deepEqual(series.map((s) => s.metric.id).sort(), expected);
  for (const s of series) {
    assert.equal(s.metric.job, 'pve-cluster');
    assert.equal(s.metric.instance, seed);
    assert.equal(s.metric.cluster, 'pvec');
  }
  const stopped = series.filter((s) => s.value[1] === '0').map((s) => s.metric.id).sort();
  assert.deepEqual(stopped, ['lxc/202', 'qemu/102', 'qemu/103', 'qemu/105']);
  // Per-node series come from the node each one belongs to, named by its address.
  const onboot = await query(prom!.url, 'pve_onboot_status');
  assert.ok(onboot.length > 0);
  for (const s of onboot) {
    assert.equal(s.metric.job, 'pve-node');
    assert.equal(sim!.nodeAddresses.get(s.metric.node), s.metric.instance, JSON.stringify(s.metric));
  }
  // Counters and the deprecated gauges of the same name both arrived through OpenMetrics.
  for (const name of ['pve_network_transmit_bytes_total', 'pve_network_transmit_bytes', 'pve_disk_written_bytes_total', 'pve_disk_read_bytes_total']) {
    assert.ok((await query(prom!.url, `${name}{id="qemu/100"}`)).length === 1, name);
  }
  // The exporter's own metrics.
  // (The summary has no series until the first /pve request has finished, which may be after
  // the first scrape of /metrics.)
  const coll = await waitUntil(
    'pve_collection_duration_seconds_count',
    async () => {
      const r = await query(prom!.url, 'pve_collection_duration_seconds_count{job="pve-exporter", module="default"} > 0');
      return r.length === 1 ? r : undefined;
    },
    10_000,
  );
  assert.equal(coll[0].metric.instance, exporter!.address);
  const collectors = await query(prom!.url, 'pve_exporter_collector_success');
  const byJob = (job: string): string[] => [...new Set(collectors.filter((s) => s.metric.job === job).map((s) => s.metric.collector))].sort();
  // Every collector on by default, per scope (from the registry, so new collectors are covered).
  const defaults = (scope: string) => SCRAPE_COLLECTORS.filter((c) => c.defaultEnabled && c.scope === scope).map((c) => c.name).sort();
  assert.deepEqual(byJob('pve-cluster'), defaults('cluster'));
  assert.deepEqual(byJob('pve-node'), defaults('node'));
  for (const name of ['backup-info', 'cluster', 'node', 'qdevice', 'resources', 'status', 'version']) assert.ok(byJob('pve-cluster').includes(name), name);
  for (const name of ['config', 'replication', 'subscription']) assert.ok(byJob('pve-node').includes(name), name);
});

test('PveGuestNotRunning fires once a guest with onboot=1 is stopped', async (t) => {
  if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT)) return;
  // Healthy: every guest with onboot=1 runs (100, 104, 200, 201), so the alert is absent.
  await waitUntil('onboot series from every node', async () => (await query(prom!.url, 'pve_onboot_status == 1')).length >= 4, 20_000);
  await waitUntil('guest names recorded', async () => (await query(prom!.url, 'cluster_id:pve_guest_info:group')).length > 0, 20_000);
  assert.deepEqual(
    (await alerts(prom!.url)).filter((a) => a.labels.alertname === 'PveGuestNotRunning'),
    [],
  );
  sim!.setGuestStatus(100, 'stopped');
  const firing = await waitUntil(
    'PveGuestNotRunning firing',
    async () => {
      const as = (await alerts(prom!.url)).filter((a) => a.labels.alertname === 'PveGuestNotRunning');
      return as.some((a) => a.state === 'firing') ? as : undefined;
    },
    30_000,
  ).catch((err: Error) => {
    throw new Error(err.message + diagnostics());
  });
  assert.equal(firing.length, 1, JSON.stringify(firing));
  const a = firing[0];
  assert.deepEqual(
    { id: a.labels.id, name: a.labels.name, node: a.labels.node, type: a.labels.type, cluster: a.labels.cluster, severity: a.labels.severity },
    { id: 'qemu/100', name: 'web01', node: 'pve1', type: 'qemu', cluster: 'pvec', severity: 'warning' },
  );
  assert.match(a.annotations.description, /qemu\/100 \(web01\) on node pve1/);
  sim!.setGuestStatus(100, 'running');
  await waitUntil(
    'PveGuestNotRunning resolved',
    async () => (await alerts(prom!.url)).every((x) => x.labels.alertname !== 'PveGuestNotRunning'),
    20_000,
  );
});

test('the exporter answers valid OpenMetrics and text exposition (promtool check metrics)', async (t) => {
  if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT)) return;
  const url = `${exporter!.url}/pve?target=${seed}&module=default&cluster=1&node=1`;
  // `promtool check metrics` exits 3 for lint findings and 1 for a body it cannot parse.
  const check = (body: string, what: string, allowedLint: Set<string>): void => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    const findings = `${r.stdout}${r.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
    assert.ok(r.status === 0 || r.status === 3, `${what}: promtool check metrics exit ${r.status}:\n${findings.join('\n')}`);
    for (const f of findings) assert.ok(allowedLint.has(f), `${what}: ${f}`);
  };
  const notCounterLint = (name: string): string => `${name} non-counter metrics should not have "_total" suffix`;

  const text = await fetch(url);
  assert.equal(text.status, 200);
  assert.match(text.headers.get('content-type') ?? '', /^text\/plain; ?version=0\.0\.4/);
  const textBody = await text.text();
  assert.doesNotMatch(textBody, /# EOF/);
  // The one finding the text format may have: the reference exporter's gauge that ends in _total.
  check(textBody, 'text 0.0.4', new Set([notCounterLint('pve_not_backed_up_total')]));

  const om = await fetch(url, { headers: { accept: PROMETHEUS_ACCEPT } });
  assert.equal(om.status, 200);
  assert.match(om.headers.get('content-type') ?? '', /^application\/openmetrics-text; ?version=1\.0\.0/);
  const omBody = await om.text();
  assert.match(omBody, /^pve_up\{id="qemu\/100"\} 1(\.0)?$/m);
  // OpenMetrics names a counter family without _total, and the reference keeps deprecated
  // gauges under exactly those names (pve_network_transmit_bytes next to
  // pve_network_transmit_bytes_total), so those counters cannot be OpenMetrics counters. Whatever
  // type the exporter gives them instead (unknown, gauge), promtool flags the _total name; that
  // finding is accepted for exactly the text-format counters whose base name is a family too.
  const textTypes = new Map([...textBody.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  const clashing = [...textTypes]
    .filter(([n, ty]) => ty === 'counter' && n.endsWith('_total') && textTypes.has(n.slice(0, -'_total'.length)))
    .map(([n]) => n);
  assert.ok(clashing.includes('pve_network_transmit_bytes_total'), clashing.join(','));
  check(openMetricsToText(omBody), 'OpenMetrics', new Set([notCounterLint('pve_not_backed_up_total'), ...clashing.map(notCounterLint)]));
  // Every other counter is an OpenMetrics counter.
  const omTypes = new Map([...omBody.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  for (const [n, ty] of textTypes) {
    if (ty !== 'counter' || clashing.includes(n)) continue;
    assert.equal(omTypes.get(n.replace(/_total$/, '')), 'counter', `${n} is not an OpenMetrics counter`);
  }

  // Both formats carry the same samples.
  const samples = (b: string): string[] =>
    b.split('\n').filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('pve_exporter_collector_duration_seconds')).sort();
  assert.deepEqual(samples(omBody), samples(textBody));
});
