// The one table of collectors: CLI flags (--collector.<name> / --no-collector.<name>), defaults,
// the metrics reference and the scrape all come from here. Order = order in the output.
import { backupCollector } from './backup.ts';
import { backupInfoCollector } from './backup-info.ts';
import { cephCollector } from './ceph.ts';
import { guestFilesystemCollector } from './guest-filesystem.ts';
import { haCollector } from './ha.ts';
import { clusterCollector } from './cluster.ts';
import { configCollector } from './config.ts';
import { nodeCollector } from './node.ts';
import { qdeviceCollector } from './qdevice.ts';
import { replicationCollector } from './replication.ts';
import { resourcesCollector } from './resources.ts';
import { statusCollector } from './status.ts';
import { subscriptionCollector } from './subscription.ts';
import { versionCollector } from './version.ts';
import { nodeStatusCollector } from './node-status.ts';
import { nodeMetricsCollector } from './node-metrics.ts';
import { zfsCollector } from './zfs.ts';
import { disksCollector } from './disks.ts';
import { certificatesCollector } from './certificates.ts';
import { updatesCollector } from './updates.ts';
import { guestConfigCollector } from './guest-config.ts';
import { allocationCollector } from './allocation.ts';
import type { Collector, ScrapeCollector, SelfCollector } from './types.ts';
import { SELF_FAMILIES } from '../self-metrics.ts';

const pveApiMetrics: SelfCollector = {
  kind: 'self',
  name: 'pve-api-metrics',
  defaultEnabled: false,
  description: 'Histogram of PVE API call durations per module and endpoint on /metrics.',
  families: [SELF_FAMILIES.apiDuration],
};

const targetMetrics: SelfCollector = {
  kind: 'self',
  name: 'target-metrics',
  defaultEnabled: false,
  description: 'Histogram of whole-scrape durations per module and target on /metrics.',
  families: [SELF_FAMILIES.targetDuration],
};

export const COLLECTORS: readonly Collector[] = [
  statusCollector,
  resourcesCollector,
  nodeCollector,
  clusterCollector,
  versionCollector,
  backupInfoCollector,
  qdeviceCollector,
  subscriptionCollector,
  configCollector,
  replicationCollector,
  // Additions (issue 9). node-status before node-metrics: where both fill a series of the
  // answering node, the live /nodes/{node}/status value is kept (scrape.ts mergeSameName).
  nodeStatusCollector,
  nodeMetricsCollector,
  allocationCollector,
  guestConfigCollector,
  zfsCollector,
  disksCollector,
  certificatesCollector,
  updatesCollector,
  guestFilesystemCollector,
  backupCollector,
  haCollector,
  cephCollector,
  pveApiMetrics,
  targetMetrics,
];

export const SCRAPE_COLLECTORS: readonly ScrapeCollector[] = COLLECTORS.filter((c): c is ScrapeCollector => c.kind === 'scrape');

export type CollectorSwitches = Readonly<Record<string, boolean>>;

export function defaultSwitches(): Record<string, boolean> {
  return Object.fromEntries(COLLECTORS.map((c) => [c.name, c.defaultEnabled]));
}
