// HTTP routes: /, /pve, /pve/sd, /metrics, /-/healthy, /-/ready. Plain node:http: a handful of
// routes does not need a framework.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createGzip, gzip } from 'node:zlib';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
import type { LoadedConfig, ModuleConfig } from './config.ts';
import { COLLECTORS, type CollectorSwitches } from './collectors/registry.ts';
import { encodeChunks, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE } from './exposition/encode.ts';
import type { SeriesCacheStore } from './exposition/series-cache.ts';
import type { Logger } from './log.ts';
import { targetKey, type ClientCache } from './pve/client.ts';
import { PveError } from './pve/errors.ts';
import { checkTargetAllowed, TargetRefused } from './pve/target-policy.ts';
import { parseScrapeTimeout, parseSwitch, parseTarget, QueryError, readParams } from './query.ts';
import type { Scraper } from './scrape.ts';
import { buildSdGroups, type SdAddress } from './sd.ts';
import type { SelfMetrics } from './self-metrics.ts';
import { VERSION } from './version.ts';
import type { BasicAuthVerifier } from './web/basic-auth.ts';
import { LIFECYCLE_PATHS, lifecycleAnswer, type Lifecycle } from './web/lifecycle.ts';
import { negotiateFormat, negotiateGzip } from './web/negotiate.ts';
import type { WebConfig } from './web/web-config.ts';

const gzipAsync = promisify(gzip);

export interface AppState {
  /** Replaced on SIGHUP reload. */
  config: LoadedConfig;
  readonly scraper: Scraper;
  readonly clients: ClientCache;
  readonly self: SelfMetrics;
  readonly log: Logger;
  readonly switches: CollectorSwitches;
  readonly defaultTimeout: number;
  /** Rendered series kept between scrapes of the same kind (module, target, scopes, format). */
  readonly seriesCaches?: SeriesCacheStore;
  /** --web.config.file as last (re)loaded: basic auth users and extra headers. */
  web?: WebConfig;
  readonly auth: BasicAuthVerifier;
  readonly lifecycle: Lifecycle;
  /** One line for the landing page: TLS, client certificates, basic auth. */
  security(): string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function send(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): Promise<void> {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  if (body.length > 1024 && negotiateGzip(req.headers)) {
    const zipped = await gzipAsync(body, { level: 1 });
    res.setHeader('Content-Encoding', 'gzip');
    res.setHeader('Vary', 'Accept-Encoding');
    res.setHeader('Content-Length', zipped.length);
    res.end(req.method === 'HEAD' ? undefined : zipped);
    return;
  }
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}

function pickModule(state: AppState, params: Map<string, string>): ModuleConfig {
  const name = params.get('module') ?? 'default';
  const mod = state.config.modules.get(name);
  if (!mod) throw new HttpError(400, `Module '${name}' not found in config`);
  return mod;
}

async function handlePve(state: AppState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const params = readParams(url.searchParams, ['target', 'module', 'cluster', 'node']);
  const module = pickModule(state, params);
  const target = parseTarget(params.get('target') ?? 'localhost', module.port);
  checkTargetAllowed(module, target.host, target.port); // before any client or connection exists
  const cluster = parseSwitch(params.get('cluster'));
  const node = parseSwitch(params.get('node'));
  const result = await state.scraper.scrape({
    module,
    target,
    cluster,
    node,
    scrapeTimeoutSeconds: parseScrapeTimeout(req.headers['x-prometheus-scrape-timeout-seconds']),
    signal: hangupSignal(res),
  });
  if (res.destroyed) return; // the scraper hung up: nobody to answer
  if (result.status === 500) {
    await send(req, res, 500, 'text/plain; charset=utf-8', `Error scraping target ${target.host}: ${result.error ?? 'failed'}\n`);
    return;
  }
  const format = negotiateFormat(req.headers);
  const cache = state.seriesCaches?.for(`${module.name}\u0000${targetKey(target)}\u0000${cluster ? 1 : 0}${node ? 1 : 0}\u0000${format}`);
  await stream(req, res, format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE, encodeChunks(result.families, format, cache));
}

/**
 * Sends a large body as it is produced (chunked, gzip when accepted), honouring back-pressure,
 * so a 2,000-guest exposition is never held in memory whole.
 */
async function stream(req: IncomingMessage, res: ServerResponse, contentType: string, chunks: Iterable<string>): Promise<void> {
  res.statusCode = 200;
  res.setHeader('Content-Type', contentType);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  let out: Writable = res;
  if (negotiateGzip(req.headers)) {
    res.setHeader('Content-Encoding', 'gzip');
    res.setHeader('Vary', 'Accept-Encoding');
    // Level 1: a 3.6 MB exposition (2,000 guests) still shrinks ~10x, at a fraction of the CPU.
    const gz = createGzip({ level: 1 });
    gz.on('error', () => res.destroy());
    gz.pipe(res);
    out = gz;
  }
  for (const chunk of chunks) {
    if (res.destroyed) {
      // The scraper went away: stop encoding and release the compressor.
      if (out !== res) out.destroy();
      return;
    }
    if (!out.write(chunk)) await firstOf(out, 'drain', res, 'close');
  }
  out.end();
  if (!res.writableFinished && !res.destroyed) await firstOf(res, 'finish', res, 'close');
}

/** Resolves on the first of two events and removes both listeners (no leak over many waits). */
function firstOf(a: Writable, aEvent: string, b: Writable, bEvent: string): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      a.off(aEvent, done);
      b.off(bEvent, done);
      resolve();
    };
    a.on(aEvent, done);
    b.on(bEvent, done);
  });
}

async function handleSd(state: AppState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const params = readParams(url.searchParams, ['target', 'module', 'address']);
  const module = pickModule(state, params);
  const target = parseTarget(params.get('target') ?? 'localhost', module.port);
  const address = (params.get('address') ?? 'ip') as SdAddress;
  if (address !== 'ip' && address !== 'name') throw new QueryError('address must be "ip" or "name"');
  checkTargetAllowed(module, target.host, target.port); // before any client or connection exists
  try {
    const status = await state.scraper.clusterStatus({
      module,
      target,
      scrapeTimeoutSeconds: parseScrapeTimeout(req.headers['x-prometheus-scrape-timeout-seconds']),
      signal: hangupSignal(res),
    });
    const groups = buildSdGroups(status, module.name, target.explicitPort ? target.port : undefined, address);
    await send(req, res, 200, 'application/json; charset=utf-8', JSON.stringify(groups));
  } catch (err) {
    const msg = err instanceof PveError ? `${err.path}: ${err.message}` : String(err);
    state.log.warn({ module: module.name, target: target.host, error: msg }, 'service discovery failed');
    if (res.destroyed) return;
    await send(req, res, 500, 'text/plain; charset=utf-8', `Error discovering nodes via ${target.host}: ${msg}\n`);
  }
}

/** Aborted when the connection closes before the answer is complete: the scraper hung up. */
function hangupSignal(res: ServerResponse): AbortSignal {
  const hangup = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) hangup.abort();
  });
  return hangup.signal;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function landingPage(state: AppState): string {
  const modules = [...state.config.modules.keys()];
  const first = encodeURIComponent(modules[0] ?? 'default');
  const moduleItems = modules.map((m) => `<li><code>${escapeHtml(m)}</code></li>`).join('');
  const collectorRows = COLLECTORS.map((c) => {
    const endpoints =
      c.kind === 'scrape' ? c.endpoints.map((e) => `<code>${escapeHtml(e.path)}</code> (${escapeHtml(e.privilege)}; per ${e.cost})`).join('<br>') : '';
    const why = c.kind === 'scrape' && !state.switches[c.name] && c.offReason ? ` <em>Off by default: ${escapeHtml(c.offReason)}</em>` : '';
    return `<tr><td><code>${escapeHtml(c.name)}</code></td><td>${c.kind === 'scrape' ? c.scope : '/metrics'}</td><td>${
      state.switches[c.name] ? 'on' : 'off'
    }</td><td>${escapeHtml(c.description)}${why}</td><td>${endpoints}</td></tr>`;
  }).join('');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pve-exporter</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}code{background:#eee;padding:0 .2em}td,th{text-align:left;padding:.2em .6em}</style>
</head><body>
<h1>pve-exporter ${escapeHtml(VERSION)}</h1>
<p>Prometheus exporter for Proxmox VE, compatible with prometheus-pve-exporter. Prometheus scrapes
<code>/pve?target=&lt;pve host&gt;&amp;module=&lt;module&gt;&amp;cluster=1&amp;node=1</code>; relabel
<code>__address__</code> into <code>__param_target</code> and point <code>__address__</code> at this exporter.</p>
<ul>
<li><a href="pve?target=localhost&amp;module=${first}">pve?target=localhost&amp;module=${escapeHtml(decodeURIComponent(first))}</a>: metrics of a PVE target</li>
<li><a href="pve/sd?target=localhost&amp;module=${first}">pve/sd?target=localhost&amp;module=${escapeHtml(decodeURIComponent(first))}</a>: HTTP service discovery of the cluster's nodes</li>
<li><a href="metrics">metrics</a>: the exporter's own metrics</li>
<li><a href="-/healthy">-/healthy</a>, <a href="-/ready">-/ready</a></li>
<li><code>POST /-/reload</code>, <code>POST /-/quit</code>: ${
    state.lifecycle.enabled ? 'enabled (--web.enable-lifecycle)' : 'disabled (start with --web.enable-lifecycle to use them; SIGHUP reloads)'
  }</li>
</ul>
<p>Access: ${escapeHtml(state.security())}</p>
<h2>Modules (from ${escapeHtml(state.config.source)})</h2><ul>${moduleItems}</ul>
<h2>Collectors</h2><table><tr><th>name</th><th>scope</th><th>state</th><th>what</th><th>PVE endpoints (privilege; calls)</th></tr>${collectorRows}</table>
</body></html>
`;
}

export function createRequestHandler(state: AppState): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void authorised(state, req, res)
      .then((ok) => (ok ? route(state, req, res) : undefined))
      .catch(async (err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof TargetRefused) {
          state.self.targetRefused.inc({ module: err.module });
          // Debug only: a caller could flood the log; pve_exporter_target_refused_total counts them.
          state.log.debug({ module: err.module, target: err.target }, 'target refused: not in the module\'s targets allow-list');
          await send(req, res, 403, 'text/plain; charset=utf-8', `${err.message}\n`).catch(() => res.destroy());
          return;
        }
        if (err instanceof HttpError || err instanceof QueryError) {
          const status = err instanceof HttpError ? err.status : 400;
          await send(req, res, status, 'text/plain; charset=utf-8', `${err.message}\n`).catch(() => res.destroy());
          return;
        }
        state.log.error({ err: err instanceof Error ? err.message : String(err), path: req.url?.split('?')[0] }, 'request failed');
        await send(req, res, 500, 'text/plain; charset=utf-8', 'internal error\n').catch(() => res.destroy());
      });
  };
}

/** Web config headers on every answer; basic auth when users are configured (401 otherwise). */
async function authorised(state: AppState, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const web = state.web;
  if (!web) return true;
  for (const [name, value] of Object.entries(web.headers)) res.setHeader(name, value);
  if (web.users.size === 0) return true;
  if (await state.auth.check(web.users, req.headers.authorization)) return true;
  res.setHeader('WWW-Authenticate', 'Basic');
  await send(req, res, 401, 'text/plain; charset=utf-8', 'Unauthorized\n');
  return false;
}

async function route(state: AppState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const pathname = (req.url ?? '/').split('?')[0];
  if (LIFECYCLE_PATHS.has(pathname)) {
    const answer = lifecycleAnswer(state.lifecycle, req, pathname);
    if (answer.allow) res.setHeader('Allow', answer.allow);
    await send(req, res, answer.status, 'text/plain; charset=utf-8', answer.body);
    answer.after?.();
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    throw new HttpError(405, `method ${req.method} not allowed`);
  }
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://exporter');
  } catch {
    throw new HttpError(400, 'malformed request URL');
  }
  switch (url.pathname) {
    case '/':
      return send(req, res, 200, 'text/html; charset=utf-8', landingPage(state));
    case '/pve':
      return handlePve(state, req, res, url);
    case '/pve/sd':
      return handleSd(state, req, res, url);
    case '/metrics': {
      const body = await state.self.registry.metrics();
      return send(req, res, 200, state.self.registry.contentType, body);
    }
    case '/-/healthy':
      return send(req, res, 200, 'text/plain; charset=utf-8', 'OK\n');
    case '/-/ready':
      return send(req, res, 200, 'text/plain; charset=utf-8', 'OK\n');
    default:
      throw new HttpError(404, `not found: ${url.pathname}; see / for the endpoints`);
  }
}
