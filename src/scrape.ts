// One /pve scrape: a session over the (module, target) client, every enabled collector of the
// requested scopes at once, one deadline, and per-collector success and duration.
import { MetricFamily, gauge } from './exposition/family.ts';
import type { ModuleConfig } from './config.ts';
import type { ClientCache, RequestContext, Target } from './pve/client.ts';
import { connectionSettingsDigest, targetKey } from './pve/client.ts';
import { PveError } from './pve/errors.ts';
import { PveSession } from './pve/session.ts';
import type { ClusterStatusEntry } from './pve/types.ts';
import { Deadline, type DeadlineCause } from './scrape/deadline.ts';
import { Coalescer } from './scrape/coalesce.ts';
import { DEBUG_LOG_LIMITS, describeAuth, type LogLimits, privilegeFor, ScrapeLog, STORED_LOG_LIMITS } from './scrape/debug-log.ts';
import { ResultCache } from './scrape/result-cache.ts';
import { SCRAPE_COLLECTORS, type CollectorSwitches } from './collectors/registry.ts';
import { PartialFailure, type EndpointUse, type ScrapeCollector } from './collectors/types.ts';
import type { FailureLog } from './log.ts';
import type { SelfMetrics } from './self-metrics.ts';

export const COLLECTOR_SUCCESS = gauge('pve_exporter_collector_success', 'Whether a collector succeeded (1) or failed (0) in this scrape', ['collector']);
export const COLLECTOR_DURATION = gauge('pve_exporter_collector_duration_seconds', 'Duration of a collector in this scrape', ['collector']);

export interface ScrapeRequest {
  readonly module: ModuleConfig;
  readonly target: Target;
  readonly cluster: boolean;
  readonly node: boolean;
  /** X-Prometheus-Scrape-Timeout-Seconds, when the scraper sent it. */
  readonly scrapeTimeoutSeconds?: number;
  /** Aborted when the scraper hangs up: the scrape stops and its pending PVE requests are aborted. */
  readonly signal?: AbortSignal;
  /** debug=true: a collection of its own (never shared or cached) with a log of every call. */
  readonly debug?: boolean;
}

/** What /pve/sd needs: one target's cluster status, under the same deadline rules as a scrape. */
export interface DiscoveryRequest {
  readonly module: ModuleConfig;
  readonly target: Target;
  readonly scrapeTimeoutSeconds?: number;
  readonly signal?: AbortSignal;
}

export interface CollectorOutcome {
  readonly name: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly error?: string;
  /** Said once per target, not a failure: an endpoint this PVE release does not have (501). */
  readonly unavailable?: string;
  /** The failing PVE call, when one failed (for the privilege a 403 asks for). */
  readonly failedPath?: string;
  readonly failedStatus?: number;
}

/** How a scrape got its result: a collection of its own, one in flight it joined, or the cache. */
export type ServedFrom = 'collected' | 'shared' | 'cached';

export interface ScrapeResult {
  /** 500 when no PVE call succeeded (unreachable, TLS, authentication, not PVE, no answer in time). */
  readonly status: 200 | 500;
  readonly families: MetricFamily[];
  readonly error?: string;
  readonly outcomes: CollectorOutcome[];
  readonly apiCalls: number;
  /** What the collection did (src/scrape/debug-log.ts). */
  readonly log: ScrapeLog;
}

export interface ScrapeAnswer extends ScrapeResult {
  readonly served: ServedFrom;
  /** Epoch ms the collection started. */
  readonly collectedAt: number;
}

export interface ScraperOptions {
  readonly switches: CollectorSwitches;
  /** Seconds, used when the scraper sends no timeout header. */
  readonly defaultTimeout: number;
  /** Clock of the deadlines; the clients' clock must agree (tests inject one for both). */
  readonly now?: () => number;
  /** --scrape.cache-ttl, seconds; 0 (default) = every scrape collects. */
  readonly cacheTtl?: number;
  /** Most results cached at once (default 1000). */
  readonly maxCachedResults?: number;
}

class DeadlineReached extends Error {
  constructor(why: DeadlineCause) {
    super(why === 'hangup' ? 'the scraper hung up before the collector finished' : 'scrape deadline reached before the collector finished');
  }
}

export class Scraper {
  private readonly flights = new Coalescer<ScrapeResult>();
  private readonly cache: ResultCache<ScrapeResult>;

  constructor(
    private readonly clients: ClientCache,
    private readonly opts: ScraperOptions,
    private readonly self: SelfMetrics,
    private readonly failures: FailureLog,
  ) {
    this.cache = new ResultCache(opts.cacheTtl ?? 0, opts.maxCachedResults ?? 1000);
  }

  /** Collections in flight (shared by identical scrapes) and results cached. */
  get sharing(): { inFlight: number; cached: number } {
    return { inFlight: this.flights.size, cached: this.cache.size };
  }

  enabledCollectors(cluster: boolean, node: boolean): ScrapeCollector[] {
    const enabled: ScrapeCollector[] = [];
    for (const c of SCRAPE_COLLECTORS) {
      if (this.opts.switches[c.name] && ((c.scope === 'cluster' && cluster) || (c.scope === 'node' && node))) enabled.push(c);
    }
    return enabled;
  }

  /**
   * One /pve scrape: served from the result cache when a fresh one is there, else joined to an
   * identical collection in flight, else collected. debug=true always collects on its own.
   */
  async scrape(req: ScrapeRequest): Promise<ScrapeAnswer> {
    const moduleName = req.module.name;
    const collectors = this.enabledCollectors(req.cluster, req.node);
    if (req.debug) {
      this.self.scrapes.inc({ module: moduleName, result: 'collected' });
      const collectedAt = Date.now();
      const deadline = Deadline.forScrape(req.scrapeTimeoutSeconds, this.opts.defaultTimeout, req.signal, this.opts.now);
      const result = await this.collect(req, collectors, deadline, this.newLog(req, DEBUG_LOG_LIMITS));
      return this.answered({ ...result, served: 'collected', collectedAt }, moduleName);
    }
    const key = scrapeKey(req, collectors);
    const hit = this.cache.get(key);
    if (hit) {
      this.self.scrapes.inc({ module: moduleName, result: 'cached' });
      return { ...hit.value, served: 'cached', collectedAt: hit.collectedAt };
    }
    const waiter = Deadline.forScrape(req.scrapeTimeoutSeconds, this.opts.defaultTimeout, req.signal, this.opts.now);
    try {
      const flight = this.flights.join(key, waiter, async (shared) => {
        const startedAt = Date.now();
        const result = await this.collect(req, collectors, shared, this.newLog(req, STORED_LOG_LIMITS));
        if (result.status === 200) this.cache.set(key, result, startedAt);
        return result;
      });
      const served: ServedFrom = flight.joined ? 'shared' : 'collected';
      this.self.scrapes.inc({ module: moduleName, result: served });
      const outcome = await flight.wait();
      if (outcome.ok) return this.answered({ ...outcome.value, served, collectedAt: flight.startedAt }, moduleName);
      // This scrape gave up on the collection (it goes on for the other waiters).
      const log = this.newLog(req, { calls: 0, hits: 0 });
      if (outcome.cause === 'hangup') {
        log.finish(500, 0, 'the scraper hung up');
        return { status: 500, families: [], error: 'the scraper hung up', outcomes: [], apiCalls: 0, log, served, collectedAt: flight.startedAt };
      }
      const error = `${deadlineMessage(waiter)}, waiting for a collection shared with another scrape (started ${((Date.now() - flight.startedAt) / 1000).toFixed(1)}s ago)`;
      log.finish(500, 0, error);
      return this.answered({ status: 500, families: [], error, outcomes: [], apiCalls: 0, log, served, collectedAt: flight.startedAt }, moduleName);
    } finally {
      waiter.dispose();
    }
  }

  /** Counts an answer of 500 (not a hang-up: nobody got it) in pve_request_errors_total. */
  private answered(a: ScrapeAnswer, moduleName: string): ScrapeAnswer {
    if (a.status === 500 && a.error !== 'the scraper hung up') this.self.requestErrors.inc({ module: moduleName });
    return a;
  }

  private newLog(req: ScrapeRequest, limits: LogLimits): ScrapeLog {
    return new ScrapeLog(
      { module: req.module.name, target: targetKey(req.target), cluster: req.cluster, node: req.node, auth: describeAuth(req.module) },
      limits,
    );
  }

  /** One collection under `deadline` (which it disposes): every collector at once, per-collector outcome. */
  private async collect(req: ScrapeRequest, collectors: ScrapeCollector[], deadline: Deadline, log: ScrapeLog): Promise<ScrapeResult> {
    const started = performance.now();
    const deadlineReached = deadline.reached((cause) => new DeadlineReached(cause));
    const lease = this.clients.acquire(req.module, req.target);
    const session = new PveSession(lease.client, requestContext(deadline, req.module.name, log), {
      clusterScope: collectors.some((c) => c.scope === 'cluster' && c.endpoints.some((e) => e.path === '/cluster/resources')),
    });
    const families: MetricFamily[] = [];
    const outcomes: CollectorOutcome[] = [];
    /** Series per outcome, in the order of `outcomes` (and of `collectors`). */
    const seriesOf: number[] = [];
    try {
      // Loops rather than callbacks made per scrape (see byTypeAndVmid in collectors/types.ts).
      const running: Promise<CollectorRun>[] = [];
      for (const c of collectors) running.push(this.runCollector(c, session, deadlineReached));
      for (const r of await Promise.all(running)) {
        families.push(...r.families);
        outcomes.push(r.outcome);
        seriesOf.push(seriesIn(r.families));
      }
    } finally {
      // Whatever is still pending is abandoned now: aborted, not left to run after the answer.
      deadline.dispose();
      lease.release();
    }
    const moduleName = req.module.name;
    const target = targetKey(req.target);
    const seconds = (performance.now() - started) / 1000;
    this.self.collectionDuration.observe({ module: moduleName }, seconds);
    this.self.targetDuration?.observe({ module: moduleName, target }, seconds);
    if (session.configFetches > 0) this.self.guestConfigFetches.inc({ module: moduleName }, session.configFetches);
    for (const [collector, n] of session.staleServed) this.self.cacheStale.inc({ module: moduleName, collector }, n);

    const apiCalls = session.succeeded + session.failures.length;
    for (let i = 0; i < outcomes.length; i++) {
      const o = outcomes[i];
      const c = collectors[i];
      const series = seriesOf[i];
      // The error already names the privilege when the registry has it (describeFor); say it once.
      const named = o.error?.includes('(privilege for ') ?? false;
      const privilege = o.failedStatus === 403 && o.failedPath && !named ? privilegeFor(c, SCRAPE_COLLECTORS, o.failedPath) : undefined;
      log.collector({ name: o.name, ok: o.ok, seconds: o.seconds, series, error: o.error, privilege });
    }
    // Nobody to answer: no failure to log or count, the target did nothing wrong.
    if (deadline.cause === 'hangup') {
      log.finish(500, 0, 'the scraper hung up');
      return { status: 500, families: [], error: 'the scraper hung up', outcomes, apiCalls, log };
    }
    const fatal = collectors.length > 0 && session.succeeded === 0 ? noDataReason(session, deadline) : undefined;
    if (fatal !== undefined) {
      this.failures.failed(`${moduleName}|${target}|*`, { module: moduleName, target }, fatal);
      log.finish(500, 0, fatal);
      return { status: 500, families: [], error: fatal, outcomes, apiCalls, log };
    }
    this.failures.succeeded(`${moduleName}|${target}|*`, { module: moduleName, target });
    const success = new MetricFamily(COLLECTOR_SUCCESS);
    const duration = new MetricFamily(COLLECTOR_DURATION);
    for (const o of outcomes) {
      success.add([o.name], o.ok ? 1 : 0);
      duration.add([o.name], o.seconds);
      const key = `${moduleName}|${target}|${o.name}`;
      const fields = { module: moduleName, target, collector: o.name };
      if (o.unavailable !== undefined) this.failures.noticeOnce(key, fields, o.unavailable);
      if (o.ok) this.failures.succeeded(key, fields);
      else {
        this.self.collectorFailures.inc({ module: moduleName, collector: o.name });
        this.failures.failed(key, fields, o.error ?? 'failed');
      }
    }
    const merged = mergeSameName(families);
    if (outcomes.length > 0) merged.push(success, duration);
    log.finish(200, seriesIn(merged));
    return { status: 200, families: merged, outcomes, apiCalls, log };
  }

  /** /cluster/status of one target for /pve/sd: same client cache, same deadline, same hang-up rule. */
  async clusterStatus(req: DiscoveryRequest): Promise<ClusterStatusEntry[]> {
    const deadline = Deadline.forScrape(req.scrapeTimeoutSeconds, this.opts.defaultTimeout, req.signal, this.opts.now);
    const lease = this.clients.acquire(req.module, req.target);
    try {
      const session = new PveSession(lease.client, requestContext(deadline, req.module.name));
      return await Promise.race([session.clusterStatus(), deadline.reached(() => new PveError('deadline', '/cluster/status', deadlineMessage(deadline)))]);
    } catch (err) {
      // The request's own timer (set to the time left) and the deadline's fire in either order:
      // say it one way, as a /pve scrape does (noDataReason).
      if (err instanceof PveError && err.kind === 'deadline') {
        throw new PveError('deadline', '/cluster/status', deadlineMessage(deadline));
      }
      throw err;
    } finally {
      deadline.dispose();
      lease.release();
    }
  }

  private async runCollector(
    c: ScrapeCollector,
    session: PveSession,
    deadlineReached: Promise<never>,
  ): Promise<CollectorRun> {
    const t0 = performance.now();
    const done = (ok: boolean, families: MetricFamily[], err?: unknown, unavailable?: string) => ({
      families,
      outcome: {
        name: c.name,
        ok,
        seconds: (performance.now() - t0) / 1000,
        error: err === undefined ? undefined : describeFor(c, err),
        unavailable,
        failedPath: err instanceof PveError ? err.path : undefined,
        failedStatus: err instanceof PveError ? err.status : undefined,
      },
    });
    try {
      const families = await Promise.race([c.collect(session), deadlineReached]);
      return done(true, families);
    } catch (err) {
      if (err instanceof PartialFailure) return done(false, err.families, err.failure);
      // Not in this PVE release: nothing to collect is not a failure; the log says it once.
      const since = err instanceof PveError && err.status === 501 ? endpointOf(c, err.path)?.since : undefined;
      if (since !== undefined && err instanceof PveError) {
        return done(true, [], undefined, `${err.path} is not available on this PVE version (${err.message}; it needs ${since}); the ${c.name} collector yields no series`);
      }
      return done(false, [], err);
    }
  }
}

function requestContext(deadline: Deadline, module: string, trace?: ScrapeLog): RequestContext {
  // A getter: a shared collection's deadline moves later when a scrape with a later one joins.
  return {
    signal: deadline.signal,
    get deadline() {
      return deadline.at;
    },
    module,
    trace,
  };
}

/**
 * Scrapes with equal keys get equal answers: the same module (name and connection settings by
 * value, so a reload that changes a module never shares with the old one), target, scopes and
 * collectors. The format is not in it: what is shared are the families, encoded per answer in the
 * format each scraper asked for.
 */
function scrapeKey(req: ScrapeRequest, collectors: readonly ScrapeCollector[]): string {
  return [
    req.module.name,
    connectionSettingsDigest(req.module),
    targetKey(req.target),
    `cluster=${req.cluster ? 1 : 0}`,
    `node=${req.node ? 1 : 0}`,
    collectors.map((c) => c.name).join(','),
  ].join('|');
}

function describe(err: unknown): string {
  if (err instanceof PveError) return `${err.path}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** describe(), and for a 403 the privilege the registry says the endpoint needs. */
function describeFor(c: ScrapeCollector, err: unknown): string {
  const text = describe(err);
  if (!(err instanceof PveError) || err.status !== 403) return text;
  const use = endpointOf(c, err.path);
  return use ? `${text} (privilege for ${use.path}: ${use.privilege})` : text;
}

/** The registry entry of the endpoint `path` (a concrete API path) of collector `c`. */
function endpointOf(c: ScrapeCollector, path: string): EndpointUse | undefined {
  return c.endpoints.find((e) => endpointPattern(e.path).test(path));
}

const patterns = new Map<string, RegExp>();

/** "/nodes/{node}/disks/list" -> /^\/nodes\/[^/]+\/disks\/list$/ */
function endpointPattern(template: string): RegExp {
  let re = patterns.get(template);
  if (!re) {
    const source = template
      .split(/\{[^}]+\}/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]+');
    re = new RegExp(`^${source}$`);
    patterns.set(template, re);
  }
  return re;
}

/** What one collector gave in a scrape. */
interface CollectorRun {
  readonly families: MetricFamily[];
  readonly outcome: CollectorOutcome;
}

/** The series in `families`. */
function seriesIn(families: readonly MetricFamily[]): number {
  let n = 0;
  for (const f of families) n += f.values.length;
  return n;
}

/**
 * Two collectors may fill the same family for different objects (node metrics from
 * /nodes/{node}/status for the answering node and from /cluster/metrics/export for every node):
 * the exposition gets one family per name, and a series two collectors both produce is kept once
 * (the collector first in the registry wins).
 */
export function mergeSameName(families: MetricFamily[]): MetricFamily[] {
  const byName = new Map<string, MetricFamily[]>();
  for (const f of families) {
    const list = byName.get(f.spec.name);
    if (list) list.push(f);
    else byName.set(f.spec.name, [f]);
  }
  if (byName.size === families.length) return families;
  const out: MetricFamily[] = [];
  for (const list of byName.values()) {
    if (list.length === 1) {
      out.push(list[0]);
      continue;
    }
    const first = list[0];
    const merged = new MetricFamily(first.spec);
    const n = first.spec.labels.length;
    const seen = new Set<string>();
    for (const f of list) {
      // Families of one name share one spec; a differing label set cannot be merged, keep the first.
      if (f.spec.labels.join('\0') !== first.spec.labels.join('\0')) continue;
      for (let i = 0; i < f.values.length; i++) {
        const labels = f.labelValues.slice(i * n, i * n + n);
        const key = labels.join('\0');
        if (seen.has(key)) continue;
        seen.add(key);
        merged.add(labels, f.values[i]);
      }
    }
    out.push(merged);
  }
  return out;
}

function deadlineMessage(deadline: Deadline): string {
  if (deadline.cause === 'hangup') return 'the scraper hung up';
  return `no answer from PVE within the scrape deadline (${deadline.timeoutSeconds}s scrape timeout minus a margin)`;
}

/** Most telling first: what says the target cannot be used at all, then what says it is not PVE. */
const FATAL_ORDER: readonly PveError['kind'][] = ['auth', 'tls', 'connect', 'timeout', 'http', 'parse', 'size', 'deadline'];

/**
 * Why a scrape in which no PVE call succeeded has no data. Failures may not be recorded yet when
 * the deadline fired first (the aborted requests settle later): then the deadline is the reason.
 */
function noDataReason(session: PveSession, deadline: Deadline): string {
  for (const kind of FATAL_ORDER) {
    const e = session.failures.find((f) => f.kind === kind);
    if (!e || kind === 'deadline') continue;
    // Target-level failures say it all; the others name the call (a 404 or an HTML page says "not PVE").
    if (e.targetLevel) return e.message;
    const notPve = kind === 'parse' || (kind === 'http' && e.status !== undefined && PROXY_OR_WEB_STATUSES.has(e.status));
    return `${e.path}: ${e.message}${notPve ? NOT_PVE_HINT : ''}`;
  }
  return deadlineMessage(deadline);
}

/** Statuses pveproxy does not send for API paths, but web servers and reverse proxies do. */
const PROXY_OR_WEB_STATUSES = new Set([404, 502, 503, 504]);
const NOT_PVE_HINT = ' (is the target the PVE API, pveproxy on port 8006?)';
