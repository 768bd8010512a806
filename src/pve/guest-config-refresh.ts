// Cached guest configs are fetched again shortly before they expire, in the background, so no
// scrape waits for hundreds of config calls (at 10,000 guests the scrape that found them expired
// made 567 calls and took 2 s, every 4-5 minutes). Expiry is spread over the last fifth of the
// TTL per guest, so refreshes are too; at most half the connection cap is used, so scrapes keep
// connections of their own. Each call runs under the module timeout and the refresher's own
// signal, never a scrape's deadline; stop() (the client closing) aborts what runs and ends the timer.
import type { RequestContext } from './client.ts';
import type { DueGuest, GuestConfigCache } from './guest-config-cache.ts';

export interface RefresherOptions {
  /** The client's connection cap; the refresher uses at most half of it (at least 1). */
  readonly concurrency: number;
  /** Per-call time limit, ms (the module timeout). */
  readonly timeoutMs: number;
  readonly now: () => number;
  /** Fetches one guest's config and stores it in the cache. */
  readonly refetch: (guest: DueGuest, ctx: RequestContext) => Promise<void>;
  /** How often to look for entries due, ms (default: a sixtieth of the TTL, 1 s to 30 s). */
  readonly intervalMs?: number;
  /** Module name for the API call metrics. */
  readonly module?: string;
}

export class GuestConfigRefresher {
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private pass: Promise<void> | undefined;
  private inFlight = 0;
  /** Most refresh calls that were in flight at once (tests, bench). */
  peakInFlight = 0;
  refreshed = 0;
  failed = 0;

  constructor(
    private readonly cache: GuestConfigCache,
    private readonly opts: RefresherOptions,
  ) {}

  private get intervalMs(): number {
    return this.opts.intervalMs ?? Math.min(30_000, Math.max(1000, this.cache.ttlMs / 60));
  }

  /** How long before expiry an entry is due: a fifth of the TTL, and at least two intervals. */
  private get leadMs(): number {
    return Math.max(this.cache.ttlMs / 5, 2 * this.intervalMs);
  }

  /** Starts the periodic look for due entries (idempotent; the timer never keeps the process up). */
  start(): void {
    if (this.timer || this.abort.signal.aborted || this.cache.ttlMs <= 0) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Whether its timer runs. */
  get active(): boolean {
    return this.timer !== undefined;
  }

  /**
   * One pass: refreshes every entry due now, soonest expiry first, a bounded number at a time;
   * resolves when the pass is over. A pass already under way is joined, not doubled.
   */
  tick(): Promise<void> {
    if (this.abort.signal.aborted) return Promise.resolve();
    this.pass ??= this.run().finally(() => {
      this.pass = undefined;
    });
    return this.pass;
  }

  private async run(): Promise<void> {
    const due = this.cache.dueForRefresh(this.leadMs);
    if (due.length === 0) return;
    const width = Math.max(1, Math.floor(this.opts.concurrency / 2));
    let next = 0;
    const worker = async () => {
      while (next < due.length && !this.abort.signal.aborted) {
        const guest = due[next++];
        if (!this.cache.has(guest.type, guest.vmid, guest.node)) continue; // gone meanwhile
        this.inFlight++;
        this.peakInFlight = Math.max(this.peakInFlight, this.inFlight);
        try {
          await this.opts.refetch(guest, { signal: this.abort.signal, deadline: this.opts.now() + this.opts.timeoutMs, module: this.opts.module });
          this.refreshed++;
        } catch {
          // The entry stays as it is: a scrape that finds it expired fetches it (with the stale
          // value as fallback), and the next pass tries again.
          this.failed++;
        } finally {
          this.inFlight--;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(width, due.length) }, worker));
  }

  /** Ends the timer and aborts refreshes under way (the client closes). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.abort.abort();
  }
}
