// Remote write sender: drains the bounded queue to the receiver, one request at a time, so
// samples of a series arrive in time order (a receiver refuses out-of-order samples).
// Retry policy of Prometheus' remote write spec: 5xx, 429 and network errors are retried with
// exponential backoff and jitter (429/503 honour Retry-After), until they succeed; any other 4xx
// means the receiver will never take that batch, so it is dropped, counted and logged once.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { sendRequest } from '../http-send.ts';
import type { Logger } from '../log.ts';
import { compressWriteRequest, encodeWriteRequest, REMOTE_WRITE_HEADERS, type PushSample } from '../exposition/remote-write.ts';
import type { SelfMetrics } from '../self-metrics.ts';
import { VERSION } from '../version.ts';
import type { RemoteWriteConfig } from './config.ts';
import { BatchQueue, type Batch } from './batch-queue.ts';

/** Longest Retry-After honoured, seconds: a receiver asking for more is retried after this. */
const MAX_RETRY_AFTER = 300;
/** Bytes of a rejection's body kept as its reason. */
const REASON_BYTES = 512;

type Outcome = { kind: 'sent' } | { kind: 'retry'; status: string; afterSeconds?: number; reason: string } | { kind: 'rejected'; status: number; reason: string };

export class RemoteWriter {
  private readonly queue: BatchQueue;
  private readonly agent: http.Agent;
  private running = false;
  private closed = false;
  private lastRejection?: string;
  private failing?: string;
  private readonly stopped = new AbortController();

  constructor(
    private readonly cfg: RemoteWriteConfig,
    private readonly self: SelfMetrics,
    private readonly log: Logger,
    /** Random source for the jitter (tests pass a fixed one). */
    private readonly random: () => number = Math.random,
  ) {
    this.queue = new BatchQueue(cfg.capacity);
    // One request at a time (drain), so one keep-alive connection, closed after a minute idle.
    this.agent =
      cfg.url.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            maxSockets: 1,
            timeout: 60_000,
            ca: cfg.tls.ca,
            cert: cfg.tls.cert,
            key: cfg.tls.key,
            servername: cfg.tls.serverName,
            rejectUnauthorized: !cfg.tls.insecureSkipVerify,
          })
        : new http.Agent({ keepAlive: true, maxSockets: 1, timeout: 60_000 });
  }

  /** Samples queued (not counting the batch being sent). */
  get queued(): number {
    return this.queue.size;
  }

  /** Bytes held by the queue. */
  get queuedBytes(): number {
    return this.queue.byteSize;
  }

  /** Encodes the samples of one collection into batches of at most max_samples_per_send and queues them. */
  enqueue(samples: readonly PushSample[]): void {
    if (this.closed) return;
    let dropped = 0;
    for (let i = 0; i < samples.length; i += this.cfg.maxSamplesPerSend) {
      const part = samples.slice(i, i + this.cfg.maxSamplesPerSend);
      dropped += this.queue.push({ body: compressWriteRequest(encodeWriteRequest(part)), samples: part.length });
    }
    if (dropped > 0) {
      this.self.pushSamples.inc({ outcome: 'dropped' }, dropped);
      this.log.debug({ dropped, capacity: this.cfg.capacity }, 'remote write queue full: oldest samples dropped');
    }
    this.self.pushQueueSamples.set(this.queue.size);
    // A running drain picks the new samples up after its current batch.
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let batch = this.queue.shift(); batch !== undefined && !this.closed; batch = this.queue.shift()) {
        this.self.pushQueueSamples.set(this.queue.size);
        await this.sendWithRetries(batch);
      }
      this.self.pushQueueSamples.set(this.queue.size);
    } finally {
      this.running = false;
    }
  }

  private async sendWithRetries(batch: Batch): Promise<void> {
    const body = batch.body;
    for (let attempt = 0; !this.closed; attempt++) {
      const outcome = await this.send(body);
      if (outcome.kind === 'sent') {
        this.self.pushSamples.inc({ outcome: 'sent' }, batch.samples);
        if (this.failing !== undefined) this.log.info({ url: this.shownUrl() }, 'remote write recovered');
        this.failing = undefined;
        this.lastRejection = undefined;
        return;
      }
      if (outcome.kind === 'rejected') {
        this.self.pushSamples.inc({ outcome: 'rejected' }, batch.samples);
        const key = `${outcome.status} ${outcome.reason}`;
        if (key !== this.lastRejection) {
          this.lastRejection = key;
          this.log.error(
            { url: this.shownUrl(), status: outcome.status, reason: outcome.reason, samples: batch.samples },
            outcome.status === 401 || outcome.status === 403
              ? 'remote write refused: check basic_auth / bearer_token_file of the push config; batch dropped'
              : 'remote write rejected by the receiver (not retried); batch dropped',
          );
        }
        return;
      }
      this.self.pushRetries.inc();
      const backoff = Math.min(this.cfg.maxBackoff, this.cfg.minBackoff * 2 ** Math.min(attempt, 30));
      // Jitter: between half and all of the backoff, so many exporters do not retry in step.
      let wait = backoff * (0.5 + 0.5 * this.random());
      if (outcome.afterSeconds !== undefined) wait = Math.max(wait, Math.min(outcome.afterSeconds, MAX_RETRY_AFTER));
      const key = `${outcome.status} ${outcome.reason}`;
      if (this.failing !== key) {
        this.failing = key;
        this.log.warn({ url: this.shownUrl(), status: outcome.status, reason: outcome.reason }, 'remote write failed; retrying with backoff');
      }
      await this.sleep(wait);
    }
  }

  private async send(body: Uint8Array): Promise<Outcome> {
    const headers: Record<string, string> = {
      ...REMOTE_WRITE_HEADERS,
      'User-Agent': `pve-exporter/${VERSION}`,
      'Content-Length': String(body.length),
    };
    if (this.cfg.authorization) headers.Authorization = this.cfg.authorization;
    // The whole exchange, connect to the last byte of the answer, within the remote write timeout.
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.cfg.timeout * 1000);
    const signal = AbortSignal.any([this.stopped.signal, timeout.signal]);
    try {
      const send = this.cfg.url.protocol === 'https:' ? https.request : http.request;
      const res = await sendRequest(send(this.cfg.url, { method: 'POST', agent: this.agent, headers, signal }), body);
      const status = res.statusCode ?? 0;
      this.self.pushRequests.inc({ status: String(status) });
      const reason = status >= 300 ? await readReason(res) : await drainBody(res);
      if (status >= 200 && status < 300) return { kind: 'sent' };
      if (status >= 500 || status === 429) return { kind: 'retry', status: String(status), afterSeconds: retryAfter(res.headers['retry-after']), reason };
      return { kind: 'rejected', status, reason };
    } catch (err) {
      this.self.pushRequests.inc({ status: 'error' });
      const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
      const reason = timeout.signal.aborted ? `timeout: no answer within ${this.cfg.timeout}s` : (e.cause?.code ?? e.code ?? e.message);
      return { kind: 'retry', status: 'error', reason: String(reason) };
    } finally {
      clearTimeout(timer);
    }
  }

  private sleep(seconds: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopped.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, seconds * 1000);
      this.stopped.signal.addEventListener('abort', done);
    });
  }

  /** The URL without query (a token in a query string is still a token). */
  private shownUrl(): string {
    return `${this.cfg.url.origin}${this.cfg.url.pathname}`;
  }

  /** Stops sending; what is still queued is lost (the exporter keeps no WAL). */
  async close(): Promise<void> {
    this.closed = true;
    this.stopped.abort();
    this.agent.destroy();
  }
}

/** Reads an answer's body to its end (so the connection can be reused); '' as the reason. */
async function drainBody(res: IncomingMessage): Promise<string> {
  for await (const _ of res) {
    // nothing to keep
  }
  return '';
}

async function readReason(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
  let text = '';
  for await (const chunk of body) {
    text += chunk.toString('utf8');
    if (text.length >= REASON_BYTES) {
      body.destroy();
      break;
    }
  }
  return text.slice(0, REASON_BYTES).trim().replace(/\s+/g, ' ');
}

/** Retry-After: delay-seconds or an HTTP date. */
export function retryAfter(raw: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - now) / 1000);
}
