// Node metrics of every online node in one call: /cluster/metrics/export (PVE 8.2.5+) returns
// pvestatd's newest samples of all nodes, so a single-target layout (one Service scraped with
// cluster=1) gets load, iowait, swap and root filesystem of each node. The names are those
// node-status fills from /nodes/{node}/status (node-families.ts). Older PVE answers 501: the
// scrape logs that once and the collector yields nothing (scrape.ts).
import { MetricFamily, type FamilySpec } from '../exposition/family.ts';
import type { MetricsExportEntry } from '../pve/types.ts';
import {
  NODE_IOWAIT,
  NODE_LOAD1,
  NODE_LOAD15,
  NODE_LOAD5,
  NODE_ROOTFS_SIZE,
  NODE_ROOTFS_USED,
  NODE_SWAP_SIZE,
  NODE_SWAP_USED,
  SHARED_NODE_FAMILIES,
} from './node-families.ts';
import type { ScrapeCollector } from './types.ts';

/** Export metric name -> family, for node entries. mem_* and cpu_current are in the reference's families already. */
const NODE_EXPORT_METRICS: ReadonlyMap<string, FamilySpec> = new Map([
  ['cpu_avg1', NODE_LOAD1],
  ['cpu_avg5', NODE_LOAD5],
  ['cpu_avg15', NODE_LOAD15],
  ['cpu_iowait', NODE_IOWAIT],
  ['swap_total', NODE_SWAP_SIZE],
  ['swap_used', NODE_SWAP_USED],
  ['disk_total', NODE_ROOTFS_SIZE],
  ['disk_used', NODE_ROOTFS_USED],
]);

/** Node entries by id (a module-level comparator: see byTypeAndVmid in types.ts). */
function byId(a: MetricsExportEntry, b: MetricsExportEntry): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The newest sample per (node, metric). Before pve-manager 8.3.4 cpu_iowait was the cumulative
 * iowait counter of /proc/stat (jiffies since boot), not a 0..1 share: a value above 1 is such a
 * counter and is dropped rather than exposed under a name that means a share.
 */
export function buildNodeMetrics(entries: readonly MetricsExportEntry[]): MetricFamily[] {
  const newest = new Map<string, MetricsExportEntry>();
  for (const e of entries) {
    if (typeof e?.id !== 'string' || !e.id.startsWith('node/') || !NODE_EXPORT_METRICS.has(e.metric)) continue;
    if (typeof e.value !== 'number' || !Number.isFinite(e.value)) continue;
    if (e.metric === 'cpu_iowait' && (e.value < 0 || e.value > 1)) continue;
    const key = `${e.id}\0${e.metric}`;
    const seen = newest.get(key);
    if (!seen || e.timestamp > seen.timestamp) newest.set(key, e);
  }
  const families = new Map<string, MetricFamily>();
  for (const f of SHARED_NODE_FAMILIES) families.set(f.name, new MetricFamily(f));
  const ordered = [...newest.values()].sort(byId);
  for (const e of ordered) families.get(NODE_EXPORT_METRICS.get(e.metric)!.name)!.add1(e.id, e.value);
  return [...families.values()];
}

export const nodeMetricsCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'node-metrics',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'addition',
  description:
    'Load 1/5/15, CPU iowait, swap and root filesystem of every online node in one call (PVE 8.2.5 and later; on older PVE it says so once and yields nothing).',
  endpoints: [{ path: '/cluster/metrics/export', privilege: 'Sys.Audit on /', cost: 'cluster', since: 'pve-manager 8.2.5' }],
  families: SHARED_NODE_FAMILIES,
  async collect(s) {
    return buildNodeMetrics(await s.metricsExportNodes());
  },
};
