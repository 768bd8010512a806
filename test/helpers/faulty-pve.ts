// Loopback servers that misbehave on purpose, for the faults the simulator (sim/) does not have:
// a TCP listener that accepts and never answers, one that fails every TLS handshake, a port that
// refuses, and FaultyPve: an HTTPS front with the simulator's certificate that forwards to the
// simulator, except on the paths of its rules, where it hangs, trickles headers or body, cuts the
// body short, answers like a broken reverse proxy, sends a fixed answer (a gzip bomb, a huge one), redirects,
// or goes offline after one answer. Everything listens on 127.0.0.1, port 0.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createGzip, gunzipSync } from 'node:zlib';
import type { Simulator } from '../../sim/types.ts';

const HOST = '127.0.0.1';
const API_PREFIX = '/api2/json';
const SIM_TLS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'sim', 'tls');

/** A listener and what it saw. */
export interface FaultServer {
  readonly host: string;
  readonly port: number;
  /** "127.0.0.1:<port>", for target= */
  readonly target: string;
  /** TCP connections accepted so far. */
  accepted(): number;
  /** Connections still open now. */
  open(): number;
  close(): Promise<void>;
}

class SocketTracker {
  readonly sockets = new Set<net.Socket>();
  count = 0;

  track(socket: net.Socket): void {
    this.count++;
    this.sockets.add(socket);
    socket.on('error', () => undefined); // a client that resets is expected here
    socket.once('close', () => this.sockets.delete(socket));
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function closeServer(server: net.Server, tracker: SocketTracker): Promise<void> {
  tracker.destroyAll();
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

async function rawServer(onSocket: (socket: net.Socket) => void): Promise<FaultServer> {
  const tracker = new SocketTracker();
  const server = net.createServer((socket) => {
    tracker.track(socket);
    onSocket(socket);
  });
  const port = await listen(server);
  return {
    host: HOST,
    port,
    target: `${HOST}:${port}`,
    accepted: () => tracker.count,
    open: () => tracker.sockets.size,
    close: () => closeServer(server, tracker),
  };
}

/** Accepts TCP connections, reads what comes, never writes a byte (not even a TLS ServerHello). */
export function startHangingTcp(): Promise<FaultServer> {
  return rawServer((socket) => socket.resume());
}

/**
 * Answers the first bytes of every connection (the ClientHello) with a fatal TLS alert
 * "handshake_failure" (level 2, description 40), as a server without a common cipher or
 * protocol version does, and closes.
 */
export function startTlsHandshakeFailure(): Promise<FaultServer> {
  const alert = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
  return rawServer((socket) => socket.once('data', () => socket.end(alert)));
}

/** A loopback port with nothing listening on it: connecting is refused. */
export async function refusedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------------------------------------
// FaultyPve: a misbehaving HTTPS front of the simulator
// ---------------------------------------------------------------------------------------------

export type Misbehaviour =
  /** Read the request, never answer. */
  | { readonly kind: 'hang' }
  /** Send the status line, then one byte of a never-ending header every `intervalMs`. */
  | { readonly kind: 'slow-headers'; readonly intervalMs: number }
  /** Complete headers (Content-Length 4096), then one byte of the body every `intervalMs`. */
  | { readonly kind: 'slow-body'; readonly intervalMs: number }
  /** The simulator's answer with its full Content-Length, cut off after half the bytes. */
  | { readonly kind: 'truncated-body' }
  /** 502 Bad Gateway with an HTML page, as nginx in front of a stopped pveproxy answers. */
  | { readonly kind: 'html-502' }
  /** 200 with this body, made before the scrape (gzipBomb(), paddedAnswer()) so no row waits for it. */
  | { readonly kind: 'answer'; readonly body: Buffer; readonly gzip?: boolean }
  /** 302 to `location` + the request's path, as a proxy sending clients to a login page. */
  | { readonly kind: 'redirect'; readonly location: string }
  /** Forward this answer, then go offline: every open connection dropped, the port refuses. */
  | { readonly kind: 'offline-after-answer' };

export interface FaultyRule {
  /** Matches the API path after /api2/json, like the simulator's FaultRule. */
  readonly path: string | RegExp;
  readonly behaviour: Misbehaviour;
}

export interface FaultyPve extends FaultServer {
  /** Requests per API path that reached this front. */
  requests(): ReadonlyMap<string, number>;
  /** Tickets the simulator issued through this front (secrets that must not leak). */
  ticketsIssued(): readonly string[];
  /** Connections still open that carry a hanging or trickling answer. */
  openFaultConnections(): number;
  /** True once an offline-after-answer rule fired. */
  wentOffline(): boolean;
}

export interface FaultyPveOptions {
  readonly rules: readonly FaultyRule[];
}

export async function startFaultyPve(sim: Simulator, opts: FaultyPveOptions): Promise<FaultyPve> {
  const front = new FaultyFront(sim, opts.rules);
  const port = await listen(front.server);
  return {
    host: HOST,
    port,
    target: `${HOST}:${port}`,
    accepted: () => front.tracker.count,
    open: () => front.tracker.sockets.size,
    close: () => front.close(),
    requests: () => new Map(front.requestCounts),
    ticketsIssued: () => [...front.tickets],
    openFaultConnections: () => front.faultSockets.size,
    wentOffline: () => front.offline,
  };
}

class FaultyFront {
  readonly server: https.Server;
  readonly tracker = new SocketTracker();
  readonly faultSockets = new Set<net.Socket>();
  readonly requestCounts = new Map<string, number>();
  readonly tickets: string[] = [];
  offline = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly upstream: https.Agent;

  constructor(
    private readonly sim: Simulator,
    private readonly rules: readonly FaultyRule[],
  ) {
    const key = readFileSync(path.join(SIM_TLS_DIR, 'server-key.pem'));
    const cert = readFileSync(path.join(SIM_TLS_DIR, 'server.pem'));
    // The simulator's certificate: a module pinned to sim.fingerprint trusts this front as well.
    this.server = https.createServer({ key, cert }, (req, res) => this.handle(req, res));
    this.server.on('secureConnection', (socket: TLSSocket) => this.tracker.track(socket));
    this.server.on('tlsClientError', () => undefined);
    this.upstream = new https.Agent({ keepAlive: true, ca: readFileSync(sim.caFile) });
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
    this.upstream.destroy();
    await closeServer(this.server, this.tracker);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.offline) {
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', 'https://front.invalid');
    const apiPath = url.pathname.startsWith(API_PREFIX) ? url.pathname.slice(API_PREFIX.length) || '/' : url.pathname;
    this.requestCounts.set(apiPath, (this.requestCounts.get(apiPath) ?? 0) + 1);
    const rule = this.rules.find((r) => (typeof r.path === 'string' ? r.path === apiPath : r.path.test(apiPath)));
    if (rule === undefined) {
      void this.forward(req, res, apiPath);
      return;
    }
    void this.misbehave(rule.behaviour, req, res, apiPath).catch(() => res.destroy());
  }

  private async misbehave(b: Misbehaviour, req: IncomingMessage, res: ServerResponse, apiPath: string): Promise<void> {
    switch (b.kind) {
      case 'hang':
        this.markFault(req.socket);
        req.resume();
        return;
      case 'slow-headers': {
        this.markFault(req.socket);
        // Raw bytes on the socket: node's ServerResponse cannot send half a header.
        const socket = req.socket;
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\nX-Slow: ');
        this.every(b.intervalMs, socket, () => socket.write('a'));
        return;
      }
      case 'slow-body': {
        this.markFault(req.socket);
        res.writeHead(200, 'OK', { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': 4096 });
        res.flushHeaders();
        const body = Buffer.from('{"data":' + ' '.repeat(4096 - 11) + '[]}');
        let sent = 0;
        this.every(b.intervalMs, req.socket, () => {
          if (sent < body.length) res.write(body.subarray(sent, ++sent));
        });
        return;
      }
      case 'truncated-body': {
        const answer = await this.fetchUpstream(req);
        const half = answer.body.subarray(0, Math.floor(answer.body.length / 2));
        res.writeHead(answer.status, answer.statusMessage, { ...answer.headers, 'content-length': answer.body.length });
        res.write(half, () => res.destroy());
        return;
      }
      case 'html-502': {
        const page =
          '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n' +
          '<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n';
        res.writeHead(502, 'Bad Gateway', { Server: 'nginx/1.22.1', 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(page) });
        res.end(page);
        return;
      }
      case 'answer': {
        const headers: OutgoingHttpHeaders = { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': b.body.length };
        if (b.gzip === true) headers['Content-Encoding'] = 'gzip';
        res.writeHead(200, 'OK', headers);
        res.end(b.body);
        return;
      }
      case 'redirect':
        res.writeHead(302, 'Found', { Location: `${b.location}${req.url ?? '/'}`, 'Content-Length': 0 });
        res.end();
        return;
      case 'offline-after-answer':
        res.once('finish', () => this.goOffline());
        await this.forward(req, res, apiPath);
        return;
    }
  }

  private markFault(socket: net.Socket): void {
    this.faultSockets.add(socket);
    socket.once('close', () => this.faultSockets.delete(socket));
  }

  /** Runs `fn` every `ms` until the socket closes. */
  private every(ms: number, socket: net.Socket, fn: () => void): void {
    const timer = setInterval(() => {
      if (socket.destroyed) return clear();
      fn();
    }, ms);
    const clear = () => {
      clearInterval(timer);
      this.timers.delete(timer);
    };
    this.timers.add(timer);
    socket.once('close', clear);
  }

  private goOffline(): void {
    this.offline = true;
    this.server.close();
    this.tracker.destroyAll();
  }

  /** Passes the request to the simulator and its answer back; notes issued tickets. */
  private async forward(req: IncomingMessage, res: ServerResponse, apiPath: string): Promise<void> {
    let answer: UpstreamAnswer;
    try {
      answer = await this.fetchUpstream(req);
    } catch {
      res.destroy();
      return;
    }
    if (apiPath === '/access/ticket') this.noteTicket(answer);
    if (res.destroyed) return;
    res.writeHead(answer.status, answer.statusMessage, answer.headers);
    res.end(answer.body);
  }

  private noteTicket(answer: UpstreamAnswer): void {
    const raw = answer.headers['content-encoding'] === 'gzip' ? gunzipSync(answer.body) : answer.body;
    try {
      const ticket = (JSON.parse(raw.toString('utf8')) as { data?: { ticket?: unknown } }).data?.ticket;
      if (typeof ticket === 'string') this.tickets.push(ticket);
    } catch {
      // not a login answer (an injected fault): nothing issued
    }
  }

  private async fetchUpstream(req: IncomingMessage): Promise<UpstreamAnswer> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const requestBody = Buffer.concat(chunks);
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    headers['content-length'] = requestBody.length;
    return new Promise((resolve, reject) => {
      const up = https.request(
        { host: this.sim.host, port: this.sim.port, method: req.method, path: req.url, headers, agent: this.upstream },
        (upRes) => {
          const body: Buffer[] = [];
          upRes.on('data', (c: Buffer) => body.push(c));
          upRes.on('error', reject);
          upRes.on('end', () => {
            const out: OutgoingHttpHeaders = {};
            for (const [k, v] of Object.entries(upRes.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
            resolve({ status: upRes.statusCode ?? 502, statusMessage: upRes.statusMessage ?? '', headers: out, body: Buffer.concat(body) });
          });
        },
      );
      up.on('error', reject);
      up.end(requestBody);
    });
  }
}

interface UpstreamAnswer {
  status: number;
  statusMessage: string;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'content-length']);

let bombPromise: Promise<Buffer> | undefined;

/**
 * `{"data":` + 1 GiB of spaces + `[]}` in one gzip member: valid JSON once inflated, about
 * 1 MiB compressed. Built once per process (about 2 s of CPU).
 */
export function gzipBomb(): Promise<Buffer> {
  bombPromise ??= new Promise<Buffer>((resolve, reject) => {
    const gz = createGzip({ level: 9, memLevel: 9 });
    const out: Buffer[] = [];
    gz.on('data', (c: Buffer) => out.push(c));
    gz.on('error', reject);
    gz.on('end', () => resolve(Buffer.concat(out)));
    const block = Buffer.alloc(1 << 20, 0x20);
    let written = 0;
    const pump = (): void => {
      while (written < 1024) {
        written++;
        if (!gz.write(block)) {
          gz.once('drain', pump);
          return;
        }
      }
      gz.end('[]}');
    };
    gz.write('{"data":');
    pump();
  });
  return bombPromise;
}


/**
 * The simulator's answer for `apiPath` (a list), as `bytes` of valid JSON: the real entries, then
 * JSON whitespace up to the size. Whitespace rather than more entries keeps the exporter's parsing
 * cheap, so the row tests the size of the answer, not the speed of a loaded machine.
 */
export async function paddedAnswer(sim: Simulator, apiPath: string, bytes: number): Promise<Buffer> {
  const { credentials: c } = sim;
  const body = await new Promise<Buffer>((resolve, reject) => {
    const req = https.get(
      {
        host: sim.host,
        port: sim.port,
        path: API_PREFIX + apiPath,
        ca: readFileSync(sim.caFile),
        headers: { authorization: `PVEAPIToken=${c.user}!${c.tokenName}=${c.tokenValue}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${apiPath}: ${res.statusCode}`))));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
  });
  const data = (JSON.parse(body.toString('utf8')) as { data: unknown }).data;
  if (!Array.isArray(data)) throw new Error(`paddedAnswer: ${apiPath} does not answer a list`);
  const json = JSON.stringify({ data });
  if (json.length > bytes) throw new Error(`paddedAnswer: ${apiPath} is already ${json.length} bytes`);
  // The padding goes inside the list, after the last entry: `[...,{...}   ]}`.
  return Buffer.from(json.slice(0, -2) + ' '.repeat(bytes - json.length) + ']}');
}
