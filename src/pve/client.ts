// Transport to one PVE target for one module: a keep-alive HTTPS pool whose connection count is
// the per-target concurrency cap, API token or cached ticket auth, TLS verification by CA or by
// certificate fingerprint, and a timeout per request bounded by the scrape deadline.
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { Pool } from 'undici';
import type { ModuleConfig } from '../config.ts';
import { PveError, classifyTransportError } from './errors.ts';
import { buildTlsConnector } from './tls.ts';

const gunzipAsync = promisify(gunzip);

/** PVE tickets live 2 hours; renew a little before, so a scrape never starts with a dying one. */
export const TICKET_REUSE_MS = (7200 - 300) * 1000;

export interface Target {
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

export interface RequestContext {
  /** Aborted when the scrape deadline passes. */
  readonly signal: AbortSignal;
  /** Epoch ms after which no request may run. */
  readonly deadline: number;
}

export interface ApiCallObserver {
  (module: string, endpoint: string, seconds: number, outcome: string): void;
}

export interface ClientOptions {
  /** Connections (= concurrent requests) per target. */
  readonly concurrency: number;
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
    .replace(/\/replication\/[^/]+/, '/replication/{id}');
}

export class PveClient {
  private readonly pool: Pool;
  private ticket?: Ticket;
  private login?: Promise<Ticket>;
  private readonly now: () => number;
  lastUsed: number;

  constructor(
    readonly module: ModuleConfig,
    readonly target: Target,
    private readonly opts: ClientOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.lastUsed = this.now();
    // TLS verification (CA, server_name, fingerprint pins): src/pve/tls.ts.
    const connect = buildTlsConnector(module, module.timeout * 1000);
    this.pool = new Pool(`https://${targetKey(target)}`, {
      connections: opts.concurrency,
      pipelining: 1,
      connect,
      keepAliveTimeout: 30_000,
    });
  }

  /** GET an API path (below /api2/json) and return its `data`. */
  async get<T>(path: string, ctx: RequestContext, query?: Record<string, string>): Promise<T> {
    const qs = query ? '?' + new URLSearchParams(query).toString() : '';
    return this.request<T>('GET', path + qs, path, ctx, undefined, true);
  }

  private async authHeaders(ctx: RequestContext): Promise<Record<string, string>> {
    const m = this.module;
    if (m.tokenName !== undefined && m.tokenValue !== undefined) {
      return { authorization: `PVEAPIToken=${m.user}!${m.tokenName}=${m.tokenValue}` };
    }
    const t = await this.currentTicket(ctx);
    return { cookie: t.cookie };
  }

  private async currentTicket(ctx: RequestContext): Promise<Ticket> {
    if (this.ticket && this.now() - this.ticket.obtainedAt < TICKET_REUSE_MS) return this.ticket;
    // One login per (module, target), whoever asks first; the others wait for it.
    if (!this.login) {
      this.login = this.doLogin(ctx).finally(() => {
        this.login = undefined;
      });
    }
    return this.login;
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
  ): Promise<T> {
    this.lastUsed = this.now();
    const remaining = ctx.deadline - this.now();
    if (ctx.signal.aborted || remaining <= 0) {
      throw new PveError('deadline', path, 'scrape deadline reached before the request could start');
    }
    const headers: Record<string, string> = { accept: 'application/json', 'accept-encoding': 'gzip' };
    if (formBody !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    else Object.assign(headers, await this.authHeaders(ctx));
    const timeoutMs = Math.min(this.module.timeout * 1000, ctx.deadline - this.now());
    const timeoutSignal = AbortSignal.timeout(Math.max(1, timeoutMs));
    const signal = AbortSignal.any([ctx.signal, timeoutSignal]);
    const started = performance.now();
    const endpoint = endpointTemplate(path);
    const observe = (outcome: string) => this.opts.onApiCall?.(this.module.name, endpoint, (performance.now() - started) / 1000, outcome);
    let res;
    try {
      res = await this.pool.request({ method, path: '/api2/json' + pathWithQuery, headers, body: formBody, signal });
    } catch (err) {
      observe('error');
      if (ctx.signal.aborted) throw new PveError('deadline', path, 'scrape deadline reached while waiting for PVE');
      if (timeoutSignal.aborted) throw new PveError('timeout', path, `no answer within the module timeout of ${this.module.timeout}s`);
      throw classifyTransportError(err, path);
    }
    let raw: Buffer;
    try {
      raw = Buffer.from(await res.body.arrayBuffer());
      if (res.headers['content-encoding'] === 'gzip') raw = await gunzipAsync(raw);
    } catch (err) {
      observe('error');
      if (ctx.signal.aborted) throw new PveError('deadline', path, 'scrape deadline reached while reading the answer');
      if (timeoutSignal.aborted) throw new PveError('timeout', path, `answer not complete within the module timeout of ${this.module.timeout}s`);
      throw classifyTransportError(err, path);
    }
    observe(String(res.statusCode));
    const reason = `${res.statusCode} ${res.statusText || ''}`.trim();
    if (res.statusCode === 401) {
      if (formBody !== undefined) throw new PveError('auth', path, `login as ${this.module.user} refused: ${reason}`, 401);
      if (mayRelogin && this.module.tokenName === undefined) {
        // The ticket may have been revoked or expired early (PVE restart, clock skew): one new login.
        this.ticket = undefined;
        return this.request<T>(method, pathWithQuery, path, ctx, formBody, false);
      }
      throw new PveError('auth', path, `authentication failed: ${reason}`, 401);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      throw new PveError('http', path, reason, res.statusCode);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new PveError('parse', path, `answer is not JSON (starts with ${JSON.stringify(raw.subarray(0, 40).toString('utf8'))})`);
    }
    if (parsed === null || typeof parsed !== 'object' || !('data' in parsed)) {
      throw new PveError('parse', path, 'answer has no "data" member');
    }
    return (parsed as { data: T }).data;
  }

  async close(): Promise<void> {
    await this.pool.destroy().catch(() => undefined);
  }
}

/**
 * One client per (module, target), kept while in use. Clients idle longer than `idleMs` are
 * closed, so a caller naming many targets cannot pile up pools.
 */
export class ClientCache {
  private readonly clients = new Map<string, PveClient>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly opts: ClientOptions,
    private readonly idleMs = 10 * 60_000,
  ) {
    this.timer = setInterval(() => this.sweep(), Math.min(idleMs, 60_000));
    this.timer.unref();
  }

  get(module: ModuleConfig, target: Target): PveClient {
    const key = `${module.name}\u0000${targetKey(target)}`;
    let c = this.clients.get(key);
    if (!c || c.module !== module) {
      // A reloaded config brings new module objects: the old client's pool is closed.
      if (c) void c.close();
      c = new PveClient(module, target, this.opts);
      this.clients.set(key, c);
    }
    return c;
  }

  get size(): number {
    return this.clients.size;
  }

  sweep(now = Date.now()): void {
    for (const [key, c] of this.clients) {
      if (now - c.lastUsed > this.idleMs) {
        this.clients.delete(key);
        void c.close();
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}
