// Transport to one PVE target for one set of module settings: a keep-alive HTTPS pool whose
// connection count is the per-target concurrency cap, API token or cached ticket auth, TLS
// verification by CA or by certificate fingerprint, a timeout per request bounded by the scrape
// deadline, and a cap on the size of every answer. The client also holds what belongs to the
// target (the ticket, the guest config cache), so all of it goes when the client goes.
import { createHash } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { gunzip, gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { LRUCache } from 'lru-cache';
import type { ModuleConfig } from '../config.ts';
import { sendRequest } from '../http-send.ts';
import { PveError, classifyTransportError } from './errors.ts';
import { GuestConfigCache } from './guest-config-cache.ts';
import { GuestConfigRefresher } from './guest-config-refresh.ts';
import type { GuestConfig } from './types.ts';
import { CacheSet } from './ttl-cache.ts';
import { CONNECTION_FOR, PveAgent } from './tls.ts';

const gunzipAsync = promisify(gunzip);

/** PVE tickets live 2 hours; renew a little before, so a scrape never starts with a dying one. */
export const TICKET_REUSE_MS = (7200 - 300) * 1000;

/** Default cap on one PVE answer, raw and decoded: a 10,000-guest /cluster/resources is ~6 MB. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Default cap on the number of (module settings, target) clients kept. */
export const DEFAULT_MAX_CLIENTS = 1000;

/** A client not used for this long is closed (its connections, ticket and caches go with it). */
export const CLIENT_IDLE_MS = 10 * 60_000;

/** An endpoint that answered 501 (older PVE) is not asked again for this long: an upgrade shows within the hour. */
export const UNSUPPORTED_RECHECK_MS = 60 * 60_000;

/** A keep-alive connection to PVE idle this long is closed. */
const KEEP_ALIVE_IDLE_MS = 30_000;

export interface Target {
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

export interface RequestContext {
  /** Aborted when the scrape is over (its deadline passed or the scraper hung up). */
  readonly signal: AbortSignal;
  /** Epoch ms after which no request may run. */
  readonly deadline: number;
  /** Module name for the API call metrics (equal modules share one client). */
  readonly module?: string;
  /**
   * A shorter timeout for this call than the module's, ms: calls that can hang inside PVE (the
   * guest agent) must not hold a connection of the concurrency cap for the whole module timeout.
   */
  readonly callTimeoutMs?: number;
  /** Sees every call made for this context (the per-scrape debug log, src/scrape/debug-log.ts). */
  readonly trace?: ApiCallTrace;
}

/** One PVE API call as the debug log shows it: never headers or bodies (they hold the secrets). */
export interface ApiCallRecord {
  readonly method: 'GET' | 'POST';
  /** API path with its query string, below /api2/json. */
  readonly path: string;
  /** HTTP status, when an answer came. */
  readonly status?: number;
  /** Why the call failed, when it did (transport, deadline, size, parse). */
  readonly error?: string;
  readonly seconds: number;
  /** Body bytes as received (compressed, when PVE gzipped it). */
  readonly bytes?: number;
  /** Body bytes after gunzip, when it was compressed. */
  readonly decodedBytes?: number;
}

export interface ApiCallTrace {
  call(record: ApiCallRecord): void;
  /** A call not made because a cache (the guest config cache) had the answer. */
  cacheHit?(path: string): void;
}

export interface ApiCallObserver {
  (module: string, endpoint: string, seconds: number, outcome: string): void;
}

export interface ClientOptions {
  /** Connections (= concurrent requests) per target. */
  readonly concurrency: number;
  /** Cap on one answer's body, raw and after gunzip, bytes (default DEFAULT_MAX_RESPONSE_BYTES). */
  readonly maxResponseBytes?: number;
  /** Guest config cache TTL, seconds (default 0: no cache). */
  readonly configCacheTtl?: number;
  /** TTL in seconds per collector cache name (--collector.<name>.ttl); a name not listed is not cached. */
  readonly cacheTtls?: Readonly<Record<string, number>>;
  readonly onApiCall?: ApiCallObserver;
  readonly now?: () => number;
}

interface Ticket {
  readonly cookie: string;
  readonly csrf: string;
  readonly obtainedAt: number;
}

export function targetKey(t: Target): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** "/nodes/pve1/qemu/100/config" -> "/nodes/{node}/qemu/{vmid}/config": bounded label values. */
export function endpointTemplate(path: string): string {
  return path
    .replace(/^\/nodes\/[^/]+/, '/nodes/{node}')
    .replace(/\/(qemu|lxc)\/\d+/, '/$1/{vmid}')
    .replace(/\/replication\/[^/]+/, '/replication/{id}')
    .replace(/\/tasks\/[^/]+\/log$/, '/tasks/{upid}/log');
}

/** JSON with object keys sorted at every level, so equal settings serialise equally. */
function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  // Loops rather than callbacks made per call: this runs in every scrape (see byTypeAndVmid in
  // collectors/types.ts).
  const parts: string[] = [];
  for (const k of Object.keys(obj).sort()) {
    if (obj[k] !== undefined && typeof obj[k] !== 'function') parts.push(`${JSON.stringify(k)}:${stableJson(obj[k])}`);
  }
  return `{${parts.join(',')}}`;
}

/** Fields that do not change how the target is reached: the module's name and its allow-list. */
const NOT_CONNECTION_SETTINGS = new Set(['name', 'targets']);

/**
 * A digest of the module's connection settings (every field but name and targets), by value: a
 * reloaded config whose module did not change gets the same digest, so it keeps its client. A
 * digest, so no secret ever sits in a key that could reach a log or a debugger.
 */
export function connectionSettingsDigest(module: ModuleConfig): string {
  const settings: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(module)) if (!NOT_CONNECTION_SETTINGS.has(k)) settings[k] = v;
  return createHash('sha256').update(stableJson(settings)).digest('hex').slice(0, 32);
}

/** Waits for `work`, but no longer than `signal` allows; `work` itself goes on. */
export function waitWithin<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(err);
      },
    );
  });
}

function sizeError(path: string, what: string, max: number): PveError {
  return new PveError('size', path, `${what} is larger than the cap of ${max} bytes (--pve.max-response-size)`);
}

/** Answers up to this size (decoded) are inflated on the main thread; larger ones in the threadpool. */
export const SYNC_INFLATE_MAX = 8 * 1024 * 1024;

/**
 * Output buffer size for inflating `gz`: one byte more than its gzip trailer states (ISIZE, the
 * length mod 2^32), within [16 KiB, 8 MiB + 1] and the cap, so a typical answer comes out in one
 * buffer of its own size. zlib's default of 16 KiB made a 1.6 MB answer come out in a hundred
 * pieces, then copied into one; a buffer of exactly the stated size made zlib allocate a second
 * one as large before it saw the stream end (measured: twice the answer's size per inflate). A
 * trailer that lies costs at most one buffer of 8 MiB, and the cap still holds (maxOutputLength).
 */
export function inflateChunkSize(gz: Buffer, max: number): number {
  return Math.max(16 * 1024, Math.min(statedSize(gz) + 1, SYNC_INFLATE_MAX + 1, max));
}

/** The decoded size a gzip member's trailer states (ISIZE, mod 2^32); 0 when too short to have one. */
function statedSize(gz: Buffer): number {
  return gz.length >= 18 ? gz.readUInt32LE(gz.length - 4) : 0;
}

/**
 * A gzip answer inflated, at most `max` bytes of it (maxOutputLength: a gzip bomb costs at most
 * the cap). Answers whose trailer states at most SYNC_INFLATE_MAX (a 2,000-guest
 * /cluster/metrics/export is 1.6 MB) are inflated at once on the main thread: the threadpool
 * round trip and its stream machinery cost more CPU than the inflate itself (measured: 2-4 ms per
 * scrape). Larger ones (a 10,000-guest cluster, most bombs) go to the threadpool under the cap;
 * so does one whose trailer understated its size, once the main thread has inflated 8 MiB of it,
 * so no answer holds the event loop for longer than 8 MiB of output takes.
 * Throws zlib's errors (ERR_BUFFER_TOO_LARGE past the cap).
 */
export async function inflateCapped(raw: Buffer, max: number): Promise<Buffer> {
  const chunkSize = inflateChunkSize(raw, max);
  if (statedSize(raw) <= SYNC_INFLATE_MAX) {
    try {
      return gunzipSync(raw, { maxOutputLength: Math.min(max, SYNC_INFLATE_MAX), chunkSize });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE' || max <= SYNC_INFLATE_MAX) throw err;
    }
  }
  return gunzipAsync(raw, { maxOutputLength: max, chunkSize });
}

/** The body of an answer, raw at most `max` bytes and decoded at most `max` bytes. */
async function readCappedBody(res: IncomingMessage, path: string, max: number, onRaw?: (bytes: number) => void): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    res.destroy();
    throw sizeError(path, `answer (Content-Length ${declared})`, max);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) {
      res.destroy();
      throw sizeError(path, 'answer', max);
    }
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks, total);
  onRaw?.(total);
  const encoding = String(res.headers['content-encoding'] ?? '').trim().toLowerCase();
  if (encoding !== 'gzip') return raw;
  try {
    return await inflateCapped(raw, max);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw sizeError(path, 'decompressed answer', max);
    throw new PveError('parse', path, `answer is not valid gzip: ${(err as Error).message}`);
  }
}

/** An answer's bytes to what JSON.parse makes of them (throws where it would). */
export type Decoder = (raw: Buffer) => unknown;

function parseJson(raw: Buffer): unknown {
  return JSON.parse(raw.toString('utf8'));
}

/**
 * The bound on connections to a target: at most `concurrency` requests hold a slot at a time, the
 * others wait in order. A request given up while it waits leaves the queue and never opens a
 * connection; one given up while it runs is destroyed with its connection (an answer nobody
 * reads is worth nothing) and its slot goes to the next. So open connections to a target stay
 * within the concurrency (plus any still closing), whatever the target does, and a healthy
 * target keeps its keep-alive connections scrape after scrape.
 */
class RequestSlots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(size: number) {
    this.free = Math.max(1, size);
  }

  /**
   * Resolves once a slot is the caller's; rejects if `signal` aborts first (the caller says why:
   * it knows what aborted it).
   */
  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(new Error('given up while waiting for a request slot'));
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', abort);
        resolve();
      };
      const abort = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error('given up while waiting for a request slot'));
      };
      signal.addEventListener('abort', abort, { once: true });
      this.waiting.push(grant);
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}


export class PveClient {
  private readonly agent: PveAgent;
  private readonly slots: RequestSlots;
  /** Requests running or waiting for a slot: each entry gives its request up (destroy()). */
  private readonly inFlight = new Set<() => void>();
  /** Set by close(): called once the last request in flight has ended. */
  private drained?: () => void;
  private ticket?: Ticket;
  private login?: Promise<Ticket>;
  private readonly now: () => number;
  private readonly maxResponseBytes: number;
  /** Scrapes holding this client (ClientCache leases). */
  private users = 0;
  /** No longer handed out (config changed, evicted): closes once the last user is gone. */
  private retired = false;
  private closing?: Promise<void>;
  /** Guest configs (onboot) of this target, for the config collector. */
  readonly guestConfigs: GuestConfigCache;
  /** Fetches cached guest configs again before they expire, in the background. */
  readonly configRefresh: GuestConfigRefresher;
  /** The collectors' TTL caches of slow-changing data of this target. */
  readonly caches: CacheSet;
  /** API paths that answered 501 (not in this PVE release) -> until when not to ask again (epoch ms). */
  private readonly unsupported = new Map<string, { until: number; error: PveError }>();
  lastUsed: number;

  constructor(
    readonly module: ModuleConfig,
    readonly target: Target,
    private readonly opts: ClientOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.lastUsed = this.now();
    this.maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.guestConfigs = new GuestConfigCache(opts.configCacheTtl ?? 0, this.now);
    this.configRefresh = new GuestConfigRefresher(this.guestConfigs, {
      concurrency: opts.concurrency,
      timeoutMs: module.timeout * 1000,
      now: this.now,
      module: module.name,
      refetch: async (g, ctx) => {
        const cfg = await this.get<GuestConfig>(`/nodes/${encodeURIComponent(g.node)}/${g.type}/${g.vmid}/config`, ctx);
        if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new Error('expected an object in "data"');
        if (this.guestConfigs.has(g.type, g.vmid, g.node)) this.guestConfigs.storeConfig(g.type, g.vmid, g.node, cfg);
      },
    });
    this.configRefresh.start();
    this.caches = new CacheSet(opts.cacheTtls ?? {}, this.now);
    // TLS verification (CA, server_name, fingerprint pins) and keep-alive: src/pve/tls.ts.
    this.agent = new PveAgent(module, { connectTimeoutMs: module.timeout * 1000, idleMs: KEEP_ALIVE_IDLE_MS });
    this.slots = new RequestSlots(opts.concurrency);
  }

  /**
   * GET an API path (below /api2/json) and return its `data`. `decode` turns the answer's bytes
   * into what JSON.parse would (default: JSON.parse); it may leave out what the caller never reads.
   */
  async get<T>(path: string, ctx: RequestContext, query?: Record<string, string>, decode: Decoder = parseJson): Promise<T> {
    const qs = query ? '?' + new URLSearchParams(query).toString() : '';
    return this.request<T>('GET', path + qs, path, ctx, undefined, true, decode);
  }

  /**
   * A context for work shared by several scrapes (a cache fill): the module timeout, not the
   * deadline of whichever scrape happened to start it.
   */
  ownContext(module?: string): RequestContext {
    return { signal: new AbortController().signal, deadline: this.now() + this.module.timeout * 1000, module };
  }

  /** The 501 this path answered recently, if the session remembered one: the endpoint is not in this PVE release. */
  knownUnsupported(path: string): PveError | undefined {
    const e = this.unsupported.get(path);
    if (!e) return undefined;
    if (e.until <= this.now()) {
      this.unsupported.delete(path);
      return undefined;
    }
    return e.error;
  }

  /** Remembers a 501 of `path` (bounded: a few endpoints per target exist at all). */
  rememberUnsupported(path: string, error: PveError): void {
    if (this.unsupported.size >= 256) this.unsupported.clear();
    this.unsupported.set(path, { until: this.now() + UNSUPPORTED_RECHECK_MS, error });
  }

  /** A scrape starts using this client (ClientCache.acquire). */
  hold(): void {
    this.users++;
    this.lastUsed = this.now();
  }

  /** A scrape is done with this client. */
  release(): void {
    this.users = Math.max(0, this.users - 1);
    this.lastUsed = this.now();
    this.settle();
  }

  /** Stop handing this client out; it closes once its scrapes and its login are done. */
  retire(): void {
    this.retired = true;
    this.configRefresh.stop(); // nobody will read what it would fetch
    this.settle();
  }

  get inUse(): number {
    return this.users;
  }

  /** True once the client has begun closing (retired and idle, or shut down). */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** With nobody using the client and no login under way, a retired client closes. */
  private settle(): void {
    if (this.users > 0 || this.login) return;
    if (this.retired) void this.close();
  }

  private async authHeaders(ctx: RequestContext): Promise<Record<string, string>> {
    const m = this.module;
    if (m.tokenName !== undefined && m.tokenValue !== undefined) {
      return { authorization: `PVEAPIToken=${m.user}!${m.tokenName}=${m.tokenValue}` };
    }
    const t = await this.currentTicket(ctx);
    return { cookie: t.cookie };
  }

  private currentTicket(ctx: RequestContext): Promise<Ticket> {
    if (this.ticket && this.now() - this.ticket.obtainedAt < TICKET_REUSE_MS) return Promise.resolve(this.ticket);
    // One login per client, whoever asks first; the others wait for it. It runs under the module
    // timeout, not under the deadline of the scrape that happened to start it: each scrape waits
    // for it within its own deadline, and a short scrape giving up does not fail a long one.
    if (!this.login) {
      const loginCtx: RequestContext = {
        signal: new AbortController().signal,
        deadline: this.now() + this.module.timeout * 1000,
        module: ctx.module,
        trace: ctx.trace,
      };
      const login = this.doLogin(loginCtx).finally(() => {
        this.login = undefined;
        this.settle();
      });
      login.catch(() => undefined); // every waiter may have left; the failure is theirs to report
      this.login = login;
    }
    return waitWithin(this.login, ctx.signal, () => new PveError('deadline', '/access/ticket', 'scrape deadline reached while waiting for the login'));
  }

  private async doLogin(ctx: RequestContext): Promise<Ticket> {
    const body = new URLSearchParams({ username: this.module.user, password: this.module.password ?? '' }).toString();
    const data = await this.request<{ ticket?: string; CSRFPreventionToken?: string; NeedTFA?: number }>(
      'POST',
      '/access/ticket',
      '/access/ticket',
      ctx,
      body,
      false,
    );
    if (data?.NeedTFA) {
      throw new PveError('auth', '/access/ticket', `user ${this.module.user} needs a second factor (TFA); use an API token for the exporter`);
    }
    if (!data?.ticket) throw new PveError('parse', '/access/ticket', 'login answer has no ticket');
    this.ticket = {
      cookie: `PVEAuthCookie=${encodeURIComponent(data.ticket)}`,
      csrf: data.CSRFPreventionToken ?? '',
      obtainedAt: this.now(),
    };
    return this.ticket;
  }

  private async request<T>(
    method: 'GET' | 'POST',
    pathWithQuery: string,
    path: string,
    ctx: RequestContext,
    formBody: string | undefined,
    mayRelogin: boolean,
    decode: Decoder = parseJson,
  ): Promise<T> {
    this.lastUsed = this.now();
    if (this.closing) throw new PveError('connect', path, 'the client of this target is closed');
    if (ctx.signal.aborted || ctx.deadline - this.now() <= 0) {
      ctx.trace?.call({ method, path: pathWithQuery, seconds: 0, error: 'not sent: scrape deadline reached' });
      throw new PveError('deadline', path, 'scrape deadline reached before the request could start');
    }
    // gzip unless the module says gzip: false (ModuleConfig.gzip); a gzip answer is inflated either way.
    const headers: OutgoingHttpHeaders = { accept: 'application/json', 'accept-encoding': this.module.gzip ? 'gzip' : 'identity' };
    if (formBody !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    else Object.assign(headers, await this.authHeaders(ctx));
    const remaining = ctx.deadline - this.now();
    if (ctx.signal.aborted || remaining <= 0) {
      throw new PveError('deadline', path, 'scrape deadline reached before the request could start');
    }
    const callTimeoutMs = ctx.callTimeoutMs !== undefined && ctx.callTimeoutMs < this.module.timeout * 1000 ? ctx.callTimeoutMs : undefined;
    const moduleTimeoutMs = callTimeoutMs ?? this.module.timeout * 1000;
    const sentAt = this.now();
    const sentMono = performance.now();
    let armedFor = ctx.deadline;
    let limitedByModule = moduleTimeoutMs <= remaining;
    // One controller per request, fed by the scrape's signal and by a timer cleared afterwards
    // (no AbortSignal.timeout left behind for the whole module timeout).
    const abort = new AbortController();
    let timedOut = false;
    // Names this request's connection while it is being opened, so giving up cuts it (PveAgent.cut).
    const owner = {};
    const detach = () => {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', abandon);
    };
    // Giving up destroys the request with its connection, or cuts the connection still in its
    // handshake, or takes the request out of the slot queue.
    const abandon = () => {
      detach();
      abort.abort();
      this.agent.cut(owner);
    };
    // The scrape deadline may move later while the request runs (a shared collection that a
    // scrape with a later deadline joined, src/scrape/coalesce.ts): then the timer runs on.
    const onTimer = () => {
      if (ctx.deadline > armedFor) {
        armedFor = ctx.deadline;
        limitedByModule = moduleTimeoutMs <= armedFor - sentAt;
        const left = Math.min(moduleTimeoutMs - (performance.now() - sentMono), armedFor - this.now());
        if (left > 0) {
          timer = setTimeout(onTimer, left);
          return;
        }
      }
      timedOut = true;
      abandon();
    };
    let timer = setTimeout(onTimer, Math.min(moduleTimeoutMs, remaining));
    ctx.signal.addEventListener('abort', abandon, { once: true });
    const started = performance.now();
    const endpoint = endpointTemplate(path);
    const observe = (outcome: string) =>
      this.opts.onApiCall?.(ctx.module ?? this.module.name, endpoint, (performance.now() - started) / 1000, outcome);
    const traced = (record: Omit<ApiCallRecord, 'method' | 'path' | 'seconds'>) =>
      ctx.trace?.call({ method, path: pathWithQuery, seconds: (performance.now() - started) / 1000, ...record });
    const interrupted = (phase: string): PveError | undefined => {
      if (ctx.signal.aborted || (timedOut && !limitedByModule)) return new PveError('deadline', path, `scrape deadline reached ${phase}`);
      if (timedOut && callTimeoutMs !== undefined) return new PveError('timeout', path, `no complete answer within the call timeout of ${callTimeoutMs / 1000}s`);
      if (timedOut) return new PveError('timeout', path, `no complete answer within the module timeout of ${this.module.timeout}s`);
      if (abort.signal.aborted) return new PveError('connect', path, `the client of this target was closed ${phase}`);
      return undefined;
    };
    let res: IncomingMessage;
    let raw: Buffer;
    let received = 0;
    let holding = false;
    this.inFlight.add(abandon);
    try {
      try {
        await this.slots.acquire(abort.signal);
        holding = true;
        const options: https.RequestOptions & { [CONNECTION_FOR]: object } = {
          agent: this.agent,
          host: this.target.host,
          port: this.target.port,
          method,
          path: '/api2/json' + pathWithQuery,
          headers,
          signal: abort.signal,
          [CONNECTION_FOR]: owner,
        };
        res = await sendRequest(https.request(options), formBody);
      } catch (err) {
        observe('error');
        const e = interrupted('while waiting for PVE') ?? classifyTransportError(err, path);
        traced({ error: e.message });
        throw e;
      }
      try {
        raw = await readCappedBody(res, path, this.maxResponseBytes, (n) => (received = n));
      } catch (err) {
        observe('error');
        const e = interrupted('while reading the answer') ?? classifyTransportError(err, path);
        traced({ status: res.statusCode, error: e.message, bytes: received });
        throw e;
      }
    } finally {
      detach();
      if (holding) this.slots.release();
      this.inFlight.delete(abandon);
      if (this.inFlight.size === 0) this.drained?.();
    }
    const status = res.statusCode ?? 0;
    observe(String(status));
    traced({ status, bytes: received, decodedBytes: raw.length !== received ? raw.length : undefined });
    const reason = `${status} ${res.statusMessage || ''}`.trim();
    if (status === 401) {
      if (formBody !== undefined) throw new PveError('auth', path, `login as ${this.module.user} refused: ${reason}`, 401);
      if (mayRelogin && this.module.tokenName === undefined) {
        // The ticket may have been revoked or expired early (PVE restart, clock skew): one new login.
        this.ticket = undefined;
        return this.request<T>(method, pathWithQuery, path, ctx, formBody, false, decode);
      }
      throw new PveError('auth', path, `authentication failed: ${reason}`, 401);
    }
    if (status < 200 || status >= 300) {
      throw new PveError('http', path, reason, status);
    }
    let parsed: unknown;
    try {
      parsed = decode(raw);
    } catch {
      throw new PveError('parse', path, `answer is not JSON (starts with ${JSON.stringify(raw.subarray(0, 40).toString('utf8'))})`);
    }
    if (parsed === null || typeof parsed !== 'object' || !('data' in parsed)) {
      throw new PveError('parse', path, 'answer has no "data" member');
    }
    return (parsed as { data: T }).data;
  }

  /** Closes gracefully: requests in flight finish first, then every connection closes. */
  close(): Promise<void> {
    this.retired = true;
    this.configRefresh.stop();
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      this.drained = () => {
        this.drained = undefined;
        this.agent.destroy();
        resolve();
      };
      if (this.inFlight.size === 0) this.drained();
    });
    return this.closing;
  }

  /** Closes at once, giving up whatever runs (process shutdown). */
  async destroy(): Promise<void> {
    this.retired = true;
    this.configRefresh.stop();
    for (const giveUp of [...this.inFlight]) giveUp();
    this.closing ??= Promise.resolve();
    // A close() still waiting for requests to drain ends now (drained destroys the agent).
    if (this.drained) this.drained();
    else this.agent.destroy();
  }
}

/** A scrape's hold on a client: release it when the scrape is done, whatever happened. */
export interface ClientLease {
  readonly client: PveClient;
  release(): void;
}

export interface ClientCacheOptions extends ClientOptions {
  /** Most (module settings, target) clients kept; the least recently used goes first. */
  readonly maxClients?: number;
  /** A client unused this long is closed, ms. */
  readonly idleMs?: number;
}

/**
 * One client per (module connection settings, target). Bounded: at most `maxClients` (least
 * recently used evicted) and none idle longer than `idleMs`, so a caller naming many targets
 * cannot pile up pools, tickets and caches. A client that leaves the cache (evicted, idle, its
 * module changed or removed by a reload) closes once the scrapes holding it are done.
 */
export class ClientCache {
  private readonly clients: LRUCache<string, PveClient>;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: ClientCacheOptions) {
    const idleMs = opts.idleMs ?? CLIENT_IDLE_MS;
    this.clients = new LRUCache<string, PveClient>({
      max: opts.maxClients ?? DEFAULT_MAX_CLIENTS,
      ttl: idleMs,
      updateAgeOnGet: true,
      dispose: (client) => client.retire(),
    });
    this.timer = setInterval(() => this.sweep(), Math.min(idleMs, 60_000));
    this.timer.unref();
  }

  static key(module: ModuleConfig, target: Target): string {
    return `${connectionSettingsDigest(module)}|${targetKey(target)}`;
  }

  /** The client for (module, target), held until the lease is released. */
  acquire(module: ModuleConfig, target: Target): ClientLease {
    const key = ClientCache.key(module, target);
    let client = this.clients.get(key);
    if (!client) {
      client = new PveClient(module, target, this.opts);
      this.clients.set(key, client);
    }
    client.hold();
    let released = false;
    const held = client;
    return {
      client: held,
      release: () => {
        if (released) return;
        released = true;
        held.release();
      },
    };
  }

  /**
   * After a reload: clients of settings no module has any more are retired (closed once idle).
   * Clients of unchanged modules stay, with their pools, tickets and caches.
   */
  retainModules(modules: Iterable<ModuleConfig>): void {
    const keep = new Set<string>();
    for (const m of modules) keep.add(connectionSettingsDigest(m));
    for (const key of [...this.clients.keys()]) {
      if (!keep.has(key.slice(0, key.indexOf('|')))) this.clients.delete(key);
    }
  }

  get size(): number {
    return this.clients.size;
  }

  /** Drops clients idle longer than the idle time. */
  sweep(): void {
    this.clients.purgeStale();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.destroy()));
  }
}
