// Targets that are not a working PVE, on loopback: a TCP listener that accepts and never
// answers, and an HTTPS server whose answers a test chooses. Both track their open sockets, so a
// test can check that the exporter closed every connection it had made.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TLS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'sim', 'tls');

export interface FakeTarget {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections still open. */
  readonly open: number;
  /** HTTP requests received so far (HTTPS target only). */
  readonly requests: number;
  /** Resolves once `pred()` holds, polling; rejects after `boundMs` with `what`. */
  waitFor(pred: () => boolean, what: string, boundMs?: number): Promise<void>;
  close(): Promise<void>;
}

function track(server: net.Server, sockets: Set<Socket>, counts: { accepted: number }): void {
  server.on('connection', (s: Socket) => {
    counts.accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

function fakeTarget(server: net.Server, sockets: Set<Socket>, counts: { accepted: number; requests: number }, port: number): FakeTarget {
  return {
    port,
    get accepted() {
      return counts.accepted;
    },
    get open() {
      return sockets.size;
    },
    get requests() {
      return counts.requests;
    },
    async waitFor(pred, what, boundMs = 10_000) {
      const until = Date.now() + boundMs;
      while (!pred()) {
        if (Date.now() > until) throw new Error(`fake target: ${what} not reached within ${boundMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Accepts TCP connections and never sends a byte (not even a TLS ServerHello). */
export async function startHangingListener(): Promise<FakeTarget> {
  const sockets = new Set<Socket>();
  const counts = { accepted: 0, requests: 0 };
  const server = net.createServer();
  track(server, sockets, counts);
  const port = await listen(server);
  return fakeTarget(server, sockets, counts, port);
}

/**
 * An HTTPS server with the simulator's certificate; `answer` decides each response (return
 * without ending it to leave the request hanging).
 */
export async function startHttpsTarget(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeTarget> {
  const sockets = new Set<Socket>();
  const counts = { accepted: 0, requests: 0 };
  const server = createHttpsServer({ key: readFileSync(path.join(TLS_DIR, 'server-key.pem')), cert: readFileSync(path.join(TLS_DIR, 'server.pem')) }, (req, res) => {
    counts.requests++;
    answer(req, res);
  });
  server.keepAliveTimeout = 60_000;
  track(server, sockets, counts);
  const port = await listen(server);
  return fakeTarget(server, sockets, counts, port);
}

/** pve.yml text of a token module for a fake target (TLS not verified: the target is ours). */
export function fakeTargetModule(name = 'default', extra: Record<string, unknown> = {}): string {
  const m: Record<string, unknown> = {
    user: 'monitoring@pve',
    token_name: 'exporter',
    token_value: 'FAKE-TARGET-TOKEN-SECRET',
    verify_ssl: false,
    ...extra,
  };
  const lines = Object.entries(m).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`);
  return `${name}:\n${lines.join('\n')}\n`;
}
