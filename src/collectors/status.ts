import { MetricFamily, gauge } from '../exposition/family.ts';
import type { ClusterResource, ClusterStatusEntry } from '../pve/types.ts';
import type { ScrapeCollector } from './types.ts';

const UP = gauge('pve_up', 'Node/VM/CT-Status is online/running', ['id']);

/** Nodes and the cluster from /cluster/status; guests and storages from /cluster/resources. */
export function buildStatus(status: ClusterStatusEntry[], resources: ClusterResource[]): MetricFamily[] {
  const up = new MetricFamily(UP);
  for (const e of status) {
    if (e.type === 'cluster') up.add([`cluster/${e.name}`], Number(e.quorate) === 1 ? 1 : 0);
    else if (e.type === 'node') up.add([`node/${e.name}`], Number(e.online) === 1 ? 1 : 0);
  }
  for (const r of resources) {
    if (r.type === 'qemu' || r.type === 'lxc') up.add1(r.id, r.status === 'running' ? 1 : 0);
  }
  for (const r of resources) {
    if (r.type === 'storage') up.add1(r.id, r.status === 'available' ? 1 : 0);
  }
  return [up];
}

export const statusCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'status',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'reference',
  description: 'Up/down of the cluster (quorate), nodes (online), guests (running) and storages (available).',
  endpoints: [
    { path: '/cluster/status', privilege: 'Sys.Audit on /', cost: 'cluster' },
    { path: '/cluster/resources', privilege: 'none (entries filtered by VM.Audit / Datastore.Audit)', cost: 'cluster' },
  ],
  families: [UP],
  async collect(s) {
    const [status, resources] = await Promise.all([s.clusterStatus(), s.resources()]);
    return buildStatus(status, resources);
  },
};
