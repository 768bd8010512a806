// What the text encoders keep from one scrape to the next. Most series of a scrape are exactly
// what they were in the previous one (label sets and most values change rarely: limits, sizes,
// info, one-hot states), but escaping, joining and printing them again was the largest part of a
// scrape's encoding CPU and garbage (bench/profile-summary.ts). So each family keeps its last
// label values, values and output text in chunks of a fixed number of series: a chunk whose
// series all equal last time's, position by position, is last time's text. Only the text of
// chunks that are new or did not change is kept. A chunk whose labels stayed but whose values
// changed (counters change every scrape) keeps instead the UTF-8 bytes before each value, in one
// buffer per chunk (chunk-bytes.ts): its next values are printed next to them.
// Kept per series as strings instead (prefix and value text, found by position or in a Map by
// label values), the cache held ~80,000 strings per 2,000 guests that every major GC had to mark:
// more GC than the reuse saved, and 40-60 MB more resident memory. When PVE lists resources in
// another order, the chunks concerned are simply rendered afresh.
// A cache holds exactly the last scrape's output: families left out of an encode are dropped.
import { LRUCache } from 'lru-cache';
import type { ChunkPrefixes } from './chunk-bytes.ts';

/** One family's output as last encoded, in chunks of a fixed number of series. */
export interface EncodedFamily<T> {
  /** The family's label values (MetricFamily.labelValues, not copied: families are not changed once built). */
  readonly labelValues: readonly string[];
  readonly values: readonly number[];
  /**
   * The output of series [i * CHUNK_SERIES, (i + 1) * CHUNK_SERIES), where worth keeping, in the
   * form the answer sends it (text, bytes or deflated bytes); chunk 0 begins with HELP and TYPE.
   */
  readonly chunks: ReadonlyArray<T | undefined>;
  /**
   * For chunks whose values changed last time (and whose output is not kept): the bytes before
   * each series' value, to write the next values with (chunk-bytes.ts).
   */
  readonly prefixes: ReadonlyArray<ChunkPrefixes | undefined>;
  /** The HELP text and type written in chunk 0. */
  readonly help: string;
  readonly type: string;
}

/** One family in one format: its last encode. */
export class FamilyMemo<T> {
  /** Last encode round of the whole cache that included this family. */
  usedIn = 0;
  last: EncodedFamily<T> | undefined;
}

/** The encoder state of one kind of scrape (module, target, scopes, format, encoding). */
export class SeriesCache<T = string> {
  private readonly families = new Map<string, FamilyMemo<T>>();
  private round = 0;
  /** The closing "# EOF" of OpenMetrics, in the output's form. */
  eof: T | undefined;

  /** Starts an encode of the whole exposition; families not used in it are dropped at its end. */
  begin(): number {
    return ++this.round;
  }

  family(key: string, round: number): FamilyMemo<T> {
    let f = this.families.get(key);
    if (!f) {
      f = new FamilyMemo<T>();
      this.families.set(key, f);
    }
    f.usedIn = round;
    return f;
  }

  /** Ends the encode `round`: families that were not part of it go. */
  end(round: number): void {
    // Another encode of this cache may have started meanwhile: only the newest round sweeps.
    if (round !== this.round) return;
    for (const [key, f] of this.families) if (f.usedIn !== round) this.families.delete(key);
  }

  /** Chunks that keep their prefixes (their values changed last time) rather than their output. */
  get prefixedChunks(): number {
    let n = 0;
    for (const f of this.families.values()) for (const p of f.last?.prefixes ?? []) if (p !== undefined) n++;
    return n;
  }

  /** Series held (the bound of the store counts these). */
  get seriesCount(): number {
    let n = 0;
    for (const f of this.families.values()) n += f.last?.values.length ?? 0;
    return n;
  }
}

export interface SeriesCacheStoreOptions {
  /** Kinds of scrape kept (least recently used dropped first). */
  readonly maxCaches?: number;
  /** Series kept over all caches (a 2,000-guest full scrape has about 80,000). */
  readonly maxSeries?: number;
}

/**
 * Bounded set of SeriesCaches, one per kind of scrape: a cache is only useful for the scrape that
 * produced it (another target has other guests). A cache's size is taken each time it is handed
 * out, so the bound follows the caches' sizes as of their previous scrape.
 */
export class SeriesCacheStore<T = string> {
  private readonly caches: LRUCache<string, SeriesCache<T>>;

  constructor(opts: SeriesCacheStoreOptions = {}) {
    this.caches = new LRUCache<string, SeriesCache<T>>({
      max: opts.maxCaches ?? 64,
      maxSize: opts.maxSeries ?? 1_000_000,
      sizeCalculation: (c) => Math.max(1, c.seriesCount),
    });
  }

  /** The cache for this kind of scrape, created on first use. */
  for(key: string): SeriesCache<T> {
    const cache = this.caches.get(key) ?? new SeriesCache<T>();
    // Set anew (lru-cache does not size a value set again under its key): its size now counts.
    this.caches.delete(key);
    this.caches.set(key, cache);
    return cache;
  }

  get size(): number {
    return this.caches.size;
  }
}
