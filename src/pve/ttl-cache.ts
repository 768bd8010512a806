// A TTL cache for slow-changing PVE data (certificates, disks, pending updates, finished task
// logs, agent answers), one per collector per client, i.e. per (module settings, target): it goes
// when the client goes. Three rules make it safe to lean on:
// - expiry is spread over the last fifth of the TTL per key, so entries filled in one cold scrape
//   do not all expire in the same later scrape;
// - an expired entry is kept a while longer (STALE_FACTOR x TTL) as a fallback when a refresh
//   fails, and whoever serves it says so (the session counts it);
// - the number of entries is bounded: the entry written longest ago goes first.

/** An expired entry may stand in for a failed refresh this many TTLs after it was written. */
export const STALE_FACTOR = 10;

/** Default bound on the entries of one cache (one per disk, certificate file, task, guest...). */
export const DEFAULT_MAX_ENTRIES = 10_000;

interface Entry<V> {
  readonly value: V;
  readonly expiresAt: number;
  readonly staleUntil: number;
}

/** A cheap deterministic hash of `key` into [0.8, 1.0): the share of the TTL this key lives. */
export function spreadFactor(key: string): number {
  // FNV-1a 32-bit, then a multiplicative mix so nearby keys land apart.
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
  return 0.8 + (h / 0x1_0000_0000) * 0.2;
}

export class TtlCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  /** Refreshes under way, shared by every scrape that needs the key meanwhile. */
  private readonly fills = new Map<string, Promise<V>>();

  constructor(
    /** Seconds; 0 disables the cache (every read misses, nothing is kept). */
    readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
    readonly maxEntries: number = DEFAULT_MAX_ENTRIES,
  ) {}

  /** The value of `key` if it has not expired. */
  fresh(key: string): V | undefined {
    const e = this.entries.get(key);
    return e && e.expiresAt > this.now() ? e.value : undefined;
  }

  /** The value of `key`, expired or not, while it may still stand in for a failed refresh. */
  stale(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.staleUntil <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    if (this.ttlSeconds <= 0) return;
    const now = this.now();
    const ttlMs = this.ttlSeconds * 1000;
    // Re-inserting moves the key to the end of the Map: the first key is the one written longest ago.
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: now + ttlMs * spreadFactor(key), staleUntil: now + ttlMs * STALE_FACTOR });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  /** The refresh of `key` under way, if any. */
  inflight(key: string): Promise<V> | undefined {
    return this.fills.get(key);
  }

  /** Registers a refresh of `key`; it is forgotten when it settles (its value is set() by the caller). */
  track(key: string, fill: Promise<V>): void {
    this.fills.set(key, fill);
    const forget = () => {
      if (this.fills.get(key) === fill) this.fills.delete(key);
    };
    fill.then(forget, forget);
  }

  /** Drops keys that no longer exist upstream (a removed disk, a deleted task), so the cache follows PVE. */
  retainOnly(keep: (key: string) => boolean): void {
    for (const key of [...this.entries.keys()]) if (!keep(key)) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * The TTL caches of one client, one per cache name (the collector's name), created on first use
 * with the TTL configured for that name (--collector.<name>.ttl); a name without one gets TTL 0.
 */
export class CacheSet {
  private readonly caches = new Map<string, TtlCache<unknown>>();

  constructor(
    private readonly ttls: Readonly<Record<string, number>>,
    private readonly now: () => number = Date.now,
    private readonly maxEntries: number = DEFAULT_MAX_ENTRIES,
  ) {}

  /**
   * `fixedTtlSeconds` is for data that never changes once PVE has it (a finished task's log):
   * its cache keeps entries that long whatever the flags say.
   */
  get<V>(name: string, fixedTtlSeconds?: number): TtlCache<V> {
    let c = this.caches.get(name);
    if (!c) {
      c = new TtlCache<unknown>(fixedTtlSeconds ?? this.ttls[name] ?? 0, this.now, this.maxEntries);
      this.caches.set(name, c);
    }
    return c as TtlCache<V>;
  }
}
