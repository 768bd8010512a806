// What the text encoders keep from one scrape to the next. A series' label set rarely changes
// between scrapes, but escaping and joining it was the largest part of a scrape's encoding CPU and
// garbage (bench/profile-summary.ts). So each family keeps, position by position, its last label
// values, rendered `name{labels} ` prefixes and value texts: a series whose label values equal
// those at its place last time reuses its prefix (and its value text if the value is the same).
// Looking series up by value instead (a Map per family) cost more CPU than it saved and doubled
// the memory; when PVE lists resources in another order, the family is simply rendered afresh.
// A cache holds exactly the last scrape's series: families left out of an encode are dropped.
import { LRUCache } from 'lru-cache';

/** One family's series as last encoded, position by position. */
export interface EncodedFamily {
  /** The family's label values (MetricFamily.labelValues, not copied: families are not changed once built). */
  readonly labelValues: readonly string[];
  readonly values: readonly number[];
  /** `name{a="..",b=".."} ` of series i, escaped. */
  readonly prefixes: readonly string[];
  /** formatValue(values[i]) + "\n". */
  readonly texts: readonly string[];
}

/** One family in one format: its HELP/TYPE header and its last encode. */
export class FamilyMemo {
  /** Last encode round of the whole cache that included this family. */
  usedIn = 0;
  header = '';
  headerHelp: string | undefined;
  headerType: string | undefined;
  last: EncodedFamily | undefined;
}

/** The encoder state of one kind of scrape (module, target, scopes, format). */
export class SeriesCache {
  private readonly families = new Map<string, FamilyMemo>();
  private round = 0;

  /** Starts an encode of the whole exposition; families not used in it are dropped at its end. */
  begin(): number {
    return ++this.round;
  }

  family(key: string, round: number): FamilyMemo {
    let f = this.families.get(key);
    if (!f) {
      f = new FamilyMemo();
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

  /** Series held (the bound of the store counts these). */
  get seriesCount(): number {
    let n = 0;
    for (const f of this.families.values()) n += f.last?.prefixes.length ?? 0;
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
export class SeriesCacheStore {
  private readonly caches: LRUCache<string, SeriesCache>;

  constructor(opts: SeriesCacheStoreOptions = {}) {
    this.caches = new LRUCache<string, SeriesCache>({
      max: opts.maxCaches ?? 64,
      maxSize: opts.maxSeries ?? 1_000_000,
      sizeCalculation: (c) => Math.max(1, c.seriesCount),
    });
  }

  /** The cache for this kind of scrape, created on first use. */
  for(key: string): SeriesCache {
    const cache = this.caches.get(key) ?? new SeriesCache();
    // Set anew (lru-cache does not size a value set again under its key): its size now counts.
    this.caches.delete(key);
    this.caches.set(key, cache);
    return cache;
  }

  get size(): number {
    return this.caches.size;
  }
}
