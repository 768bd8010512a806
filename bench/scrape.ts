// Scrape benchmark: the exporter as its own process (node dist/main.js), the simulator in this
// one. Prints one JSON document. Phases (--phases, comma-separated, default all):
// Scrapes ask for gzip, as Prometheus does.
//   latency  8 nodes x 250 guests, 10 ms per call (15 ms per guest config): cold scrape, warm
//            p50/p95, the floor measured in the same run and the exporter's own share above it
//   cpu      same cluster at latency 0: CPU per warm scrape, RSS over --rss-scrapes scrapes, and
//            what gzip of PVE's answers costs PVE and saves the exporter (pve_answers)
//   scale    200 / 2,000 / 10,000 guests at 10 ms: warm p50, CPU per scrape, RSS
//   idle     an exporter nobody scrapes: CPU over --idle-seconds (30), after --idle-settle-seconds
//            (12: start-up and V8's memory reducer, reported apart), to the nanosecond
// The simulator's counters (uptime, network and disk bytes, CPU of running guests) drift between
// scrapes as a live cluster's do; --static keeps its answers the same (which flatters the encoder
// cache: then every chunk of output is reused).
// The machine these run on is shared: wall times are noisy, CPU seconds less so.
// Usage: npm run bench -- [--phases latency,cpu] [--warm 200] [--rss-scrapes 1000] [--query cluster=1&node=1]
//        [--static] [--dist node_modules/.dist-main] [--node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"]
//        [--bundle]  (runs the single-file bundle of scripts/bundle.mjs, as every shipped launcher does,
//                     instead of dist/main.js)
//        [--plain-malloc]  (without the launchers' MALLOC_MMAP_THRESHOLD_, harness.ts EXPORTER_ENV)
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, cpuSecondsPrecise, machineMs, mainThreadCpuSeconds, measureFloor, ms1, pct, pveAnswerCost, rssMb, scrapeOnce, sleep, startPair, type BenchSetup, type Running, type ScrapeSample } from './harness.ts';

const { values } = parseArgs({
  options: {
    phases: { type: 'string', default: 'latency,cpu,scale,idle' },
    warm: { type: 'string', default: '200' },
    'rss-scrapes': { type: 'string', default: '1000' },
    'scale-warm': { type: 'string', default: '30' },
    'idle-seconds': { type: 'string', default: '30' },
    'idle-settle-seconds': { type: 'string', default: '12' },
    'latency-ms': { type: 'string', default: '10' },
    'config-latency-ms': { type: 'string', default: '15' },
    query: { type: 'string', default: 'cluster=1&node=1' },
    'node-args': { type: 'string', default: '' },
    dist: { type: 'string' },
    static: { type: 'boolean', default: false },
    bundle: { type: 'boolean', default: false },
    'plain-malloc': { type: 'boolean', default: false },
  },
});
const phases = new Set(values.phases.split(',').map((p) => p.trim()));
const warmN = Number(values.warm);
const rssScrapes = Number(values['rss-scrapes']);
const latencyMs = Number(values['latency-ms']);
const configLatencyMs = Number(values['config-latency-ms']);
const query = values.query;
const nodeArgs = values['node-args'].split(' ').filter(Boolean);
/** --bundle: the bundle built from this checkout's sources, in a folder of its own (no node_modules beside it). */
const entry = values.bundle ? path.join(mkdtempSync(path.join(tmpdir(), 'pve-exporter-bundle-')), 'pve-exporter.mjs') : undefined;
if (entry) execFileSync(process.execPath, [new URL('../scripts/bundle.mjs', import.meta.url).pathname, '--outfile', entry], { stdio: ['ignore', 'ignore', 'inherit'] });

async function withPair<T>(setup: BenchSetup, body: (run: Running) => Promise<T>): Promise<T> {
  const run = await startPair({ ...setup, nodeArgs, dist: values.dist, entry, static: values.static, plainMalloc: values['plain-malloc'] });
  try {
    return await body(run);
  } finally {
    await run.stop();
  }
}

async function scrapes(run: Running, n: number, gzip = true): Promise<ScrapeSample[]> {
  const out: ScrapeSample[] = [];
  for (let i = 0; i < n; i++) out.push(await scrapeOnce(run, query, gzip));
  return out;
}

/** Warm p50/p95 and CPU per scrape over n scrapes (after the cold one). */
async function warmFigures(run: Running, n: number, gzip = true) {
  const pid = run.exporter.pid!;
  const cpu0 = cpuSeconds(pid);
  const main0 = mainThreadCpuSeconds(pid);
  const warm = await scrapes(run, n, gzip);
  const cpu = cpuSeconds(pid) - cpu0;
  const main = mainThreadCpuSeconds(pid) - main0;
  const ms = warm.map((w) => w.ms);
  return {
    warm,
    figures: {
      p50_ms: ms1(pct(ms, 50)),
      p95_ms: ms1(pct(ms, 95)),
      cpu_ms_per_scrape: ms1((cpu * 1000) / n),
      // Of that, the main thread's; the rest is V8's threads (garbage collection, compilation).
      main_thread_cpu_ms: ms1((main * 1000) / n),
      api_calls_median: pct(warm.map((w) => w.apiCalls), 50),
      config_calls_total: warm.reduce((a, w) => a + w.configCalls, 0),
      max_calls_per_fixed_endpoint: Math.max(...warm.map((w) => w.maxCallsPerFixedEndpoint)),
      bytes: warm[warm.length - 1]?.bytes,
      wire_bytes: warm[warm.length - 1]?.wireBytes,
    },
  };
}

const coldFigures = (s: ScrapeSample) => ({ ms: ms1(s.ms), api_calls: s.apiCalls, config_calls: s.configCalls, bytes: s.bytes });

const machine = { before: machineMs(), after: NaN };
const result: Record<string, unknown> = {
  setup: {
    query,
    node: process.version,
    dist: entry ? 'bundle (scripts/bundle.mjs)' : (values.dist ?? 'dist'),
    counters: values.static ? 'static' : 'drifting',
    malloc: values['plain-malloc'] ? 'glibc defaults' : 'MALLOC_MMAP_THRESHOLD_=131072 (as launched)',
    note: 'wall times on a shared 2-core machine are noisy; CPU figures are the exporter process only',
    machine_ms: machine,
    machine_note: 'fixed work (JSON.parse and stringify of 650 KB, deflate of 1 MB) timed before and after the phases: CPU figures of two days compare in proportion to it',
  },
};

if (phases.has('latency')) {
  result.latency = await withPair({ nodes: 8, guestsPerNode: 250, latencyMs, configLatencyMs }, async (run) => {
    const cold = await scrapeOnce(run, query);
    const { figures } = await warmFigures(run, warmN);
    const floor = await measureFloor(run, figures.wire_bytes ?? cold.wireBytes, 30);
    return {
      setup: { nodes: 8, guests: 2000, latency_ms: latencyMs, config_latency_ms: configLatencyMs, warm_scrapes: warmN },
      cold: coldFigures(cold),
      warm: figures,
      floor,
      exporter_share_ms: ms1(figures.p50_ms - floor.floor_ms),
    };
  });
}

if (phases.has('cpu')) {
  result.cpu = await withPair({ nodes: 8, guestsPerNode: 250, latencyMs: 0, configLatencyMs: 0 }, async (run) => {
    const pid = run.exporter.pid!;
    await scrapes(run, 20); // cold + JIT warm-up
    const { figures } = await warmFigures(run, Math.min(200, rssScrapes));
    // The same without gzip: the exporter's own work, without the compressor's share.
    const { figures: identity } = await warmFigures(run, Math.min(100, rssScrapes), false);
    const rss: Array<{ after: number; rss_mb: number }> = [];
    for (let i = 1; i <= rssScrapes; i++) {
      await scrapeOnce(run, query);
      if (i === 10 || i % Math.max(1, Math.floor(rssScrapes / 5)) === 0) rss.push({ after: i, rss_mb: rssMb(pid) });
    }
    return {
      setup: { nodes: 8, guests: 2000, latency_ms: 0 },
      warm: figures,
      warm_without_gzip: { p50_ms: identity.p50_ms, cpu_ms_per_scrape: identity.cpu_ms_per_scrape, main_thread_cpu_ms: identity.main_thread_cpu_ms },
      rss_mb: rss,
      pve_answers: await pveAnswerCost(run, query),
    };
  });
}

if (phases.has('scale')) {
  const sizes: Array<[number, number]> = [
    [8, 25],
    [8, 250],
    [16, 625],
  ];
  const out: Record<string, unknown>[] = [];
  for (const [nodes, perNode] of sizes) {
    out.push(
      await withPair({ nodes, guestsPerNode: perNode, latencyMs, configLatencyMs }, async (run) => {
        const cold = await scrapeOnce(run, query);
        const n = Number(values['scale-warm']);
        const { figures } = await warmFigures(run, n);
        return { nodes, guests: nodes * perNode, cold: coldFigures(cold), warm: figures, rss_mb: rssMb(run.exporter.pid!) };
      }),
    );
  }
  result.scale = { latency_ms: latencyMs, config_latency_ms: configLatencyMs, sizes: out };
}

if (phases.has('idle')) {
  const seconds = Number(values['idle-seconds']);
  const settle = Number(values['idle-settle-seconds']);
  result.idle = await withPair({ nodes: 1, guestsPerNode: 10, latencyMs: 0, configLatencyMs: 0 }, async (run) => {
    const pid = run.exporter.pid!;
    // Start-up, then V8's memory reducer: a few GCs some 8 s after the process went quiet.
    const start = cpuSecondsPrecise(pid);
    await sleep(settle * 1000);
    const cpu0 = cpuSecondsPrecise(pid);
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const cpu = cpuSecondsPrecise(pid) - cpu0;
    const wall = (performance.now() - t0) / 1000;
    return {
      settle_seconds: settle,
      settle_cpu_ms: ms1((cpu0 - start) * 1000),
      seconds: ms1(wall),
      cpu_ms: +(cpu * 1000).toFixed(2),
      core_percent: +((100 * cpu) / wall).toFixed(3),
      cpu_seconds_per_day: +((cpu / wall) * 86400).toFixed(1),
    };
  });
}

machine.after = machineMs();
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
