// A real Prometheus scrapes the exporter over HTTPS with a client certificate from the configured
// CA (the Incus-like setup) and basic auth, and is refused (target down) without either. The
// configs here are the ones docs/web-config.md shows. Also checks which Accept header this
// Prometheus sends and that the exporter answers it with OpenMetrics (bug 6).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import YAML from 'yaml';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { simModule } from './helpers/exporter.ts';
import { activeTargets, query, startPrometheus, waitUntil, type Prometheus } from './helpers/prom-stack.ts';
import { hasTool } from './helpers/tools.ts';
import { basic, makePki, request, spawnExporter, writeTemp, type ExporterProcess, type Pki } from './helpers/web.ts';

const missing = !hasTool('prometheus') ? 'install prometheus: apt-get install prometheus' : !hasTool('openssl') ? 'install openssl: apt-get install openssl' : false;
/** The password docs/web-config.md's bcrypt hash is made from. */
const PASSWORD = 'changeme';
const DOC = readFileSync(new URL('../docs/web-config.md', import.meta.url), 'utf8');

/** The ```yaml block of docs/web-config.md whose first line is `first`, with placeholders replaced. */
function docBlock(first: string, replace: [string, string][]): string {
  const block = [...DOC.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.startsWith(first + '\n'));
  assert.ok(block, `docs/web-config.md has no yaml block starting with "${first}"`);
  let text = block;
  for (const [from, to] of replace) {
    assert.ok(text.includes(from), `docs/web-config.md block "${first}": ${from} not found`);
    text = text.split(from).join(to);
  }
  return text;
}

interface Job {
  job_name: string;
  tls_config?: Record<string, string>;
  basic_auth?: Record<string, string>;
  [k: string]: unknown;
}

describe('Prometheus scrapes the exporter over HTTPS with client certificate and basic auth', { skip: missing }, () => {
  let sim: Simulator;
  let pki: Pki;
  let exp: ExporterProcess;
  let prom: Prometheus;
  let acceptSeen: string | undefined;
  let probe: http.Server;

  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    pki = makePki();
    const webConfig = writeTemp(
      'web.yml',
      docBlock('# pve-exporter web config', [
        ['/etc/pve-exporter/tls/exporter.pem', pki.serverCert],
        ['/etc/pve-exporter/tls/exporter.key', pki.serverKey],
        ['/etc/pve-exporter/tls/scrapers-ca.pem', pki.caCert],
      ]),
    );
    exp = await spawnExporter(['--config.file', writeTemp('pve.yml', simModule(sim)), '--web.config.file', webConfig]);
    // Records the Accept header of this Prometheus' scrapes.
    probe = http.createServer((req, res) => {
      acceptSeen = req.headers.accept;
      res.setHeader('content-type', 'text/plain; version=0.0.4');
      res.end('probe_up 1\n');
    });
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const probePort = (probe.address() as AddressInfo).port;

    const documented = YAML.parse(
      docBlock('# Prometheus scrape config', [
        ['/etc/prometheus/tls/exporter-ca.pem', pki.caCert],
        ['/etc/prometheus/tls/prometheus.pem', pki.clientCert],
        ['/etc/prometheus/tls/prometheus.key', pki.clientKey],
        ['/etc/prometheus/pve-exporter.password', writeTemp('password', PASSWORD)],
        ['pve-exporter.example.com:9221', exp.address],
        // The name in the test certificate; the address scraped stays 127.0.0.1.
        ['pve-exporter.example.com', 'exporter.test'],
        ['pve1.example.com', '127.0.0.1'],
      ]),
    ) as { scrape_configs: Job[] };
    const authed: Job = { ...documented.scrape_configs[0], job_name: 'pve-authed' };
    const noCert: Job = structuredClone({ ...authed, job_name: 'pve-no-client-cert' });
    delete noCert.tls_config!.cert_file;
    delete noCert.tls_config!.key_file;
    const noAuth: Job = structuredClone({ ...authed, job_name: 'pve-no-basic-auth' });
    delete noAuth.basic_auth;
    const config = {
      global: { scrape_interval: '1s', scrape_timeout: '1s' },
      scrape_configs: [authed, noCert, noAuth, { job_name: 'accept-probe', static_configs: [{ targets: [`127.0.0.1:${probePort}`] }] }],
    };
    prom = await startPrometheus(mkdtempSync(path.join(tmpdir(), 'pve-exporter-prom-web-')), YAML.stringify(config));
  });

  after(async () => {
    await prom?.stop();
    await exp?.stop();
    probe?.close();
    await sim?.close();
  });

  test('with tls_config (ca_file, cert_file, key_file, server_name) and basic_auth: up, PVE series stored', async () => {
    const t = await waitUntil(
      'pve-authed up',
      async () => (await activeTargets(prom.url)).find((x) => x.scrapePool === 'pve-authed' && x.health === 'up'),
      60_000,
    );
    assert.equal(t.lastError, '');
    const series = await waitUntil('pve_up stored', async () => (await query(prom.url, 'pve_up{job="pve-authed"}')).length > 0 || undefined, 30_000);
    assert.ok(series);
  });

  test('without a client certificate, or without basic auth: down', async () => {
    for (const pool of ['pve-no-client-cert', 'pve-no-basic-auth']) {
      const t = await waitUntil(
        `${pool} down`,
        async () => (await activeTargets(prom.url)).find((x) => x.scrapePool === pool && x.health === 'down'),
        60_000,
      );
      if (pool === 'pve-no-basic-auth') assert.match(t.lastError, /401/);
      else assert.notEqual(t.lastError, '');
    }
    assert.equal((await query(prom.url, 'pve_up{job=~"pve-no-.*"}')).length, 0, 'no series from refused scrapes');
  });

  test("the Accept header this Prometheus sends gets OpenMetrics (what it prefers)", async () => {
    const accept = await waitUntil('a probe scrape', async () => acceptSeen, 60_000);
    assert.match(accept, /application\/openmetrics-text/);
    const r = await request(`https://${exp.address}/pve?target=127.0.0.1`, {
      ca: pki.caCert,
      cert: pki.clientCert,
      key: pki.clientKey,
      servername: 'exporter.test',
      headers: { accept, authorization: basic('prometheus', PASSWORD) },
    });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/openmetrics-text; version=1\.0\.0/);
  });
});
