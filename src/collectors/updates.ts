// Pending package updates of the answering node from /nodes/{node}/apt/update (the list of the
// last "apt update", refreshed daily by pve-daily-update). The call needs Sys.Modify, which no
// read-only role has, so the collector is off by default.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { AptUpdate } from '../pve/types.ts';
import type { ScrapeCollector } from './types.ts';

const PENDING = gauge('pve_node_updates_pending', 'Packages with an upgrade available on the node (from the last apt update)', ['node']);
const PENDING_BY_ORIGIN = gauge('pve_node_updates_pending_by_origin', 'Packages with an upgrade available on the node, by repository origin (Proxmox, Debian, ...)', ['node', 'origin']);

export function buildUpdates(node: string, updates: readonly AptUpdate[]): MetricFamily[] {
  const byOrigin = new Map<string, number>();
  for (const u of updates) {
    const origin = typeof u.Origin === 'string' && u.Origin !== '' ? u.Origin : 'unknown';
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + 1);
  }
  const origins = new MetricFamily(PENDING_BY_ORIGIN);
  for (const [origin, n] of [...byOrigin].sort((a, b) => (a[0] < b[0] ? -1 : 1))) origins.add2(node, origin, n);
  return [new MetricFamily(PENDING).add([node], updates.length), origins];
}

export const updatesCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'updates',
  scope: 'node',
  defaultEnabled: false,
  origin: 'addition',
  offReason: 'the call needs Sys.Modify on /nodes/{node}, which no read-only role (PVEAuditor) has; grant a custom role with Sys.Modify to use it.',
  description: 'Number of packages with an upgrade available on the answering node (cached).',
  endpoints: [
    { path: '/nodes/{node}/apt/update', privilege: 'Sys.Modify on /nodes/{node}', cost: 'node' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  cacheTtl: 3600,
  families: [PENDING, PENDING_BY_ORIGIN],
  async collect(s) {
    const node = (await s.localNode()).name;
    return buildUpdates(node, await s.aptUpdates(node));
  },
};
