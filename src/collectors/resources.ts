import { MetricFamily, counter, gauge, type FamilySpec } from '../exposition/family.ts';
import type { ClusterResource } from '../pve/types.ts';
import { labelValue, numberValue, type ScrapeCollector } from './types.ts';

const GUEST_TYPES = "(for types 'qemu' and 'lxc')";
const NET_TX = `The amount of traffic in bytes that was sent from the guest over the network since it was started. ${GUEST_TYPES}`;
const NET_RX = `The amount of traffic in bytes that was sent to the guest over the network since it was started. ${GUEST_TYPES}`;
const DISK_W = `The amount of bytes the guest wrote to its block devices since the guest was started. This info is not available for all storage types. ${GUEST_TYPES}`;
const DISK_R = `The amount of bytes the guest read from its block devices since the guest was started. This info is not available for all storage types. ${GUEST_TYPES}`;

/** Resource key -> family, in the reference's output order. Any entry having the key contributes. */
const VALUE_FAMILIES: ReadonlyArray<readonly [string, FamilySpec]> = [
  ['maxdisk', gauge('pve_disk_size_bytes', "Storage size in bytes (for type 'storage'), root image size for VMs (for types 'qemu' and 'lxc').", ['id'])],
  ['disk', gauge('pve_disk_usage_bytes', "Used disk space in bytes (for type 'storage'), used root image space for VMs (for types 'qemu' and 'lxc').", ['id'])],
  ['maxmem', gauge('pve_memory_size_bytes', "Number of available memory in bytes (for types 'node', 'qemu' and 'lxc').", ['id'])],
  ['mem', gauge('pve_memory_usage_bytes', "Used memory in bytes (for types 'node', 'qemu' and 'lxc').", ['id'])],
  ['netout', gauge('pve_network_transmit_bytes', `${NET_TX} DEPRECATED: Use pve_network_transmit_bytes_total instead.`, ['id'])],
  ['netin', gauge('pve_network_receive_bytes', `${NET_RX} DEPRECATED: Use pve_network_receive_bytes_total instead.`, ['id'])],
  ['diskwrite', gauge('pve_disk_write_bytes', `${DISK_W} DEPRECATED: Use pve_disk_written_bytes_total instead.`, ['id'])],
  ['diskread', gauge('pve_disk_read_bytes', `${DISK_R} DEPRECATED: Use pve_disk_read_bytes_total instead.`, ['id'])],
  ['cpu', gauge('pve_cpu_usage_ratio', "CPU utilization (for types 'node', 'qemu' and 'lxc').", ['id'])],
  ['maxcpu', gauge('pve_cpu_usage_limit', "Number of available CPUs (for types 'node', 'qemu' and 'lxc').", ['id'])],
  ['uptime', gauge('pve_uptime_seconds', "Uptime of node or virtual guest in seconds (for types 'node', 'qemu' and 'lxc').", ['id'])],
  ['shared', gauge('pve_storage_shared', 'Whether or not the storage is shared among cluster nodes', ['id'])],
  ['netout', counter('pve_network_transmit_bytes_total', NET_TX, ['id'])],
  ['netin', counter('pve_network_receive_bytes_total', NET_RX, ['id'])],
  ['diskwrite', counter('pve_disk_written_bytes_total', DISK_W, ['id'])],
  ['diskread', counter('pve_disk_read_bytes_total', DISK_R, ['id'])],
];

const HA_STATE = gauge('pve_ha_state', 'HA service status (for HA managed VMs).', ['id', 'state']);
const LOCK_STATE = gauge('pve_lock_state', "The guest's current config lock (for types 'qemu' and 'lxc')", ['id', 'state']);
const GUEST_INFO = gauge('pve_guest_info', 'VM/CT info', ['id', 'node', 'name', 'type', 'template', 'tags']);
const STORAGE_INFO = gauge('pve_storage_info', 'Storage info', ['id', 'node', 'storage', 'plugintype', 'content']);

/** One-hot state sets, as the reference exposes them (a series per state, 1 for the current one). */
export const GUEST_HA_STATES = [
  'stopped',
  'request_stop',
  'request_start',
  'request_start_balance',
  'started',
  'fence',
  'recovery',
  'migrate',
  'relocate',
  'freeze',
  'error',
] as const;
export const NODE_HA_STATES = ['online', 'maintenance', 'unknown', 'fence', 'gone'] as const;
export const LOCK_STATES = [
  'backup',
  'clone',
  'create',
  'migrate',
  'rollback',
  'snapshot',
  'snapshot-delete',
  'suspended',
  'suspending',
] as const;

function addOneHot(fam: MetricFamily, id: string, states: readonly string[], current: string | undefined): void {
  for (let i = 0; i < states.length; i++) fam.add2(id, states[i], states[i] === current ? 1 : 0);
}

const VALUE_KEYS = VALUE_FAMILIES.map(([key]) => key);

export function buildResources(resources: ClusterResource[]): MetricFamily[] {
  // Plain index loops: destructuring [key, family] pairs per resource and key was most of the
  // garbage of a 2,000-guest scrape (an iterator and its results per pair).
  // Each family's arrays are allocated once at their final size (MetricFamily.reserve).
  let guests = 0;
  let nodes = 0;
  for (let ri = 0; ri < resources.length; ri++) {
    const t = resources[ri].type;
    if (t === 'qemu' || t === 'lxc') guests++;
    else if (t === 'node') nodes++;
  }
  const families = VALUE_FAMILIES.map(([, spec]) => new MetricFamily(spec).reserve(resources.length));
  const ha = new MetricFamily(HA_STATE).reserve(guests * GUEST_HA_STATES.length + nodes * NODE_HA_STATES.length);
  const lock = new MetricFamily(LOCK_STATE).reserve(guests * LOCK_STATES.length);
  const guestInfo = new MetricFamily(GUEST_INFO).reserve(guests);
  const storageInfo = new MetricFamily(STORAGE_INFO);
  for (let ri = 0; ri < resources.length; ri++) {
    const r = resources[ri];
    for (let k = 0; k < VALUE_KEYS.length; k++) {
      const v = r[VALUE_KEYS[k]];
      if (v !== undefined) families[k].add1(r.id, numberValue(v));
    }
    if (r.type === 'qemu' || r.type === 'lxc') {
      addOneHot(ha, r.id, GUEST_HA_STATES, r.hastate);
      addOneHot(lock, r.id, LOCK_STATES, r.lock);
      guestInfo.add([r.id, labelValue(r.node), labelValue(r.name), r.type, labelValue(r.template), labelValue(r.tags)], 1);
    } else if (r.type === 'node') {
      addOneHot(ha, r.id, NODE_HA_STATES, r.hastate);
    } else if (r.type === 'storage') {
      // PVE's content order is not stable between calls; sorted, the label does not churn.
      const content = (r.content ?? '').split(',').filter(Boolean).sort().join(',');
      storageInfo.add([r.id, labelValue(r.node), labelValue(r.storage), labelValue(r.plugintype), content], 1);
    }
  }
  return [...families, ha, lock, guestInfo, storageInfo];
}

export const resourcesCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'resources',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'reference',
  description: 'Usage, limits, I/O counters, HA and lock state and info of every node, guest, storage and pool.',
  endpoints: [{ path: '/cluster/resources', privilege: 'none (entries filtered by VM.Audit, Datastore.Audit, Pool.Audit, Sys.Audit)', cost: 'cluster' }],
  families: [...VALUE_FAMILIES.map(([, spec]) => spec), HA_STATE, LOCK_STATE, GUEST_INFO, STORAGE_INFO],
  async collect(s) {
    return buildResources(await s.resources());
  },
};
