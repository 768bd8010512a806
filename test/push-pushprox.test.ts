// PushProx client mode against a protocol-following test proxy on loopback: /pve, /pve/sd and
// /metrics through the proxy, the trap (requests already expired when they arrive are answered at
// once, nothing scraped), re-polling right after each request so a slow scrape does not hold up
// the next, several outstanding polls, polls cut mid-way and renewed, and the request parser.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { errorAnswer, parseInstruction } from '../src/push/pushprox.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { parseResponse, startTestProxy, type TestProxy } from './helpers/pushprox-proxy.ts';
import { mkdtempSync, readFileSync } from 'node:fs';
import { makePki } from './helpers/web.ts';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { query, startPrometheus, waitUntil } from './helpers/prom-stack.ts';
import { hasTool } from './helpers/tools.ts';
import { parseExposition } from './helpers/promtext.ts';

const FQDN = 'pve-exporter.home.test';
const BASE = `http://${FQDN}:9221`;

async function metric(exp: RunningExporter, key: string): Promise<number> {
  const body = (await get(`${exp.url}/metrics`)).body;
  for (const fam of parseExposition(body).values()) {
    const v = fam.samples.get(key);
    if (v !== undefined) return v;
  }
  return 0;
}

describe('pushprox wire format', () => {
  test('a serialised request is read: method, absolute URI, Id and timeout', () => {
    const i = parseInstruction(
      Buffer.from(`GET ${BASE}/pve?target=pve1&module=default HTTP/1.1\r\nHost: ${FQDN}:9221\r\nAccept: text/plain\r\nId: 42-a\r\nX-Prometheus-Scrape-Timeout-Seconds: 9.5\r\n\r\n`),
    );
    assert.equal(i.method, 'GET');
    assert.equal(i.url.hostname, FQDN);
    assert.equal(i.url.pathname + i.url.search, '/pve?target=pve1&module=default');
    assert.equal(i.id, '42-a');
    assert.equal(i.timeoutSeconds, 9.5);
    assert.equal(i.headers.accept, 'text/plain');
    assert.throws(() => parseInstruction(Buffer.from('Error WaitForScrapeInstruction: request is expired\n')), /not an HTTP request line/);
    assert.throws(() => parseInstruction(Buffer.from(`GET ${BASE}/pve HTTP/1.1\r\nHost: x\r\n\r\n`)), /without Id/);
    const bad = parseInstruction(Buffer.from(`GET ${BASE}/pve HTTP/1.1\r\nId: 1\r\nX-Prometheus-Scrape-Timeout-Seconds: soon\r\n\r\n`));
    assert.equal(bad.timeoutSeconds, undefined);
  });

  test('our error answers are valid serialised responses with the Id', () => {
    const r = parseResponse(errorAnswer(504, 'Gateway Timeout', 'abc', 'too late'));
    assert.equal(r.status, 504);
    assert.equal(r.headers.id, 'abc');
    assert.equal(r.body.toString(), 'too late\n');
  });
});

describe('pushprox client against a test proxy', () => {
  let sim: Simulator;
  let proxy: TestProxy;
  let exp: RunningExporter | undefined;
  const start = async (extra: string[] = []) => {
    exp = await startExporter(simModule(sim), [
      '--pushprox.url', proxy.url, '--pushprox.fqdn', FQDN,
      '--pushprox.retry.initial-wait', '0.05', '--pushprox.retry.max-wait', '0.2', ...extra,
    ]);
    await waitUntil('a poll held by the proxy', async () => proxy.waiting(FQDN) > 0, 10_000, 20);
    return exp;
  };
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
  });
  afterEach(async () => {
    await exp?.close();
    exp = undefined;
    await proxy?.close();
    sim.clearFaults();
  });
  after(async () => {
    await sim.close();
  });

  test('/pve, /pve/sd and /metrics answered through the proxy, same bodies as over HTTP', async () => {
    proxy = await startTestProxy();
    const e = await start();
    const viaProxy = await proxy.scrape(`${BASE}/pve?target=127.0.0.1`, 10);
    assert.equal(viaProxy.status, 200, viaProxy.body.toString());
    assert.match(viaProxy.headers['content-type'] ?? '', /text\/plain; version=0\.0\.4/);
    const direct = await get(`${e.url}/pve?target=127.0.0.1`);
    const a = parseExposition(viaProxy.body.toString()).get('pve_up')!.samples;
    assert.deepEqual(a, parseExposition(direct.body).get('pve_up')!.samples);
    const sd = await proxy.scrape(`${BASE}/pve/sd?target=127.0.0.1`, 10);
    assert.equal(sd.status, 200);
    assert.ok(Array.isArray(JSON.parse(sd.body.toString())));
    const self = await proxy.scrape(`${BASE}/metrics`, 10);
    assert.equal(self.status, 200);
    assert.match(self.body.toString(), /pve_exporter_pushprox_requests_total\{outcome="answered"\} 2/);
    // Bad input keeps its status; the lifecycle endpoints are not reachable through the proxy.
    assert.equal((await proxy.scrape(`${BASE}/pve?target=127.0.0.1&bogus=1`, 10)).status, 400);
    assert.equal((await proxy.scrape(`http://other.host.test:9221/metrics`, 1)).status, 504, 'not for us: no poll of that name');
    // The poll was re-established after every answer.
    assert.equal(proxy.waiting(FQDN), 1);
  });

  test('the trap: a burst of requests that expired while no poll was held is answered at once, nothing scraped, and the next scrape works', async () => {
    proxy = await startTestProxy();
    // Five scrapes with a 0.2 s timeout while the exporter is not polling: the proxy keeps them.
    const burst = await Promise.all(Array.from({ length: 5 }, () => proxy.scrape(`${BASE}/pve?target=127.0.0.1`, 0.2)));
    assert.deepEqual(burst.map((b) => b.status), [504, 504, 504, 504, 504]);
    sim.resetStats();
    const e = await start();
    await waitUntil('five late answers', async () => proxy.lateAnswers.size === 5, 10_000, 20);
    for (const r of proxy.lateAnswers.values()) {
      assert.equal(r.status, 504);
      assert.match(r.body.toString(), /deadline passed before the request reached the exporter/);
    }
    assert.equal([...sim.stats().calls.values()].reduce((a, b) => a + b, 0), 0, 'no PVE call for an expired request');
    assert.equal(await metric(e, 'pve_exporter_pushprox_requests_total{outcome="expired"}'), 5);
    const fresh = await proxy.scrape(`${BASE}/pve?target=127.0.0.1`, 10);
    assert.equal(fresh.status, 200);
  });

  test('a slow scrape does not hold up the next: the poll is back before the scrape ends', async () => {
    proxy = await startTestProxy();
    await start();
    sim.addFault({ path: '/cluster/resources', delayMs: 1500, times: 1 });
    const order: string[] = [];
    const slow = proxy.scrape(`${BASE}/pve?target=127.0.0.1`, 10).then((r) => (order.push('slow'), r));
    await waitUntil('slow request handed over and the poll back', async () => proxy.handedOver.length === 1 && proxy.waiting(FQDN) === 1, 10_000, 10);
    const fast = await proxy.scrape(`${BASE}/metrics`, 10).then((r) => (order.push('fast'), r));
    assert.equal(fast.status, 200);
    assert.equal((await slow).status, 200);
    assert.deepEqual(order, ['fast', 'slow']);
  });

  test('--pushprox.polls keeps several polls outstanding', async () => {
    proxy = await startTestProxy();
    await start(['--pushprox.polls', '3']);
    await waitUntil('three polls held', async () => proxy.waiting(FQDN) === 3, 10_000, 20);
    const results = await Promise.all([1, 2, 3].map(() => proxy.scrape(`${BASE}/metrics`, 10)));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
    await waitUntil('three polls held again', async () => proxy.waiting(FQDN) === 3, 10_000, 20);
  });

  test('polls cut mid-way (NAT change, proxy restart) are re-established with backoff, counted', async () => {
    proxy = await startTestProxy();
    const e = await start();
    const before = proxy.polls;
    proxy.cutPolls();
    await waitUntil('a new poll', async () => proxy.polls > before && proxy.waiting(FQDN) === 1, 10_000, 20);
    assert.ok((await metric(e, 'pve_exporter_pushprox_polls_total{outcome="error"}')) >= 1);
    assert.equal((await proxy.scrape(`${BASE}/metrics`, 10)).status, 200);
    assert.ok(e.logs.some((l) => /pushprox: poll failed; retrying with backoff/.test(l)));
  });

  test('a poll without a request is renewed after --pushprox.poll-timeout (client timeout mid-poll)', async () => {
    proxy = await startTestProxy();
    const e = await start(['--pushprox.poll-timeout', '1']);
    const first = proxy.polls;
    await waitUntil('a renewed poll', async () => proxy.polls >= first + 2 && proxy.waiting(FQDN) === 1, 15_000, 50);
    assert.ok((await metric(e, 'pve_exporter_pushprox_polls_total{outcome="renewed"}')) >= 2);
    assert.equal((await proxy.scrape(`${BASE}/pve?target=127.0.0.1`, 10)).status, 200);
  });

  test('TLS to the proxy with a client certificate; without the certificate the polls fail, counted', { skip: hasTool('openssl') || process.env.CI ? false : 'openssl not installed (apt-get install openssl)' }, async () => {
    const pki = makePki();
    proxy = await startTestProxy({ key: readFileSync(pki.serverKey, 'utf8'), cert: readFileSync(pki.serverCert, 'utf8'), clientCa: readFileSync(pki.caCert, 'utf8') });
    await start(['--pushprox.tls.ca-file', pki.caCert, '--pushprox.tls.cert-file', pki.clientCert, '--pushprox.tls.key-file', pki.clientKey]);
    const r = await proxy.scrape(`${BASE}/pve?target=127.0.0.1`, 10);
    assert.equal(r.status, 200, r.body.toString());
    assert.ok(parseExposition(r.body.toString()).get('pve_up'));
    await exp!.close();
    exp = await startExporter(simModule(sim), ['--pushprox.url', proxy.url, '--pushprox.fqdn', FQDN, '--pushprox.tls.ca-file', pki.caCert, '--pushprox.retry.initial-wait', '0.05']);
    await waitUntil('TLS poll errors', async () => (await metric(exp!, 'pve_exporter_pushprox_polls_total{outcome="error"}')) >= 2, 10_000, 50);
    assert.ok(proxy.pollClientCns.length >= 2 && proxy.pollClientCns.every((cn) => cn === 'prometheus'), JSON.stringify(proxy.pollClientCns));
    assert.ok(exp.logs.some((l) => /poll failed/.test(l) && /HTTP 403: client certificate required/.test(l)));
  });

  test('proxy unreachable at start: the exporter keeps trying, does not crash, and serves once it is there', async () => {
    proxy = await startTestProxy();
    const port = proxy.port;
    await proxy.close();
    exp = await startExporter(simModule(sim), ['--pushprox.url', `http://127.0.0.1:${port}`, '--pushprox.fqdn', FQDN, '--pushprox.retry.initial-wait', '0.05', '--pushprox.retry.max-wait', '0.2']);
    await waitUntil('poll errors', async () => (await metric(exp!, 'pve_exporter_pushprox_polls_total{outcome="error"}')) >= 2, 10_000, 50);
    assert.equal((await get(`${exp.url}/-/healthy`)).status, 200);
    const warned = exp.logs.filter((l) => /poll failed/.test(l));
    assert.equal(warned.length, 1, 'the same error logged once');
  });
});

describe('a real Prometheus scraping through the test proxy (proxy_url)', { skip: hasTool('prometheus') || process.env.CI ? false : 'prometheus not installed (apt-get install prometheus)' }, () => {
  test('up is 1 and the PVE series are there, labelled as configured', async () => {
    const sim = await startSimulator({ scenario: 'default' });
    const proxy = await startTestProxy();
    const exp = await startExporter(simModule(sim), ['--pushprox.url', proxy.url, '--pushprox.fqdn', FQDN]);
    const dir = mkdtempSync(path.join(tmpdir(), 'pushprox-prom-'));
    const config = [
      'global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}',
      'scrape_configs:',
      '  - job_name: pve',
      `    proxy_url: ${proxy.url}/`,
      '    metrics_path: /pve',
      "    params: {module: [default], cluster: ['1'], node: ['1']}",
      '    static_configs: [{targets: [127.0.0.1], labels: {location: home}}]',
      '    relabel_configs:',
      '      - {source_labels: [__address__], target_label: __param_target}',
      '      - {source_labels: [__param_target], target_label: instance}',
      `      - {target_label: __address__, replacement: '${FQDN}:9221'}`,
      '',
    ].join('\n');
    const prom = await startPrometheus(dir, config);
    try {
      const up = await waitUntil('up 1 through the proxy', async () => {
        const r = await query(prom.url, 'up{job="pve"}');
        return r[0]?.value[1] === '1' ? r : undefined;
      }, 30_000);
      assert.deepEqual(up[0].metric, { __name__: 'up', instance: '127.0.0.1', job: 'pve', location: 'home' });
      const series = await query(prom.url, 'pve_up{job="pve", instance="127.0.0.1", location="home"}');
      assert.ok(series.length >= 10, `pve_up series: ${series.length}`);
      assert.ok(proxy.handedOver.length >= 1);
      assert.ok(proxy.handedOver.every((h) => h.timeoutSent > 0 && h.timeoutSent <= 1));
    } finally {
      await prom.stop();
      await exp.close();
      await proxy.close();
      await sim.close();
    }
  });
});
