// ZFS pools of the answering node from /nodes/{node}/disks/zfs (zpool list): health one-hot,
// size, allocated, free, fragmentation. Live, not cached: a pool turning DEGRADED should show
// within one scrape, and the call only reads zpool's in-memory state.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { ZfsPool } from '../pve/types.ts';
import { numberValue, type ScrapeCollector } from './types.ts';

/** The states zpool reports (zpool-list(8) health column). */
export const ZPOOL_STATES = ['ONLINE', 'DEGRADED', 'FAULTED', 'OFFLINE', 'UNAVAIL', 'REMOVED', 'SUSPENDED'] as const;

const HEALTH = gauge('pve_zfs_pool_health', 'ZFS pool health (1 for the current state, 0 for the others)', ['node', 'pool', 'state']);
const SIZE = gauge('pve_zfs_pool_size_bytes', 'Size of the ZFS pool', ['node', 'pool']);
const ALLOC = gauge('pve_zfs_pool_allocated_bytes', 'Space allocated in the ZFS pool', ['node', 'pool']);
const FREE = gauge('pve_zfs_pool_free_bytes', 'Free space in the ZFS pool', ['node', 'pool']);
const FRAG = gauge('pve_zfs_pool_fragmentation_ratio', 'Free-space fragmentation of the ZFS pool (0..1)', ['node', 'pool']);

export function buildZfs(node: string, pools: readonly ZfsPool[]): MetricFamily[] {
  const health = new MetricFamily(HEALTH);
  const size = new MetricFamily(SIZE);
  const alloc = new MetricFamily(ALLOC);
  const free = new MetricFamily(FREE);
  const frag = new MetricFamily(FRAG);
  const add = (fam: MetricFamily, pool: string, v: unknown, scale = 1) => {
    if (v === undefined || v === null || v === '') return;
    const n = numberValue(v);
    if (Number.isFinite(n)) fam.add2(node, pool, n * scale);
  };
  for (const p of [...pools].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (typeof p.name !== 'string') continue;
    const state = String(p.health ?? '').toUpperCase();
    for (const s of ZPOOL_STATES) health.add([node, p.name, s], s === state ? 1 : 0);
    add(size, p.name, p.size);
    add(alloc, p.name, p.alloc);
    add(free, p.name, p.free);
    add(frag, p.name, p.frag, 0.01);
  }
  return [health, size, alloc, free, frag];
}

export const zfsCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'zfs',
  scope: 'node',
  defaultEnabled: true,
  origin: 'addition',
  description: 'Health (one-hot), size, allocated, free space and fragmentation of the ZFS pools of the answering node.',
  endpoints: [
    { path: '/nodes/{node}/disks/zfs', privilege: 'Sys.Audit on / (PVE 8+; on /nodes/{node} alone is not enough)', cost: 'node' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  families: [HEALTH, SIZE, ALLOC, FREE, FRAG],
  async collect(s) {
    const node = (await s.localNode()).name;
    return buildZfs(node, await s.zfsPools(node));
  },
};
