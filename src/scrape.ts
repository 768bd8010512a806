// One /pve scrape: a session over the (module, target) client, every enabled collector of the
// requested scopes at once, a deadline, and per-collector success and duration.
import { MetricFamily, gauge } from './exposition/family.ts';
import type { ModuleConfig } from './config.ts';
import type { ClientCache, Target } from './pve/client.ts';
import { targetKey } from './pve/client.ts';
import { PveError } from './pve/errors.ts';
import { GuestConfigCache } from './pve/guest-config-cache.ts';
import { PveSession } from './pve/session.ts';
import type { PveClient } from './pve/client.ts';
import { SCRAPE_COLLECTORS, type CollectorSwitches } from './collectors/registry.ts';
import { PartialFailure, type ScrapeCollector } from './collectors/types.ts';
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
}

export interface CollectorOutcome {
  readonly name: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly error?: string;
}

export interface ScrapeResult {
  /** 500 when the target could not be used at all (unreachable, TLS, authentication). */
  readonly status: 200 | 500;
  readonly families: MetricFamily[];
  readonly error?: string;
  readonly outcomes: CollectorOutcome[];
  readonly apiCalls: number;
}

export interface ScraperOptions {
  readonly switches: CollectorSwitches;
  /** Seconds, used when the scraper sends no timeout header. */
  readonly defaultTimeout: number;
  /** Seconds; 0 disables the guest config cache. */
  readonly configCacheTtl: number;
}

/** Leave time to encode and send the answer before Prometheus gives up. */
export function deadlineSeconds(timeout: number): number {
  const margin = Math.min(0.5, Math.max(0.1, timeout * 0.1));
  return Math.max(0.05, timeout - margin);
}

class DeadlineReached extends Error {}

export class Scraper {
  private readonly configCaches = new WeakMap<PveClient, GuestConfigCache>();

  constructor(
    private readonly clients: ClientCache,
    private readonly opts: ScraperOptions,
    private readonly self: SelfMetrics,
    private readonly failures: FailureLog,
  ) {}

  enabledCollectors(cluster: boolean, node: boolean): ScrapeCollector[] {
    return SCRAPE_COLLECTORS.filter(
      (c) => this.opts.switches[c.name] && ((c.scope === 'cluster' && cluster) || (c.scope === 'node' && node)),
    );
  }

  private configCacheFor(client: PveClient): GuestConfigCache {
    let cache = this.configCaches.get(client);
    if (!cache) {
      cache = new GuestConfigCache(this.opts.configCacheTtl);
      this.configCaches.set(client, cache);
    }
    return cache;
  }

  async scrape(req: ScrapeRequest): Promise<ScrapeResult> {
    const started = performance.now();
    const timeout = req.scrapeTimeoutSeconds ?? this.opts.defaultTimeout;
    const budgetMs = deadlineSeconds(timeout) * 1000;
    const abort = new AbortController();
    let onDeadline!: () => void;
    const deadlineReached = new Promise<never>((_, reject) => {
      onDeadline = () => reject(new DeadlineReached());
    });
    deadlineReached.catch(() => undefined);
    const timer = setTimeout(() => {
      abort.abort();
      onDeadline();
    }, budgetMs);
    const client = this.clients.get(req.module, req.target);
    const session = new PveSession(client, { signal: abort.signal, deadline: Date.now() + budgetMs }, this.configCacheFor(client));
    const collectors = this.enabledCollectors(req.cluster, req.node);
    const families: MetricFamily[] = [];
    const outcomes: CollectorOutcome[] = [];
    try {
      const results = await Promise.all(collectors.map((c) => this.runCollector(c, session, deadlineReached)));
      for (const r of results) {
        families.push(...r.families);
        outcomes.push(r.outcome);
      }
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    const moduleName = req.module.name;
    const target = targetKey(req.target);
    const seconds = (performance.now() - started) / 1000;
    this.self.collectionDuration.observe({ module: moduleName }, seconds);
    this.self.targetDuration?.observe({ module: moduleName, target }, seconds);
    if (session.configFetches > 0) this.self.guestConfigFetches.inc({ module: moduleName }, session.configFetches);

    const fatal = unusableTarget(session);
    if (fatal) {
      this.self.requestErrors.inc({ module: moduleName });
      this.failures.failed(`${moduleName}|${target}|*`, { module: moduleName, target }, fatal.message);
      return { status: 500, families: [], error: fatal.message, outcomes, apiCalls: session.succeeded + session.failures.length };
    }
    this.failures.succeeded(`${moduleName}|${target}|*`, { module: moduleName, target });
    const success = new MetricFamily(COLLECTOR_SUCCESS);
    const duration = new MetricFamily(COLLECTOR_DURATION);
    for (const o of outcomes) {
      success.add([o.name], o.ok ? 1 : 0);
      duration.add([o.name], o.seconds);
      const key = `${moduleName}|${target}|${o.name}`;
      const fields = { module: moduleName, target, collector: o.name };
      if (o.ok) this.failures.succeeded(key, fields);
      else {
        this.self.collectorFailures.inc({ module: moduleName, collector: o.name });
        this.failures.failed(key, fields, o.error ?? 'failed');
      }
    }
    if (outcomes.length > 0) families.push(success, duration);
    return { status: 200, families, outcomes, apiCalls: session.succeeded + session.failures.length };
  }

  private async runCollector(
    c: ScrapeCollector,
    session: PveSession,
    deadlineReached: Promise<never>,
  ): Promise<{ families: MetricFamily[]; outcome: CollectorOutcome }> {
    const t0 = performance.now();
    const done = (ok: boolean, families: MetricFamily[], error?: string) => ({
      families,
      outcome: { name: c.name, ok, seconds: (performance.now() - t0) / 1000, error },
    });
    try {
      const families = await Promise.race([c.collect(session), deadlineReached]);
      return done(true, families);
    } catch (err) {
      if (err instanceof PartialFailure) return done(false, err.families, describe(err.failure));
      if (err instanceof DeadlineReached) return done(false, [], 'scrape deadline reached before the collector finished');
      return done(false, [], describe(err));
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof PveError) return `${err.path}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * The target is unusable when not a single call succeeded and what failed says so (no
 * connection, TLS refused, authentication refused, or no answer at all).
 */
function unusableTarget(session: PveSession): PveError | undefined {
  if (session.succeeded > 0 || session.failures.length === 0) return undefined;
  const order: PveError['kind'][] = ['auth', 'tls', 'connect', 'timeout', 'deadline'];
  for (const kind of order) {
    const e = session.failures.find((f) => f.kind === kind);
    if (e) return e;
  }
  return undefined;
}
