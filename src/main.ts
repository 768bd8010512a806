#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=4
// Entry point: flags, config, server, signals.
// --max-semi-space-size=4 (MB): V8's default young generation (16 MB semi-spaces) is sized for
// throughput of big applications; for the exporter, 4 MB gives the same scrape latency with
// ~20 MB less resident memory (bench/scrape.ts, 2,000 guests). MALLOC_MMAP_THRESHOLD_=131072
// fixes glibc's mmap threshold (bench/harness.ts EXPORTER_ENV says why); glibc reads it only at
// start, so the launcher sets it. Every launcher passes both: this shebang, `npm start`, the
// container image and the systemd unit. The heap's growing factor the process sets itself
// (src/heap-tuning.ts).
import { parseCli } from './cli.ts';
import { tuneHeapGrowth } from './heap-tuning.ts';
import { ConfigError, loadConfig, type LoadedConfig } from './config.ts';
import { createLogger } from './log.ts';
import { startApp } from './app.ts';
import { VERSION } from './version.ts';
import { describeSecurity, loadWebSetup } from './web/setup.ts';
import { WebConfigError } from './web/web-config.ts';
import { loadPushConfig, PushConfigError } from './push/config.ts';

/** --config.check: for Ansible's `validate:` and CI. One line on stdout, or the error and 1. */
function checkConfig(opts: ReturnType<typeof parseCli>): never {
  try {
    const config = loadConfig(opts.configFile, process.env);
    const setup = loadWebSetup(opts);
    const web = opts.webConfigFile ? `; web config ${opts.webConfigFile} OK (${describeSecurity(setup)})` : '';
    const pushConfig = opts.pushConfigFile === undefined ? undefined : loadPushConfig(opts.pushConfigFile, new Set(config.modules.keys()));
    const push = pushConfig ? `; push config ${pushConfig.source} OK (${pushConfig.jobs.length} job${pushConfig.jobs.length === 1 ? '' : 's'})` : '';
    process.stdout.write(`pve-exporter: config ${config.source} OK (${config.modules.size} module${config.modules.size === 1 ? '' : 's'})${web}${push}\n`);
    process.exit(0);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof WebConfigError || err instanceof PushConfigError) {
      process.stderr.write(`pve-exporter: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  tuneHeapGrowth(); // src/heap-tuning.ts: the heap grows to twice what is alive, not four times
  const opts = parseCli(process.argv);
  if (opts.configCheck) checkConfig(opts);
  const log = createLogger(opts.logLevel);
  let config: LoadedConfig;
  try {
    config = loadConfig(opts.configFile, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pve-exporter: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  for (const w of config.warnings) log.warn(w);
  let app;
  try {
    app = await startApp(opts, config, log, { onQuit: () => stop('/-/quit') });
  } catch (err) {
    process.stderr.write(`pve-exporter: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  log.info(
    { version: VERSION, address: app.url, modules: [...config.modules.keys()], config: config.source, access: app.state.security() },
    'pve-exporter listening',
  );

  // Reload pve.yml and the web config; a broken file keeps the running config (logged, metric).
  process.on('SIGHUP', () => void app.reload('SIGHUP'));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    void app.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
