// Scrape benchmark: the setup (8 nodes x 250 guests, 10 ms per API call, 15 ms per guest
// config call), the exporter as its own process (node dist/main.js), the simulator in this one.
// Prints one JSON document. Usage: npm run bench -- [--scrapes 1000] [--nodes 8] [--guests-per-node 250]
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import { getFreePort, waitForHttp } from '../test/helpers/net.ts';

const { values } = parseArgs({
  options: {
    scrapes: { type: 'string', default: '1000' },
    nodes: { type: 'string', default: '8' },
    'guests-per-node': { type: 'string', default: '250' },
    'latency-ms': { type: 'string', default: '10' },
    'config-latency-ms': { type: 'string', default: '15' },
    query: { type: 'string', default: 'cluster=1&node=1' },
  },
});
const scrapes = Number(values.scrapes);
const nodes = Number(values.nodes);
const guestsPerNode = Number(values['guests-per-node']);

const sim = await startSimulator({
  generated: { nodes, guestsPerNode },
  latencyMs: Number(values['latency-ms']),
  configLatencyMs: Number(values['config-latency-ms']),
});
const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-bench-'));
const configFile = path.join(dir, 'pve.yml');
writeFileSync(configFile, exporterConfig(sim));
const port = await getFreePort();
const main = new URL('../dist/main.js', import.meta.url).pathname;
const exporter = spawn(process.execPath, ['--max-semi-space-size=4', main, '--config.file', configFile, '--web.listen-address', `127.0.0.1:${port}`, '--log.level', 'warn'], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
const base = `http://127.0.0.1:${port}`;

async function rssBytes(): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^process_resident_memory_bytes (\S+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

interface One {
  ms: number;
  bytes: number;
  apiCalls: number;
  configCalls: number;
  maxCallsPerFixedEndpoint: number;
}

async function scrapeOnce(): Promise<One> {
  sim.resetStats();
  const t0 = performance.now();
  const res = await fetch(`${base}/pve?target=127.0.0.1&${values.query}`, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '10' } });
  const body = await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`scrape failed: ${res.status} ${body.slice(0, 200)}`);
  if (/pve_exporter_collector_success\{collector="[^"]+"\} 0/.test(body)) throw new Error('a collector failed during the benchmark');
  const stats = sim.stats();
  let configCalls = 0;
  let maxFixed = 0;
  for (const [p, n] of stats.calls) {
    if (/\/config$/.test(p)) configCalls += n;
    else maxFixed = Math.max(maxFixed, n);
  }
  return { ms, bytes: Buffer.byteLength(body), apiCalls: stats.total, configCalls, maxCallsPerFixedEndpoint: maxFixed };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

try {
  await waitForHttp(`${base}/-/healthy`);
  const rssStart = await rssBytes();
  const cold = await scrapeOnce();
  const warm: One[] = [];
  const rssSamples: Array<{ after: number; rss_mb: number }> = [];
  for (let i = 1; i <= scrapes; i++) {
    warm.push(await scrapeOnce());
    if (i === 10 || i % Math.max(1, Math.floor(scrapes / 5)) === 0) rssSamples.push({ after: i, rss_mb: +((await rssBytes()) / 2 ** 20).toFixed(1) });
  }
  const ms = warm.map((w) => w.ms).sort((a, b) => a - b);
  const calls = warm.map((w) => w.apiCalls).sort((a, b) => a - b);
  const result = {
    setup: {
      nodes,
      guests: nodes * guestsPerNode,
      latency_ms: Number(values['latency-ms']),
      config_latency_ms: Number(values['config-latency-ms']),
      query: values.query,
      scrapes,
      node: process.version,
    },
    cold: {
      ms: +cold.ms.toFixed(1),
      api_calls: cold.apiCalls,
      config_calls: cold.configCalls,
      max_calls_per_fixed_endpoint: cold.maxCallsPerFixedEndpoint,
      bytes: cold.bytes,
    },
    warm: {
      p50_ms: +pct(ms, 50).toFixed(1),
      p95_ms: +pct(ms, 95).toFixed(1),
      max_ms: +ms[ms.length - 1].toFixed(1),
      api_calls_median: pct(calls, 50),
      config_calls_total: warm.reduce((a, w) => a + w.configCalls, 0),
      max_calls_per_fixed_endpoint: Math.max(...warm.map((w) => w.maxCallsPerFixedEndpoint)),
      bytes: warm[warm.length - 1]?.bytes,
    },
    rss_mb: { start: +(rssStart / 2 ** 20).toFixed(1), samples: rssSamples },
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} finally {
  exporter.kill('SIGTERM');
  await sim.close();
}
