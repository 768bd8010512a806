import { MetricFamily, gauge } from '../exposition/family.ts';
import type { GuestOnboot } from '../pve/session.ts';
import { PartialFailure, byTypeAndVmid, type ScrapeCollector } from './types.ts';

const ONBOOT = gauge('pve_onboot_status', 'Proxmox vm config onboot value', ['id', 'node', 'type']);

/** Only guests whose config carries an onboot key get a series (as the reference). */
export function buildOnboot(guests: readonly GuestOnboot[]): MetricFamily[] {
  const fam = new MetricFamily(ONBOOT);
  const ordered = [...guests].sort(byTypeAndVmid);
  for (const g of ordered) {
    if (g.onboot !== undefined) fam.add([`${g.type}/${g.vmid}`, g.node, g.type], g.onboot);
  }
  return [fam];
}

export const configCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'config',
  scope: 'node',
  defaultEnabled: true,
  origin: 'reference',
  description:
    'The onboot setting of every guest on the answering node (one config call per guest, cached for --pve.config-cache-ttl).',
  endpoints: [
    { path: '/nodes/{node}/qemu/{vmid}/config', privilege: 'VM.Audit on /vms/{vmid}', cost: 'guest' },
    { path: '/nodes/{node}/lxc/{vmid}/config', privilege: 'VM.Audit on /vms/{vmid}', cost: 'guest' },
    { path: '/nodes/{node}/qemu', privilege: 'VM.Audit on /vms/{vmid} (other guests are left out); node-scope-only scrapes', cost: 'node' },
    { path: '/nodes/{node}/lxc', privilege: 'VM.Audit on /vms/{vmid} (other guests are left out); node-scope-only scrapes', cost: 'node' },
    { path: '/cluster/resources', privilege: 'none (guests filtered by VM.Audit); instead of the two lists when the cluster scope reads it anyway', cost: 'cluster' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  families: [ONBOOT],
  async collect(s) {
    const node = (await s.localNode()).name;
    const result = await s.guestOnboot(node);
    const families = buildOnboot(result.guests);
    // Series for the guests that did answer are still worth having; the failure is reported.
    if (result.failures.length > 0) throw PartialFailure.ofCalls(families, result.failures, 'guest config', '/nodes/{node}/{type}/{vmid}/config');
    return families;
  },
};
