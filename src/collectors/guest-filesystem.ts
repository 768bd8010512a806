// Filesystem usage inside running VMs, from the QEMU guest agent (guest-get-fsinfo): the one
// place PVE knows how full a VM's disks are (pve_disk_usage_bytes is always 0 for VMs). It costs
// one call per running VM with the agent enabled, so the answers are cached per guest for the
// collector's TTL, fetched under the client's concurrency cap with a short per-call timeout; a
// guest whose agent does not answer shows as pve_guest_agent_up 0 and the collector still succeeds.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { PveSession } from '../pve/session.ts';
import type { GuestFsInfo } from '../pve/types.ts';
import { forEachLimited } from './limited.ts';
import { PartialFailure, numberValue, type ScrapeCollector } from './types.ts';

/** What one guest's fsinfo call gave: the agent's answer, or the agent did not answer. */
export type AgentFsOutcome =
  | { readonly id: string; readonly up: true; readonly fsinfo: GuestFsInfo }
  | { readonly id: string; readonly up: false; readonly reason: string };

const AGENT_UP = gauge(
  'pve_guest_agent_up',
  'Whether the QEMU guest agent of a running VM with the agent enabled answered guest-get-fsinfo (1) or not (0).',
  ['id'],
);
const FS_SIZE = gauge(
  'pve_guest_filesystem_size_bytes',
  'Size of a filesystem inside a VM as its guest agent reports it (used + available to non-root), bytes.',
  ['id', 'mountpoint', 'type'],
);
const FS_USED = gauge('pve_guest_filesystem_used_bytes', 'Used bytes of a filesystem inside a VM as its guest agent reports it.', ['id', 'mountpoint', 'type']);

export const GUEST_FILESYSTEM_FAMILIES = [AGENT_UP, FS_SIZE, FS_USED];

/**
 * One series per guest and mount point. Entries without byte counts (agents before 3.0, statvfs
 * failed) are left out, and a mount point listed twice keeps its first entry (the agent lists
 * the last mounted first, which is the one visible at that path).
 */
export function buildGuestFilesystems(outcomes: readonly AgentFsOutcome[]): MetricFamily[] {
  const up = new MetricFamily(AGENT_UP);
  const size = new MetricFamily(FS_SIZE);
  const used = new MetricFamily(FS_USED);
  const ordered = [...outcomes].sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
  for (const o of ordered) {
    up.add1(o.id, o.up ? 1 : 0);
    if (!o.up) continue;
    const seen = new Set<string>();
    for (const fs of Array.isArray(o.fsinfo.result) ? o.fsinfo.result : []) {
      const total = fs['total-bytes'];
      const usedBytes = fs['used-bytes'];
      if (total === undefined || usedBytes === undefined) continue;
      // Windows volumes without a drive letter have an empty mount point: their name stands in.
      const mountpoint = fs.mountpoint || fs.name || '';
      if (mountpoint === '' || seen.has(mountpoint)) continue;
      seen.add(mountpoint);
      const labels = [o.id, mountpoint, fs.type ?? ''];
      size.add(labels, numberValue(total));
      used.add(labels, numberValue(usedBytes));
    }
  }
  return [up, size, used];
}

/**
 * Per-call timeout of get-fsinfo, ms. PVE itself gives up on a silent agent after its 3 s
 * guest-ping; a little more lets its answer arrive, and a hung call frees its connection of the
 * concurrency cap soon (and, cached, is not retried before the TTL).
 */
export const AGENT_CALL_TIMEOUT_MS = 4000;

/** Agent calls in flight at once per scrape (the pool has --pve.concurrency connections, default 8). */
export const AGENT_CALLS_IN_FLIGHT = 4;

async function collectGuestFilesystems(s: PveSession): Promise<MetricFamily[]> {
  const node = (await s.localNode()).name;
  const [resources, configs] = await Promise.all([s.resources(), s.guestConfigs(node)]);
  const running = new Set(
    resources.filter((r) => r.type === 'qemu' && r.node === node && r.status === 'running' && !Number(r.template)).map((r) => r.vmid),
  );
  const agentGuests = configs.guests.filter((g) => g.type === 'qemu' && g.fields.agent && running.has(g.vmid));
  const outcomes: AgentFsOutcome[] = [];
  const failures: unknown[] = [];
  await forEachLimited(agentGuests, AGENT_CALLS_IN_FLIGHT, s.ctx.signal, async (g) => {
    const id = `qemu/${g.vmid}`;
    try {
      const a = await s.guestFsInfo(node, g.vmid, AGENT_CALL_TIMEOUT_MS);
      outcomes.push(a.up ? { id, up: true, fsinfo: a.fsinfo } : { id, up: false, reason: a.reason });
    } catch (err) {
      failures.push(err);
    }
  });
  s.retainGuestFsInfo(new Set(agentGuests.map((g) => `qemu/${g.vmid}`)));
  const families = buildGuestFilesystems(outcomes);
  if (failures.length > 0) throw PartialFailure.ofCalls(families, failures, 'get-fsinfo', '/nodes/{node}/qemu/{vmid}/agent/get-fsinfo');
  return families;
}

export const guestFilesystemCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'guest-filesystem',
  scope: 'node',
  defaultEnabled: false,
  origin: 'addition',
  offReason:
    'one get-fsinfo call per running VM with the agent enabled (cached for the TTL); PVE 9 needs VM.GuestAgent.Audit (in PVEAuditor), PVE 7 and 8 need VM.Monitor, which PVEAuditor lacks.',
  description:
    'Filesystem size and usage inside running VMs of the answering node whose config enables the QEMU guest agent, and whether each agent answered (per-call timeout 4 s).',
  endpoints: [
    {
      path: '/nodes/{node}/qemu/{vmid}/agent/get-fsinfo',
      privilege: 'VM.GuestAgent.Audit on /vms/{vmid} (PVE 9; in PVEAuditor), VM.Monitor on /vms/{vmid} (PVE 7 and 8; not in PVEAuditor)',
      cost: 'guest',
    },
    { path: '/nodes/{node}/qemu/{vmid}/config', privilege: 'VM.Audit on /vms/{vmid} (the agent setting; shared config cache)', cost: 'guest' },
    { path: '/cluster/resources', privilege: 'none (guests filtered by VM.Audit)', cost: 'cluster' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  cacheTtl: 300,
  families: GUEST_FILESYSTEM_FAMILIES,
  collect: collectGuestFilesystems,
};
