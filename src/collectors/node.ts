import { MetricFamily, gauge } from '../exposition/family.ts';
import type { ClusterStatusEntry } from '../pve/types.ts';
import { labelValue, type ScrapeCollector } from './types.ts';

const NODE_INFO = gauge('pve_node_info', 'Node info', ['id', 'level', 'name', 'nodeid']);

export function buildNodeInfo(status: ClusterStatusEntry[]): MetricFamily[] {
  const fam = new MetricFamily(NODE_INFO);
  for (const e of status) {
    if (e.type !== 'node') continue;
    fam.add([`node/${e.name}`, labelValue(e.level), e.name, labelValue(e.nodeid)], 1);
  }
  return [fam];
}

export const nodeCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'node',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'reference',
  description: 'One info series per cluster member: node id and subscription level.',
  endpoints: [{ path: '/cluster/status', privilege: 'Sys.Audit on /', cost: 'cluster' }],
  families: [NODE_INFO],
  async collect(s) {
    return buildNodeInfo(await s.clusterStatus());
  },
};
