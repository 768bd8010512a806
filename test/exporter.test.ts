// The exporter end to end against the HTTPS simulator: API economy, auth, caching, deadline,
// partial failures, TLS, HTTP interface and secrets.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { get, simModule, simPasswordModule, startExporter, type RunningExporter, useSimAndExporter } from './helpers/exporter.ts';
import { getFreePort } from './helpers/net.ts';
import { collectorSuccess, parseExposition } from './helpers/promtext.ts';


function callsTo(sim: Simulator, re: RegExp): number {
  let n = 0;
  for (const [path, count] of sim.stats().calls) if (re.test(path)) n += count;
  return n;
}

describe('API economy and caching (default scenario)', () => {
  const env = useSimAndExporter();

  test('each fixed endpoint is called at most once per scrape', async () => {
    env.sim.resetStats();
    const res = await get(`${env.exp.url}/pve?target=127.0.0.1`);
    assert.equal(res.status, 200);
    const calls = env.sim.stats().calls;
    for (const [path, count] of calls) {
      if (!/\/config$/.test(path)) assert.equal(count, 1, `${path} called ${count} times`);
    }
    for (const p of ['/cluster/status', '/cluster/resources', '/version', '/cluster/backup-info/not-backed-up', '/cluster/config/qdevice', '/nodes/pve1/subscription', '/nodes/pve1/replication']) {
      assert.equal(calls.get(p), 1, p);
    }
    // Guests on pve1: qemu/100, qemu/101, lxc/200: one config call each on a cold cache.
    assert.equal(callsTo(env.sim, /\/config$/), 3);
  });

  test('a warm scrape fetches no guest configs and reuses connections', async () => {
    env.sim.resetStats();
    const res = await get(`${env.exp.url}/pve?target=127.0.0.1`);
    assert.equal(res.status, 200);
    assert.equal(callsTo(env.sim, /\/config$/), 0);
    assert.equal(env.sim.stats().connections, 0, 'keep-alive: no new TCP connection');
    assert.match(res.body, /pve_onboot_status\{id="qemu\/100",node="pve1",type="qemu"\} 1/);
  });

  test('gzip when accepted, OpenMetrics when asked', async () => {
    const res = await fetch(`${env.exp.url}/pve?target=127.0.0.1`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(res.headers.get('content-encoding'), 'gzip');
    const raw = Buffer.from(await res.arrayBuffer());
    // fetch may or may not decode; accept both, but the payload must be the exposition.
    const text = raw[0] === 0x1f ? gunzipSync(raw).toString() : raw.toString();
    assert.match(text, /^# HELP pve_up /);
    const om = await get(`${env.exp.url}/pve?target=127.0.0.1`, { accept: 'application/openmetrics-text;version=1.0.0' });
    assert.match(om.headers.get('content-type') ?? '', /application\/openmetrics-text/);
    assert.ok(om.body.endsWith('# EOF\n'));
    assert.match(om.body, /# TYPE pve_network_transmit_bytes_total gauge/);
    assert.match(om.body, /# TYPE pve_ha_state gauge/);
    assert.match(om.body, /# TYPE pve_network_transmit_bytes gauge/);
  });

  test('the text exposition parses and has no duplicate series', async () => {
    const res = await get(`${env.exp.url}/pve?target=127.0.0.1`, { accept: 'text/plain' });
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const parsed = parseExposition(res.body);
    assert.ok(parsed.size > 30);
  });
});

describe('guest config cache with TTL 0 and the concurrency cap', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  before(async () => {
    sim = await startSimulator({ generated: { nodes: 2, guestsPerNode: 40 }, configLatencyMs: 5 });
    exp = await startExporter(simModule(sim), ['--pve.config-cache-ttl', '0', '--pve.concurrency', '3']);
  });
  after(async () => {
    await exp.close();
    await sim.close();
  });

  test('TTL 0 fetches every guest config every scrape, over at most 3 connections', async () => {
    sim.resetStats();
    const first = await get(`${exp.url}/pve?target=127.0.0.1&cluster=0&node=1`);
    assert.equal(first.status, 200, first.body);
    const n = callsTo(sim, /\/config$/);
    assert.equal(n, 40);
    await get(`${exp.url}/pve?target=127.0.0.1&cluster=0&node=1`);
    assert.equal(callsTo(sim, /\/config$/), 80);
    assert.ok(sim.stats().connections <= 3, `${sim.stats().connections} connections`);
  });

  test('a scraper that hangs up mid-body does not disturb the next scrape', async () => {
    const { default: http } = await import('node:http');
    for (const encoding of ['gzip', 'identity']) {
      // A raw request, so the hang-up is a socket closed after the first chunk and nothing else.
      await new Promise<void>((resolve, reject) => {
        const req = http.get(`${exp.url}/pve?target=127.0.0.1`, { headers: { 'accept-encoding': encoding } }, (res) => {
          assert.equal(res.statusCode, 200);
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
        req.setTimeout(20_000, () => reject(new Error('no first chunk in time')));
      });
      const next = await get(`${exp.url}/pve?target=127.0.0.1`);
      assert.equal(next.status, 200);
      assert.match(next.body, /^pve_exporter_collector_success\{collector="resources"\} 1$/m);
    }
  });
});

describe('password auth: one ticket, renewed on 401', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    exp = await startExporter(simPasswordModule(sim));
  });
  after(async () => {
    await exp.close();
    await sim.close();
  });

  test('scrapes share one login until the ticket is refused, then log in once more', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await get(`${exp.url}/pve?target=127.0.0.1`)).status, 200);
    assert.equal(sim.stats().logins, 1);
    // The ticket ends now, not after a short lifetime: the simulator stamps tickets in whole
    // seconds, so a 1 s ticket lived anywhere between 0 and 1 s and the test failed now and then.
    sim.expireTickets();
    const res = await get(`${exp.url}/pve?target=127.0.0.1`);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(Object.values(collectorSuccess(parseExposition(res.body))).filter((v) => v !== 1), []);
    assert.equal(sim.stats().logins, 2);
    const secret = sim.credentials.password;
    for (const line of exp.logs) assert.ok(!line.includes(secret), `secret in log: ${line}`);
  });
});

describe('failures', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  let allLogs: string[] = [];
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    exp = await startExporter(simModule(sim) + simModule(sim, 'badtoken', { token_value: 'WRONG-TOKEN-SECRET-42' }) + simPasswordModule(sim, 'badpw', { password: 'WRONG-PASSWORD-SECRET-43' }));
  });
  afterEach(() => sim.clearFaults());
  after(async () => {
    allLogs = exp.logs;
    await exp.close();
    await sim.close();
    for (const secret of [sim.credentials.tokenValue, sim.credentials.password, 'WRONG-TOKEN-SECRET-42', 'WRONG-PASSWORD-SECRET-43', 'PVEAuthCookie', 'PVEAPIToken']) {
      for (const line of allLogs) assert.ok(!line.includes(secret), `secret "${secret}" in log line ${line}`);
    }
  });

  const cases: Array<{ what: string; fault: Parameters<Simulator['addFault']>[0]; collector: string; reason: RegExp }> = [
    { what: '403 permission', fault: { path: '/cluster/backup-info/not-backed-up', status: 403, reason: 'Permission check failed (/, Sys.Audit)' }, collector: 'backup-info', reason: /403 Permission check failed/ },
    { what: '595 offline node', fault: { path: '/nodes/pve1/replication', status: 595, reason: 'Connection refused' }, collector: 'replication', reason: /595 Connection refused/ },
    { what: '501 not implemented', fault: { path: '/cluster/config/qdevice', status: 501, reason: "Method 'GET /cluster/config/qdevice' not implemented" }, collector: 'qdevice', reason: /501/ },
    { what: '500 server error', fault: { path: '/nodes/pve1/subscription', status: 500, reason: 'internal error' }, collector: 'subscription', reason: /500 internal error/ },
    { what: 'garbage JSON', fault: { path: '/version', garbage: true }, collector: 'version', reason: /not JSON/ },
  ];
  for (const c of cases) {
    test(`${c.what}: 200, that collector 0, the others 1, logged once with the reason`, async () => {
      sim.addFault(c.fault);
      const before = exp.logs.length;
      for (let i = 0; i < 2; i++) {
        const res = await get(`${exp.url}/pve?target=127.0.0.1`);
        assert.equal(res.status, 200, res.body);
        const success = collectorSuccess(parseExposition(res.body));
        for (const [name, v] of Object.entries(success)) assert.equal(v, name === c.collector ? 0 : 1, name);
      }
      const logged = exp.logs.slice(before).filter((l) => l.includes('collection failed'));
      assert.equal(logged.length, 1, 'logged once, not once per scrape');
      assert.match(logged[0], c.reason);
      sim.clearFaults();
      await get(`${exp.url}/pve?target=127.0.0.1`);
      assert.ok(exp.logs.slice(before).some((l) => l.includes('collection recovered') && l.includes(c.collector)));
    });
  }

  test('one guest config failing keeps the other onboot series, config collector 0', async () => {
    const fresh = await startExporter(simModule(sim));
    try {
      sim.addFault({ path: '/nodes/pve1/qemu/100/config', status: 500, reason: "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist" });
      const res = await get(`${fresh.url}/pve?target=127.0.0.1`);
      assert.equal(res.status, 200);
      assert.equal(collectorSuccess(parseExposition(res.body)).config, 0);
      assert.match(res.body, /pve_onboot_status\{id="lxc\/200",node="pve1",type="lxc"\} 1/);
      assert.doesNotMatch(res.body, /pve_onboot_status\{id="qemu\/100"/);
    } finally {
      await fresh.close();
    }
  });

  test('deadline: a hanging endpoint does not hold the scrape past the scrape timeout', async () => {
    sim.addFault({ path: '/nodes/pve1/subscription', hang: true });
    const res = await get(`${exp.url}/pve?target=127.0.0.1`, { 'X-Prometheus-Scrape-Timeout-Seconds': '1' });
    assert.equal(res.status, 200);
    const success = collectorSuccess(parseExposition(res.body));
    assert.equal(success.subscription, 0);
    assert.equal(success.resources, 1);
    assert.match(res.body, /^pve_up\{id="qemu\/100"\} 1$/m);
  });

  test('bad token: 500 with the reason, no secret', async () => {
    const res = await get(`${exp.url}/pve?target=127.0.0.1&module=badtoken`);
    assert.equal(res.status, 500);
    assert.match(res.body, /authentication failed: 401/);
    assert.ok(!res.body.includes('WRONG-TOKEN-SECRET-42'));
  });

  test('bad password: 500 with the login refusal', async () => {
    const res = await get(`${exp.url}/pve?target=127.0.0.1&module=badpw`);
    assert.equal(res.status, 500);
    assert.match(res.body, /login as monitoring@pve refused: 401 authentication failure/);
    assert.ok(!res.body.includes('WRONG-PASSWORD-SECRET-43'));
  });

  test('unreachable target: 500 with the connection error', async () => {
    const port = await getFreePort();
    const res = await get(`${exp.url}/pve?target=127.0.0.1:${port}`);
    assert.equal(res.status, 500);
    assert.match(res.body, /ECONNREFUSED/);
  });

  test('every endpoint failing with 401 from PVE: 500', async () => {
    sim.addFault({ path: /.*/, status: 401, reason: 'Authentication failed!' });
    const res = await get(`${exp.url}/pve?target=127.0.0.1`);
    assert.equal(res.status, 500);
    assert.match(res.body, /401 Authentication failed!/);
  });

  test('request errors are counted per module on /metrics', async () => {
    const metrics = await get(`${exp.url}/metrics`);
    assert.match(metrics.body, /pve_request_errors_total\{module="badtoken"\} [1-9]/);
    assert.match(metrics.body, /pve_exporter_collector_failures_total\{module="default",collector="backup-info"\} [1-9]/);
  });
});

describe('TLS towards PVE', () => {
  let sim: Simulator;
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
  });
  after(async () => sim.close());

  async function scrapeWith(extra: Record<string, unknown>): Promise<{ status: number; body: string }> {
    const exp = await startExporter(simModule(sim, 'default', { fingerprint: undefined, ...extra }));
    try {
      return await get(`${exp.url}/pve?target=127.0.0.1&cluster=1&node=0`);
    } finally {
      await exp.close();
    }
  }

  test('verify_ssl on (default) rejects the self-signed chain with a hint', async () => {
    const res = await scrapeWith({});
    assert.equal(res.status, 500);
    assert.match(res.body, /TLS: .*verify_ssl: false, or ca_file \/ fingerprint/);
  });
  test('ca_file verifies the chain', async () => {
    assert.equal((await scrapeWith({ ca_file: sim.caFile })).status, 200);
  });
  test('the right fingerprint is accepted, a wrong one refused', async () => {
    assert.equal((await scrapeWith({ fingerprint: sim.fingerprint })).status, 200);
    const wrong = await scrapeWith({ fingerprint: '00'.repeat(32) });
    assert.equal(wrong.status, 500);
    assert.match(wrong.body, /fingerprint .* does not match/);
  });
  test('verify_ssl false accepts anything', async () => {
    assert.equal((await scrapeWith({ verify_ssl: false })).status, 200);
  });
});

describe('HTTP interface', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  before(async () => {
    sim = await startSimulator({ scenario: 'default', loopbackNodes: true });
    exp = await startExporter(simModule(sim) + simModule(sim, 'second'), ['--collector.pve-api-metrics', '--collector.target-metrics']);
  });
  after(async () => {
    await exp.close();
    await sim.close();
  });

  test('unknown module and bad target are 400 with a reason; cluster=no keeps the scope on, as the reference', async () => {
    const m = await get(`${exp.url}/pve?target=127.0.0.1&module=nope`);
    assert.equal(m.status, 400);
    assert.equal(m.body.trim(), "Module 'nope' not found in config");
    assert.equal((await get(`${exp.url}/pve?target=https://pve1:8006`)).status, 400);
    // Bug 8: only false, 0 and empty switch a scope off; "no" leaves it on.
    const sw = await get(`${exp.url}/pve?target=127.0.0.1&cluster=no&node=no`);
    assert.equal(sw.status, 200);
    assert.match(sw.body, /^pve_up\{/m);
    assert.match(sw.body, /^pve_subscription_info\{/m);
    assert.equal((await get(`${exp.url}/pve?target=a&target=b`)).status, 400);
    assert.equal((await get(`${exp.url}/nope`)).status, 404);
  });

  test('cluster=0&node=0 scrapes nothing; empty value turns a scope off', async () => {
    sim.resetStats();
    const res = await get(`${exp.url}/pve?target=127.0.0.1&cluster=0&node=0`);
    assert.equal(res.status, 200);
    assert.equal(res.body, '');
    assert.equal(sim.stats().total, 0);
    const nodeOnly = await get(`${exp.url}/pve?target=127.0.0.1&cluster=&node=1`);
    assert.doesNotMatch(nodeOnly.body, /pve_up/);
    assert.match(nodeOnly.body, /pve_subscription_info/);
  });

  test('landing page names the modules; health endpoints answer', async () => {
    const home = await get(`${exp.url}/`);
    assert.equal(home.status, 200);
    assert.match(home.body, /<code>default<\/code>/);
    assert.match(home.body, /<code>second<\/code>/);
    assert.match(home.body, /href="metrics"/);
    assert.equal((await get(`${exp.url}/-/healthy`)).status, 200);
    assert.equal((await get(`${exp.url}/-/ready`)).status, 200);
  });

  test('/metrics: collection summary, build info, process metrics, opt-in histograms', async () => {
    await get(`${exp.url}/pve?target=127.0.0.1&module=second`);
    const res = await get(`${exp.url}/metrics`);
    assert.match(res.body, /pve_collection_duration_seconds_count\{module="second"\} 1/);
    assert.match(res.body, /pve_request_errors_total\{module="default"\} 0/);
    assert.match(res.body, /# TYPE pve_collection_duration_seconds summary/);
    assert.match(res.body, /pve_exporter_build_info\{version="[^"]+",nodejs="v\d+/);
    assert.match(res.body, /process_resident_memory_bytes/);
    assert.match(res.body, /pve_scrape_api_duration_seconds_bucket\{le="[^"]+",module="second",endpoint="\/nodes\/\{node\}\/subscription",status="200"\}/);
    assert.match(res.body, /pve_scrape_target_duration_seconds_count\{module="second",target="127\.0\.0\.1:\d+"\} 1/);
  });

  test('service discovery lists every node with its address and the seed port', async () => {
    const res = await get(`${exp.url}/pve/sd?module=default&target=127.0.0.1:${sim.port}`);
    assert.equal(res.status, 200, res.body);
    const groups = JSON.parse(res.body) as Array<{ targets: string[]; labels: Record<string, string> }>;
    assert.deepEqual(
      groups.map((g) => [g.targets[0], g.labels.__meta_pve_node, g.labels.__param_module, g.labels.__meta_pve_cluster]),
      [1, 2, 3].map((i) => [`${sim.nodeAddresses.get(`pve${i}`)}:${sim.port}`, `pve${i}`, 'default', 'pvec']),
    );
    // Each discovered address answers as its own node.
    const pve2 = groups[1].labels.__param_target;
    const node = await get(`${exp.url}/pve?target=${pve2}&cluster=0&node=1`);
    assert.equal(node.status, 200, node.body);
    assert.match(node.body, /pve_subscription_info\{id="node\/pve2",level="c"\} 1/);
  });

  test('service discovery of an unreachable seed is a 500 with the reason', async () => {
    const port = await getFreePort();
    const res = await get(`${exp.url}/pve/sd?target=127.0.0.1:${port}`);
    assert.equal(res.status, 500);
    assert.match(res.body, /ECONNREFUSED/);
  });
});

test('HTTPS serving with --server.keyfile/--server.certfile', async () => {
  const sim = await startSimulator({ scenario: 'default' });
  const dir = new URL('../sim/tls/', import.meta.url).pathname;
  const exp = await startExporter(simModule(sim), ['--server.keyfile', `${dir}server-key.pem`, '--server.certfile', `${dir}server.pem`]);
  try {
    assert.match(exp.url, /^https:/);
    const { default: https } = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(`${exp.url}/-/healthy`, { ca: readFileSync(sim.caFile) }, (res) => {
          let b = '';
          res.on('data', (c) => (b += c));
          res.on('end', () => resolve(b));
        })
        .on('error', reject);
    });
    assert.equal(body, 'OK\n');
  } finally {
    await exp.close();
    await sim.close();
  }
});

