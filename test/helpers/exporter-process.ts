// The exporter as its own process (node --import tsx src/main.ts, or dist/main.js), so its
// resident memory, open file descriptors and stderr are the real ones: the fault matrix and the
// soak benchmark measure them. It listens on 127.0.0.1 port 0; the address comes from its
// "pve-exporter listening" log line.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EXPORTER_ENV, EXPORTER_NODE_ARGS } from '../../bench/harness.ts';

const SRC_MAIN = new URL('../../src/main.ts', import.meta.url).pathname;
const DIST_MAIN = new URL('../../dist/main.js', import.meta.url).pathname;

export interface ExporterProcessOptions {
  /** pve.yml text. */
  readonly config: string;
  /** Extra flags (after --config.file and --web.listen-address). */
  readonly args?: readonly string[];
  /** Extra node flags, after the launchers' own (a later V8 flag wins). */
  readonly nodeArgs?: readonly string[];
  /** Run the TypeScript sources through tsx (tests) or the build (benchmarks). Default "src". */
  readonly entry?: 'src' | 'dist';
  /** How long to wait for the listening line, ms (default 30 s: a loaded 2-core machine). */
  readonly startTimeoutMs?: number;
}

export interface ExporterProcess {
  readonly pid: number;
  /** "http://127.0.0.1:<port>" */
  readonly url: string;
  /** Everything the process wrote to stderr so far (its JSON log lines and any crash). */
  stderr(): string;
  /** Everything it wrote to stdout so far (V8's traces, when asked for with nodeArgs). */
  stdout(): string;
  alive(): boolean;
  /** Resident set size now, bytes (/proc/PID/status VmRSS). */
  rssBytes(): number;
  /** Peak resident set size since the process started, bytes (VmHWM). */
  peakRssBytes(): number;
  /** Open file descriptors now (/proc/PID/fd). */
  openFds(): number;
  /** SIGTERM, then the exit code and signal (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function spawnExporter(opts: ExporterProcessOptions): Promise<ExporterProcess> {
  const level = opts.args?.[(opts.args?.indexOf('--log.level') ?? -1) + 1];
  if (opts.args?.includes('--log.level') && (level === 'warn' || level === 'error')) {
    throw new Error('spawnExporter: the listening address comes from an info log line; use --log.level info or debug');
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-proc-'));
  const configFile = path.join(dir, 'pve.yml');
  writeFileSync(configFile, opts.config, { mode: 0o600 });
  const entry = opts.entry === 'dist' ? [DIST_MAIN] : ['--import', 'tsx', SRC_MAIN];
  // Started as every launcher starts it (bench/harness.ts), so memory figures are the shipped ones.
  const child = spawn(
    process.execPath,
    [...EXPORTER_NODE_ARGS, ...(opts.nodeArgs ?? []), ...entry, '--config.file', configFile, '--web.listen-address', '127.0.0.1:0', ...(opts.args ?? [])],
    { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...EXPORTER_ENV }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let url: string;
  try {
    url = await listeningUrl(child, () => err, opts.startTimeoutMs ?? 30_000);
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const pid = child.pid!;
  let exitedResult: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((r) => (exitedResult = r));
  return {
    pid,
    url,
    stderr: () => err,
    stdout: () => out,
    alive: () => exitedResult === undefined,
    rssBytes: () => procStatusBytes(pid, 'VmRSS'),
    peakRssBytes: () => procStatusBytes(pid, 'VmHWM'),
    openFds: () => readdirSync(`/proc/${pid}/fd`).length,
    async stop(graceMs = 10_000) {
      if (exitedResult === undefined) {
        child.kill('SIGTERM');
        const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(force);
      }
      rmSync(dir, { recursive: true, force: true });
      return exited;
    },
  };
}

function listeningUrl(child: ChildProcess, stderr: () => string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`exporter did not start within ${timeoutMs} ms; stderr:\n${stderr()}`)), timeoutMs);
    const onData = () => {
      for (const line of stderr().split('\n')) {
        if (!line.includes('pve-exporter listening')) continue;
        try {
          const address = (JSON.parse(line) as { address?: unknown }).address;
          if (typeof address === 'string') return finish(undefined, address);
        } catch {
          // a partial line: wait for the rest
        }
      }
    };
    const onExit = (code: number | null) => finish(new Error(`exporter exited (${code}) before listening; stderr:\n${stderr()}`));
    const finish = (error?: Error, address?: string) => {
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(address!);
    };
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
  });
}

function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(m[1]) * 1024;
}
