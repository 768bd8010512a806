// Capacity benchmark: how many scrapes per second one exporter process carries, for the sizing
// advice of docs/scaling.md. A generated 2,000-guest cluster (8 nodes x 250 guests, 10 ms per API
// call, 15 ms per guest config call) in the simulator (this process), the exporter as its own
// process (node dist/main.js), warm (one scrape first fills the guest-config cache), then for each
// concurrency level C: C clients scraping back to back for a fixed time. Reports throughput,
// latency and the exporter's CPU per scrape (process_cpu_seconds_total of its /metrics), which
// bounds what one process can carry: it runs on one core. Prints one JSON document.
// Usage: npm run bench:capacity -- [--seconds 10] [--concurrency 1,2,4,8,16] [--query cluster=1&node=0]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import { getFreePort, waitForHttp } from '../test/helpers/net.ts';
import { EXPORTER_ENV, EXPORTER_NODE_ARGS } from './harness.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '1,2,4,8,16' },
    nodes: { type: 'string', default: '8' },
    'guests-per-node': { type: 'string', default: '250' },
    'latency-ms': { type: 'string', default: '10' },
    'config-latency-ms': { type: 'string', default: '15' },
    // The heavy scrape of the two-job layout: cluster-wide data from one node.
    query: { type: 'string', default: 'cluster=1&node=0' },
  },
});
const seconds = Number(values.seconds);
const levels = values.concurrency.split(',').map(Number);
if (!(seconds > 0) || levels.some((c) => !Number.isInteger(c) || c < 1)) {
  throw new Error(`bench/capacity: --seconds must be > 0 and --concurrency a list of positive integers (got ${values.seconds}, ${values.concurrency})`);
}
const nodes = Number(values.nodes);
const guestsPerNode = Number(values['guests-per-node']);

const sim = await startSimulator({
  generated: { nodes, guestsPerNode },
  latencyMs: Number(values['latency-ms']),
  configLatencyMs: Number(values['config-latency-ms']),
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'pve-exporter-capacity-'));
const configFile = path.join(dir, 'pve.yml');
writeFileSync(configFile, exporterConfig(sim), { mode: 0o600 });
const port = await getFreePort();
const main = new URL('../dist/main.js', import.meta.url).pathname;
const exporter = spawn(
  process.execPath,
  [...EXPORTER_NODE_ARGS, main, '--config.file', configFile, '--web.listen-address', `127.0.0.1:${port}`, '--log.level', 'warn'],
  { env: { ...process.env, ...EXPORTER_ENV }, stdio: ['ignore', 'ignore', 'inherit'] },
);
const base = `http://127.0.0.1:${port}`;
const scrapeUrl = `${base}/pve?target=127.0.0.1&${values.query}`;

async function selfMetric(name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`bench/capacity: ${name} missing from the exporter's /metrics`);
  return Number(m[1]);
}

async function scrape(): Promise<{ ms: number; ok: boolean; bytes: number }> {
  const t0 = performance.now();
  const res = await fetch(scrapeUrl, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '30' } });
  const body = await res.text();
  const ok = res.status === 200 && !/pve_exporter_collector_success\{collector="[^"]+"\} 0/.test(body);
  return { ms: performance.now() - t0, ok, bytes: body.length };
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

interface Level {
  concurrency: number;
  scrapes: number;
  failed: number;
  scrapes_per_second: number;
  p50_ms: number;
  p95_ms: number;
  exporter_cpu_ms_per_scrape: number;
  exporter_cpu_utilisation: number;
  simulator_cpu_utilisation: number;
  rss_mb: number;
}

async function runLevel(concurrency: number): Promise<Level> {
  const cpu0 = await selfMetric('process_cpu_seconds_total');
  const simCpu0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  const ms: number[] = [];
  let failed = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const r = await scrape();
        ms.push(r.ms);
        if (!r.ok) failed++;
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = (await selfMetric('process_cpu_seconds_total')) - cpu0;
  const simCpu = process.cpuUsage(simCpu0);
  ms.sort((a, b) => a - b);
  return {
    concurrency,
    scrapes: ms.length,
    failed,
    scrapes_per_second: +(ms.length / wall).toFixed(2),
    p50_ms: +pct(ms, 50).toFixed(1),
    p95_ms: +pct(ms, 95).toFixed(1),
    exporter_cpu_ms_per_scrape: +((cpu * 1000) / ms.length).toFixed(1),
    // 1.0 = one core busy all the time: the ceiling of a single Node.js process.
    exporter_cpu_utilisation: +(cpu / wall).toFixed(2),
    simulator_cpu_utilisation: +((simCpu.user + simCpu.system) / 1e6 / wall).toFixed(2),
    rss_mb: +((await selfMetric('process_resident_memory_bytes')) / 2 ** 20).toFixed(1),
  };
}

try {
  await waitForHttp(`${base}/-/healthy`);
  const cold = await scrape();
  if (!cold.ok) throw new Error('bench/capacity: the first scrape failed; is the simulator reachable?');
  // Warm: a second scrape runs on the filled caches; its time is the single-scrape baseline.
  const warm = await scrape();
  const results: Level[] = [];
  for (const c of levels) results.push(await runLevel(c));
  const best = results.reduce((a, b) => (b.scrapes_per_second > a.scrapes_per_second ? b : a));
  const cpus = os.cpus();
  process.stdout.write(
    `${JSON.stringify(
      {
        setup: {
          nodes,
          guests: nodes * guestsPerNode,
          latency_ms: Number(values['latency-ms']),
          config_latency_ms: Number(values['config-latency-ms']),
          query: values.query,
          seconds_per_level: seconds,
          node: process.version,
          machine: { cpus: cpus.length, model: cpus[0]?.model ?? 'unknown', load_avg_1m: +os.loadavg()[0]!.toFixed(2) },
        },
        cold_ms: +cold.ms.toFixed(1),
        warm_ms: +warm.ms.toFixed(1),
        body_bytes: warm.bytes,
        levels: results,
        max_scrapes_per_second: best.scrapes_per_second,
        at_concurrency: best.concurrency,
      },
      null,
      2,
    )}\n`,
  );
} finally {
  exporter.kill('SIGTERM');
  await sim.close();
  rmSync(dir, { recursive: true, force: true });
}
