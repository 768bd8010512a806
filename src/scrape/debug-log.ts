// The log of one collection, for `/pve?debug=true` (the blackbox_exporter convention) and for the
// landing page's recent scrapes: every PVE call (path, status, duration, bytes, guest config
// cache hit or miss), every collector (success, duration, series, error, and the privilege a 403
// asks for), and the outcome. It records only what the client reports through ApiCallTrace:
// paths, statuses and sizes, never a header or a body, so no token, password or ticket can reach
// it. Bounded: past `maxCalls` entries, calls are only counted.
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

const CONFIG_PATH = /^\/nodes\/\{node\}\/(qemu|lxc)\/\{vmid\}\/config$/;

type Entry = { readonly kind: 'call'; readonly at: number; readonly call: ApiCallRecord } | { readonly kind: 'hit'; readonly at: number; readonly path: string };

export class ScrapeLog implements ApiCallTrace {
  readonly startedAt: number;
  private readonly t0 = performance.now();
  private readonly entries: Entry[] = [];
  private droppedCalls = 0;
  private droppedHits = 0;
  private calls = 0;
  private hits = 0;
  private misses = 0;
  private readonly collectors: CollectorRecord[] = [];
  private result?: { status: number; error?: string; series: number; seconds: number };

  constructor(
    readonly header: LogHeader,
    private readonly maxEntries: number = STORED_LOG_MAX_CALLS,
    now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  call(record: ApiCallRecord): void {
    this.calls++;
    if (CONFIG_PATH.test(endpointTemplate(record.path.split('?')[0]))) this.misses++;
    if (this.entries.length < this.maxEntries) this.entries.push({ kind: 'call', at: this.elapsed() - record.seconds, call: record });
    else this.droppedCalls++;
  }

  /** A guest config answered from the cache: no call. */
  cacheHit(path: string): void {
    this.hits++;
    if (this.entries.length < this.maxEntries) this.entries.push({ kind: 'hit', at: this.elapsed(), path });
    else this.droppedHits++;
  }

  collector(record: CollectorRecord): void {
    this.collectors.push(record);
  }

  finish(status: number, series: number, error?: string): void {
    this.result = { status, error, series, seconds: this.elapsed() };
  }

  /**
   * This log kept to `max` lines, for the recent-scrapes ring (a debug=true log of a big cluster
   * holds thousands; the ring keeps 200 per scrape). Itself when already within the bound.
   */
  bounded(max: number = STORED_LOG_MAX_CALLS): ScrapeLog {
    if (this.entries.length <= max) return this;
    const copy = new ScrapeLog(this.header, max, () => this.startedAt);
    copy.entries.push(...this.entries.slice(0, max));
    copy.collectors.push(...this.collectors);
    copy.calls = this.calls;
    copy.hits = this.hits;
    copy.misses = this.misses;
    copy.result = this.result;
    copy.droppedCalls = this.droppedCalls;
    copy.droppedHits = this.droppedHits;
    for (const e of this.entries.slice(max)) {
      if (e.kind === 'call') copy.droppedCalls++;
      else copy.droppedHits++;
    }
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
    out.push(`PVE calls: ${this.calls}` + (this.hits + this.misses > 0 ? `; guest config cache: ${this.hits} hit(s) (no call), ${this.misses} miss(es)` : ''));
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
    if (this.droppedCalls + this.droppedHits > 0) {
      out.push(`  ... ${this.droppedCalls} more call(s) and ${this.droppedHits} more cache hit(s) not listed (log kept to ${this.maxEntries} lines)`);
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
