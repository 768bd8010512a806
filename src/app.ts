// Wiring: options + config -> a listening server. Used by main.ts and by tests in-process.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Options } from './cli.ts';
import { parseListenAddress } from './cli.ts';
import type { LoadedConfig } from './config.ts';
import { FailureLog, type Logger } from './log.ts';
import { ClientCache } from './pve/client.ts';
import { Scraper } from './scrape.ts';
import { createRequestHandler, type AppState } from './server.ts';
import { SelfMetrics } from './self-metrics.ts';

export interface App {
  readonly state: AppState;
  /** e.g. "http://127.0.0.1:9221" */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

function readTlsFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`${flag} ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

export async function startApp(opts: Options, config: LoadedConfig, log: Logger): Promise<App> {
  const self = new SelfMetrics({ apiMetrics: opts.collectors['pve-api-metrics'], targetMetrics: opts.collectors['target-metrics'] });
  self.initModules(config.modules.keys());
  const clients = new ClientCache({
    concurrency: opts.concurrency,
    maxResponseBytes: opts.maxResponseBytes,
    maxClients: opts.maxTargets,
    configCacheTtl: opts.configCacheTtl,
    onApiCall: self.apiDuration
      ? (module, endpoint, seconds, outcome) => self.apiDuration!.observe({ module, endpoint, status: outcome }, seconds)
      : undefined,
  });
  const scraper = new Scraper(
    clients,
    { switches: opts.collectors, defaultTimeout: opts.defaultTimeout },
    self,
    new FailureLog(log),
  );
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
  };
  const handler = createRequestHandler(state);
  const tls = opts.keyFile && opts.certFile;
  const server = tls
    ? https.createServer({ key: readTlsFile('--server.keyfile', opts.keyFile!), cert: readTlsFile('--server.certfile', opts.certFile!) }, handler)
    : http.createServer(handler);
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
  const url = `${tls ? 'https' : 'http'}://${shownHost}:${addr.port}`;
  return {
    state,
    url,
    port: addr.port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await clients.close();
    },
  };
}
