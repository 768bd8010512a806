// Guest configs change rarely but cost one API call per guest: keep what the collectors need
// (GuestConfigFields: onboot, sizing, protection, agent, creation time) per guest for a TTL. Expiry is spread over the last fifth of the TTL
// per guest, so a cache filled in one cold scrape does not expire in one burst.
import type { GuestConfigFields } from './guest-config.ts';
import type { GuestType } from './types.ts';

export interface CachedGuestConfig {
  readonly node: string;
  readonly fields: GuestConfigFields;
  readonly expiresAt: number;
}

function spread(vmid: number): number {
  // A cheap deterministic hash of the vmid into [0.8, 1.0).
  const h = Math.imul(vmid ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  return 0.8 + (h / 0x1_0000_0000) * 0.2;
}

export class GuestConfigCache {
  private readonly entries = new Map<string, CachedGuestConfig>();

  constructor(
    /** Seconds; 0 disables the cache. */
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  private static key(type: GuestType, vmid: number): string {
    return `${type}/${vmid}`;
  }

  /** A fresh entry for this guest on this node, if any. */
  fresh(type: GuestType, vmid: number, node: string): CachedGuestConfig | undefined {
    const e = this.entries.get(GuestConfigCache.key(type, vmid));
    if (!e || e.node !== node || e.expiresAt <= this.now()) return undefined;
    return e;
  }

  /** Any entry for this guest on this node, fresh or not (fallback when a refresh fails). */
  stale(type: GuestType, vmid: number, node: string): CachedGuestConfig | undefined {
    const e = this.entries.get(GuestConfigCache.key(type, vmid));
    return e && e.node === node ? e : undefined;
  }

  store(type: GuestType, vmid: number, node: string, fields: GuestConfigFields): void {
    if (this.ttlSeconds <= 0) return;
    const expiresAt = this.now() + this.ttlSeconds * 1000 * spread(vmid);
    this.entries.set(GuestConfigCache.key(type, vmid), { node, fields, expiresAt });
  }

  /** Drops guests that no longer exist, so the cache follows the cluster's size. */
  retainOnly(present: ReadonlySet<string>): void {
    for (const key of this.entries.keys()) if (!present.has(key)) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
