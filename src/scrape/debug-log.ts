// The log of one collection, for `/pve?debug=true` (the blackbox_exporter convention) and for the
// landing page's recent scrapes: every PVE call (path, status, duration, bytes, guest config
// cache hit or miss), every collector (success, duration, series, error, and the privilege a 403
// asks for), and the outcome. It records only what the client reports through ApiCallTrace:
// paths, statuses and sizes, never a header or a body, so no token, password or ticket can reach
// it. Bounded (LogLimits): past its limits, calls and cache hits are only counted.
import type { ApiCallRecord, ApiCallTrace } from '../pve/client.ts';
import { endpointTemplate } from '../pve/client.ts';
import type { ScrapeCollector } from '../collectors/types.ts';

export interface CollectorRecord {
  readonly name: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly series: number;
  readonly error?: string;
  /** For a 403: what the registry says the failing endpoint needs. */
  readonly privilege?: string;
}

export interface LogHeader {
  readonly module: string;
  readonly target: string;
  readonly cluster: boolean;
  readonly node: boolean;
  /** "API token monitoring@pve!exporter" or "password of monitoring@pve (ticket)": ids, never secrets. */
  readonly auth: string;
}

/** Kept for the landing page: enough lines to see what went wrong, not 10,000 config calls. */
export const STORED_LOG_MAX_CALLS = 200;
/** For debug=true: everything a big cluster's cold scrape does, still with a bound. */
export const DEBUG_LOG_MAX_CALLS = 50_000;

/** How many PVE calls and guest config cache hits a log lists; the rest are counted. */
export interface LogLimits {
  readonly calls: number;
  readonly hits: number;
}

/**
 * The logs of the recent-scrapes ring list calls only. A cache hit says nothing but "no call",
 * and every warm scrape has one per guest: listed, 2,000 of them took the 200 lines before the
 * scrape's own PVE calls that answered later, and the 50 logs of the ring held 10,000 of them
 * (2.6 MB at 2,000 guests, an eighth of the heap the exporter keeps alive between scrapes).
 */
export const STORED_LOG_LIMITS: LogLimits = { calls: STORED_LOG_MAX_CALLS, hits: 0 };
/** debug=true lists the hits too: that is where one looks for them. */
export const DEBUG_LOG_LIMITS: LogLimits = { calls: DEBUG_LOG_MAX_CALLS, hits: DEBUG_LOG_MAX_CALLS };

const CONFIG_PATH = /^\/nodes\/\{node\}\/(qemu|lxc)\/\{vmid\}\/config$/;

type Entry = { readonly kind: 'call'; readonly at: number; readonly call: ApiCallRecord } | { readonly kind: 'hit'; readonly at: number; readonly path: string };

export class ScrapeLog implements ApiCallTrace {
  readonly startedAt: number;
  private readonly t0 = performance.now();
  private readonly entries: Entry[] = [];
  private calls = 0;
  private hits = 0;
  private misses = 0;
  private listedCalls = 0;
  private listedHits = 0;
  private readonly collectors: CollectorRecord[] = [];
  private result?: { status: number; error?: string; series: number; seconds: number };

  constructor(
    readonly header: LogHeader,
    private readonly limits: LogLimits = STORED_LOG_LIMITS,
    now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  call(record: ApiCallRecord): void {
    this.calls++;
    if (CONFIG_PATH.test(endpointTemplate(record.path.split('?')[0]))) this.misses++;
    if (this.take('call')) this.entries.push({ kind: 'call', at: this.elapsed() - record.seconds, call: record });
  }

  /** A guest config answered from the cache: no call. */
  cacheHit(path: string): void {
    this.hits++;
    if (this.take('hit')) this.entries.push({ kind: 'hit', at: this.elapsed(), path });
  }

  /** Whether the limits leave room to list one more entry of `kind`; if so, it counts as listed. */
  private take(kind: Entry['kind']): boolean {
    if (kind === 'call') {
      if (this.listedCalls >= this.limits.calls) return false;
      this.listedCalls++;
    } else {
      if (this.listedHits >= this.limits.hits) return false;
      this.listedHits++;
    }
    return true;
  }

  collector(record: CollectorRecord): void {
    this.collectors.push(record);
  }

  finish(status: number, series: number, error?: string): void {
    this.result = { status, error, series, seconds: this.elapsed() };
  }

  /**
   * This log as the recent-scrapes ring keeps it (a debug=true log of a big cluster lists
   * thousands of calls and hits; the ring keeps `limits`' worth, in order). Itself when it lists
   * no more than that already.
   */
  bounded(limits: LogLimits = STORED_LOG_LIMITS): ScrapeLog {
    if (this.listedCalls <= limits.calls && this.listedHits <= limits.hits) return this;
    const copy = new ScrapeLog(this.header, limits, () => this.startedAt);
    for (const e of this.entries) if (copy.take(e.kind)) copy.entries.push(e);
    copy.collectors.push(...this.collectors);
    copy.calls = this.calls;
    copy.hits = this.hits;
    copy.misses = this.misses;
    copy.result = this.result;
    return copy;
  }

  get apiCalls(): number {
    return this.calls;
  }

  private elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  render(): string {
    const h = this.header;
    const out: string[] = [];
    out.push(`Collection for module "${h.module}", target ${h.target}, cluster=${h.cluster ? 1 : 0} node=${h.node ? 1 : 0}`);
    out.push(`Started ${new Date(this.startedAt).toISOString()}; auth: ${h.auth}`);
    out.push('');
    const hitsListed = this.limits.hits > 0 || this.hits === 0 ? '' : ', listed with debug=true';
    out.push(`PVE calls: ${this.calls}` + (this.hits + this.misses > 0 ? `; guest config cache: ${this.hits} hit(s) (no call${hitsListed}), ${this.misses} miss(es)` : ''));
    const calls = this.entries.filter((e) => e.kind === 'call').map((e) => e.call);
    const width = Math.min(60, Math.max(20, ...calls.map((c) => c.method.length + 1 + c.path.length)));
    for (const e of [...this.entries].sort((a, b) => a.at - b.at)) {
      const at = `+${e.at.toFixed(3)}s`.padStart(9);
      if (e.kind === 'hit') {
        out.push(`  ${at}  ${`GET ${e.path}`.padEnd(width)}  cache hit: no call`);
        continue;
      }
      const c = e.call;
      const status = c.status !== undefined ? String(c.status) : 'ERR';
      const config = CONFIG_PATH.test(endpointTemplate(c.path.split('?')[0])) ? '  cache miss' : '';
      const size = c.bytes !== undefined ? formatBytes(c.bytes) + (c.decodedBytes !== undefined ? ` (${formatBytes(c.decodedBytes)} unzipped)` : '') : '-';
      out.push(
        `  ${at}  ${`${c.method} ${c.path}`.padEnd(width)}  ${status.padEnd(3)}  ${formatMs(c.seconds).padStart(9)}  ${size}${config}${c.error ? `  ${c.error}` : ''}`,
      );
    }
    const moreCalls = this.calls - this.listedCalls;
    const moreHits = this.limits.hits > 0 ? this.hits - this.listedHits : 0;
    if (moreCalls + moreHits > 0) {
      const more = [moreCalls > 0 ? `${moreCalls} more call(s)` : '', moreHits > 0 ? `${moreHits} more cache hit(s)` : ''].filter(Boolean).join(' and ');
      const kept = [moreCalls > 0 ? `${this.limits.calls} calls` : '', moreHits > 0 ? `${this.limits.hits} cache hits` : ''].filter(Boolean).join(' and ');
      out.push(`  ... ${more} not listed (log kept to ${kept})`);
    }
    out.push('');
    out.push(`Collectors: ${this.collectors.length}`);
    const nameWidth = Math.max(10, ...this.collectors.map((c) => c.name.length));
    for (const c of this.collectors) {
      const line = `  ${c.name.padEnd(nameWidth)}  ${c.ok ? 'ok    ' : 'FAILED'}  ${formatMs(c.seconds).padStart(9)}  ${String(c.series).padStart(6)} series`;
      const why = c.error ? `  ${c.error}` : '';
      const priv = c.privilege ? ` (needs ${c.privilege})` : '';
      out.push(line + why + priv);
    }
    out.push('');
    if (this.result) {
      const r = this.result;
      out.push(
        r.status === 200
          ? `Result: 200, ${r.series} series in ${r.seconds.toFixed(3)}s`
          : `Result: ${r.status} in ${r.seconds.toFixed(3)}s: ${r.error ?? 'failed'}`,
      );
    } else {
      out.push('Result: still collecting');
    }
    return out.join('\n') + '\n';
  }
}

function formatMs(seconds: number): string {
  return `${(seconds * 1000).toFixed(1)} ms`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * The privilege the registry names for the endpoint a 403 came from: the collector's own entry
 * first, then any collector's (endpoints shared between collectors list the same privilege).
 */
export function privilegeFor(collector: ScrapeCollector, all: readonly ScrapeCollector[], path: string): string | undefined {
  const template = endpointTemplate(path.split('?')[0]);
  const find = (c: ScrapeCollector) => c.endpoints.find((e) => e.path === template)?.privilege;
  const own = find(collector);
  if (own !== undefined) return own;
  for (const c of all) {
    const p = find(c);
    if (p !== undefined) return p;
  }
  return undefined;
}

/** How the module authenticates, by ids only. */
export function describeAuth(m: { user: string; tokenName?: string; tokenValue?: string }): string {
  if (m.tokenName !== undefined && m.tokenValue !== undefined) return `API token ${m.user}!${m.tokenName}`;
  return `password of ${m.user} (ticket, cached per module and target)`;
}
