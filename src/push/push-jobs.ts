// Push jobs: each collects on its interval through the same Scraper.scrape that /pve uses, and
// turns the result into what a Prometheus scrape would have stored: every sample with __name__,
// job, instance and the external labels, one timestamp (the collection's start), the synthetic
// up / scrape_duration_seconds / scrape_samples_scraped series, and staleness markers for the
// series that were there last time and are not any more.
import type { LoadedConfig } from '../config.ts';
import { SCRAPE_COLLECTORS, type CollectorSwitches } from '../collectors/registry.ts';
import { byName, familiesToSamples, seriesKey, STALE, type PushSample, type SeriesSample } from '../exposition/remote-write.ts';
import { FailureLog, type Logger } from '../log.ts';
import type { ClientCache } from '../pve/client.ts';
import { checkTargetAllowed } from '../pve/target-policy.ts';
import { parseTarget } from '../query.ts';
import { Scraper } from '../scrape.ts';
import type { SelfMetrics } from '../self-metrics.ts';
import type { PushConfig, PushJob } from './config.ts';
import { RemoteWriter } from './remote-writer.ts';

export interface PushDeps {
  readonly clients: ClientCache;
  readonly self: SelfMetrics;
  readonly log: Logger;
  readonly switches: CollectorSwitches;
  /** The pve.yml in force (replaced on reload); read at every collection. */
  config(): LoadedConfig;
}

/** The switches of a job: its collectors list narrows the exporter's enabled collectors. */
function jobSwitches(global: CollectorSwitches, job: PushJob): CollectorSwitches {
  if (job.collectors === undefined) return global;
  const out: Record<string, boolean> = { ...global };
  for (const c of SCRAPE_COLLECTORS) out[c.name] = Boolean(global[c.name]) && job.collectors.includes(c.name);
  return out;
}

class JobRunner {
  private timer?: NodeJS.Timeout;
  private busy = false;
  private stopped = false;
  /** Series of the previous collection (key -> labels), for staleness markers. */
  private previous = new Map<string, readonly (readonly [string, string])[]>();
  private readonly scraper: Scraper;
  private readonly targetLabels: readonly (readonly [string, string])[];
  private lastError?: string;

  constructor(
    private readonly job: PushJob,
    private readonly writer: RemoteWriter,
    private readonly deps: PushDeps,
    externalLabels: readonly (readonly [string, string])[],
  ) {
    this.scraper = new Scraper(deps.clients, { switches: jobSwitches(deps.switches, job), defaultTimeout: job.timeout }, deps.self, new FailureLog(deps.log));
    this.targetLabels = [...externalLabels, ['instance', job.target], ['job', job.jobName]];
  }

  start(): void {
    // The first collection at once, then on the interval, measured from start to start.
    const tick = () => {
      if (this.stopped) return;
      this.timer = setTimeout(tick, this.job.interval * 1000);
      void this.collectOnce();
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One collection, enqueued for sending; public for tests. */
  async collectOnce(): Promise<void> {
    if (this.busy) {
      this.deps.self.pushCollections.inc({ job: this.job.jobName, outcome: 'skipped' });
      return;
    }
    this.busy = true;
    try {
      const samples = await this.collect();
      if (!this.stopped) this.writer.enqueue(samples);
    } finally {
      this.busy = false;
    }
  }

  private async collect(): Promise<PushSample[]> {
    const ts = Date.now();
    const started = performance.now();
    let series: SeriesSample[] = [];
    let error: string | undefined;
    try {
      const module = this.deps.config().modules.get(this.job.module);
      if (!module) throw new Error(`module "${this.job.module}" is no longer in ${this.deps.config().source}`);
      const target = parseTarget(this.job.target, module.port);
      checkTargetAllowed(module, target.host, target.port);
      const result = await this.scraper.scrape({ module, target, cluster: this.job.cluster, node: this.job.node, scrapeTimeoutSeconds: this.job.timeout });
      if (result.status === 200) series = familiesToSamples(result.families, this.targetLabels);
      else error = result.error ?? 'scrape failed';
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    const seconds = (performance.now() - started) / 1000;
    this.report(error);
    const synthetic = (name: string, value: number): SeriesSample => ({ labels: [...this.targetLabels, ['__name__', name] as const].sort(byName), value });
    const scraped = series.length;
    series.push(synthetic('up', error === undefined ? 1 : 0), synthetic('scrape_duration_seconds', seconds), synthetic('scrape_samples_scraped', scraped));
    const current = new Map<string, readonly (readonly [string, string])[]>();
    const out: PushSample[] = [];
    for (const s of series) {
      const key = seriesKey(s.labels);
      current.set(key, s.labels);
      out.push({ labels: s.labels, value: s.value, timestampMs: ts });
    }
    for (const [key, labels] of this.previous) if (!current.has(key)) out.push({ labels, value: STALE, timestampMs: ts });
    this.previous = current;
    return out;
  }

  private report(error: string | undefined): void {
    const job = this.job.jobName;
    this.deps.self.pushCollections.inc({ job, outcome: error === undefined ? 'success' : 'failure' });
    if (error !== undefined && error !== this.lastError) this.deps.log.warn({ job, target: this.job.target, error }, 'push job: collection failed');
    if (error === undefined && this.lastError !== undefined) this.deps.log.info({ job, target: this.job.target }, 'push job: collection recovered');
    this.lastError = error;
  }
}

/** Every job of the push config and the one sender they share. */
export class PushService {
  readonly writer: RemoteWriter;
  private readonly runners: JobRunner[];

  constructor(config: PushConfig, deps: PushDeps) {
    this.writer = new RemoteWriter(config.remoteWrite, deps.self, deps.log);
    this.runners = config.jobs.map((j) => new JobRunner(j, this.writer, deps, config.remoteWrite.externalLabels));
  }

  start(): void {
    for (const r of this.runners) r.start();
  }

  async close(): Promise<void> {
    for (const r of this.runners) r.stop();
    await this.writer.close();
  }
}
