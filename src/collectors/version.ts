import { familyWithLabels, gauge, type MetricFamily } from '../exposition/family.ts';
import type { VersionInfo } from '../pve/types.ts';
import type { ScrapeCollector } from './types.ts';

/** Labels are the keys PVE returns out of these three (older releases may lack one). */
const VERSION_KEYS = ['release', 'repoid', 'version'];
const VERSION = gauge('pve_version_info', 'Proxmox VE version info', VERSION_KEYS);

export function buildVersion(v: VersionInfo): MetricFamily[] {
  const keys = VERSION_KEYS.filter((k) => v[k] !== undefined);
  const fam = familyWithLabels(VERSION, keys);
  fam.add(keys.map((k) => String(v[k])), 1);
  return [fam];
}

export const versionCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'version',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'reference',
  description: 'The PVE release of the answering node.',
  endpoints: [{ path: '/version', privilege: 'none (any authenticated user or token)', cost: 'cluster' }],
  families: [VERSION],
  async collect(s) {
    return buildVersion(await s.version());
  },
};
