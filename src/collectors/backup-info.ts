import { MetricFamily, gauge } from '../exposition/family.ts';
import type { NotBackedUpGuest } from '../pve/types.ts';
import type { ScrapeCollector } from './types.ts';

// The reference names this gauge *_total; kept for compatibility (promtool flags it).
const TOTAL = gauge('pve_not_backed_up_total', 'Total number of guests not covered by any backup job.', ['id']);
const INFO = gauge('pve_not_backed_up_info', 'Present if guest is not covered by any backup job.', ['id']);

export function buildBackupInfo(clusterName: string, guests: NotBackedUpGuest[]): MetricFamily[] {
  const total = new MetricFamily(TOTAL).add([`cluster/${clusterName}`], guests.length);
  const info = new MetricFamily(INFO);
  for (const g of guests) info.add([`${g.type}/${g.vmid}`], 1);
  return [total, info];
}

export const backupInfoCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'backup-info',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'reference',
  description: 'Guests that no backup job covers.',
  endpoints: [
    { path: '/cluster/backup-info/not-backed-up', privilege: 'Sys.Audit on /', cost: 'cluster' },
    { path: '/cluster/status', privilege: 'Sys.Audit on /', cost: 'cluster' },
  ],
  families: [TOTAL, INFO],
  async collect(s) {
    const [name, guests] = await Promise.all([s.clusterName(), s.notBackedUp()]);
    return buildBackupInfo(name, guests);
  },
};
