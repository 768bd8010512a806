// The issue-9 node collectors end to end against the HTTPS simulator: what a cold and a warm
// scrape fetch, a 403 that names the missing privilege once, a 501 said once and not asked
// again, and the TTL cache (expiry, stale fallback, counted; fills that outlive a scrape) on an
// injected clock.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { defaultSwitches } from '../src/collectors/registry.ts';
import { parseConfigText, type ModuleConfig } from '../src/config.ts';
import { FailureLog, createLogger } from '../src/log.ts';
import { ClientCache } from '../src/pve/client.ts';
import { Scraper, type ScrapeResult } from '../src/scrape.ts';
import { SelfMetrics } from '../src/self-metrics.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { collectorSuccess, parseExposition } from './helpers/promtext.ts';


function nonConfigCalls(sim: Simulator): string[] {
  return [...sim.stats().calls.keys()].filter((p) => !p.endsWith('/config')).sort();
}

/** The seven calls of a warm scrape before issue 9. */
const REFERENCE_CALLS = [
  '/cluster/backup-info/not-backed-up',
  '/cluster/config/qdevice',
  '/cluster/resources',
  '/cluster/status',
  '/nodes/pve1/replication',
  '/nodes/pve1/subscription',
  '/version',
];

describe('node collectors against the model cluster', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    // The guest collectors' calls (backup, HA, Ceph) are counted in test/guests-sim.test.ts.
    exp = await startExporter(simModule(sim), ['--no-collector.backup', '--no-collector.ha', '--no-collector.ceph']);
  });
  after(async () => {
    await exp?.close();
    await sim?.close();
  });

  test('a cold scrape: every new collector succeeds with the model data', async () => {
    sim.resetStats();
    const res = await get(`${exp.url}/pve?target=127.0.0.1`);
    assert.equal(res.status, 200, res.body);
    const parsed = parseExposition(res.body);
    const success = collectorSuccess(parsed);
    for (const name of ['node-status', 'node-metrics', 'allocation', 'guest-config', 'zfs', 'disks', 'certificates']) assert.equal(success[name], 1, name);
    assert.equal(success.updates, undefined, 'updates is off by default');
    const value = (family: string, labels: string) => parsed.get(family)?.samples.get(`${family}{${labels}}`);
    assert.equal(value('pve_zfs_pool_health', 'node="pve1",pool="tank",state="DEGRADED"'), 1);
    assert.equal(value('pve_node_disk_smart_passed', 'devpath="/dev/sdc",node="pve1"'), 0);
    assert.equal(value('pve_node_load1', 'id="node/pve3"'), 0.22, 'other nodes from /cluster/metrics/export');
    assert.equal(value('pve_node_memory_available_bytes', 'id="node/pve1"'), 76322115584);
    assert.equal(value('pve_node_certificate_expiry_timestamp_seconds', 'filename="pveproxy-ssl.pem",node="pve1"'), 1767776000);
    assert.equal(value('pve_guest_cpu_cores', 'id="qemu/101",node="pve1",type="qemu"'), 8);
    assert.equal(parsed.get('pve_node_load1')?.samples.size, 3, 'the answering node once, though two collectors fill it');
    assert.deepEqual(nonConfigCalls(sim), [
      ...REFERENCE_CALLS,
      '/cluster/metrics/export',
      '/nodes/pve1/certificates/info',
      '/nodes/pve1/disks/list',
      '/nodes/pve1/disks/zfs',
      '/nodes/pve1/status',
    ].sort());
  });

  test('a warm scrape: cached disks and certificates are not fetched; three calls more than before', async () => {
    sim.resetStats();
    const res = await get(`${exp.url}/pve?target=127.0.0.1`);
    assert.equal(res.status, 200);
    assert.match(res.body, /pve_node_disk_smart_passed\{node="pve1",devpath="\/dev\/sdc"\} 0/);
    assert.deepEqual(nonConfigCalls(sim), [...REFERENCE_CALLS, '/cluster/metrics/export', '/nodes/pve1/disks/zfs', '/nodes/pve1/status'].sort());
    assert.equal(sim.stats().total, REFERENCE_CALLS.length + 3, 'no guest config calls either');
  });
});

describe('403: the missing privilege is named, once; the rest of the scrape is unaffected', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  before(async () => {
    sim = await startSimulator({ scenario: 'default', nodeHealth: { aptForbidden: true } });
    exp = await startExporter(simModule(sim), ['--collector.updates']);
  });
  after(async () => {
    await exp?.close();
    await sim?.close();
  });

  test('the landing page shows each collector\'s endpoints, privilege and cost, and why one is off', async () => {
    const page = (await get(`${exp.url}/`)).body;
    assert.match(page, /<code>\/nodes\/\{node\}\/disks\/list<\/code> \(Sys\.Audit on \/ or on \/nodes\/\{node\}; per node\)/);
    assert.match(page, /<code>\/nodes\/\{node\}\/qemu\/\{vmid\}\/config<\/code> \(VM\.Audit on \/vms\/\{vmid\}; per guest\)/);
    // updates is on in this exporter: no "off" reason for it, but the table still names its privilege.
    assert.match(page, /<code>\/nodes\/\{node\}\/apt\/update<\/code> \(Sys\.Modify on \/nodes\/\{node\}; per node\)/);
    const defaults = await startExporter(simModule(sim));
    try {
      assert.match((await get(`${defaults.url}/`)).body, /Off by default: the call needs Sys\.Modify/);
    } finally {
      await defaults.close();
    }
  });

  test('updates fails with the privilege from the registry; every other collector succeeds', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await get(`${exp.url}/pve?target=127.0.0.1`);
      assert.equal(res.status, 200, res.body);
      const success = collectorSuccess(parseExposition(res.body));
      for (const [name, v] of Object.entries(success)) assert.equal(v, name === 'updates' ? 0 : 1, name);
      assert.doesNotMatch(res.body, /^pve_node_updates_pending/m);
    }
    const warnings = exp.logs.filter((l) => l.includes('"collector":"updates"') && l.includes('collection failed'));
    assert.equal(warnings.length, 1, `logged once over three scrapes: ${warnings.join('\n')}`);
    assert.match(warnings[0], /Permission check failed \(\/nodes\/pve1, Sys\.Modify\)/);
    assert.match(warnings[0], /\(privilege for \/nodes\/\{node\}\/apt\/update: Sys\.Modify on \/nodes\/\{node\}\)/);
    // A definite 403 is not papered over by a cache entry: each scrape asks again (the TTL cache stores answers only).
    assert.equal(sim.stats().calls.get('/nodes/pve1/apt/update'), 3);
  });
});

describe('501: an endpoint older PVE lacks is said once and not asked again', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    // PVE before 8.2.5: no handler, pve-http-server's generic 501.
    sim.addFault({ path: '/cluster/metrics/export', status: 501, reason: "Method 'GET /cluster/metrics/export' not implemented" });
    exp = await startExporter(simModule(sim));
  });
  after(async () => {
    await exp?.close();
    await sim?.close();
  });

  test('node-metrics succeeds with no series; node-status still covers the answering node', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await get(`${exp.url}/pve?target=127.0.0.1`);
      assert.equal(res.status, 200, res.body);
      const parsed = parseExposition(res.body);
      assert.equal(collectorSuccess(parsed)['node-metrics'], 1);
      assert.deepEqual([...(parsed.get('pve_node_load1')?.samples.keys() ?? [])], ['pve_node_load1{id="node/pve1"}']);
    }
    assert.equal(sim.stats().calls.get('/cluster/metrics/export'), 1, 'asked once, then remembered for the client');
    const notes = exp.logs.filter((l) => l.includes('/cluster/metrics/export'));
    assert.equal(notes.length, 1, notes.join('\n'));
    assert.match(notes[0], /"level":"info"/);
    assert.match(notes[0], /not available on this PVE version/);
  });
});

describe('TTL cache of a collector, on an injected clock', () => {
  let sim: Simulator;
  let module: ModuleConfig;
  let clients: ClientCache;
  let scraper: Scraper;
  let self: SelfMetrics;
  const logs: string[] = [];
  let now = Date.now();
  const clock = () => now;
  const advance = (seconds: number) => void (now += seconds * 1000);
  const switches = { ...defaultSwitches(), zfs: true };

  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    module = parseConfigText(simModule(sim), 'test-pve.yml').modules.get('default')!;
    clients = new ClientCache({ concurrency: 4, cacheTtls: { disks: 100, certificates: 3600 }, configCacheTtl: 300, now: clock });
    self = new SelfMetrics({ apiMetrics: false, targetMetrics: false });
    const log = createLogger('debug', { write: (line: string) => void logs.push(line) });
    scraper = new Scraper(clients, { switches, defaultTimeout: 10, now: clock }, self, new FailureLog(log));
  });
  after(async () => {
    await clients?.close();
    await sim?.close();
  });

  const scrape = (timeout?: number): Promise<ScrapeResult> =>
    scraper.scrape({ module, target: { host: '127.0.0.1', port: sim.port }, cluster: false, node: true, scrapeTimeoutSeconds: timeout });
  const disksCalls = () => sim.stats().calls.get('/nodes/pve1/disks/list') ?? 0;
  const outcome = (r: ScrapeResult, name: string) => r.outcomes.find((o) => o.name === name);
  const hasDiskSeries = (r: ScrapeResult) => (r.families.find((f) => f.spec.name === 'pve_node_disk_smart_passed')?.values.length ?? 0) > 0;
  const staleCount = async () => {
    const m = await self.registry.getSingleMetric('pve_exporter_cache_stale_total')?.get();
    return m?.values.find((v) => v.labels.collector === 'disks')?.value ?? 0;
  };

  test('fetched once, reused until the (spread) TTL ends, then fetched again', async () => {
    sim.resetStats();
    await scrape();
    assert.equal(disksCalls(), 1);
    advance(50);
    const warm = await scrape();
    assert.equal(disksCalls(), 1, 'within the TTL');
    assert.ok(hasDiskSeries(warm));
    advance(60); // 110 s: past any spread expiry of a 100 s TTL
    await scrape();
    assert.equal(disksCalls(), 2);
  });

  test('a failed refresh serves the expired answer and counts it; a 403 does not', async () => {
    sim.addFault({ path: '/nodes/pve1/disks/list', status: 500, reason: 'smartctl hung' });
    advance(200);
    const r = await scrape();
    assert.equal(outcome(r, 'disks')?.ok, true, outcome(r, 'disks')?.error);
    assert.ok(hasDiskSeries(r), 'the stale answer');
    assert.equal(await staleCount(), 1);
    sim.clearFaults();
    sim.addFault({ path: '/nodes/pve1/disks/list', status: 403, reason: 'Permission check failed (/, Sys.Audit)' });
    advance(200);
    const denied = await scrape();
    assert.equal(outcome(denied, 'disks')?.ok, false);
    assert.match(outcome(denied, 'disks')?.error ?? '', /privilege for \/nodes\/\{node\}\/disks\/list: Sys\.Audit on \/ or on \/nodes\/\{node\}/);
    assert.equal(hasDiskSeries(denied), false);
    assert.equal(outcome(denied, 'zfs')?.ok, true, 'the rest of the scrape is unaffected');
    assert.equal(await staleCount(), 1);
    sim.clearFaults();
  });

  test('the stale fallback ends 10 TTLs after the last good answer', async () => {
    advance(200);
    await scrape(); // a good answer at t
    sim.addFault({ path: '/nodes/pve1/disks/list', status: 500, reason: 'smartctl hung' });
    advance(999);
    assert.equal(outcome(await scrape(), 'disks')?.ok, true);
    advance(2);
    const gone = await scrape();
    assert.equal(outcome(gone, 'disks')?.ok, false);
    assert.match(outcome(gone, 'disks')?.error ?? '', /500 smartctl hung/);
    sim.clearFaults();
  });

  test('a refresh slower than the scrape deadline still fills the cache for the next scrape', async () => {
    advance(2000); // nothing fresh or stale left
    sim.resetStats();
    sim.addFault({ path: '/nodes/pve1/disks/list', delayMs: 2500, times: 1 });
    const slow = await scrape(1);
    assert.equal(outcome(slow, 'disks')?.ok, false, 'this scrape gave up waiting');
    // The fill runs under the module timeout, not the 1 s deadline: wait (bounded) for it to land.
    const end = Date.now() + 15_000;
    while (disksCalls() < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(disksCalls(), 1, 'the slow call was answered');
    let next = await scrape();
    for (let i = 0; i < 100 && !hasDiskSeries(next); i++) {
      await new Promise((r) => setTimeout(r, 20));
      next = await scrape();
    }
    assert.equal(outcome(next, 'disks')?.ok, true);
    assert.ok(hasDiskSeries(next));
    assert.equal(disksCalls(), 1, 'served from the cache the slow call filled');
  });
});
