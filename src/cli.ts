// Command line -> Options. Collector flags are generated from the registry, so a new collector
// gets --collector.<name> / --no-collector.<name> by being added to that table.
import { hostname } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { COLLECTORS, defaultSwitches } from './collectors/registry.ts';
import { HostPortError, parseHostPort } from './hostport.ts';
import { LOG_LEVELS, type LogLevel } from './log.ts';
import { DEFAULT_MAX_CLIENTS, DEFAULT_MAX_RESPONSE_BYTES } from './pve/client.ts';
import { VERSION } from './version.ts';

export interface Options {
  configFile: string;
  listenAddress: string;
  keyFile?: string;
  certFile?: string;
  /** --web.config.file: exporter-toolkit web config (TLS, client certificates, basic auth, headers). */
  webConfigFile?: string;
  /** POST /-/reload and /-/quit. */
  enableLifecycle: boolean;
  /** Validate the configuration files and exit. */
  configCheck: boolean;
  collectors: Record<string, boolean>;
  /** Concurrent API requests (connections) per (module, target). */
  concurrency: number;
  /** Cap on one PVE answer, raw and decompressed, bytes. */
  maxResponseBytes: number;
  /** Most (module, target) clients kept at once. */
  maxTargets: number;
  /** Guest config cache TTL in seconds; 0 disables. */
  configCacheTtl: number;
  /** Per collector with a cache: its TTL in seconds (--collector.<name>.ttl; 0 fetches every scrape). */
  collectorTtls: Record<string, number>;
  /** Scrape deadline in seconds when the scraper sends no X-Prometheus-Scrape-Timeout-Seconds. */
  defaultTimeout: number;
  /** Seconds a scrape result is reused by identical scrapes; 0 = off. */
  cacheTtl: number;
  /** Scrapes kept for the landing page (with their logs); 0 = none. */
  recentScrapes: number;
  logLevel: LogLevel;
  /** --push.config.file: remote write jobs (docs/push.md). */
  pushConfigFile?: string;
  /** PushProx client mode, when --pushprox.url is given. */
  pushprox?: PushproxOptions;
}

export interface PushproxOptions {
  url: string;
  fqdn: string;
  /** Polls kept outstanding at once. */
  polls: number;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Backoff after a failed poll, seconds. */
  retryInitialWait: number;
  retryMaxWait: number;
  /** A poll without an answer for this long is renewed, seconds; 0 = never. */
  pollTimeout: number;
}

function intInRange(name: string, min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1e3, mb: 1e6, gb: 1e9 };

/** "67108864", "64MiB", "64 MiB", "100MB" -> bytes. */
function parseByteSize(name: string, min: number, max: number) {
  return (raw: string): number => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(raw);
    const unit = m ? BYTE_UNITS[m[2].toLowerCase()] : undefined;
    const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a size from ${min} bytes to ${max / 1024 ** 3} GiB, e.g. 67108864 or 64MiB`);
    }
    return n;
  };
}

function nonNegativeSeconds(name: string, max: number) {
  return (raw: string): number => {
    const n = Number(raw.trim().replace(/s$/, ''));
    if (raw.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) throw new InvalidArgumentError(`${name} must be a number of seconds from 0 to ${max}`);
    return n;
  };
}

function positiveSeconds(name: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number of seconds greater than 0`);
    return n;
  };
}

export function buildCommand(): Command {
  const cmd = new Command('pve-exporter')
    .description('Prometheus exporter for Proxmox VE (drop-in for prometheus-pve-exporter)')
    .version(VERSION, '--version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help and exit')
    .addOption(new Option('--config.file <path>', 'pve.yml with the modules (ignored when PVE_USER is set)').default('/etc/prometheus/pve.yml'))
    .addOption(new Option('--web.listen-address <[host]:port>', 'address to listen on ([::] is dual stack)').default('[::]:9221'))
    .addOption(new Option('--server.keyfile <path>', 'TLS private key: serve HTTPS (with --server.certfile)'))
    .addOption(new Option('--server.certfile <path>', 'TLS certificate chain: serve HTTPS (with --server.keyfile)'))
    .addOption(
      new Option(
        '--web.config.file <path>',
        'exporter-toolkit web config (as node_exporter and Prometheus read): TLS, client certificates, basic auth, headers; re-read on reload (docs/web-config.md)',
      ),
    )
    .addOption(new Option('--web.enable-lifecycle', 'enable POST /-/reload and POST /-/quit (SIGHUP reloads either way)'))
    .addOption(new Option('--config.check', 'check --config.file (and --web.config.file) and exit: 0 with a one-line OK, 1 with the error'))
    .addOption(
      new Option('--pve.concurrency <n>', 'concurrent API requests per (module, target); keeps PVE from being flooded')
        .default(8)
        .argParser(intInRange('--pve.concurrency', 1, 64)),
    )
    .addOption(
      new Option('--pve.max-response-size <size>', 'cap on one PVE answer, raw and decompressed (bytes, or with KiB/MiB/GiB); larger answers fail that call')
        .default(DEFAULT_MAX_RESPONSE_BYTES, '64MiB')
        .argParser(parseByteSize('--pve.max-response-size', 64 * 1024, 4 * 1024 ** 3)),
    )
    .addOption(
      new Option('--pve.max-targets <n>', '(module, target) clients kept (pool, ticket, caches); least recently used closed first, idle ones after 10 min')
        .default(DEFAULT_MAX_CLIENTS)
        .argParser(intInRange('--pve.max-targets', 1, 1_000_000)),
    )
    .addOption(
      new Option('--pve.config-cache-ttl <seconds>', 'how long a guest config (onboot, sizing, agent) is reused; 0 fetches every scrape')
        .default(300)
        .argParser(intInRange('--pve.config-cache-ttl', 0, 86400)),
    )
    .addOption(
      new Option('--scrape.default-timeout <seconds>', 'scrape deadline when the scraper sends no X-Prometheus-Scrape-Timeout-Seconds')
        .default(10)
        .argParser(positiveSeconds('--scrape.default-timeout')),
    )
    .addOption(
      new Option(
        '--scrape.cache-ttl <seconds>',
        'reuse a scrape result for identical scrapes (same module, target, scopes) this long, with no PVE call; for several Prometheus servers scraping the same targets, e.g. 2/3 of the scrape interval; 0 = off',
      )
        .default(0)
        .argParser(nonNegativeSeconds('--scrape.cache-ttl', 3600)),
    )
    .addOption(
      new Option('--web.recent-scrapes <n>', 'scrapes shown on the landing page, each with its debug log; 0 = none')
        .default(50)
        .argParser(intInRange('--web.recent-scrapes', 0, 10_000)),
    )
    .addOption(new Option('--log.level <level>', 'log level').choices([...LOG_LEVELS]).default('info'))
    .addOption(
      new Option('--push.config.file <path>', 'push config: remote write the collections of push jobs to a receiver (docs/push.md); re-read on restart'),
    )
    .addOption(new Option('--pushprox.url <url>', 'PushProx client mode: poll this PushProx proxy and answer its scrape requests (docs/push.md)'))
    .addOption(new Option('--pushprox.fqdn <name>', 'name to register with the PushProx proxy (Prometheus scrapes http://<name>:<port>/...)').default(hostname(), 'this host\'s name'))
    .addOption(
      new Option(
        '--pushprox.polls <n>',
        'polls kept outstanding (the poll is renewed as soon as a request arrives, so 1 already keeps a slow scrape from holding up the next; more only with a proxy that holds several polls per client: PushProx\'s answers an older poll with 408 when a newer one comes)',
      )
        .default(1)
        .argParser(intInRange('--pushprox.polls', 1, 32)),
    )
    .addOption(new Option('--pushprox.tls.ca-file <path>', 'CA bundle to verify the PushProx proxy against (default: the system CAs)'))
    .addOption(new Option('--pushprox.tls.cert-file <path>', 'client certificate for the PushProx proxy (with --pushprox.tls.key-file)'))
    .addOption(new Option('--pushprox.tls.key-file <path>', 'private key of --pushprox.tls.cert-file'))
    .addOption(
      new Option('--pushprox.retry.initial-wait <seconds>', 'wait after a failed poll; grows 1.5x per failure up to --pushprox.retry.max-wait')
        .default(1)
        .argParser(positiveSeconds('--pushprox.retry.initial-wait')),
    )
    .addOption(
      new Option('--pushprox.retry.max-wait <seconds>', 'longest wait between failed polls')
        .default(5)
        .argParser(positiveSeconds('--pushprox.retry.max-wait')),
    )
    .addOption(
      new Option('--pushprox.poll-timeout <seconds>', 'renew a poll that got no scrape request for this long (under the proxy\'s 5 min registration timeout); 0 never')
        .default(60)
        .argParser(intInRange('--pushprox.poll-timeout', 0, 3600)),
    );
  for (const c of COLLECTORS) {
    const where = c.kind === 'scrape' ? `${c.scope} scope` : '/metrics';
    const state = c.defaultEnabled ? 'on' : 'off';
    const why = c.kind === 'scrape' && !c.defaultEnabled && c.offReason ? ` Off by default: ${c.offReason}` : '';
    cmd.addOption(new Option(`--collector.${c.name}`, `enable the ${c.name} collector (${where}, default: ${state}): ${c.description}${why}`).default(state).hideHelp(false));
    cmd.addOption(new Option(`--no-collector.${c.name}`, `disable the ${c.name} collector`));
    if (c.kind === 'scrape' && c.cacheTtl !== undefined) {
      cmd.addOption(
        new Option(`--collector.${c.name}.ttl <seconds>`, `how long the ${c.name} collector reuses what it fetched (per target; 0 fetches every scrape)`)
          .default(c.cacheTtl)
          .argParser(intInRange(`--collector.${c.name}.ttl`, 0, 7 * 86400)),
      );
    }
  }
  // A mistyped flag gets the error, commander's "did you mean" and a pointer to --help, not the
  // whole help text (which scrolled the error out of sight).
  return cmd.allowExcessArguments(false).showSuggestionAfterError(true).showHelpAfterError("see 'pve-exporter --help' for all flags");
}

export function parseCli(argv: readonly string[]): Options {
  const cmd = buildCommand();
  cmd.parse(argv as string[]);
  const o = cmd.opts<Record<string, unknown>>();
  const collectors = defaultSwitches();
  for (const c of COLLECTORS) {
    // commander keeps the value of the last of --collector.x / --no-collector.x given; the
    // default shows as 'on'/'off' in --help.
    const v = o[`collector.${camel(c.name)}`];
    collectors[c.name] = v === 'on' ? true : v === 'off' ? false : Boolean(v);
  }
  const collectorTtls: Record<string, number> = {};
  for (const c of COLLECTORS) {
    if (c.kind === 'scrape' && c.cacheTtl !== undefined) collectorTtls[c.name] = o[`collector.${camel(c.name)}.ttl`] as number;
  }
  if (Boolean(o['server.keyfile']) !== Boolean(o['server.certfile'])) {
    cmd.error('error: --server.keyfile and --server.certfile go together');
  }
  if (Boolean(o['pushprox.tls.certFile']) !== Boolean(o['pushprox.tls.keyFile'])) {
    cmd.error('error: --pushprox.tls.cert-file and --pushprox.tls.key-file go together');
  }
  const pushproxUrl = o['pushprox.url'] as string | undefined;
  if (pushproxUrl !== undefined && !/^https?:\/\/[^/]/.test(pushproxUrl)) cmd.error(`error: --pushprox.url "${pushproxUrl}" must be an http:// or https:// URL`);
  return {
    pushConfigFile: o['push.config.file'] as string | undefined,
    pushprox:
      pushproxUrl === undefined
        ? undefined
        : {
            url: pushproxUrl,
            fqdn: String(o['pushprox.fqdn']),
            polls: o['pushprox.polls'] as number,
            caFile: o['pushprox.tls.caFile'] as string | undefined,
            certFile: o['pushprox.tls.certFile'] as string | undefined,
            keyFile: o['pushprox.tls.keyFile'] as string | undefined,
            retryInitialWait: o['pushprox.retry.initialWait'] as number,
            retryMaxWait: o['pushprox.retry.maxWait'] as number,
            pollTimeout: o['pushprox.pollTimeout'] as number,
          },
    configFile: String(o['config.file']),
    listenAddress: String(o['web.listenAddress']),
    keyFile: o['server.keyfile'] as string | undefined,
    certFile: o['server.certfile'] as string | undefined,
    webConfigFile: o['web.config.file'] as string | undefined,
    enableLifecycle: o['web.enableLifecycle'] === true,
    configCheck: o['config.check'] === true,
    collectors,
    concurrency: o['pve.concurrency'] as number,
    maxResponseBytes: o['pve.maxResponseSize'] as number,
    maxTargets: o['pve.maxTargets'] as number,
    configCacheTtl: o['pve.configCacheTtl'] as number,
    collectorTtls,
    defaultTimeout: o['scrape.defaultTimeout'] as number,
    cacheTtl: o['scrape.cacheTtl'] as number,
    recentScrapes: o['web.recentScrapes'] as number,
    logLevel: o['log.level'] as LogLevel,
  };
}

function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase());
}

/** "[::]:9221", "0.0.0.0:9221", ":9221", "localhost:9221" -> host (undefined = all) and port. */
export function parseListenAddress(raw: string): { host?: string; port: number } {
  const expected = 'expected [host]:port, e.g. [::]:9221 or 127.0.0.1:9221';
  try {
    const hp = parseHostPort(raw, { allowPortZero: true, allowEmptyHost: true });
    if (hp.port === undefined) throw new HostPortError('no port');
    return { host: hp.host === '' ? undefined : hp.host, port: hp.port };
  } catch (err) {
    if (err instanceof HostPortError) throw new Error(`--web.listen-address "${raw}": ${err.message}; ${expected}`);
    throw err;
  }
}
