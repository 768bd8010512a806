// Collector benchmark for issue 9: 8 nodes x 250 guests (half of the VMs with the guest agent),
// 10 ms per API call, the variants (Ceph HEALTH_WARN, a silent agent, a failed vzdump, a
// DEGRADED zpool, a FAILED disk), every collector on, the off-by-default ones included
// (--collector.guest-filesystem, --collector.updates). One cold scrape (empty caches), then warm
// scrapes: API calls per endpoint (simulator stats) and per collector, and each collector's
// duration as the exporter reports it (pve_exporter_collector_duration_seconds).
// Prints one JSON document. Usage: npm run bench:collectors -- [--warm 30] [--nodes 8] [--guests-per-node 250]
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SCRAPE_COLLECTORS } from '../src/collectors/registry.ts';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import { getFreePort, waitForHttp } from '../test/helpers/net.ts';

const { values } = parseArgs({
  options: {
    warm: { type: 'string', default: '30' },
    nodes: { type: 'string', default: '8' },
    'guests-per-node': { type: 'string', default: '250' },
    'latency-ms': { type: 'string', default: '10' },
    query: { type: 'string', default: 'cluster=1&node=1' },
  },
});
const warmScrapes = Number(values.warm);
const nodes = Number(values.nodes);
const guestsPerNode = Number(values['guests-per-node']);
const latencyMs = Number(values['latency-ms']);

const sim = await startSimulator({
  generated: { nodes, guestsPerNode },
  latencyMs,
  variants: ['ceph-health-warn', 'agent-not-running', 'backup-failed'],
  nodeHealth: { degradedPools: ['pve2'], failedDisks: ['pve1'] },
});
const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-bench-collectors-'));
const configFile = path.join(dir, 'pve.yml');
writeFileSync(configFile, exporterConfig(sim));
const port = await getFreePort();
const main = new URL('../dist/main.js', import.meta.url).pathname;
const offByDefault = SCRAPE_COLLECTORS.filter((c) => !c.defaultEnabled).map((c) => `--collector.${c.name}`);
const exporter = spawn(
  process.execPath,
  [main, '--config.file', configFile, '--web.listen-address', `127.0.0.1:${port}`, '--log.level', 'warn', ...offByDefault],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
const base = `http://127.0.0.1:${port}`;

/** Registry endpoints as patterns, so a called path ("/nodes/pve3/qemu/1042/config") maps to its template. */
const endpointPatterns = [...new Set(SCRAPE_COLLECTORS.flatMap((c) => c.endpoints.map((e) => e.path)))]
  .map((template) => ({ template, re: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`) }))
  // Longer templates first: "/nodes/{node}/tasks/{upid}/log" before "/nodes/{node}/tasks".
  .sort((a, b) => b.template.length - a.template.length);

function templateOf(apiPath: string): string {
  const p = apiPath.replace(/^\/api2\/json/, '').split('?')[0];
  return endpointPatterns.find((e) => e.re.test(p))?.template ?? p;
}

interface Scrape {
  ms: number;
  apiCalls: number;
  byEndpoint: Map<string, number>;
  durationMs: Map<string, number>;
  failed: string[];
}

async function scrapeOnce(timeoutSeconds: number): Promise<Scrape> {
  sim.resetStats();
  const t0 = performance.now();
  const res = await fetch(`${base}/pve?target=127.0.0.1&${values.query}`, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': String(timeoutSeconds) } });
  const body = await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`bench: scrape failed: ${res.status} ${body.slice(0, 200)}`);
  const stats = sim.stats();
  const byEndpoint = new Map<string, number>();
  for (const [p, n] of stats.calls) byEndpoint.set(templateOf(p), (byEndpoint.get(templateOf(p)) ?? 0) + n);
  const durationMs = new Map<string, number>();
  for (const m of body.matchAll(/^pve_exporter_collector_duration_seconds\{collector="([^"]+)"\} (\S+)$/gm)) durationMs.set(m[1], Number(m[2]) * 1000);
  const failed = [...body.matchAll(/^pve_exporter_collector_success\{collector="([^"]+)"\} 0$/gm)].map((m) => m[1]);
  return { ms, apiCalls: stats.total, byEndpoint, durationMs, failed };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};
const round = (x: number): number => +x.toFixed(1);

try {
  await waitForHttp(`${base}/-/healthy`);
  // Cold: empty caches (configs, disks, certificates, apt, vzdump tasks and logs, agent fsinfo).
  const cold = await scrapeOnce(60);
  const warm: Scrape[] = [];
  for (let i = 0; i < warmScrapes; i++) warm.push(await scrapeOnce(10));
  const failures = [...new Set([...cold.failed, ...warm.flatMap((w) => w.failed)])];

  const endpoints = [...new Set([...cold.byEndpoint.keys(), ...warm.flatMap((w) => [...w.byEndpoint.keys()])])].sort();
  const calls_by_endpoint = Object.fromEntries(
    endpoints.map((e) => [e, { cold: cold.byEndpoint.get(e) ?? 0, warm_median: median(warm.map((w) => w.byEndpoint.get(e) ?? 0)) }]),
  );
  const collectors = Object.fromEntries(
    SCRAPE_COLLECTORS.map((c) => {
      const own = c.endpoints.map((e) => e.path);
      const sum = (s: Scrape): number => own.reduce((a, e) => a + (s.byEndpoint.get(e) ?? 0), 0);
      return [
        c.name,
        {
          default: c.defaultEnabled ? 'on' : 'off',
          cold_ms: round(cold.durationMs.get(c.name) ?? NaN),
          warm_ms_median: round(median(warm.map((w) => w.durationMs.get(c.name) ?? NaN))),
          // Calls to the collector's endpoints; an endpoint several collectors read (e.g.
          // /cluster/status, /cluster/resources) is fetched once per scrape and counted for each.
          cold_calls: sum(cold),
          warm_calls_median: median(warm.map(sum)),
        },
      ];
    }),
  );
  const warmMs = warm.map((w) => w.ms);
  const warmCalls = warm.map((w) => w.apiCalls);
  const result = {
    setup: {
      nodes,
      guests: nodes * guestsPerNode,
      vms_with_agent: 'half of the VMs',
      latency_ms: latencyMs,
      query: values.query,
      collectors_enabled_off_by_default: offByDefault,
      variants: ['ceph-health-warn', 'agent-not-running', 'backup-failed', 'zpool DEGRADED on pve2', 'SMART FAILED on pve1'],
      warm_scrapes: warmScrapes,
      node: process.version,
    },
    cold: { ms: round(cold.ms), api_calls: cold.apiCalls },
    warm: {
      ms_median: round(median(warmMs)),
      ms_max: round(Math.max(...warmMs)),
      api_calls_median: median(warmCalls),
      api_calls_max: Math.max(...warmCalls),
    },
    collector_failures: failures,
    collectors,
    calls_by_endpoint,
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} finally {
  exporter.kill('SIGTERM');
  await sim.close();
}
