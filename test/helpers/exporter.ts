// Runs the exporter in-process on a loopback port, with its logs captured for assertions.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startApp, type App } from '../../src/app.ts';
import { parseCli } from '../../src/cli.ts';
import { parseConfigText } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { exporterConfig } from '../../sim/exporter-config.ts';
import { after, afterEach, before } from 'node:test';
import { startSimulator } from '../../sim/index.ts';
import type { SimOptions, Simulator } from '../../sim/types.ts';

export interface RunningExporter {
  app: App;
  url: string;
  logs: string[];
  close(): Promise<void>;
}

export async function startExporter(configYaml: string, args: string[] = []): Promise<RunningExporter> {
  const logs: string[] = [];
  const log = createLogger('debug', { write: (line: string) => void logs.push(line) });
  const opts = parseCli(['node', 'pve-exporter', '--web.listen-address', '127.0.0.1:0', ...args]);
  const config = parseConfigText(configYaml, 'test-pve.yml');
  const app = await startApp(opts, config, log);
  return { app, url: app.url, logs, close: () => app.close() };
}

/** pve.yml text of a module for the simulator: token auth, certificate pinned by fingerprint. */
export const simModule = exporterConfig;

/** A module for the simulator with password (ticket) auth. */
export function simPasswordModule(sim: Simulator, name = 'default', extra: Record<string, unknown> = {}): string {
  return exporterConfig(sim, name, { token_name: undefined, token_value: undefined, password: sim.credentials.password, ...extra });
}

export function tempFile(name: string, content: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-test-'));
  const file = path.join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** A simulator and an exporter shared by the tests of one describe block (useSimAndExporter). */
export interface SuiteExporter {
  readonly sim: Simulator;
  readonly exp: RunningExporter;
}

export interface SuiteExporterOptions {
  /** Simulator options (default: the default scenario). */
  readonly sim?: SimOptions;
  /** pve.yml built from the simulator (default: simModule(sim), one token module "default"). */
  readonly config?: (sim: Simulator) => string;
  /** Exporter flags. */
  readonly args?: string[];
  /** After each test: the simulator's faults cleared and its call counts reset. */
  readonly resetAfterEach?: boolean;
}

/**
 * Starts a simulator and an in-process exporter before the tests of the enclosing describe
 * block and closes both after them. Read `sim` and `exp` inside tests and hooks only.
 */
export function useSimAndExporter(opts: SuiteExporterOptions = {}): SuiteExporter {
  let sim: Simulator | undefined;
  let exp: RunningExporter | undefined;
  before(async () => {
    sim = await startSimulator(opts.sim ?? { scenario: 'default' });
    exp = await startExporter((opts.config ?? simModule)(sim), opts.args);
  });
  after(async () => {
    await exp?.close();
    await sim?.close();
  });
  if (opts.resetAfterEach) {
    afterEach(() => {
      sim?.clearFaults();
      sim?.resetStats();
    });
  }
  const started = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`useSimAndExporter: ${what} read before the suite's before hook ran`);
    return v;
  };
  return {
    get sim() {
      return started(sim, 'sim');
    },
    get exp() {
      return started(exp, 'exp');
    },
  };
}
