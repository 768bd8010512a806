// A real monitoring stack on loopback for the Prometheus tests: the exporter as a child process,
// a real Prometheus server (Debian package `prometheus`) as a child process, the shipped example
// configuration rewritten for loopback addresses, and small Prometheus HTTP API helpers.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { Simulator } from '../../sim/types.ts';
import { getFreePort, waitForHttp } from './net.ts';
import { promDir, repoRoot, ruleFiles } from './prom-expressions.ts';
import { exporterModule } from '../../sim/exporter-config.ts';

/** The Accept header Prometheus 2.x sends on every scrape (it prefers OpenMetrics). */
export const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

const children = new Set<ChildProcess>();
// Last line of defence: never leave a child behind, even if a test dies before its after() hook.
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export interface Child {
  proc: ChildProcess;
  /** stdout+stderr so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

export function startChild(cmd: string, args: string[], cwd: string): Child {
  const proc = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  const keep = (b: Buffer): void => {
    out += b.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      children.delete(proc);
    },
  };
}

/** One exporter module per simulator, as the exporter's pve.yml expects it. */
export function moduleFor(sim: Simulator): Record<string, unknown> {
  return exporterModule(sim);
}

export interface Exporter extends Child {
  /** host:port */
  address: string;
  url: string;
}

/** `extraArgs`: more exporter flags, e.g. `--collector.guest-filesystem` for a collector that is off by default. */
export async function startExporter(dir: string, modules: Record<string, Record<string, unknown>>, extraArgs: string[] = []): Promise<Exporter> {
  const configFile = path.join(dir, 'pve.yml');
  writeFileSync(configFile, YAML.stringify(modules), { mode: 0o600 });
  const port = await getFreePort();
  const address = `127.0.0.1:${port}`;
  const child = startChild(
    process.execPath,
    ['--import', 'tsx', path.join(repoRoot, 'src', 'main.ts'), '--config.file', configFile, '--web.listen-address', address, '--log.level', 'warn', ...extraArgs],
    repoRoot,
  );
  const url = `http://${address}`;
  try {
    await waitForHttp(`${url}/-/healthy`, 30_000);
  } catch (err) {
    await child.stop();
    throw new Error(`exporter did not start: ${String(err)}\n${child.output()}`);
  }
  return { ...child, address, url };
}

export interface Prometheus extends Child {
  url: string;
}

export async function startPrometheus(dir: string, configYaml: string): Promise<Prometheus> {
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, configYaml);
  const dataDir = path.join(dir, 'tsdb');
  mkdirSync(dataDir, { recursive: true });
  const port = await getFreePort();
  const child = startChild(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${dataDir}`,
      `--storage.tsdb.retention.time=1h`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
      // The Debian defaults point at /etc/prometheus; nothing of that is needed here.
      `--web.console.templates=${dir}`,
      `--web.console.libraries=${dir}`,
      '--log.level=warn',
    ],
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/-/ready`, 30_000);
  } catch (err) {
    await child.stop();
    throw new Error(`prometheus did not start: ${String(err)}\n${child.output()}`);
  }
  return { ...child, url };
}

export interface RenderOptions {
  /** Exact strings (host or host:port) in the example file -> what to put instead. */
  replace: Record<string, string>;
  /** Values of the static `cluster` target labels to rewrite (example name -> simulator name). */
  clusterNames?: Record<string, string>;
  /** Rule files to load instead of the example's rules/*.yml glob (absolute paths). */
  ruleFiles: string[];
  scrapeInterval: string;
  evaluationInterval: string;
  /** refresh_interval of http_sd_configs. */
  sdRefresh: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * Loads a shipped example configuration (deploy/prometheus/<file>) and adapts only what a test on
 * loopback has to change: addresses, intervals (a per-job scrape_timeout may not exceed the short
 * test interval), SD refresh, the cluster label value and the rule file paths. Everything else
 * (jobs, params, relabelling, SD URLs) is used exactly as shipped. Fails when a placeholder to
 * replace does not occur in the file, so the test cannot silently drift from the example.
 */
export function renderExampleConfig(file: string, opts: RenderOptions): string {
  const text = readFileSync(path.join(promDir, file), 'utf8');
  const keys = Object.keys(opts.replace).sort((a, b) => b.length - a.length);
  for (const k of keys) {
    if (!text.includes(k)) throw new Error(`${file}: placeholder ${k} not found`);
  }
  // Replaces whole host[:port] tokens inside any string value (targets, relabel replacements,
  // the target= parameter of SD URLs).
  const pattern = new RegExp(`(?<![\\w.-])(${keys.map(escapeRegExp).join('|')})(?![\\w.-]|:\\d)`, 'g');
  const swap = (s: string): string => s.replace(pattern, (m) => opts.replace[m]);
  const walk = (v: Json): Json => {
    if (typeof v === 'string') return swap(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const cfg = walk(YAML.parse(text) as Json) as {
    global: Record<string, string>;
    rule_files: string[];
    scrape_configs: {
      scrape_interval?: string;
      scrape_timeout?: string;
      http_sd_configs?: { refresh_interval?: string }[];
      static_configs?: { labels?: Record<string, string> }[];
    }[];
  };
  cfg.global.scrape_interval = opts.scrapeInterval;
  cfg.global.scrape_timeout = opts.scrapeInterval;
  cfg.global.evaluation_interval = opts.evaluationInterval;
  cfg.rule_files = opts.ruleFiles;
  for (const job of cfg.scrape_configs) {
    delete job.scrape_interval;
    delete job.scrape_timeout;
    for (const sd of job.http_sd_configs ?? []) sd.refresh_interval = opts.sdRefresh;
    for (const sc of job.static_configs ?? []) {
      const c = sc.labels?.cluster;
      if (c !== undefined && opts.clusterNames?.[c] !== undefined) sc.labels!.cluster = opts.clusterNames[c];
    }
  }
  const out = YAML.stringify(cfg, { aliasDuplicateObjects: false });
  for (const k of keys) {
    if (new RegExp(`(?<![\\w.-])${escapeRegExp(k)}(?![\\w.-]|:\\d)`).test(out)) throw new Error(`${file}: ${k} left over after rendering`);
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The shipped rule files, unchanged except for the `for` of the named alerts. */
export function ruleFilesWithFor(dir: string, overrides: Record<string, string>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const file of ruleFiles()) {
    const doc = YAML.parseDocument(readFileSync(file, 'utf8'));
    for (const g of (doc.get('groups') as YAML.YAMLSeq<YAML.YAMLMap>).items) {
      for (const r of (g.get('rules') as YAML.YAMLSeq<YAML.YAMLMap>).items) {
        const name = r.get('alert');
        if (typeof name === 'string' && name in overrides) {
          r.set('for', overrides[name]);
          seen.add(name);
        }
      }
    }
    const target = path.join(dir, path.basename(file));
    writeFileSync(target, doc.toString());
    out.push(target);
  }
  for (const name of Object.keys(overrides)) if (!seen.has(name)) throw new Error(`no alert ${name} in the rule files`);
  return out;
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export class PromQueryError extends Error {}

/** Instant query; throws PromQueryError with Prometheus' message on a bad expression. */
export async function query(promUrl: string, expr: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ query: expr }),
  });
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
  if (body.status !== 'success') throw new PromQueryError(`${body.error ?? res.status}\n  in: ${expr}`);
  const { resultType, result } = body.data!;
  if (resultType === 'vector') return result as Sample[];
  if (resultType === 'scalar') return [{ metric: {}, value: result as [number, string] }];
  throw new PromQueryError(`unexpected result type ${resultType} for ${expr}`);
}

export interface Target {
  labels: Record<string, string>;
  discoveredLabels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: string;
  lastError: string;
}

export async function activeTargets(promUrl: string): Promise<Target[]> {
  const res = await fetch(`${promUrl}/api/v1/targets?state=active`);
  const body = (await res.json()) as { data: { activeTargets: Target[] } };
  return body.data.activeTargets;
}

export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  value: string;
}

export async function alerts(promUrl: string): Promise<Alert[]> {
  const res = await fetch(`${promUrl}/api/v1/alerts`);
  const body = (await res.json()) as { data: { alerts: Alert[] } };
  return body.data.alerts;
}

/** Polls `check` until it returns a truthy value; the last error or value explains a timeout. */
export async function waitUntil<T>(what: string, check: () => Promise<T>, timeoutMs: number, intervalMs = 250): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Rewrites an OpenMetrics 1.0 body as text format 0.0.4 so that `promtool check metrics` (whose
 * linter only parses 0.0.4) can check it, following the mapping Prometheus itself applies when
 * ingesting: the `# EOF` terminator is dropped, type `unknown` is 0.0.4's `untyped`, and a counter
 * family `x` whose samples are `x_total` (OpenMetrics names the family without the suffix) becomes
 * family `x_total`. Sample lines are kept byte for byte. Also enforces the OpenMetrics rules this
 * mapping relies on, so a malformed body fails here rather than being "fixed" by the conversion.
 */
export function openMetricsToText(body: string): string {
  if (!body.endsWith('# EOF\n')) throw new Error('OpenMetrics body does not end with "# EOF\\n"');
  const lines = body.slice(0, -'# EOF\n'.length).split('\n');
  if (lines.at(-1) === '') lines.pop();
  const types = new Map<string, string>();
  for (const l of lines) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(l);
    if (m) {
      if (types.has(m[1])) throw new Error(`OpenMetrics: metric family ${m[1]} declared twice`);
      types.set(m[1], m[2]);
    }
  }
  const counters = new Set([...types].filter(([, t]) => t === 'counter').map(([n]) => n));
  const out: string[] = [];
  for (const l of lines) {
    if (l === '') throw new Error('OpenMetrics: empty line');
    if (l.includes('# EOF')) throw new Error('OpenMetrics: "# EOF" before the end');
    const meta = /^# (HELP|TYPE|UNIT) (\S+)(?: (.*))?$/.exec(l);
    if (meta) {
      const [, kind, name, rest] = meta;
      if (kind === 'UNIT') continue;
      const newName = counters.has(name) ? `${name}_total` : name;
      const newRest = kind === 'TYPE' && rest === 'unknown' ? 'untyped' : rest;
      out.push(`# ${kind} ${newName}${newRest === undefined ? '' : ` ${newRest}`}`);
      continue;
    }
    if (l.startsWith('#')) throw new Error(`OpenMetrics: comment lines other than HELP/TYPE/UNIT are not allowed: ${l}`);
    const sampleName = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0] ?? '';
    for (const c of counters) {
      if (sampleName === c) throw new Error(`OpenMetrics: counter sample ${sampleName} lacks the _total suffix`);
    }
    out.push(l);
  }
  return `${out.join('\n')}\n`;
}
