import { familyWithLabels, gauge, type MetricFamily } from '../exposition/family.ts';
import type { ClusterStatusEntry } from '../pve/types.ts';
import { labelNamesFrom, labelValue, type ScrapeCollector } from './types.ts';

const CLUSTER_INFO = gauge('pve_cluster_info', 'Cluster info', ['id', 'nodes', 'quorate', 'version']);

/**
 * Labels are whatever keys the cluster entry has, minus type and name (and keys that are not valid
 * label names); id becomes cluster/<name>.
 */
export function buildClusterInfo(status: ClusterStatusEntry[]): MetricFamily[] {
  const entry = status.find((e) => e.type === 'cluster');
  if (!entry) return []; // standalone node: no cluster, no family (as the reference)
  const keys = labelNamesFrom(Object.keys(entry).filter((k) => k !== 'type' && k !== 'name'));
  const fam = familyWithLabels(CLUSTER_INFO, keys);
  fam.add(keys.map((k) => (k === 'id' ? `cluster/${entry.name}` : labelValue(entry[k]))), 1);
  return [fam];
}

export const clusterCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'cluster',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'reference',
  description: 'Cluster name, member count, quorum and config version (absent on a standalone node).',
  endpoints: [{ path: '/cluster/status', privilege: 'Sys.Audit on /', cost: 'cluster' }],
  families: [CLUSTER_INFO],
  async collect(s) {
    return buildClusterInfo(await s.clusterStatus());
  },
};
