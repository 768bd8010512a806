// PushProx client mode: the exporter dials out to a PushProx proxy and answers the scrapes that
// Prometheus sends through it. Protocol (PushProx's cmd/client and cmd/proxy):
//   POST <proxy>/poll, body = our FQDN; the answer's body is a serialised HTTP request (absolute
//   URI "GET http://<fqdn>:<port>/pve?... HTTP/1.1", headers with `Id` and
//   `X-Prometheus-Scrape-Timeout-Seconds`), sent when Prometheus scrapes us through the proxy.
//   POST <proxy>/push, body = the serialised HTTP response, with the same `Id` header.
//
// The trap this client is built against: a proxy can hand out a request whose scraper has
// already given up (it was queued for a poll that timed out). Scraping it anyway takes the whole
// timeout again while the next, live request waits. So:
//   - a request whose remaining time (X-Prometheus-Scrape-Timeout-Seconds as the proxy sends it)
//     is already spent is answered at once with an error, without touching PVE;
//   - the poll is re-established right after an answer arrives, before the scrape starts;
//   - --pushprox.polls polls can be outstanding, so requests in quick succession each find one.
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { PushproxOptions } from '../cli.ts';
import type { Logger } from '../log.ts';
import type { SelfMetrics } from '../self-metrics.ts';
import { MAX_SCRAPE_TIMEOUT_SECONDS } from '../scrape/deadline.ts';
import { runInMemory, type Handler } from './in-memory-http.ts';

/** TCP keepalive idle time: a dead or re-mapped NAT path shows within seconds of silence. */
const KEEPALIVE_MS = 5_000;
/** Cap on a serialised request from the proxy (a GET: a few headers). */
const MAX_REQUEST_BYTES = 64 * 1024;
/** Cap on one answer sent back (a 2,000-guest exposition gzipped is well under this). */
const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

export class PushproxError extends Error {}

export interface ScrapeInstruction {
  readonly id: string;
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingHttpHeaders;
  /** X-Prometheus-Scrape-Timeout-Seconds as received; undefined when missing or not a number. */
  readonly timeoutSeconds?: number;
}

/** Parses the serialised request a poll returns (request line, headers, no body for GET). */
export function parseInstruction(raw: Buffer): ScrapeInstruction {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = end >= 0 ? text.slice(0, end) : text.replace(/\r\n$/, '');
  const [requestLine, ...lines] = head.split('\r\n');
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(requestLine ?? '');
  if (!m) throw new PushproxError(`not an HTTP request line: ${JSON.stringify((requestLine ?? '').slice(0, 80))}`);
  const headers: IncomingHttpHeaders = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new PushproxError(`malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers[name];
    headers[name] = prev === undefined ? value : `${String(prev)}, ${value}`;
  }
  let url: URL;
  try {
    url = new URL(m[2], `http://${String(headers.host ?? 'localhost')}`);
  } catch {
    throw new PushproxError(`bad request URI ${JSON.stringify(m[2].slice(0, 80))}`);
  }
  const id = headers.id;
  if (typeof id !== 'string' || id === '') throw new PushproxError('request without Id header');
  const t = Number(headers['x-prometheus-scrape-timeout-seconds']);
  return { id, method: m[1], url, headers, timeoutSeconds: headers['x-prometheus-scrape-timeout-seconds'] === undefined || !Number.isFinite(t) ? undefined : t };
}

/** A serialised HTTP response with a text body (errors we answer ourselves). */
export function errorAnswer(status: number, reason: string, id: string, body: string): Buffer {
  const b = Buffer.from(body.endsWith('\n') ? body : `${body}\n`);
  return Buffer.concat([
    Buffer.from(
      `HTTP/1.1 ${status} ${reason}\r\nId: ${id}\r\n${HANDOVER_HEADER}: ${MIN_HANDOVER_SECONDS}\r\n` +
        `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${b.length}\r\n\r\n`,
    ),
    b,
  ]);
}

/**
 * PushProx's proxy reads this header of a pushed answer as how long to wait for the scrape it
 * belongs to (15 s when absent). Sent as what is left of the scrape, so the proxy gives up on an
 * answer nobody waits for in a second instead of holding the push for 15 s; never below 1 s, so
 * an answer that is just in time is not dropped by its own header.
 */
const HANDOVER_HEADER = 'X-Prometheus-Scrape-Timeout-Seconds';
const MIN_HANDOVER_SECONDS = 1;

interface Exchange {
  status: number;
  body: Buffer;
}

export class PushproxClient {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly stopped = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private lastPollError?: string;

  constructor(
    private readonly opts: PushproxOptions,
    private readonly handler: Handler,
    private readonly self: SelfMetrics,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    this.base = new URL(opts.url.endsWith('/') ? opts.url : `${opts.url}/`);
    const common = { keepAlive: true, keepAliveMsecs: KEEPALIVE_MS, maxSockets: opts.polls + 16 };
    if (this.base.protocol === 'https:') {
      const read = (file: string | undefined, what: string) => {
        if (file === undefined) return undefined;
        try {
          return readFileSync(file);
        } catch (err) {
          throw new PushproxError(`--pushprox.tls.${what} ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        }
      };
      this.agent = new https.Agent({ ...common, ca: read(opts.caFile, 'ca-file'), cert: read(opts.certFile, 'cert-file'), key: read(opts.keyFile, 'key-file') });
    } else {
      if (opts.caFile || opts.certFile) throw new PushproxError(`--pushprox.tls.* given but --pushprox.url ${opts.url} is not https://`);
      this.agent = new http.Agent(common);
    }
  }

  start(): void {
    for (let i = 0; i < this.opts.polls; i++) this.loops.push(this.pollLoop(i));
  }

  private async pollLoop(slot: number): Promise<void> {
    let failures = 0;
    while (!this.stopped.signal.aborted) {
      let ex: Exchange;
      try {
        ex = await this.exchange('poll', Buffer.from(this.opts.fqdn), this.opts.pollTimeout);
      } catch (err) {
        if (this.stopped.signal.aborted) return;
        if (err instanceof PollTimeout) {
          // An idle poll is renewed so a dead path is noticed and the proxy keeps us registered.
          this.self.pushproxPolls.inc({ outcome: 'renewed' });
          failures = 0;
          continue;
        }
        failures++;
        await this.backoff(slot, failures, err instanceof Error ? err.message : String(err));
        continue;
      }
      if (ex.status !== 200) {
        failures++;
        await this.backoff(slot, failures, `HTTP ${ex.status}: ${ex.body.toString('utf8', 0, 200).trim()}`);
        continue;
      }
      failures = 0;
      if (this.lastPollError !== undefined) this.log.info({ proxy: this.base.origin }, 'pushprox: polling again');
      this.lastPollError = undefined;
      this.self.pushproxPolls.inc({ outcome: 'request' });
      // Answer concurrently and poll again at once: a slow scrape must not hold up the next one.
      const received = performance.now();
      const task = this.answer(ex.body, received).finally(() => this.inFlight.delete(task));
      this.inFlight.add(task);
    }
  }

  private async backoff(slot: number, failures: number, why: string): Promise<void> {
    this.self.pushproxPolls.inc({ outcome: 'error' });
    if (why !== this.lastPollError) {
      this.lastPollError = why;
      this.log.warn({ proxy: this.base.origin, slot, error: why }, 'pushprox: poll failed; retrying with backoff');
    }
    const wait = Math.min(this.opts.retryMaxWait, this.opts.retryInitialWait * 1.5 ** (failures - 1)) * (0.5 + 0.5 * this.random());
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopped.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, wait * 1000);
      this.stopped.signal.addEventListener('abort', done);
    });
  }

  /** Handles one scrape request and posts the answer back. */
  private async answer(raw: Buffer, receivedAt: number): Promise<void> {
    let instr: ScrapeInstruction;
    try {
      instr = parseInstruction(raw);
    } catch (err) {
      // Without an Id there is nobody to answer; the proxy's scrape times out.
      this.self.pushproxRequests.inc({ outcome: 'invalid' });
      this.log.warn({ error: (err as Error).message }, 'pushprox: unreadable scrape request');
      return;
    }
    let answer: Buffer;
    let expired = false;
    const timeout = instr.timeoutSeconds;
    if (instr.url.hostname.toLowerCase() !== this.opts.fqdn.toLowerCase()) {
      this.self.pushproxRequests.inc({ outcome: 'invalid' });
      answer = errorAnswer(400, 'Bad Request', instr.id, `scrape target ${instr.url.hostname} does not match the exporter's --pushprox.fqdn ${this.opts.fqdn}`);
    } else if (timeout === undefined) {
      this.self.pushproxRequests.inc({ outcome: 'invalid' });
      answer = errorAnswer(400, 'Bad Request', instr.id, 'scrape request without a usable X-Prometheus-Scrape-Timeout-Seconds header');
    } else if (timeout - (performance.now() - receivedAt) / 1000 <= 0) {
      // Already expired: nobody waits for this answer any more. Answer now, scrape nothing.
      expired = true;
      this.self.pushproxRequests.inc({ outcome: 'expired' });
      this.log.debug({ id: instr.id, timeout }, 'pushprox: request expired before it arrived; answered without scraping');
      answer = errorAnswer(504, 'Gateway Timeout', instr.id, `scrape deadline passed before the request reached the exporter (${timeout}s left when handed over)`);
    } else {
      const remaining = Math.min(timeout - (performance.now() - receivedAt) / 1000, MAX_SCRAPE_TIMEOUT_SECONDS);
      const deadline = AbortSignal.any([AbortSignal.timeout(Math.ceil(remaining * 1000)), this.stopped.signal]);
      const headers: IncomingHttpHeaders = { ...instr.headers, 'x-prometheus-scrape-timeout-seconds': String(remaining) };
      delete headers.id;
      try {
        answer = await runInMemory(this.handler, {
          method: instr.method,
          url: instr.url.pathname + instr.url.search,
          headers,
          answerHeaders: { Id: instr.id, [HANDOVER_HEADER]: Math.max(MIN_HANDOVER_SECONDS, remaining).toFixed(3) },
          signal: deadline,
          maxBytes: MAX_ANSWER_BYTES,
        });
        this.self.pushproxRequests.inc({ outcome: 'answered' });
      } catch (err) {
        this.self.pushproxRequests.inc({ outcome: 'failed' });
        answer = errorAnswer(500, 'Internal Server Error', instr.id, `pve-exporter: ${(err as Error).message}`);
      }
    }
    if (this.stopped.signal.aborted) return;
    try {
      const res = await this.exchange('push', answer, 30);
      if (res.status >= 300) throw new Error(`HTTP ${res.status}: ${res.body.toString('utf8', 0, 200).trim()}`);
    } catch (err) {
      this.self.pushproxPushErrors.inc();
      // Nobody waits for the answer to an expired request: its failed delivery is no news.
      const level = expired ? 'debug' : 'warn';
      this.log[level]({ id: instr.id, error: (err as Error).message }, 'pushprox: could not post the answer to the proxy');
    }
  }

  /** POST <proxy>/<path>; the whole answer (capped). */
  private exchange(path: 'poll' | 'push', body: Buffer, timeoutSeconds: number): Promise<Exchange> {
    const url = new URL(path, this.base);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, {
        method: 'POST',
        agent: this.agent,
        headers: { 'Content-Length': body.length, 'Content-Type': path === 'poll' ? 'text/plain' : 'application/octet-stream' },
        signal: this.stopped.signal,
      });
      let timer: NodeJS.Timeout | undefined;
      if (timeoutSeconds > 0) {
        timer = setTimeout(() => req.destroy(path === 'poll' ? new PollTimeout() : new Error(`no answer to /${path} in ${timeoutSeconds}s`)), timeoutSeconds * 1000);
      }
      req.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REQUEST_BYTES) req.destroy(new Error(`/${path} answer larger than ${MAX_REQUEST_BYTES} bytes`));
          else chunks.push(c);
        });
        res.once('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
        });
        res.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      req.end(body);
    });
  }

  async close(): Promise<void> {
    this.stopped.abort();
    await Promise.allSettled([...this.loops, ...this.inFlight]);
    this.agent.destroy();
  }
}

class PollTimeout extends Error {
  constructor() {
    super('poll renewed');
  }
}
