// Shared pieces of the benchmarks: a simulator in this process, the exporter as its own process
// (node dist/main.js, as in production), and measurements of that process read from /proc
// (utime + stime are what process.cpuUsage() reports, at the kernel's tick resolution).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { constants, deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import { Pool, request } from 'undici';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator, type Simulator } from '../sim/index.ts';
import { getFreePort, waitForHttp } from '../test/helpers/net.ts';

/**
 * How every shipped launcher starts the exporter (test/launchers.test.ts holds them to it): the
 * node flag (src/main.ts says why) and the environment. MALLOC_MMAP_THRESHOLD_ fixes glibc's
 * mmap threshold at its initial 128 KiB: by default glibc raises it to the size of each large
 * block freed (up to 32 MiB), after which the answers, inflate buffers and zlib states of every
 * scrape are carved from the malloc heaps, which keep the pages (13 MB of the main heap and
 * 3-5 MB in each thread's arena at 2,000 guests); fixed, they are mapped and unmapped whole.
 * Measured: 12-15 MB less resident memory, CPU per scrape unchanged (README, Performance).
 */
export const EXPORTER_NODE_ARGS: readonly string[] = ['--max-semi-space-size=4'];
export const EXPORTER_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux we run on). */
const USER_HZ = 100;

export interface BenchSetup {
  readonly nodes: number;
  readonly guestsPerNode: number;
  readonly latencyMs: number;
  readonly configLatencyMs: number;
  /** Extra node flags for the exporter process, e.g. ["--cpu-prof", "--cpu-prof-dir=/tmp/p"]. */
  readonly nodeArgs?: readonly string[];
  /** The build to run (default: dist/ of this checkout). */
  readonly dist?: string;
  /** A file to run instead of <dist>/main.js (the single-file bundle the launchers ship). */
  readonly entry?: string;
  /** The simulator's answers stay the same scrape after scrape (default: counters drift, as live). */
  readonly static?: boolean;
  /** Leave out EXPORTER_ENV (glibc's own malloc thresholds), to measure what it changes. */
  readonly plainMalloc?: boolean;
}

export interface Running {
  readonly sim: Simulator;
  readonly exporter: ChildProcess;
  readonly base: string;
  stop(): Promise<void>;
}

export async function startPair(setup: BenchSetup): Promise<Running> {
  const sim = await startSimulator({
    generated: { nodes: setup.nodes, guestsPerNode: setup.guestsPerNode },
    latencyMs: setup.latencyMs,
    configLatencyMs: setup.configLatencyMs,
    driftCounters: setup.static !== true,
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-bench-'));
  const configFile = path.join(dir, 'pve.yml');
  // An allow-list and mode 0600, so the exporter has no warning to log.
  writeFileSync(configFile, exporterConfig(sim, 'default', { targets: ['127.0.0.1'] }), { mode: 0o600 });
  const port = await getFreePort();
  const main = setup.entry ?? path.resolve(setup.dist ?? new URL('../dist', import.meta.url).pathname, 'main.js');
  const exporter = spawn(
    process.execPath,
    [...EXPORTER_NODE_ARGS, ...(setup.nodeArgs ?? []), main, '--config.file', configFile, '--web.listen-address', `127.0.0.1:${port}`, '--log.level', 'warn'],
    {
      env: setup.plainMalloc ? process.env : { ...process.env, ...EXPORTER_ENV },
      stdio: ['ignore', process.env.BENCH_EXPORTER_STDOUT === 'inherit' ? 'inherit' : 'ignore', 'inherit'],
    },
  );
  const base = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => exporter.once('exit', () => resolve()));
  try {
    await waitForHttp(`${base}/-/healthy`);
  } catch (err) {
    exporter.kill('SIGKILL');
    await sim.close();
    throw err;
  }
  return {
    sim,
    exporter,
    base,
    async stop() {
      exporter.kill('SIGTERM');
      await exited; // graceful exit: --cpu-prof writes its profile then
      await sim.close();
    },
  };
}

/** utime + stime of a /proc stat file (a process's or one thread's), in seconds. */
function statCpuSeconds(file: string): number {
  const stat = readFileSync(file, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ; // utime, stime (fields 14, 15)
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/**
 * CPU seconds the main thread (JavaScript, the event loop) has used so far; the process's other
 * threads are V8's (garbage collection, compilation) and libuv's threadpool.
 */
export function mainThreadCpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/task/${pid}/stat`);
}

/**
 * CPU seconds the process has used so far, to the nanosecond: the sum of its threads' run time
 * from /proc/<pid>/task/<tid>/schedstat (threads that already ended are not counted, so use it
 * for spans in which threads live on, such as an idle process).
 */
export function cpuSecondsPrecise(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e9;
}

/** Resident set size of the process, MB. */
export function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? +(Number(m[1]) / 1024).toFixed(1) : NaN;
}

export interface ScrapeSample {
  readonly ms: number;
  /** The exposition's size. */
  readonly bytes: number;
  /** What went over the wire (gzip when asked). */
  readonly wireBytes: number;
  readonly apiCalls: number;
  readonly configCalls: number;
  readonly maxCallsPerFixedEndpoint: number;
}

/**
 * One scrape as Prometheus makes it (Accept-Encoding: gzip unless `gzip` is false), timed to the
 * last byte; the body is inflated and checked after the clock stops.
 */
export async function scrapeOnce(run: Running, query: string, gzip = true): Promise<ScrapeSample> {
  run.sim.resetStats();
  const t0 = performance.now();
  const res = await request(`${run.base}/pve?target=127.0.0.1&${query}`, {
    headers: { 'x-prometheus-scrape-timeout-seconds': '30', 'accept-encoding': gzip ? 'gzip' : 'identity' },
  });
  const raw = Buffer.from(await res.body.arrayBuffer());
  const ms = performance.now() - t0;
  const body = (res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
  if (res.statusCode !== 200) throw new Error(`scrape failed: ${res.statusCode} ${body.slice(0, 200)}`);
  if (/pve_exporter_collector_success\{collector="[^"]+"\} 0/.test(body)) throw new Error('a collector failed during the benchmark');
  const stats = run.sim.stats();
  let configCalls = 0;
  let maxFixed = 0;
  for (const [p, n] of stats.calls) {
    if (/\/config$/.test(p)) configCalls += n;
    else maxFixed = Math.max(maxFixed, n);
  }
  return { ms, bytes: Buffer.byteLength(body), wireBytes: raw.length, apiCalls: stats.total, configCalls, maxCallsPerFixedEndpoint: maxFixed };
}

export function pct(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const ms1 = (v: number): number => +v.toFixed(1);

/** One keep-alive connection to the simulator's API with its token, answers asked in `encoding`. */
function simClient(run: Running, encoding: 'gzip' | 'identity'): { pool: Pool; headers: Record<string, string> } {
  const { credentials } = run.sim;
  // The simulator's own certificate on loopback: the bench checks timing, not TLS.
  const pool = new Pool(run.sim.url, { connections: 1, connect: { rejectUnauthorized: false } });
  const headers = {
    accept: 'application/json',
    'accept-encoding': encoding,
    authorization: `PVEAPIToken=${credentials.user}!${credentials.tokenName}=${credentials.tokenValue}`,
  };
  return { pool, headers };
}

/**
 * The floor of a scrape: what no exporter can avoid. /cluster/resources fetched alone (the
 * longest PVE answer on the critical path, the others run next to it), read whole the way the
 * exporter reads it by default (keep-alive HTTPS, gzip: ModuleConfig.gzip), and sending a
 * body of the scrape's size on the wire (gzip-compressed when the scrape was) over HTTP from a
 * process that holds it ready.
 */
export async function measureFloor(run: Running, bodyBytes: number, rounds: number): Promise<{ resources_ms: number; body_ms: number; floor_ms: number }> {
  const { pool, headers } = simClient(run, 'gzip');
  const resources: number[] = [];
  try {
    for (let i = 0; i < rounds + 2; i++) {
      const t0 = performance.now();
      const res = await pool.request({ method: 'GET', path: '/api2/json/cluster/resources', headers });
      await res.body.arrayBuffer();
      if (res.statusCode !== 200) throw new Error(`/cluster/resources: ${res.statusCode}`);
      if (i >= 2) resources.push(performance.now() - t0); // the first two open the connection
    }
  } finally {
    await pool.close();
  }
  const body = await bodyWriteMs(bodyBytes, rounds);
  const r = pct(resources, 50);
  return { resources_ms: ms1(r), body_ms: ms1(body), floor_ms: ms1(r + body) };
}

/** Median time to GET a ready body of `bytes` from a separate Node process (node:http, res.end). */
async function bodyWriteMs(bytes: number, rounds: number): Promise<number> {
  const port = await getFreePort();
  const script = `const b=Buffer.alloc(${bytes},'a');b[b.length-1]=10;require('http').createServer((q,r)=>{r.setHeader('content-type','text/plain');r.end(b)}).listen(${port},'127.0.0.1')`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  try {
    const url = `http://127.0.0.1:${port}/`;
    await waitForHttp(url);
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const res = await request(url);
      await res.body.arrayBuffer();
      times.push(performance.now() - t0);
    }
    return pct(times, 50);
  } finally {
    child.kill('SIGKILL');
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The machine's speed today: the same fixed work on every run, of the kinds a scrape does
 * (JSON.parse and JSON.stringify of a 650 KB guest list, deflate at level 1 of 1 MB of exposition
 * text), in this process before any exporter starts; the fastest of 21 rounds (the least
 * disturbed by other jobs), ms. The project's machine is shared and its speed varies from day to
 * day (one build measured 36 ms CPU per scrape one day and 63 the next): CPU figures of two runs
 * compare in proportion to it.
 */
export function machineMs(): number {
  let seed = 1;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const guests = Array.from({ length: 2000 }, (_, i) => ({
    id: `qemu/${100 + i}`, type: 'qemu', vmid: 100 + i, name: `vm-${i}`, node: `pve${i % 8}`, status: 'running',
    cpu: random(), maxcpu: 4, mem: Math.floor(random() * 2 ** 33), maxmem: 2 ** 33, disk: 0, maxdisk: 2 ** 35,
    netin: Math.floor(random() * 1e12), netout: Math.floor(random() * 1e12), diskread: Math.floor(random() * 1e11),
    diskwrite: Math.floor(random() * 1e11), uptime: Math.floor(random() * 1e7), template: 0, tags: 'prod;web', hastate: 'started',
  }));
  const json = JSON.stringify({ data: guests });
  const lines: string[] = [];
  for (let i = 0; lines.length < 16_000; i++) lines.push(`pve_network_receive_bytes_total{id="qemu/${100 + i}"} ${Math.floor(random() * 1e12)}\n`);
  const text = Buffer.from(lines.join(''));
  const round = () => {
    const t0 = performance.now();
    JSON.stringify(JSON.parse(json));
    deflateRawSync(text, { level: 1, finishFlush: constants.Z_SYNC_FLUSH });
    return performance.now() - t0;
  };
  return ms1(Math.min(...Array.from({ length: 21 }, round)));
}

/**
 * What compressing PVE's answers costs and saves (the module key gzip): the answers of one
 * warm scrape (the paths the simulator answered in it, fetched again uncompressed), their bytes
 * plain and gzipped, the CPU of gzip at level 6 as pveproxy compresses (Compress::Zlib's default
 * level, every answer anew) and of inflating them, each the median of 5 rounds in this process.
 */
export async function pveAnswerCost(run: Running, query: string): Promise<{ paths: number; plain_bytes: number; gzip_bytes: number; pve_gzip6_ms: number; exporter_gunzip_ms: number }> {
  await scrapeOnce(run, query);
  const paths = [...run.sim.stats().calls.keys()];
  const { pool, headers } = simClient(run, 'identity');
  let plain = 0;
  let zipped = 0;
  let gzipMs = 0;
  let gunzipMs = 0;
  try {
    for (const p of paths) {
      const res = await pool.request({ method: 'GET', path: `/api2/json${p}`, headers });
      const body = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode !== 200) throw new Error(`${p}: ${res.statusCode}`);
      const gz = gzipSync(body, { level: 6 });
      const zip: number[] = [];
      const unzip: number[] = [];
      for (let i = 0; i < 5; i++) {
        let t0 = performance.now();
        gzipSync(body, { level: 6 });
        zip.push(performance.now() - t0);
        t0 = performance.now();
        gunzipSync(gz);
        unzip.push(performance.now() - t0);
      }
      plain += body.length;
      zipped += gz.length;
      gzipMs += pct(zip, 50);
      gunzipMs += pct(unzip, 50);
    }
  } finally {
    await pool.close();
  }
  return { paths: paths.length, plain_bytes: plain, gzip_bytes: zipped, pve_gzip6_ms: ms1(gzipMs), exporter_gunzip_ms: ms1(gunzipMs) };
}
