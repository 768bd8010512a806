// Runs `scripts/demo.ts` as a child process, the way `npm run demo` does, and reads what it
// prints: the exporter's URL and the temporary folder of its pve.yml.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface RunningDemo {
  child: ChildProcess;
  /** "http://127.0.0.1:<port>" as printed on the "Exporter:" line. */
  url: string;
  /** The folder of the pve.yml the demo wrote (printed on the same line). */
  configDir: string;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or the signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function spawnDemo(args: string[], cwd: string, env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(cwd, 'scripts', 'demo.ts'), ...args], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs the demo to its end (for --help and bad flags), bounded by `timeoutMs`. */
export function runDemo(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<DemoRun> {
  const child = spawnDemo(args, opts.cwd ?? REPO_ROOT, opts.env ?? process.env);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`demo ${args.join(' ')} did not end within ${opts.timeoutMs ?? 30_000} ms; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts the demo and waits until it has printed its banner (bounded by `timeoutMs`). */
export function startDemo(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunningDemo> {
  const child = spawnDemo(args, opts.cwd ?? REPO_ROOT, opts.env ?? process.env);
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`demo printed no banner within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString();
      const line = /^Exporter:\s+(http:\/\/\S+)\s+\(config (\S+)\/pve\.yml\b/m.exec(stdout);
      if (line === null || !stdout.includes('Ctrl-C stops both.')) return;
      clearTimeout(timer);
      resolve({ child, url: line[1], configDir: line[2], stdout: () => stdout, stderr: () => stderr, exited });
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`demo ended before printing its banner (code ${code}, signal ${signal}); stderr: ${stderr}`));
    });
  });
}
