// The exporter's own metrics on /metrics (prom-client is fast enough for this small set).
import { Counter, Histogram, Gauge, Registry, Summary, collectDefaultMetrics } from 'prom-client';
import type { FamilySpec } from './exposition/family.ts';
import { VERSION } from './version.ts';

const spec = (name: string, type: FamilySpec['type'], help: string, labels: string[]): FamilySpec => ({ name, type, help, labels });

export const SELF_FAMILIES = {
  collectionDuration: spec('pve_collection_duration_seconds', 'summary', 'Duration of collections by the PVE exporter', ['module']),
  requestErrors: spec('pve_request_errors_total', 'counter', 'Errors in requests to PVE exporter', ['module']),
  collectorFailures: spec(
    'pve_exporter_collector_failures_total',
    'counter',
    'Scrapes in which a collector failed, by module and collector',
    ['module', 'collector'],
  ),
  guestConfigFetches: spec(
    'pve_exporter_guest_config_fetches_total',
    'counter',
    'Guest config calls made to PVE (cache misses of the config collector)',
    ['module'],
  ),
  cacheStale: spec(
    'pve_exporter_cache_stale_total',
    'counter',
    'Expired cache entries served because their refresh from PVE failed, by module and collector',
    ['module', 'collector'],
  ),
  scrapes: spec(
    'pve_exporter_scrapes_total',
    'counter',
    '/pve scrapes by how they got their result: collected (a collection of their own), shared (joined an identical collection in flight), cached (from --scrape.cache-ttl, no PVE call)',
    ['module', 'result'],
  ),
  targetRefused: spec(
    'pve_exporter_target_refused_total',
    'counter',
    'Requests refused with 403 because the target is not in the module\'s targets allow-list (no connection made)',
    ['module'],
  ),
  configReloadSuccess: spec('pve_exporter_config_last_reload_successful', 'gauge', 'Whether the last configuration reload (SIGHUP or /-/reload) succeeded (1) or failed (0)', []),
  configReloadTime: spec(
    'pve_exporter_config_last_reload_success_timestamp_seconds',
    'gauge',
    'Unix time of the last successful configuration load (start or reload)',
    [],
  ),
  buildInfo: spec('pve_exporter_build_info', 'gauge', 'pve-exporter version and the Node.js runtime it runs on', ['version', 'nodejs']),
  apiDuration: spec('pve_scrape_api_duration_seconds', 'histogram', 'Duration of PVE API calls, by module, endpoint and HTTP status', ['module', 'endpoint', 'status']),
  targetDuration: spec('pve_scrape_target_duration_seconds', 'histogram', 'Duration of whole /pve scrapes, by module and target', ['module', 'target']),
  pushCollections: spec('pve_exporter_push_collections_total', 'counter', 'Collections of push jobs (remote write), by job and outcome (success, failure, skipped: the previous one was still running)', ['job', 'outcome']),
  pushSamples: spec(
    'pve_exporter_push_samples_total',
    'counter',
    'Samples handled by remote write, by outcome: sent, dropped (queue full while the receiver was unreachable; oldest first), rejected (a 4xx other than 429 from the receiver)',
    ['outcome'],
  ),
  pushRequests: spec('pve_exporter_push_requests_total', 'counter', 'Remote write requests, by HTTP status of the answer ("error" when none came)', ['status']),
  pushRetries: spec('pve_exporter_push_retries_total', 'counter', 'Remote write requests retried after a 5xx, a 429 or a network error', []),
  pushQueueSamples: spec('pve_exporter_push_queue_samples', 'gauge', 'Samples waiting to be remote-written (bounded by queue_config.capacity)', []),
  pushproxPolls: spec('pve_exporter_pushprox_polls_total', 'counter', 'PushProx polls, by outcome (request: a scrape request came back; error: the poll failed)', ['outcome']),
  pushproxRequests: spec(
    'pve_exporter_pushprox_requests_total',
    'counter',
    'Scrape requests received through PushProx, by outcome (answered, expired: deadline passed before it arrived, invalid: unreadable request)',
    ['outcome'],
  ),
  pushproxPushErrors: spec('pve_exporter_pushprox_push_errors_total', 'counter', 'Answers that could not be posted back to the PushProx proxy', []),
} as const;

export interface SelfMetricsOptions {
  apiMetrics: boolean;
  targetMetrics: boolean;
}

const BUCKETS_API = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BUCKETS_TARGET = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class SelfMetrics {
  readonly registry = new Registry();
  readonly collectionDuration: Summary<'module'>;
  readonly requestErrors: Counter<'module'>;
  readonly collectorFailures: Counter<'module' | 'collector'>;
  readonly guestConfigFetches: Counter<'module'>;
  readonly cacheStale: Counter<'module' | 'collector'>;
  readonly targetRefused: Counter<'module'>;
  readonly scrapes: Counter<'module' | 'result'>;
  private readonly reloadSuccess: Gauge;
  private readonly reloadTime: Gauge;
  readonly apiDuration?: Histogram<'module' | 'endpoint' | 'status'>;
  readonly targetDuration?: Histogram<'module' | 'target'>;
  readonly pushCollections: Counter<'job' | 'outcome'>;
  readonly pushSamples: Counter<'outcome'>;
  readonly pushRequests: Counter<'status'>;
  readonly pushRetries: Counter;
  readonly pushQueueSamples: Gauge;
  readonly pushproxPolls: Counter<'outcome'>;
  readonly pushproxRequests: Counter<'outcome'>;
  readonly pushproxPushErrors: Counter;

  /** Series at 0 for every configured module, so dashboards show 0 rather than no data. */
  initModules(modules: Iterable<string>): void {
    for (const module of modules) {
      this.requestErrors.inc({ module }, 0);
      this.targetRefused.inc({ module }, 0);
      for (const result of ['collected', 'shared', 'cached']) this.scrapes.inc({ module, result }, 0);
    }
  }

  /** Records a configuration load: at start and on every reload attempt. */
  configLoaded(ok: boolean, now = Date.now()): void {
    this.reloadSuccess.set(ok ? 1 : 0);
    if (ok) this.reloadTime.set(now / 1000);
  }

  constructor(opts: SelfMetricsOptions) {
    const r = this.registry;
    const f = SELF_FAMILIES;
    collectDefaultMetrics({ register: r });
    this.collectionDuration = new Summary({
      name: f.collectionDuration.name,
      help: f.collectionDuration.help,
      labelNames: ['module'],
      percentiles: [],
      registers: [r],
    });
    this.requestErrors = new Counter({ name: f.requestErrors.name, help: f.requestErrors.help, labelNames: ['module'], registers: [r] });
    this.collectorFailures = new Counter({
      name: f.collectorFailures.name,
      help: f.collectorFailures.help,
      labelNames: ['module', 'collector'],
      registers: [r],
    });
    this.guestConfigFetches = new Counter({
      name: f.guestConfigFetches.name,
      help: f.guestConfigFetches.help,
      labelNames: ['module'],
      registers: [r],
    });
    this.cacheStale = new Counter({ name: f.cacheStale.name, help: f.cacheStale.help, labelNames: ['module', 'collector'], registers: [r] });
    this.targetRefused = new Counter({ name: f.targetRefused.name, help: f.targetRefused.help, labelNames: ['module'], registers: [r] });
    this.scrapes = new Counter({ name: f.scrapes.name, help: f.scrapes.help, labelNames: ['module', 'result'], registers: [r] });
    this.reloadSuccess = new Gauge({ name: f.configReloadSuccess.name, help: f.configReloadSuccess.help, registers: [r] });
    this.reloadTime = new Gauge({ name: f.configReloadTime.name, help: f.configReloadTime.help, registers: [r] });
    new Gauge({ name: f.buildInfo.name, help: f.buildInfo.help, labelNames: ['version', 'nodejs'], registers: [r] }).set(
      { version: VERSION, nodejs: process.version },
      1,
    );
    const counter = <L extends string>(s: FamilySpec): Counter<L> =>
      new Counter<L>({ name: s.name, help: s.help, labelNames: s.labels as L[], registers: [r] });
    this.pushCollections = counter(f.pushCollections);
    this.pushSamples = counter(f.pushSamples);
    this.pushRequests = counter(f.pushRequests);
    this.pushRetries = counter(f.pushRetries);
    this.pushQueueSamples = new Gauge({ name: f.pushQueueSamples.name, help: f.pushQueueSamples.help, registers: [r] });
    this.pushproxPolls = counter(f.pushproxPolls);
    this.pushproxRequests = counter(f.pushproxRequests);
    this.pushproxPushErrors = counter(f.pushproxPushErrors);
    if (opts.apiMetrics) {
      this.apiDuration = new Histogram({
        name: f.apiDuration.name,
        help: f.apiDuration.help,
        labelNames: ['module', 'endpoint', 'status'],
        buckets: BUCKETS_API,
        registers: [r],
      });
    }
    if (opts.targetMetrics) {
      this.targetDuration = new Histogram({
        name: f.targetDuration.name,
        help: f.targetDuration.help,
        labelNames: ['module', 'target'],
        buckets: BUCKETS_TARGET,
        registers: [r],
      });
    }
  }
}
