// HTTP routes: /, /pve, /pve/sd, /metrics, /-/healthy, /-/ready. Plain node:http: a handful of
// routes does not need a framework.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzip } from 'node:zlib';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
import type { LoadedConfig, ModuleConfig } from './config.ts';
import type { CollectorSwitches } from './collectors/registry.ts';
import type { MetricFamily } from './exposition/family.ts';
import { encode, encodePieces, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, type Format } from './exposition/encode.ts';
import { BYTE_PIECES, GZIP_PIECES, GzipMember, type DeflatedPiece } from './exposition/gzip-pieces.ts';
import type { SeriesCache, SeriesCacheStore } from './exposition/series-cache.ts';
import type { Logger } from './log.ts';
import { targetKey, type ClientCache } from './pve/client.ts';
import { PveError } from './pve/errors.ts';
import { checkTargetAllowed, TargetRefused } from './pve/target-policy.ts';
import { parseScrapeTimeout, parseSwitch, parseTarget, QueryError, readParams } from './query.ts';
import type { Scraper } from './scrape.ts';
import { buildSdGroups, type SdAddress } from './sd.ts';
import type { SelfMetrics } from './self-metrics.ts';
import type { BasicAuthVerifier } from './web/basic-auth.ts';
import { LIFECYCLE_PATHS, lifecycleAnswer, type Lifecycle } from './web/lifecycle.ts';
import { negotiateFormat, negotiateGzip } from './web/negotiate.ts';
import type { WebConfig } from './web/web-config.ts';
import { landingPage } from './web/landing.ts';
import { RecentScrapes } from './web/recent.ts';

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
  /**
   * Output kept between scrapes of the same kind (module, target, scopes, format), per encoding:
   * the bytes an identity answer sent, the deflated bytes a gzip answer sent.
   */
  readonly seriesCaches: { readonly identity: SeriesCacheStore<Buffer>; readonly gzip: SeriesCacheStore<DeflatedPiece> };
  /** --web.config.file as last (re)loaded: basic auth users and extra headers. */
  web?: WebConfig;
  readonly auth: BasicAuthVerifier;
  readonly lifecycle: Lifecycle;
  /** One line for the landing page: TLS, client certificates, basic auth. */
  security(): string;
  /** The last scrapes with their logs (landing page, /logs). */
  readonly recent: RecentScrapes;
  /** --scrape.cache-ttl, seconds. */
  readonly cacheTtl: number;
  /** The configuration's last load (start or reload), for the landing page. */
  reloads: ReloadState;
}

export interface ReloadState {
  /** Epoch ms of the last successful load. */
  readonly lastSuccess: number;
  /** Epoch ms of the last attempt. */
  readonly lastAttempt: number;
  readonly ok: boolean;
  /** "start", "SIGHUP", "/-/reload". */
  readonly trigger: string;
  readonly error?: string;
}

/** First line of /metrics: the top support question upstream is "I only see python_* metrics". */
export const METRICS_POINTER =
  '# This is the exporter\'s own metrics. The PVE metrics are at /pve?target=<pve host>&module=<module> (see / for a Prometheus scrape config).\n';

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
  const params = readParams(url.searchParams, ['target', 'module', 'cluster', 'node', 'debug']);
  const module = pickModule(state, params);
  const target = parseTarget(params.get('target') ?? 'localhost', module.port);
  const debug = parseDebug(params.get('debug'));
  checkTargetAllowed(module, target.host, target.port); // before any client or connection exists
  const cluster = parseSwitch(params.get('cluster'));
  const node = parseSwitch(params.get('node'));
  const arrived = Date.now();
  const t0 = performance.now();
  const result = await state.scraper.scrape({
    module,
    target,
    cluster,
    node,
    scrapeTimeoutSeconds: parseScrapeTimeout(req.headers['x-prometheus-scrape-timeout-seconds']),
    signal: hangupSignal(res),
    debug,
  });
  state.recent.add({
    time: arrived,
    module: module.name,
    target: targetKey(target),
    cluster,
    node,
    served: result.served,
    debug,
    status: res.destroyed ? 'hung up' : result.status,
    seconds: (performance.now() - t0) / 1000,
    collectedAt: result.collectedAt,
    failing: result.outcomes.filter((o) => !o.ok).map((o) => ({ name: o.name, error: o.error ?? 'failed' })),
    error: result.error,
    log: result.log.bounded(),
  });
  if (res.destroyed) return; // the scraper hung up: nobody to answer
  if (debug) {
    // As blackbox_exporter: the log, then what the scrape would have returned, always 200.
    const metrics =
      result.status === 200
        ? `\nMetrics the scrape would have returned:\n\n${encode(result.families, 'text')}`
        : `\nThe scrape would have answered ${result.status}: Error scraping target ${target.host}: ${result.error ?? 'failed'}\n`;
    await send(req, res, 200, 'text/plain; charset=utf-8', result.log.render() + metrics);
    return;
  }
  if (result.status === 500) {
    await send(req, res, 500, 'text/plain; charset=utf-8', `Error scraping target ${target.host}: ${result.error ?? 'failed'}\n`);
    return;
  }
  const format = negotiateFormat(req.headers);
  const gzipped = negotiateGzip(req.headers);
  const kind = `${module.name}\u0000${targetKey(target)}\u0000${cluster ? 1 : 0}${node ? 1 : 0}\u0000${format}`;
  const body = gzipped
    ? gzipBody(result.families, format, state.seriesCaches.gzip.for(kind))
    : encodePieces(result.families, format, state.seriesCaches.identity.for(kind), BYTE_PIECES);
  await stream(req, res, format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE, body, gzipped);
}

/** A gzip member of the exposition, its unchanged pieces as compressed last time (gzip-pieces.ts). */
function* gzipBody(families: readonly MetricFamily[], format: Format, cache: SeriesCache<DeflatedPiece>): Generator<Buffer> {
  const member = new GzipMember();
  yield member.header();
  for (const piece of encodePieces(families, format, cache, GZIP_PIECES)) yield member.add(piece);
  yield member.end();
}

/** Pieces are sent in writes of at least this many bytes (one writev each, few chunks on the wire). */
const WRITE_BATCH_BYTES = 64 * 1024;

/**
 * Sends a large body as it is produced (chunked), honouring back-pressure, so a slow scraper
 * never makes the exporter hold more than the pieces its cache keeps anyway.
 */
async function stream(req: IncomingMessage, res: ServerResponse, contentType: string, pieces: Iterable<Buffer>, gzipped: boolean): Promise<void> {
  res.statusCode = 200;
  res.setHeader('Content-Type', contentType);
  if (gzipped) {
    res.setHeader('Content-Encoding', 'gzip');
    res.setHeader('Vary', 'Accept-Encoding');
  }
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  let batch: Buffer[] = [];
  let batched = 0;
  const flush = (): boolean => {
    res.cork();
    let ok = true;
    for (const b of batch) ok = res.write(b);
    res.uncork();
    batch = [];
    batched = 0;
    return ok;
  };
  for (const piece of pieces) {
    // The scraper went away: stop encoding.
    if (res.destroyed) return;
    batch.push(piece);
    batched += piece.length;
    if (batched >= WRITE_BATCH_BYTES && !flush()) await firstOf(res, 'drain', res, 'close');
  }
  if (res.destroyed) return;
  if (batch.length > 0) flush();
  res.end();
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

/** debug=true|false (blackbox_exporter's parameter); anything else is a 400. */
function parseDebug(raw: string | undefined): boolean {
  if (raw === undefined) return false;
  const s = raw.toLowerCase();
  if (s === 'true' || s === '1') return true;
  if (s === 'false' || s === '0' || s === '') return false;
  throw new QueryError(`debug must be "true" or "false", not "${raw}"`);
}

/** /logs?id=N: the stored log of one of the recent scrapes. */
async function handleLogs(state: AppState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const params = readParams(url.searchParams, ['id']);
  const raw = params.get('id') ?? '';
  if (!/^\d+$/.test(raw)) throw new QueryError('id must be the number of a recent scrape (see /)');
  const entry = state.recent.get(Number(raw));
  if (!entry) throw new HttpError(404, `scrape ${raw} is not kept (the last ${state.recent.capacity} are, --web.recent-scrapes); see /`);
  await send(req, res, 200, 'text/plain; charset=utf-8', RecentScrapes.render(entry));
}

/** Aborted when the connection closes before the answer is complete: the scraper hung up. */
function hangupSignal(res: ServerResponse): AbortSignal {
  const hangup = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) hangup.abort();
  });
  return hangup.signal;
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
      return send(req, res, 200, 'text/html; charset=utf-8', landingPage(state, req.headers.host));
    case '/logs':
      return handleLogs(state, req, res, url);
    case '/pve':
      return handlePve(state, req, res, url);
    case '/pve/sd':
      return handleSd(state, req, res, url);
    case '/metrics': {
      const body = METRICS_POINTER + (await state.self.registry.metrics());
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
