// Load and soak benchmark (issue 7): the exporter as its own process (dist/main.js), the PVE
// simulator and misbehaving targets in this one, all on loopback. Three phases:
//   concurrent  50 scrapes of one target at once, several rounds
//   targets     2,000 distinct targets (a TCP relay to the simulator per port), each scraped once
//   soak        10,000 scrapes of one target, every Nth one of a failing target instead
// The exporter's RSS (/proc/PID/status) and open file descriptors (/proc/PID/fd) are sampled
// along the way and printed with everything else as one JSON document on stdout, with a verdict
// on whether they stayed flat. Usage: npm run bench:soak -- [--soak 10000] [--targets 2000] ...
import net from 'node:net';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { exporterModule } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import { spawnExporter, type ExporterProcess } from '../test/helpers/exporter-process.ts';
import { refusedPort, startFaultyPve, startHangingTcp, startTlsHandshakeFailure, type FaultServer } from '../test/helpers/faulty-pve.ts';

const { values } = parseArgs({
  options: {
    concurrent: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '10' },
    targets: { type: 'string', default: '2000' },
    'targets-concurrency': { type: 'string', default: '25' },
    soak: { type: 'string', default: '10000' },
    'soak-concurrency': { type: 'string', default: '8' },
    'fault-every': { type: 'string', default: '10' },
    'sample-every': { type: 'string', default: '500' },
    'idle-seconds': { type: 'string', default: '7' },
    entry: { type: 'string', default: 'dist' },
    /** Passed to the exporter, e.g. --exporter-arg=--pve.max-targets=100 */
    'exporter-arg': { type: 'string', multiple: true, default: [] },
  },
});
const num = (k: keyof typeof values): number => {
  const n = Number(values[k]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${k} must be a whole number >= 0, got ${String(values[k])}`);
  return n;
};
const CONCURRENT = num('concurrent');
const ROUNDS = num('rounds');
const TARGETS = num('targets');
const TARGETS_CONCURRENCY = Math.max(1, num('targets-concurrency'));
const SOAK = num('soak');
const SOAK_CONCURRENCY = Math.max(1, num('soak-concurrency'));
const FAULT_EVERY = num('fault-every');
const SAMPLE_EVERY = Math.max(1, num('sample-every'));
const IDLE_SECONDS = num('idle-seconds');
const ENTRY = values.entry === 'src' ? 'src' : 'dist';

const mib = (bytes: number) => +(bytes / 2 ** 20).toFixed(1);

interface Sample {
  done: number;
  seconds: number;
  rss_mib: number;
  fds: number;
  /** V8 heap in use (nodejs_heap_size_used_bytes from /metrics): tells a leak from memory V8 keeps. */
  heap_used_mib?: number;
}

/** RSS and fds at once (from /proc); the heap figure follows from /metrics. */
class Sampler {
  readonly samples: Sample[] = [];
  private readonly pending: Promise<void>[] = [];
  private readonly t0 = performance.now();
  constructor(private readonly exporter: ExporterProcess) {}
  take(done: number): void {
    const s: Sample = { done, seconds: +((performance.now() - this.t0) / 1000).toFixed(1), rss_mib: mib(this.exporter.rssBytes()), fds: this.exporter.openFds() };
    this.samples.push(s);
    this.pending.push(heapUsedBytes(this.exporter.url).then((h) => void (s.heap_used_mib = mib(h))));
  }
  async settled(): Promise<Sample[]> {
    await Promise.allSettled(this.pending);
    return this.samples;
  }
}

async function heapUsedBytes(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
  const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

interface Outcome {
  status: number;
  partial: boolean;
  ms: number;
}

async function scrape(base: string, target: string, module = 'default', timeoutSeconds = 10): Promise<Outcome> {
  const t0 = performance.now();
  try {
    const res = await fetch(`${base}/pve?target=${encodeURIComponent(target)}&module=${module}`, {
      headers: { 'X-Prometheus-Scrape-Timeout-Seconds': String(timeoutSeconds) },
      signal: AbortSignal.timeout((timeoutSeconds + 20) * 1000),
    });
    const body = await res.text();
    return { status: res.status, partial: /^pve_exporter_collector_success\{[^}]*\} 0$/m.test(body), ms: performance.now() - t0 };
  } catch {
    return { status: 0, partial: false, ms: performance.now() - t0 }; // no answer at all
  }
}

/** Runs `count` jobs with at most `concurrency` at once; `onDone` after each. */
async function pool(count: number, concurrency: number, job: (i: number) => Promise<Outcome>, onDone?: (done: number, o: Outcome) => void): Promise<Outcome[]> {
  const out: Outcome[] = new Array(count);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await job(i);
      onDone?.(++done, out[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

function summary(outcomes: Outcome[]) {
  const statuses: Record<string, number> = {};
  let partial = 0;
  for (const o of outcomes) {
    statuses[o.status] = (statuses[o.status] ?? 0) + 1;
    if (o.partial) partial++;
  }
  const ms = outcomes.map((o) => o.ms).sort((a, b) => a - b);
  const pct = (p: number) => +(ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))] ?? NaN).toFixed(1);
  return { statuses, partial_200: partial, p50_ms: pct(50), p99_ms: pct(99), max_ms: +(ms[ms.length - 1] ?? NaN).toFixed(1) };
}

/** Flat = after warm-up (the first 20% of samples), the end is within 10% / 16 MiB of the start. */
function flatness(samples: Sample[], fdSlack: number) {
  const warm = samples.slice(Math.floor(samples.length * 0.2));
  if (warm.length < 2) return { rss: null, fds: null, rule: 'too few samples' };
  const first = warm[0];
  const last = warm[warm.length - 1];
  const rssGrowth = last.rss_mib - first.rss_mib;
  const fdMax = Math.max(...warm.map((s) => s.fds));
  return {
    rss: rssGrowth <= Math.max(16, first.rss_mib * 0.1),
    rss_growth_mib: +rssGrowth.toFixed(1),
    fds: last.fds <= first.fds + fdSlack && fdMax <= first.fds + 2 * fdSlack,
    fd_range: [Math.min(...warm.map((s) => s.fds)), fdMax],
    rule: `after the first 20% of samples: RSS grows <= max(16 MiB, 10%), fds end <= start + ${fdSlack} (keep-alive connections: the soak's targets x --pve.concurrency)`,
  };
}

/** `count` loopback ports, each relaying TCP to `port` on 127.0.0.1: distinct targets, one simulator. */
async function startRelays(port: number, count: number): Promise<{ ports: number[]; close(): Promise<void> }> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    s.once('close', () => sockets.delete(s));
  };
  for (let i = 0; i < count; i++) {
    const server = net.createServer((client) => {
      const upstream = net.connect(port, '127.0.0.1');
      track(client);
      track(upstream);
      client.pipe(upstream).pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    servers.push(server);
  }
  return {
    ports: servers.map((s) => (s.address() as net.AddressInfo).port),
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}

const sim = await startSimulator({ scenario: 'default' });
const simTarget = `${sim.host}:${sim.port}`;
const config = YAML.stringify({
  default: exporterModule(sim),
  // The same target pinned to a certificate it does not have: a TLS failure on every call.
  wrongpin: exporterModule(sim, { fingerprint: Array.from({ length: 32 }, () => 'AB').join(':') }),
});
const hanging = await startHangingTcp();
const tlsFailure = await startTlsHandshakeFailure();
const html502 = await startFaultyPve(sim, { rules: [{ path: /^\//, behaviour: { kind: 'html-502' } }] });
const truncated = await startFaultyPve(sim, { rules: [{ path: '/version', behaviour: { kind: 'truncated-body' } }] });
const refused = await refusedPort();
const faultServers: FaultServer[] = [hanging, tlsFailure, html502, truncated];
/** The failing scrapes of the soak, in turn: what a fleet with a few broken nodes sends. */
const FAULTS: ReadonlyArray<{ name: string; target: string; module?: string; timeoutSeconds?: number }> = [
  { name: 'connection refused', target: `127.0.0.1:${refused}` },
  { name: 'TLS handshake failure', target: tlsFailure.target },
  { name: 'HTML 502', target: html502.target },
  { name: 'truncated /version', target: truncated.target },
  { name: 'wrong certificate', target: simTarget, module: 'wrongpin' },
  { name: 'accept and hang (1 s scrape timeout)', target: hanging.target, timeoutSeconds: 1 },
];

const exporter = await spawnExporter({ config, entry: ENTRY, args: values['exporter-arg'] });
const base = exporter.url;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const started = performance.now();
try {
  const idle = { rss_mib: mib(exporter.rssBytes()), fds: exporter.openFds() };
  await scrape(base, simTarget); // warm: first connections, guest config cache

  // Phase 1: many scrapes of one target at once.
  const c0 = { rss_mib: mib(exporter.rssBytes()), fds: exporter.openFds() };
  const t1 = performance.now();
  const concurrentOutcomes: Outcome[] = [];
  let concurrentPeakFds = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const round = Promise.all(Array.from({ length: CONCURRENT }, () => scrape(base, simTarget)));
    await sleep(5);
    concurrentPeakFds = Math.max(concurrentPeakFds, exporter.openFds());
    concurrentOutcomes.push(...(await round));
  }
  const concurrent = {
    concurrency: CONCURRENT,
    rounds: ROUNDS,
    seconds: +((performance.now() - t1) / 1000).toFixed(1),
    ...summary(concurrentOutcomes),
    before: c0,
    after: { rss_mib: mib(exporter.rssBytes()), fds: exporter.openFds() },
    fds_during_round: concurrentPeakFds,
  };

  // Phase 2: a flood of distinct targets.
  const relays = await startRelays(sim.port, TARGETS);
  const t2 = performance.now();
  const targetSampler = new Sampler(exporter);
  targetSampler.take(0);
  const everyTargets = Math.max(1, Math.floor(TARGETS / 8));
  const targetOutcomes = await pool(
    TARGETS,
    TARGETS_CONCURRENCY,
    (i) => scrape(base, `127.0.0.1:${relays.ports[i]}`),
    (done) => {
      if (done % everyTargets === 0 || done === TARGETS) targetSampler.take(done);
    },
  );
  const targetsSeconds = (performance.now() - t2) / 1000;
  await sleep(IDLE_SECONDS * 1000); // past the simulator's 5 s keep-alive: idle connections close
  const targetsIdle = { seconds_idle: IDLE_SECONDS, rss_mib: mib(exporter.rssBytes()), fds: exporter.openFds(), heap_used_mib: mib(await heapUsedBytes(base)) };
  await relays.close();
  const targets = {
    distinct: TARGETS,
    concurrency: TARGETS_CONCURRENCY,
    seconds: +targetsSeconds.toFixed(1),
    ...summary(targetOutcomes),
    samples: await targetSampler.settled(),
    after_idle: targetsIdle,
    rss_growth_mib: +(targetsIdle.rss_mib - targetSampler.samples[0].rss_mib).toFixed(1),
  };

  // Phase 3: the soak.
  const t3 = performance.now();
  const soakSampler = new Sampler(exporter);
  soakSampler.take(0);
  const faultCounts: Record<string, number> = {};
  const soakOutcomes = await pool(
    SOAK,
    SOAK_CONCURRENCY,
    (i) => {
      if (FAULT_EVERY > 0 && i % FAULT_EVERY === FAULT_EVERY - 1) {
        const f = FAULTS[Math.floor(i / FAULT_EVERY) % FAULTS.length];
        faultCounts[f.name] = (faultCounts[f.name] ?? 0) + 1;
        return scrape(base, f.target, f.module, f.timeoutSeconds);
      }
      return scrape(base, simTarget);
    },
    (done) => {
      if (done % SAMPLE_EVERY === 0 || done === SOAK) soakSampler.take(done);
    },
  );
  const soakSeconds = (performance.now() - t3) / 1000;
  await sleep(IDLE_SECONDS * 1000);
  const soakIdle = { seconds_idle: IDLE_SECONDS, rss_mib: mib(exporter.rssBytes()), fds: exporter.openFds(), heap_used_mib: mib(await heapUsedBytes(base)) };
  const soakSamples = await soakSampler.settled();
  const soak = {
    scrapes: SOAK,
    concurrency: SOAK_CONCURRENCY,
    fault_every: FAULT_EVERY,
    faults: faultCounts,
    seconds: +soakSeconds.toFixed(1),
    scrapes_per_second: +(SOAK / soakSeconds).toFixed(0),
    ...summary(soakOutcomes),
    samples: soakSamples,
    after_idle: soakIdle,
    // Each target of the soak may hold up to --pve.concurrency (8) keep-alive connections.
    flat: flatness(soakSamples, (1 + FAULTS.length) * 8),
  };

  const stderr = exporter.stderr();
  const result = {
    setup: { node: process.version, exporter: ENTRY, exporter_args: values['exporter-arg'], scenario: 'default', cpus: (await import('node:os')).cpus().length },
    idle,
    concurrent,
    targets,
    soak,
    peak_rss_mib: mib(exporter.peakRssBytes()),
    exporter_alive: exporter.alive(),
    unhandled_in_log: /unhandled|uncaught/i.test(stderr),
    process_warnings_in_log: /^\(node:\d+\) \w*Warning/m.test(stderr),
    total_seconds: +((performance.now() - started) / 1000).toFixed(1),
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} finally {
  await exporter.stop();
  await Promise.all(faultServers.map((s) => s.close()));
  await sim.close();
}
