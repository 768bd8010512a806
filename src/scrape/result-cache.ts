// A short cache of scrape results (--scrape.cache-ttl): a scrape that finds a result of the same
// scrape (module settings, target, scopes, collectors) younger than the TTL is answered from it
// without a single PVE call. Off (TTL 0) by default, so every scrape collects, as the reference
// does. The age counts from the moment the collection started, so no answer is ever older than
// the TTL. Bounded: at most `maxEntries` results (least recently used dropped), and each entry is
// dropped when it expires, so a burst of targets does not keep results alive.
import { LRUCache } from 'lru-cache';

export interface CachedResult<R> {
  readonly value: R;
  /** Epoch ms the collection started. */
  readonly collectedAt: number;
}

export class ResultCache<R> {
  private readonly entries?: LRUCache<string, CachedResult<R>>;

  constructor(
    /** Seconds; 0 turns the cache off. */
    readonly ttlSeconds: number,
    maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {
    if (ttlSeconds > 0) {
      this.entries = new LRUCache<string, CachedResult<R>>({ max: Math.max(1, maxEntries), ttlAutopurge: true, ttl: ttlSeconds * 1000 });
    }
  }

  get enabled(): boolean {
    return this.entries !== undefined;
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }

  /** A result younger than the TTL, if any. */
  get(key: string): CachedResult<R> | undefined {
    const e = this.entries?.get(key);
    if (!e) return undefined;
    if (this.now() - e.collectedAt >= this.ttlSeconds * 1000) {
      this.entries!.delete(key);
      return undefined;
    }
    return e;
  }

  /** Keeps `value`, collected at `collectedAt`, for what is left of the TTL. */
  set(key: string, value: R, collectedAt: number): void {
    if (!this.entries) return;
    const left = collectedAt + this.ttlSeconds * 1000 - this.now();
    if (left <= 0) return;
    const current = this.entries.get(key);
    if (current && current.collectedAt > collectedAt) return; // a newer collection got there first
    this.entries.set(key, { value, collectedAt }, { ttl: left });
  }

  clear(): void {
    this.entries?.clear();
  }
}
