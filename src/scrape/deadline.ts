// The one deadline of a scrape (/pve and /pve/sd): an AbortSignal that fires when the time the
// scraper allows is spent (minus a margin to encode and send the answer) or when the scraper hangs
// up. Every await towards PVE takes this signal, so when it fires, pending requests are aborted
// instead of being left to finish after the answer has gone.
import { setMaxListeners } from 'node:events';

/**
 * Longest scrape deadline honoured, in seconds. Prometheus caps scrape_timeout at the scrape
 * interval, so anything above a few minutes is a mistake or junk; and setTimeout overflows past
 * 2^31-1 ms (it would fire at once). 600 s is also the largest module `timeout`.
 */
export const MAX_SCRAPE_TIMEOUT_SECONDS = 600;

/** Why a deadline's signal fired. */
export type DeadlineCause = 'deadline' | 'hangup';

/** Leave time to encode and send the answer before the scraper gives up. */
export function budgetSeconds(timeoutSeconds: number): number {
  const margin = Math.min(0.5, Math.max(0.1, timeoutSeconds * 0.1));
  return Math.max(0.05, timeoutSeconds - margin);
}

/** The scrape timeout in force: the scraper's header when it sent a usable one, else the default, at most the maximum. */
export function effectiveTimeoutSeconds(headerSeconds: number | undefined, defaultSeconds: number): number {
  const t = headerSeconds !== undefined && Number.isFinite(headerSeconds) && headerSeconds > 0 ? headerSeconds : defaultSeconds;
  return Math.min(t, MAX_SCRAPE_TIMEOUT_SECONDS);
}

export class Deadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;
  private readonly detachParent?: () => void;
  private firedCause?: DeadlineCause;
  private atMs: number;
  private timeout: number;

  private constructor(
    timeoutSeconds: number,
    budgetMs: number,
    parent: AbortSignal | undefined,
    private readonly now: () => number,
  ) {
    this.timeout = timeoutSeconds;
    this.atMs = now() + budgetMs;
    // Every pending request listens (a big cluster queues thousands); each removes its listener.
    setMaxListeners(0, this.controller.signal);
    this.timer = setTimeout(() => this.fire('deadline'), budgetMs);
    if (parent) {
      if (parent.aborted) this.fire('hangup');
      else {
        const onAbort = () => this.fire('hangup');
        parent.addEventListener('abort', onAbort, { once: true });
        this.detachParent = () => parent.removeEventListener('abort', onAbort);
      }
    }
  }

  /**
   * The deadline of one scrape: `headerSeconds` (X-Prometheus-Scrape-Timeout-Seconds) or
   * `defaultSeconds`, clamped to MAX_SCRAPE_TIMEOUT_SECONDS, minus the margin. `hangup` aborts
   * it early (the scraper closed the connection).
   */
  static forScrape(headerSeconds: number | undefined, defaultSeconds: number, hangup?: AbortSignal, now: () => number = Date.now): Deadline {
    const timeout = effectiveTimeoutSeconds(headerSeconds, defaultSeconds);
    return new Deadline(timeout, budgetSeconds(timeout) * 1000, hangup, now);
  }

  /** Epoch ms at which the deadline fires. */
  get at(): number {
    return this.atMs;
  }

  /** The scrape timeout this deadline was made from, seconds (for messages). */
  get timeoutSeconds(): number {
    return this.timeout;
  }

  /**
   * Moves the deadline later (never earlier), for work shared by several scrapes: a coalesced
   * collection runs until the last of its waiters gives up. No effect once it fired.
   */
  extendTo(other: Deadline): void {
    if (this.firedCause || other.at <= this.atMs) return;
    clearTimeout(this.timer);
    this.atMs = other.at;
    this.timeout = Math.max(this.timeout, other.timeout);
    this.timer = setTimeout(() => this.fire('deadline'), Math.max(0, this.atMs - this.now()));
  }

  /**
   * A deadline at the same moment as `first`, aborted early by `parent`: the deadline of work
   * started for `first` but shared with others (extendTo moves it for later ones).
   */
  static sameAs(first: Deadline, parent: AbortSignal): Deadline {
    return new Deadline(first.timeout, Math.max(0, first.atMs - first.now()), parent, first.now);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Set once the signal fired: the time ran out, or the scraper hung up. */
  get cause(): DeadlineCause | undefined {
    return this.firedCause;
  }

  remainingMs(): number {
    return this.firedCause ? 0 : Math.max(0, this.at - this.now());
  }

  /** Clears the timer and the hang-up listener; aborts what is still pending. Call once the scrape is done. */
  dispose(): void {
    clearTimeout(this.timer);
    this.detachParent?.();
    if (!this.controller.signal.aborted) this.controller.abort();
  }

  /** A promise that rejects with `makeError()` when the signal fires (never resolves). */
  reached<E extends Error>(makeError: (cause: DeadlineCause) => E): Promise<never> {
    const p = new Promise<never>((_, reject) => {
      if (this.controller.signal.aborted) reject(makeError(this.firedCause ?? 'deadline'));
      else this.controller.signal.addEventListener('abort', () => reject(makeError(this.firedCause ?? 'deadline')), { once: true });
    });
    p.catch(() => undefined);
    return p;
  }

  private fire(cause: DeadlineCause): void {
    if (this.firedCause) return;
    this.firedCause = cause;
    clearTimeout(this.timer);
    this.detachParent?.();
    this.controller.abort();
  }
}
