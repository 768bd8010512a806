// An HA pair: two real Prometheus servers (Debian package `prometheus`) scrape the same PVE target
// through one exporter with --scrape.cache-ttl at 3/4 of the scrape interval, as the README
// recommends. PVE sees the calls of one scraper: the simulator counts one /cluster/status call
// per collection, and collections are about half the scrapes the two servers made.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { query, startPrometheus, waitUntil, type Prometheus } from './helpers/prom-stack.ts';
import { hasTool } from './helpers/tools.ts';

const missing = hasTool('prometheus') ? false : 'install prometheus: apt-get install prometheus';
const INTERVAL_S = 2;
const TTL_S = 1.5;

function promConfig(replica: string, exporterAddress: string): string {
  return YAML.stringify({
    global: { scrape_interval: `${INTERVAL_S}s`, scrape_timeout: `${INTERVAL_S}s`, external_labels: { replica } },
    scrape_configs: [
      {
        job_name: 'pve',
        metrics_path: '/pve',
        params: { module: ['default'], cluster: ['1'], node: ['1'] },
        static_configs: [{ targets: ['127.0.0.1'] }],
        relabel_configs: [
          { source_labels: ['__address__'], target_label: '__param_target' },
          { source_labels: ['__param_target'], target_label: 'instance' },
          { target_label: '__address__', replacement: exporterAddress },
        ],
      },
    ],
  });
}

async function scrapeCounts(exp: RunningExporter): Promise<Record<string, number>> {
  const body = (await get(`${exp.url}/metrics`)).body;
  const out: Record<string, number> = { collected: 0, shared: 0, cached: 0 };
  for (const m of body.matchAll(/^pve_exporter_scrapes_total\{module="default",result="(\w+)"\} (\S+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

async function scrapesSeen(prom: Prometheus): Promise<number> {
  const r = await query(prom.url, 'count_over_time(up{job="pve"}[1h])');
  return r.length === 1 ? Number(r[0].value[1]) : 0;
}

describe('two Prometheus servers, one target, --scrape.cache-ttl', { skip: missing }, () => {
  let sim: Simulator;
  let exp: RunningExporter;
  const proms: Prometheus[] = [];

  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    exp = await startExporter(simModule(sim), ['--scrape.cache-ttl', String(TTL_S)]);
    const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-ha-'));
    const address = new URL(exp.url).host;
    for (const replica of ['a', 'b']) {
      const d = path.join(dir, replica);
      mkdirSync(d);
      proms.push(await startPrometheus(d, promConfig(replica, address)));
    }
  });
  after(async () => {
    for (const p of proms) await p.stop();
    await exp?.close();
    await sim?.close();
  });

  test('PVE is called for one scraper, both servers get every scrape', async (t) => {
    await waitUntil(
      'eight scrapes by each Prometheus',
      async () => {
        const seen = await Promise.all(proms.map(scrapesSeen));
        return seen.every((n) => n >= 8);
      },
      120_000,
    );
    const counts = await scrapeCounts(exp);
    const statusCalls = sim.stats().calls.get('/cluster/status') ?? 0;
    const served = counts.collected + counts.shared + counts.cached;
    const seen = await Promise.all(proms.map(scrapesSeen));
    t.diagnostic(`scrapes by exporter result ${JSON.stringify(counts)}; /cluster/status calls ${statusCalls}; scrapes stored per server ${seen.join(', ')}`);

    // One /cluster/status call per collection (a collection just started may not have sent it yet).
    assert.ok(statusCalls === counts.collected || statusCalls === counts.collected - 1, `${statusCalls} calls for ${counts.collected} collections`);
    // Every scrape of both servers was answered, about half of them from the cache or a shared collection.
    assert.ok(served >= seen[0] + seen[1], `exporter answered ${served}, Prometheus servers stored ${seen.join(' + ')}`);
    assert.ok(
      counts.collected <= Math.ceil(served / 2) + 2,
      `${counts.collected} collections for ${served} scrapes (${JSON.stringify(counts)}): not the cost of one scraper`,
    );
    assert.ok(counts.collected <= Math.max(...seen) + 2, `${counts.collected} collections, one server made ${Math.max(...seen)} scrapes`);
    for (const p of proms) {
      const down = await query(p.url, 'min_over_time(up{job="pve"}[1h])');
      assert.equal(down[0]?.value[1], '1', 'a scrape failed');
      const guests = await query(p.url, 'count(pve_guest_info)');
      assert.ok(Number(guests[0]?.value[1]) > 0, 'no PVE series stored');
    }
  });
});
