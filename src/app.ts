// Wiring: options + config -> a listening server. Used by main.ts and by tests in-process.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Options } from './cli.ts';
import { parseListenAddress } from './cli.ts';
import { loadConfig, type LoadedConfig } from './config.ts';
import { FailureLog, type Logger } from './log.ts';
import { ClientCache } from './pve/client.ts';
import { Scraper } from './scrape.ts';
import { createRequestHandler, type AppState } from './server.ts';
import type { DeflatedPiece } from './exposition/gzip-pieces.ts';
import { SeriesCacheStore } from './exposition/series-cache.ts';
import { loadPushConfig } from './push/config.ts';
import { PushService } from './push/push-jobs.ts';
import { PushproxClient } from './push/pushprox.ts';
import { SelfMetrics } from './self-metrics.ts';
import { BasicAuthVerifier } from './web/basic-auth.ts';
import type { Lifecycle, ReloadOutcome } from './web/lifecycle.ts';
import { describeSecurity, loadWebSetup, type WebSetup } from './web/setup.ts';
import { ClientCertPolicy, serverOptions } from './web/tls.ts';
import { RecentScrapes } from './web/recent.ts';

export interface App {
  readonly state: AppState;
  /** Remote write jobs, when --push.config.file is given. */
  readonly push?: PushService;
  /** PushProx client, when --pushprox.url is given. */
  readonly pushprox?: PushproxClient;
  /** e.g. "http://127.0.0.1:9221" */
  readonly url: string;
  readonly port: number;
  /** The one reload (SIGHUP, POST /-/reload): pve.yml and the web config, all or nothing. */
  reload(trigger: string): ReloadOutcome;
  close(): Promise<void>;
}

export interface AppHooks {
  /** Reads pve.yml again on reload (default: --config.file / PVE_* as at start). */
  loadConfig?: () => LoadedConfig;
  /** POST /-/quit (default: close the app). */
  onQuit?: () => void;
}

export async function startApp(opts: Options, config: LoadedConfig, log: Logger, hooks: AppHooks = {}): Promise<App> {
  let setup: WebSetup = loadWebSetup(opts);
  for (const w of setup.web?.warnings ?? []) log.warn(w);
  const self = new SelfMetrics({ apiMetrics: opts.collectors['pve-api-metrics'], targetMetrics: opts.collectors['target-metrics'] });
  self.initModules(config.modules.keys());
  const clients = new ClientCache({
    concurrency: opts.concurrency,
    maxResponseBytes: opts.maxResponseBytes,
    maxClients: opts.maxTargets,
    configCacheTtl: opts.configCacheTtl,
    cacheTtls: opts.collectorTtls,
    onApiCall: self.apiDuration
      ? (module, endpoint, seconds, outcome) => self.apiDuration!.observe({ module, endpoint, status: outcome }, seconds)
      : undefined,
  });
  const scraper = new Scraper(
    clients,
    { switches: opts.collectors, defaultTimeout: opts.defaultTimeout, cacheTtl: opts.cacheTtl, maxCachedResults: opts.maxTargets },
    self,
    new FailureLog(log),
  );
  let policy: ClientCertPolicy | undefined;
  let app: App | undefined;
  const lifecycle: Lifecycle = {
    enabled: opts.enableLifecycle,
    reload: (trigger) => reload(trigger),
    quit: () => (hooks.onQuit ? hooks.onQuit() : void app?.close()),
  };
  let current = config;
  const state: AppState = {
    // A reload assigns a new config: clients of module settings that are gone are retired (they
    // close once their scrapes are done); unchanged modules keep their clients.
    get config() {
      return current;
    },
    set config(next: LoadedConfig) {
      current = next;
      clients.retainModules(next.modules.values());
    },
    scraper,
    clients,
    self,
    log,
    switches: opts.collectors,
    defaultTimeout: opts.defaultTimeout,
    seriesCaches: { identity: new SeriesCacheStore<Buffer>(), gzip: new SeriesCacheStore<DeflatedPiece>() },
    web: setup.web,
    auth: new BasicAuthVerifier(),
    lifecycle,
    security: () => describeSecurity(setup),
    recent: new RecentScrapes(opts.recentScrapes),
    cacheTtl: opts.cacheTtl,
    reloads: { lastSuccess: Date.now(), lastAttempt: Date.now(), ok: true, trigger: 'start' },
  };
  state.auth.prepare(setup.web?.users ?? new Map());
  const readConfig = hooks.loadConfig ?? (() => loadConfig(opts.configFile, process.env));

  // In-flight scrapes keep the module object they picked at their start (state.config is
  // replaced, never changed), so a reload only affects scrapes that start after it.
  function reload(trigger: string): ReloadOutcome {
    try {
      const next = readConfig();
      const nextSetup = loadWebSetup(opts);
      if (Boolean(nextSetup.tls) !== Boolean(policy)) {
        throw new Error(`switching between HTTP and HTTPS needs a restart (${nextSetup.tls ? 'TLS was added' : 'TLS was removed'})`);
      }
      if (nextSetup.tls) policy!.swap(nextSetup.tls);
      for (const w of [...next.warnings, ...(nextSetup.web?.warnings ?? [])]) log.warn(w);
      state.config = next;
      state.web = nextSetup.web;
      state.auth.prepare(nextSetup.web?.users ?? new Map());
      setup = nextSetup;
      self.initModules(next.modules.keys());
      self.configLoaded(true);
      state.reloads = { lastSuccess: Date.now(), lastAttempt: Date.now(), ok: true, trigger };
      log.info({ trigger, modules: [...next.modules.keys()], access: describeSecurity(setup) }, 'configuration reloaded');
      return { ok: true };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      self.configLoaded(false);
      state.reloads = { ...state.reloads, lastAttempt: Date.now(), ok: false, trigger, error };
      log.error({ trigger, error }, 'configuration reload failed; keeping the old one');
      return { ok: false, error };
    }
  }

  // Read before listening: a broken push config stops the start, like a broken pve.yml.
  const pushConfig = opts.pushConfigFile === undefined ? undefined : loadPushConfig(opts.pushConfigFile, new Set(config.modules.keys()));

  const handler = createRequestHandler(state);
  // The PushProx client hands its requests to the same router as the listener (in memory).
  const pushprox = opts.pushprox ? new PushproxClient(opts.pushprox, handler, self, log) : undefined;
  let server: http.Server;
  if (setup.tls) {
    const httpsServer = https.createServer(serverOptions(setup.tls), handler);
    policy = new ClientCertPolicy(setup.tls, httpsServer, log);
    server = httpsServer;
  } else {
    server = http.createServer(handler);
  }
  self.configLoaded(true);
  server.keepAliveTimeout = 65_000; // longer than Prometheus' idle connection reuse
  const { host, port } = parseListenAddress(opts.listenAddress);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: false }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${setup.tls ? 'https' : 'http'}://${shownHost}:${addr.port}`;
  const push = pushConfig === undefined ? undefined : new PushService(pushConfig, { clients, self, log, switches: opts.collectors, config: () => state.config });
  push?.start();
  pushprox?.start();
  if (opts.pushprox) log.info({ proxy: opts.pushprox.url, fqdn: opts.pushprox.fqdn, polls: opts.pushprox.polls }, 'pushprox client polling');
  if (pushConfig) log.info({ url: `${pushConfig.remoteWrite.url.origin}${pushConfig.remoteWrite.url.pathname}`, jobs: pushConfig.jobs.map((j) => j.jobName) }, 'remote write push jobs started');
  app = {
    state,
    push,
    pushprox,
    url,
    port: addr.port,
    reload,
    async close() {
      await Promise.all([push?.close(), pushprox?.close()]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await clients.close();
    },
  };
  return app;
}
