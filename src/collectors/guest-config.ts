// Guest sizing and settings from the guest configs the exporter already fetches and caches for
// the config collector (one shared call per guest per --pve.config-cache-ttl, none extra): vCPU
// cores and sockets, configured memory and balloon minimum, protection, agent, creation time.
// Values, not labels: one series per guest and setting, whatever the values are.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { GuestWithConfig } from '../pve/session.ts';
import { PartialFailure, byTypeAndVmid, type ScrapeCollector } from './types.ts';

const LABELS = ['id', 'node', 'type'];
const CORES = gauge('pve_guest_cpu_cores', 'CPU cores per socket in the guest config (QEMU default 1; LXC only when limited)', LABELS);
const SOCKETS = gauge('pve_guest_cpu_sockets', 'CPU sockets in the QEMU guest config (default 1)', LABELS);
const MEMORY = gauge('pve_guest_memory_configured_bytes', 'Memory in the guest config (default 512 MiB)', LABELS);
const BALLOON = gauge('pve_guest_balloon_min_bytes', 'Balloon minimum in the QEMU guest config (0 = balloon device off; no series when not set)', LABELS);
const PROTECTION = gauge('pve_guest_protection', 'Whether the guest is protected against removal (1) or not (0)', LABELS);
const AGENT = gauge('pve_guest_agent_enabled', 'Whether the QEMU guest agent is enabled in the config (1) or not (0)', LABELS);
const CREATED = gauge('pve_guest_created_timestamp_seconds', 'Unix time the QEMU guest was created (ctime of its meta property; no series when absent)', LABELS);

const MIB = 1024 * 1024;
/** PVE's defaults for keys a config does not set (qemu-server and pve-container schemas). */
const DEFAULT_MEMORY_MIB = 512;
const DEFAULT_QEMU_CORES = 1;
const DEFAULT_QEMU_SOCKETS = 1;

export function buildGuestConfig(guests: readonly GuestWithConfig[]): MetricFamily[] {
  const f = {
    cores: new MetricFamily(CORES),
    sockets: new MetricFamily(SOCKETS),
    memory: new MetricFamily(MEMORY),
    balloon: new MetricFamily(BALLOON),
    protection: new MetricFamily(PROTECTION),
    agent: new MetricFamily(AGENT),
    created: new MetricFamily(CREATED),
  };
  const ordered = [...guests].sort(byTypeAndVmid);
  for (const g of ordered) {
    const labels = [`${g.type}/${g.vmid}`, g.node, g.type];
    const c = g.fields;
    if (g.type === 'qemu') {
      f.cores.add(labels, c.cores ?? DEFAULT_QEMU_CORES);
      f.sockets.add(labels, c.sockets ?? DEFAULT_QEMU_SOCKETS);
      if (c.balloonMiB !== undefined) f.balloon.add(labels, c.balloonMiB * MIB);
      f.agent.add(labels, c.agent ? 1 : 0);
      if (c.createdAt !== undefined) f.created.add(labels, c.createdAt);
    } else if (c.cores !== undefined) {
      f.cores.add(labels, c.cores);
    }
    f.memory.add(labels, (c.memoryMiB ?? DEFAULT_MEMORY_MIB) * MIB);
    f.protection.add(labels, c.protection ?? 0);
  }
  return Object.values(f);
}

export const guestConfigCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'guest-config',
  scope: 'node',
  defaultEnabled: true,
  origin: 'addition',
  description:
    'Cores, sockets, configured memory, balloon minimum, protection, agent and creation time of every guest on the answering node, from the cached guest configs (no calls beyond the config collector\'s).',
  endpoints: [
    { path: '/nodes/{node}/qemu/{vmid}/config', privilege: 'VM.Audit on /vms/{vmid} (shared with the config collector, cached)', cost: 'guest' },
    { path: '/nodes/{node}/lxc/{vmid}/config', privilege: 'VM.Audit on /vms/{vmid} (shared with the config collector, cached)', cost: 'guest' },
    { path: '/nodes/{node}/qemu', privilege: 'VM.Audit on /vms/{vmid} (other guests are left out); node-scope-only scrapes', cost: 'node' },
    { path: '/nodes/{node}/lxc', privilege: 'VM.Audit on /vms/{vmid} (other guests are left out); node-scope-only scrapes', cost: 'node' },
    { path: '/cluster/resources', privilege: 'none (guests filtered by VM.Audit); instead of the two lists when the cluster scope reads it anyway', cost: 'cluster' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  families: [CORES, SOCKETS, MEMORY, BALLOON, PROTECTION, AGENT, CREATED],
  async collect(s) {
    const node = (await s.localNode()).name;
    const result = await s.guestConfigs(node);
    const families = buildGuestConfig(result.guests);
    if (result.failures.length > 0) throw PartialFailure.ofCalls(families, result.failures, 'guest config', '/nodes/{node}/{type}/{vmid}/config');
    return families;
  },
};
