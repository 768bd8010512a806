// Guest configs change rarely but cost one API call per guest: keep what the collectors need
// (GuestConfigFields: onboot, sizing, protection, agent, creation time) per guest for a TTL. Expiry is spread over the last fifth of the TTL
// per guest, so a cache filled in one cold scrape does not expire in one burst.
import { guestConfigFields, type GuestConfigFields } from './guest-config.ts';
import type { GuestConfig, GuestType } from './types.ts';

/** A guest whose cached config should be fetched again soon. */
export interface DueGuest {
  readonly type: GuestType;
  readonly vmid: number;
  readonly node: string;
}

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

  /** Keeps what the collectors need of a guest config fetched from PVE. */
  storeConfig(type: GuestType, vmid: number, node: string, cfg: GuestConfig): void {
    this.store(type, vmid, node, guestConfigFields(type, cfg));
  }

  /** Whether this guest is (still) cached on this node: a refresh that comes back keeps it only then. */
  has(type: GuestType, vmid: number, node: string): boolean {
    return this.stale(type, vmid, node) !== undefined;
  }

  /** Entries that expire within `leadMs` (or have expired), soonest first. */
  dueForRefresh(leadMs: number): DueGuest[] {
    const limit = this.now() + leadMs;
    const due: Array<DueGuest & { at: number }> = [];
    for (const [key, e] of this.entries) {
      if (e.expiresAt > limit) continue;
      const slash = key.indexOf('/');
      due.push({ type: key.slice(0, slash) as GuestType, vmid: Number(key.slice(slash + 1)), node: e.node, at: e.expiresAt });
    }
    return due.sort((a, b) => a.at - b.at);
  }

  get ttlMs(): number {
    return this.ttlSeconds * 1000;
  }

  /** Drops guests that no longer exist, so the cache follows the cluster's size. */
  retainOnly(present: ReadonlySet<string>): void {
    for (const key of this.entries.keys()) if (!present.has(key)) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
