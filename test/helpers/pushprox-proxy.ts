// A PushProx proxy for the tests, written from the protocol (not from PushProx's code), on
// loopback:
//   POST /poll  body = client FQDN; held until a scrape request for that FQDN comes, then answered
//               with the request serialised (absolute URI, `Id`, X-Prometheus-Scrape-Timeout-Seconds)
//   POST /push  body = the serialised response, with the `Id` of its request
//   anything with an absolute URI (Prometheus with proxy_url): a scrape through the proxy.
// It has the behaviour that makes the trap: a scrape request that finds no waiting poll is queued
// and handed to the next poll, however late; the timeout header then says what is left of it
// (0 or less when its scraper has already given up).
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';

interface Pending {
  id: string;
  fqdn: string;
  serialise(): string;
  arrived: number;
  timeoutSeconds: number;
  deliver(res: ParsedResponse): void;
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** The serialised HTTP/1.1 response a client posts to /push (Content-Length or chunked). */
export function parseResponse(raw: Buffer): ParsedResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error('no end of headers');
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) throw new Error(`bad status line ${statusLine}`);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', pos);
      const size = parseInt(body.subarray(pos, eol).toString('latin1'), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      pos = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
    delete headers['transfer-encoding'];
  } else if (headers['content-length'] !== undefined) {
    body = body.subarray(0, Number(headers['content-length']));
  }
  return { status: Number(m[1]), headers, body };
}

export interface TestProxyTls {
  key: string;
  cert: string;
  /** CA of the client certificates; with it, /poll and /push need one (403 otherwise). */
  clientCa?: string;
}

export interface TestProxy {
  readonly url: string;
  /** CN of the client certificate of each poll, in order (HTTPS with clientCa). */
  readonly pollClientCns: string[];
  readonly port: number;
  /** Polls currently held, per FQDN. */
  waiting(fqdn: string): number;
  polls: number;
  /** Answers posted for requests nobody waits for any more, by Id. */
  readonly lateAnswers: Map<string, ParsedResponse>;
  /** Requests handed to a poll, in order (Id, timeout header sent). */
  readonly handedOver: { id: string; timeoutSent: number }[];
  /** Closes the connections of every held poll (a NAT change, a proxy restart). */
  cutPolls(): void;
  /** A scrape through the proxy, as Prometheus with proxy_url does it. */
  scrape(absoluteUrl: string, timeoutSeconds: number, headers?: Record<string, string>): Promise<ParsedResponse & { id?: string }>;
  close(): Promise<void>;
}

export async function startTestProxy(tls?: TestProxyTls): Promise<TestProxy> {
  const pollClientCns: string[] = [];
  const waiters = new Map<string, { res: http.ServerResponse; take(p: Pending): void }[]>();
  const queued: Pending[] = [];
  const pending = new Map<string, Pending>();
  const lateAnswers = new Map<string, ParsedResponse>();
  const handedOver: { id: string; timeoutSent: number }[] = [];
  const pollSockets = new Set<http.ServerResponse>();
  let polls = 0;

  const handOver = (p: Pending, res: http.ServerResponse) => {
    const left = p.timeoutSeconds - (Date.now() - p.arrived) / 1000;
    handedOver.push({ id: p.id, timeoutSent: left });
    res.setHeader('Content-Type', 'application/octet-stream');
    res.end(p.serialise().replace('\r\n\r\n', `\r\nX-Prometheus-Scrape-Timeout-Seconds: ${left.toFixed(3)}\r\n\r\n`));
  };

  const offer = (p: Pending) => {
    const list = waiters.get(p.fqdn) ?? [];
    const w = list.shift();
    if (w) w.take(p);
    else queued.push(p);
  };

  const readBody = (req: http.IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url ?? '/';
    if (/^https?:\/\//.test(url)) return proxied(req, res, new URL(url));
    if (tls?.clientCa !== undefined && !(req.socket as TLSSocket).authorized) {
      res.statusCode = 403;
      return res.end('client certificate required\n');
    }
    if (req.method === 'POST' && url === '/poll') {
      polls++;
      const peer = (req.socket as TLSSocket).getPeerCertificate?.();
      if (peer?.subject) pollClientCns.push(String(peer.subject.CN));
      const fqdn = (await readBody(req)).toString().trim();
      const i = queued.findIndex((p) => p.fqdn === fqdn);
      if (i >= 0) return handOver(queued.splice(i, 1)[0], res);
      const list = waiters.get(fqdn) ?? [];
      waiters.set(fqdn, list);
      const w = { res, take: (p: Pending) => handOver(p, res) };
      list.push(w);
      pollSockets.add(res);
      res.once('close', () => {
        pollSockets.delete(res);
        const at = list.indexOf(w);
        if (at >= 0) list.splice(at, 1);
      });
      return;
    }
    if (req.method === 'POST' && url === '/push') {
      let parsed: ParsedResponse;
      try {
        parsed = parseResponse(await readBody(req));
      } catch (err) {
        res.statusCode = 500;
        return res.end(`bad push: ${(err as Error).message}\n`);
      }
      const id = parsed.headers.id;
      const p = id === undefined ? undefined : pending.get(id);
      if (p) p.deliver(parsed);
      else if (id !== undefined) lateAnswers.set(id, parsed);
      return res.end();
    }
    res.statusCode = 404;
    res.end('not found\n');
  };
  const server = tls
    ? https.createServer({ key: tls.key, cert: tls.cert, ca: tls.clientCa, requestCert: tls.clientCa !== undefined, rejectUnauthorized: false }, (req, res) => void handle(req, res))
    : http.createServer((req, res) => void handle(req, res));

  function proxied(req: http.IncomingMessage, res: http.ServerResponse, target: URL): void {
    const timeoutSeconds = Number(req.headers['x-prometheus-scrape-timeout-seconds'] ?? 15);
    const id = randomUUID();
    const lines = [`${req.method} ${target.href} HTTP/1.1`, `Host: ${target.host}`];
    for (const [k, v] of Object.entries(req.headers)) {
      if (k === 'host' || k === 'x-prometheus-scrape-timeout-seconds' || k === 'proxy-connection' || k === 'connection') continue;
      lines.push(`${k}: ${String(v)}`);
    }
    lines.push(`Id: ${id}`);
    const timer = setTimeout(() => {
      // A request no poll took stays queued on purpose (the trap); only its scraper is told.
      pending.delete(id);
      res.statusCode = 504;
      res.end(`timeout waiting for the client (${timeoutSeconds}s)\n`);
    }, timeoutSeconds * 1000);
    const p: Pending = {
      id,
      fqdn: target.hostname,
      arrived: Date.now(),
      timeoutSeconds,
      serialise: () => `${lines.join('\r\n')}\r\n\r\n`,
      deliver: (r) => {
        clearTimeout(timer);
        pending.delete(id);
        res.statusCode = r.status;
        for (const [k, v] of Object.entries(r.headers)) {
          if (k === 'id' || k === 'content-length' || k === 'connection' || k === 'x-prometheus-scrape-timeout') continue;
          res.setHeader(k, v);
        }
        res.setHeader('x-test-proxy-id', id);
        res.end(r.body);
      },
    };
    pending.set(id, p);
    res.once('close', () => {
      clearTimeout(timer);
      pending.delete(id);
    });
    offer(p);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    pollClientCns,
    waiting: (fqdn) => waiters.get(fqdn)?.length ?? 0,
    get polls() {
      return polls;
    },
    lateAnswers,
    handedOver,
    cutPolls() {
      for (const res of pollSockets) res.socket?.destroy();
    },
    scrape(absoluteUrl, timeoutSeconds, headers = {}) {
      return new Promise((resolve, reject) => {
        const req = (tls ? https : http).request({
          rejectUnauthorized: false,
          host: '127.0.0.1',
          port,
          path: absoluteUrl,
          headers: { 'X-Prometheus-Scrape-Timeout-Seconds': String(timeoutSeconds), ...headers },
        });
        req.once('error', reject);
        req.once('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const h: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) h[k] = String(v);
            resolve({ status: res.statusCode ?? 0, headers: h, body: Buffer.concat(chunks), id: h['x-test-proxy-id'] });
          });
        });
        req.end();
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
