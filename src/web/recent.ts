// The last scrapes, for the landing page: a ring buffer of --web.recent-scrapes entries, each
// with the log of the collection that answered it (blackbox_exporter keeps its recent probes the
// same way). The log is kept rather than re-run on demand: at 3 a.m. what matters is what that
// scrape did, not what a scrape does now. Logs are bounded (STORED_LOG_LIMITS: 200 calls listed,
// cache hits only counted) and the metrics are not kept, so memory stays at a few KiB per entry;
// scrapes that shared a collection or came from the cache point at the same log.
import type { ScrapeLog } from '../scrape/debug-log.ts';
import type { ServedFrom } from '../scrape.ts';

export interface RecentScrape {
  readonly id: number;
  /** Epoch ms the scrape arrived. */
  readonly time: number;
  readonly module: string;
  readonly target: string;
  readonly cluster: boolean;
  readonly node: boolean;
  readonly served: ServedFrom;
  readonly debug: boolean;
  /** HTTP status answered, or 'hung up' when the scraper left first. */
  readonly status: 200 | 500 | 'hung up';
  readonly seconds: number;
  /** Epoch ms the collection that answered started. */
  readonly collectedAt: number;
  readonly failing: readonly { readonly name: string; readonly error: string }[];
  readonly error?: string;
  readonly log: ScrapeLog;
}

export class RecentScrapes {
  private readonly ring: RecentScrape[] = [];
  private next = 0;
  private nextId = 1;

  constructor(readonly capacity: number) {}

  add(entry: Omit<RecentScrape, 'id'>): number {
    if (this.capacity <= 0) return 0;
    const id = this.nextId++;
    const full = { ...entry, id };
    if (this.ring.length < this.capacity) this.ring.push(full);
    else this.ring[this.next] = full;
    this.next = (this.next + 1) % this.capacity;
    return id;
  }

  /** Newest first. */
  list(): RecentScrape[] {
    return [...this.ring].sort((a, b) => b.id - a.id);
  }

  get(id: number): RecentScrape | undefined {
    return this.ring.find((e) => e.id === id);
  }

  /** The stored log of one scrape as text: what this scrape was, then its collection's log. */
  static render(e: RecentScrape): string {
    const lines = [
      `Scrape #${e.id} at ${new Date(e.time).toISOString()}: module "${e.module}", target ${e.target}, cluster=${e.cluster ? 1 : 0} node=${e.node ? 1 : 0}`,
      `Answer: ${e.status === 'hung up' ? 'none, the scraper hung up' : e.status} after ${e.seconds.toFixed(3)}s; ${servedText(e)}`,
    ];
    if (e.error && e.status !== 200) lines.push(`Error: ${e.error}`);
    lines.push('', e.log.render().trimEnd(), '', 'The metrics are not kept; /pve with debug=true collects again and shows them.');
    return lines.join('\n') + '\n';
  }
}

function servedText(e: RecentScrape): string {
  const age = ((e.time - e.collectedAt) / 1000).toFixed(1);
  if (e.debug) return 'debug=true: a collection of its own';
  if (e.served === 'cached') return `served from the result cache (collected ${age}s before)`;
  if (e.served === 'shared') return `shared an identical collection in flight (started ${age}s before)`;
  return 'collected';
}
