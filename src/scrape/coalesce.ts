// Identical scrapes in flight at the same time share one collection (an HA pair of Prometheus
// servers, or Prometheus next to a test instance, scraping the same target): the first starts it,
// the others join and wait for its result, each within its own deadline.
//
// The shared collection runs under its own deadline (DESIGN.md: shared work never runs under the
// deadline of whichever scrape started it): it starts at the first waiter's deadline and is moved
// later by every waiter that joins with a later one, and it is aborted only when every waiter
// has gone (hung up or given up), never because one of several waiters hung up.
import { budgetSeconds, Deadline, type DeadlineCause } from './deadline.ts';

export type WaitOutcome<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly cause: DeadlineCause };

export interface Joined<R> {
  /** True when a collection with this key was already in flight. */
  readonly joined: boolean;
  /** Epoch ms the collection started. */
  readonly startedAt: number;
  /**
   * The collection's result, or why this waiter stopped waiting: its scraper hung up, or its
   * deadline passed (plus a grace of half its send margin, so the waiter whose deadline the
   * collection runs under gets the collection's own deadline result rather than racing it).
   */
  wait(): Promise<WaitOutcome<R>>;
}

class Flight<R> {
  waiters = 0;
  settled = false;
  promise!: Promise<R>;

  constructor(
    /** Aborted when the last waiter has gone. */
    readonly allGone: AbortController,
    readonly deadline: Deadline,
    readonly startedAt: number,
  ) {}
}

/** Grace after a waiter's own deadline: half the margin its deadline leaves to send the answer. */
export function graceMs(timeoutSeconds: number): number {
  return Math.max(5, ((timeoutSeconds - budgetSeconds(timeoutSeconds)) * 1000) / 2);
}

export class Coalescer<R> {
  private readonly flights = new Map<string, Flight<R>>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Collections in flight. */
  get size(): number {
    return this.flights.size;
  }

  /**
   * Joins the collection in flight for `key`, or starts one with `start`. `start` gets the
   * shared deadline and owns it (disposes it when done). `waiter` is the joining scrape's own
   * deadline (its timeout and its hang-up signal).
   */
  join(key: string, waiter: Deadline, start: (shared: Deadline) => Promise<R>): Joined<R> {
    let flight = this.flights.get(key);
    const joined = flight !== undefined;
    if (flight) {
      flight.deadline.extendTo(waiter);
    } else {
      const allGone = new AbortController();
      const f = new Flight<R>(allGone, Deadline.sameAs(waiter, allGone.signal), this.now());
      this.flights.set(key, f);
      f.promise = start(f.deadline).finally(() => {
        f.settled = true;
        if (this.flights.get(key) === f) this.flights.delete(key);
      });
      f.promise.catch(() => undefined); // each waiter gets the rejection; nobody may be left
      flight = f;
    }
    const f = flight;
    f.waiters++;
    return { joined, startedAt: f.startedAt, wait: () => this.waitFor(key, f, waiter) };
  }

  private waitFor(key: string, f: Flight<R>, waiter: Deadline): Promise<WaitOutcome<R>> {
    return new Promise<WaitOutcome<R>>((resolve, reject) => {
      let grace: NodeJS.Timeout | undefined;
      let done = false;
      const finish = () => {
        done = true;
        clearTimeout(grace);
        waiter.signal.removeEventListener('abort', onAbort);
      };
      const leave = (cause: DeadlineCause) => {
        if (done) return;
        finish();
        f.waiters--;
        // The last waiter gone: nobody to answer, stop the collection and let a new scrape start afresh.
        if (f.waiters === 0 && !f.settled) {
          if (this.flights.get(key) === f) this.flights.delete(key);
          f.allGone.abort();
        }
        resolve({ ok: false, cause });
      };
      const onAbort = () => {
        if (waiter.cause === 'hangup') leave('hangup');
        else grace ??= setTimeout(() => leave('deadline'), graceMs(waiter.timeoutSeconds));
      };
      f.promise.then(
        (value) => {
          if (done) return;
          finish();
          f.waiters--;
          resolve({ ok: true, value });
        },
        (err: unknown) => {
          if (done) return;
          finish();
          f.waiters--;
          reject(err);
        },
      );
      if (waiter.signal.aborted) onAbort();
      else waiter.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
