// Physical disks of the answering node from /nodes/{node}/disks/list: SMART health and SSD
// wearout. PVE runs smartctl on every disk for this call (seconds on a full chassis), so the
// answer is cached (--collector.disks.ttl) and refreshed under the module timeout, not the
// scrape's deadline.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { DiskInfo } from '../pve/types.ts';
import { labelValue, numberValue, type ScrapeCollector } from './types.ts';

const INFO = gauge('pve_node_disk_info', 'Physical disk of the node with its SMART health text as PVE reports it (1)', [
  'node',
  'devpath',
  'type',
  'model',
  'serial',
  'health',
]);
const SMART_PASSED = gauge(
  'pve_node_disk_smart_passed',
  'Whether the disk passes its SMART self-assessment (1 PASSED/OK, 0 anything else reported; no series when SMART is unknown or disabled)',
  ['node', 'devpath'],
);
const LIFE = gauge('pve_node_disk_life_remaining_ratio', 'SSD/NVMe life remaining as PVE\'s wearout reports it (1 = new, 0 = worn out)', ['node', 'devpath']);
const SIZE = gauge('pve_node_disk_size_bytes', 'Size of the physical disk', ['node', 'devpath']);

/** Health texts that say nothing about the disk (no SMART, skipped, disabled). */
const HEALTH_UNKNOWN = new Set(['', 'UNKNOWN', 'SMART DISABLED']);

export function smartPassed(health: string | undefined): number | undefined {
  const h = String(health ?? '').trim().toUpperCase();
  if (HEALTH_UNKNOWN.has(h)) return undefined;
  return h === 'PASSED' || h === 'OK' ? 1 : 0;
}

export function buildDisks(node: string, disks: readonly DiskInfo[]): MetricFamily[] {
  const info = new MetricFamily(INFO);
  const passed = new MetricFamily(SMART_PASSED);
  const life = new MetricFamily(LIFE);
  const size = new MetricFamily(SIZE);
  for (const d of [...disks].sort((a, b) => (a.devpath < b.devpath ? -1 : a.devpath > b.devpath ? 1 : 0))) {
    // Partitions appear only with include-partitions; they have no SMART of their own.
    if (typeof d.devpath !== 'string' || d.type === 'partition') continue;
    info.add([node, d.devpath, labelValue(d.type), labelValue(d.model), labelValue(d.serial), labelValue(d.health)], 1);
    const ok = smartPassed(d.health);
    if (ok !== undefined) passed.add2(node, d.devpath, ok);
    // wearout is a number for SSD/NVMe, the string "N/A" otherwise.
    if (typeof d.wearout === 'number' && Number.isFinite(d.wearout)) life.add2(node, d.devpath, d.wearout / 100);
    const bytes = numberValue(d.size);
    if (d.size !== undefined && Number.isFinite(bytes)) size.add2(node, d.devpath, bytes);
  }
  return [info, passed, life, size];
}

export const disksCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'disks',
  scope: 'node',
  defaultEnabled: true,
  origin: 'addition',
  description: 'SMART health, SSD/NVMe wearout and size of each physical disk of the answering node (cached: the call runs smartctl on every disk).',
  endpoints: [
    { path: '/nodes/{node}/disks/list', privilege: 'Sys.Audit on / or on /nodes/{node}', cost: 'node' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  cacheTtl: 600,
  families: [INFO, SMART_PASSED, LIFE, SIZE],
  async collect(s) {
    const node = (await s.localNode()).name;
    return buildDisks(node, await s.disks(node));
  },
};
