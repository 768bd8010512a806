// The data a simulated cluster serves, and the live "view" on top of it: guests started or
// stopped, nodes taken offline, and which node answers a request. Both sources (the scenarios
// of reference/pve-api and the generated clusters) produce the same ClusterModel, so every
// dynamic behaviour is written once, against PVE's own JSON shapes.

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}
/** A complete PVE response body: {"data": ...} plus top-level extras such as "total". */
export type ApiBody = JsonObject & { data: Json };

export type GuestType = 'qemu' | 'lxc';
export type GuestStatus = 'running' | 'stopped';

/** An error answer, as PVE gives it: status, text (reason phrase = first line), optional errors. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: { errors?: Record<string, string>; emptyBody?: boolean } = {},
  ) {
    super(message);
  }
}

export interface GuestRef {
  vmid: number;
  node: string;
  type: GuestType;
}

export interface ClusterModel {
  /** null on a standalone node (no type=cluster entry). */
  clusterName: string | null;
  /** The node with `local: 1` in the stored /cluster/status (answers on 127.0.0.1). */
  localNode: string;
  /** Members as listed in /cluster/status (the only valid {node} values). */
  nodes: string[];
  /** Members the stored data already shows offline (proxied calls to them answer 595). */
  offlineInData: string[];
  guests: Map<number, GuestRef>;
  /** Concrete API path (no query) -> body or the error PVE gives for it. */
  bodies: Map<string, ApiBody | ApiError>;
}

/** The mutable state the Simulator API changes at run time. */
export interface LiveState {
  guestStatus: Map<number, GuestStatus>;
  /** Nodes taken offline with offlineNodes/setNodeOffline (their data gets transformed). */
  offline: Set<string>;
  /** Nodes answering 595 for proxied calls (dynamic offline + offline in the data). */
  unreachable: Set<string>;
  /** With loopbackNodes: node -> 127.0.0.x. */
  nodeAddresses: Map<string, string>;
  /** Storages made unavailable with setStorageAvailable: storage -> nodes. */
  storageUnavailable: Map<string, Set<string>>;
}

export function isJsonObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function objectEntries(value: Json | undefined): JsonObject[] {
  return Array.isArray(value) ? value.filter(isJsonObject) : [];
}

/** True when nothing was changed at run time, so stored bodies can be served as they are. */
function hasGuestOrNodeChanges(state: LiveState): boolean {
  return state.guestStatus.size > 0 || state.offline.size > 0 || state.storageUnavailable.size > 0;
}

// ---------------------------------------------------------------------------------------------
// /cluster/status
// ---------------------------------------------------------------------------------------------

/** Marks the answering node local, offline nodes offline and, with loopbackNodes, swaps in the
 *  loopback addresses (so service discovery from /cluster/status can reach every node). */
export function viewClusterStatus(body: ApiBody, answering: string, state: LiveState): ApiBody {
  const entries = objectEntries(body.data).map((entry) => {
    if (entry.type !== 'node' || typeof entry.name !== 'string') return entry;
    const out: JsonObject = { ...entry, local: entry.name === answering ? 1 : 0 };
    if (state.offline.has(entry.name)) out.online = 0;
    const address = state.nodeAddresses.get(entry.name);
    if (address !== undefined) out.ip = address;
    return out;
  });
  if (state.offline.size > 0) recomputeQuorum(entries);
  return { ...body, data: entries };
}

/** Corosync needs a strict majority of votes for quorum. */
function recomputeQuorum(entries: JsonObject[]): void {
  const nodes = entries.filter((e) => e.type === 'node');
  const online = nodes.filter((e) => e.online === 1).length;
  const cluster = entries.find((e) => e.type === 'cluster');
  if (cluster !== undefined) cluster.quorate = online * 2 > nodes.length ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// /cluster/resources
// ---------------------------------------------------------------------------------------------

export const RESOURCE_TYPE_FILTERS = ['vm', 'storage', 'node', 'sdn'] as const;
export type ResourceTypeFilter = (typeof RESOURCE_TYPE_FILTERS)[number];

export function isResourceTypeFilter(value: string): value is ResourceTypeFilter {
  return (RESOURCE_TYPE_FILTERS as readonly string[]).includes(value);
}

export function filterResources(body: ApiBody, type: ResourceTypeFilter): ApiBody {
  const wanted = type === 'vm' ? ['qemu', 'lxc'] : [type];
  const data = objectEntries(body.data).filter((e) => typeof e.type === 'string' && wanted.includes(e.type));
  return { ...body, data };
}

export function viewResources(body: ApiBody, state: LiveState): ApiBody {
  if (!hasGuestOrNodeChanges(state)) return body;
  const entries = objectEntries(body.data).map((entry) => viewResourceEntry(entry, state));
  return { ...body, data: recomputePools(entries) };
}

function viewResourceEntry(entry: JsonObject, state: LiveState): JsonObject {
  const node = typeof entry.node === 'string' ? entry.node : undefined;
  const offline = node !== undefined && state.offline.has(node);
  switch (entry.type) {
    case 'node':
      return offline ? offlineNodeEntry(entry) : entry;
    case 'qemu':
    case 'lxc':
      if (offline) return unknownGuestEntry(entry);
      return withGuestStatus(entry, 'resource', state);
    case 'storage': {
      const down = typeof entry.storage === 'string' && node !== undefined && state.storageUnavailable.get(entry.storage)?.has(node) === true;
      return down || (offline && entry.shared === 0) ? unknownStorageEntry(entry) : entry;
    }
    default:
      return entry;
  }
}

/** Like the pve3_offline_entries variant: the RRD still knows sizes, but no usage. */
function offlineNodeEntry(entry: JsonObject): JsonObject {
  const out: JsonObject = { id: entry.id, node: entry.node, type: 'node', status: 'offline' };
  for (const key of ['level', 'maxcpu', 'maxmem', 'maxdisk', 'cgroup-mode'] as const) {
    if (key in entry) out[key] = entry[key];
  }
  if ('hastate' in entry) out.hastate = 'unknown';
  return out;
}

/** A guest without fresh RRD data: PVE only knows where its config lives. */
function unknownGuestEntry(entry: JsonObject): JsonObject {
  return { id: entry.id, vmid: entry.vmid, node: entry.node, type: entry.type, status: 'unknown' };
}

function unknownStorageEntry(entry: JsonObject): JsonObject {
  const { disk: _disk, maxdisk: _maxdisk, ...rest } = entry;
  return { ...rest, status: 'unknown' };
}

/** Pool numbers are sums over running members (maxcpu-weighted cpu); PVE drops them when no
 *  member runs. Recomputed only after run-time changes, so stored examples stay byte-exact. */
export function recomputePools(entries: JsonObject[]): JsonObject[] {
  const members = new Map<string, JsonObject[]>();
  for (const e of entries) {
    if ((e.type === 'qemu' || e.type === 'lxc') && typeof e.pool === 'string' && e.status === 'running') {
      const list = members.get(e.pool) ?? [];
      list.push(e);
      members.set(e.pool, list);
    }
  }
  return entries.map((e) => (e.type === 'pool' && typeof e.pool === 'string' ? poolEntry(e, members.get(e.pool) ?? []) : e));
}

export function poolEntry(pool: JsonObject, running: JsonObject[]): JsonObject {
  const base: JsonObject = { id: pool.id, pool: pool.pool, type: 'pool' };
  if (running.length === 0) return base;
  const num = (e: JsonObject, key: string): number => (typeof e[key] === 'number' ? (e[key] as number) : 0);
  const maxcpu = running.reduce((s, e) => s + num(e, 'maxcpu'), 0);
  const weightedCpu = running.reduce((s, e) => s + num(e, 'cpu') * num(e, 'maxcpu'), 0);
  return {
    ...base,
    uptime: Math.max(...running.map((e) => num(e, 'uptime'))),
    mem: running.reduce((s, e) => s + num(e, 'mem'), 0),
    maxmem: running.reduce((s, e) => s + num(e, 'maxmem'), 0),
    cpu: maxcpu > 0 ? weightedCpu / maxcpu : 0,
    maxcpu,
  };
}

// ---------------------------------------------------------------------------------------------
// Guests: lists, status/current
// ---------------------------------------------------------------------------------------------

/** Where a guest entry comes from; each place shows a stopped guest a little differently. */
export type GuestEntryKind = 'resource' | 'list' | 'current';

export function viewGuestList(body: ApiBody, type: GuestType, state: LiveState): ApiBody {
  if (state.guestStatus.size === 0) return body;
  return { ...body, data: objectEntries(body.data).map((e) => withGuestStatus(e, 'list', state, type)) };
}

export function viewGuestCurrent(body: ApiBody, type: GuestType, state: LiveState): ApiBody {
  if (state.guestStatus.size === 0 || !isJsonObject(body.data)) return body;
  return { ...body, data: withGuestStatus(body.data, 'current', state, type) };
}

function withGuestStatus(entry: JsonObject, kind: GuestEntryKind, state: LiveState, type?: GuestType): JsonObject {
  const wanted = typeof entry.vmid === 'number' ? state.guestStatus.get(entry.vmid) : undefined;
  if (wanted === undefined || entry.status === wanted || entry.status === 'unknown') return entry;
  const guestType = type ?? (entry.type === 'lxc' ? 'lxc' : 'qemu');
  return wanted === 'stopped' ? stoppedGuestEntry(entry, kind, guestType) : runningGuestEntry(entry, kind, guestType);
}

const USAGE_KEYS = ['uptime', 'cpu', 'mem', 'memhost', 'netin', 'netout', 'diskread', 'diskwrite', 'swap'];
/** Keys that only exist while the guest process (and its QMP socket) is alive. */
const LIVE_ONLY_KEYS = ['pid', 'blockstat', 'nics', 'running-machine', 'running-qemu', 'proxmox-support', 'ballooninfo', 'freemem', 'balloon'];

function stoppedGuestEntry(entry: JsonObject, kind: GuestEntryKind, type: GuestType): JsonObject {
  const out: JsonObject = { ...entry, status: 'stopped' };
  for (const key of USAGE_KEYS) if (key in out) out[key] = 0;
  // QEMU reports no disk usage at all; a stopped container's rootfs is not mounted.
  if ('disk' in out) out.disk = 0;
  for (const key of Object.keys(out)) {
    if (LIVE_ONLY_KEYS.includes(key) || key.startsWith('pressure')) delete out[key];
  }
  if (kind === 'current' && type === 'qemu') {
    // diskread/diskwrite of a VM come from QMP blockstats, which a stopped VM does not have.
    delete out.diskread;
    delete out.diskwrite;
    out.qmpstatus = 'stopped';
  }
  return out;
}

/** A guest started at run time: small, plausible, deterministic usage numbers. */
function runningGuestEntry(entry: JsonObject, kind: GuestEntryKind, type: GuestType): JsonObject {
  const vmid = typeof entry.vmid === 'number' ? entry.vmid : 0;
  const maxmem = typeof entry.maxmem === 'number' ? entry.maxmem : 512 * 1024 * 1024;
  const maxdisk = typeof entry.maxdisk === 'number' ? entry.maxdisk : 0;
  const guestMem = Math.round(maxmem * 0.25);
  const out: JsonObject = { ...entry, status: 'running', uptime: 60, cpu: 0.01 };
  const hostMem = Math.round(maxmem * 0.3);
  out.mem = kind === 'list' && type === 'qemu' ? hostMem : guestMem;
  if ('memhost' in out) out.memhost = type === 'qemu' ? hostMem : 0;
  if ('netin' in out) out.netin = 1_000_000 + vmid;
  if ('netout' in out) out.netout = 2_000_000 + vmid;
  if (type === 'lxc' || kind === 'resource' || (kind === 'current' && type === 'qemu')) {
    out.diskread = 10_000_000 + vmid;
    out.diskwrite = 20_000_000 + vmid;
  }
  if (type === 'lxc' && 'disk' in out) out.disk = Math.round(maxdisk * 0.1);
  if (kind !== 'resource') out.pid = 100_000 + vmid;
  if (kind === 'current' && type === 'qemu') out.qmpstatus = 'running';
  return out;
}

// ---------------------------------------------------------------------------------------------
// HA status: the quorum entry names the answering node
// ---------------------------------------------------------------------------------------------

export function viewHaCurrent(body: ApiBody, answering: string): ApiBody {
  const data = objectEntries(body.data).map((e) => (e.type === 'quorum' ? { ...e, node: answering } : e));
  return { ...body, data };
}

export function viewHaManagerStatus(body: ApiBody, answering: string): ApiBody {
  if (!isJsonObject(body.data) || !isJsonObject(body.data.quorum)) return body;
  return { ...body, data: { ...body.data, quorum: { ...body.data.quorum, node: answering } } };
}
