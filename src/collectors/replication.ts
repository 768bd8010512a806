import { MetricFamily, gauge } from '../exposition/family.ts';
import type { ReplicationJob } from '../pve/types.ts';
import { labelValue, numberValue, type ScrapeCollector } from './types.ts';

const VALUES = [
  ['duration', gauge('pve_replication_duration_seconds', 'Proxmox vm replication duration', ['id'])],
  ['last_sync', gauge('pve_replication_last_sync_timestamp_seconds', 'Proxmox vm replication last_sync', ['id'])],
  ['last_try', gauge('pve_replication_last_try_timestamp_seconds', 'Proxmox vm replication last_try', ['id'])],
  ['next_sync', gauge('pve_replication_next_sync_timestamp_seconds', 'Proxmox vm replication next_sync', ['id'])],
  ['fail_count', gauge('pve_replication_failed_syncs', 'Proxmox vm replication fail_count', ['id'])],
] as const;
const INFO = gauge('pve_replication_info', 'Proxmox vm replication info', ['id', 'type', 'source', 'target', 'guest']);

/**
 * The job list of /nodes/{node}/replication already carries each job's state (PVE builds both
 * answers from the same function), so the reference's extra status call per job is not needed.
 */
export function buildReplication(jobs: ReplicationJob[]): MetricFamily[] {
  const fams = VALUES.map(([key, spec]) => [key, new MetricFamily(spec)] as const);
  const info = new MetricFamily(INFO);
  for (const j of jobs) {
    for (const [key, fam] of fams) {
      if (j[key] !== undefined) fam.add([j.id], numberValue(j[key]));
    }
    info.add([j.id, labelValue(j.type), `node/${labelValue(j.source)}`, `node/${labelValue(j.target)}`, `${labelValue(j.vmtype)}/${labelValue(j.guest)}`], 1);
  }
  return [...fams.map(([, f]) => f), info];
}

export const replicationCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'replication',
  scope: 'node',
  defaultEnabled: true,
  origin: 'reference',
  description: 'Storage replication jobs of guests on the answering node: last/next sync, duration, failures.',
  endpoints: [
    { path: '/nodes/{node}/replication', privilege: 'VM.Audit on /vms/{vmid} (jobs of other guests are left out)', cost: 'node' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  families: [...VALUES.map(([, s]) => s), INFO],
  async collect(s) {
    const node = (await s.localNode()).name;
    return buildReplication(await s.replication(node));
  },
};
