// A real Prometheus (Debian's /usr/bin/prometheus) as a remote write receiver on loopback, behind
// its own --web.config.file basic auth, that can be stopped and started again on the same port
// and data directory (an outage of the receiver, as the exporter sees it).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { getFreePort } from './net.ts';

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export interface Receiver {
  readonly url: string;
  readonly writeUrl: string;
  readonly user: string;
  readonly password: string;
  output(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Instant query at `time` (seconds), authenticated. */
  query(expr: string, time?: number): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
}

export async function createReceiver(dir: string): Promise<Receiver> {
  const port = await getFreePort();
  const user = 'home';
  const password = 'push-secret-1d8f';
  mkdirSync(path.join(dir, 'tsdb'), { recursive: true });
  writeFileSync(path.join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 1m\n');
  writeFileSync(path.join(dir, 'web.yml'), `basic_auth_users:\n  ${user}: ${bcrypt.hashSync(password, 4)}\n`);
  const url = `http://127.0.0.1:${port}`;
  const auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  let proc: ChildProcess | undefined;
  let out = '';
  const ready = async (timeoutMs: number) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        const res = await fetch(`${url}/-/ready`, { headers: { authorization: auth } });
        await res.arrayBuffer();
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (proc?.exitCode !== null && proc?.exitCode !== undefined) throw new Error(`prometheus exited: ${out}`);
      if (Date.now() > until) throw new Error(`prometheus not ready after ${timeoutMs} ms: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const receiver: Receiver = {
    url,
    writeUrl: `${url}/api/v1/write`,
    user,
    password,
    output: () => out,
    async start() {
      proc = spawn(
        'prometheus',
        [
          `--config.file=${path.join(dir, 'prometheus.yml')}`,
          `--web.config.file=${path.join(dir, 'web.yml')}`,
          `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--web.enable-remote-write-receiver',
          `--web.console.templates=${dir}`,
          `--web.console.libraries=${dir}`,
          '--log.level=warn',
        ],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.add(proc);
      const keep = (b: Buffer) => {
        out = (out + b.toString()).slice(-100_000);
      };
      proc.stdout?.on('data', keep);
      proc.stderr?.on('data', keep);
      await ready(30_000);
    },
    async stop() {
      const p = proc;
      if (!p) return;
      proc = undefined;
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
        p.kill('SIGTERM');
        const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      children.delete(p);
    },
    async query(expr, time) {
      const params = new URLSearchParams({ query: expr });
      if (time !== undefined) params.set('time', String(time));
      const res = await fetch(`${url}/api/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
        body: params,
      });
      const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
      if (body.status !== 'success') throw new Error(`${body.error ?? res.status} in ${expr}`);
      return body.data!.result as { metric: Record<string, string>; value: [number, string] }[];
    },
  };
  return receiver;
}
