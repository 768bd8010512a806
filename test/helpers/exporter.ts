// Runs the exporter in-process on a loopback port, with its logs captured for assertions.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startApp, type App } from '../../src/app.ts';
import { parseCli } from '../../src/cli.ts';
import { parseConfigText } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { exporterConfig } from '../../sim/exporter-config.ts';
import type { Simulator } from '../../sim/types.ts';

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
