// Generated clusters of any size. Every number is derived from a seeded generator keyed by the
// entity (node name, vmid), so a guest looks the same whatever the cluster size, two runs give
// identical bodies, and /cluster/resources, the guest lists, status/current, configs, storages,
// pools, replication and backup coverage all agree with each other.
import { createHash } from 'node:crypto';
import type { GeneratedCluster } from './types.ts';
import { ApiError, poolEntry, type ApiBody, type ClusterModel, type GuestRef, type GuestType, type Json, type JsonObject } from './model.ts';
import type { EndpointFiles } from './pve-data.ts';

/** "Now" of the reference data (2025-12-06T05:46:40Z); generated timestamps are relative to it. */
const NOW = 1765000000;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const ROLES = ['web', 'db', 'app', 'cache', 'ci', 'mail'];
const POOLS = ['production', 'staging', 'lab'];
const SUBSCRIPTION_URL = 'https://www.proxmox.com/en/proxmox-virtual-environment/pricing';
/** The loopback simulator certificate has SANs for 127.0.0.10..74, hence at most 64 nodes there. */
export const MAX_LOOPBACK_NODES = 64;

interface GenNode {
  name: string;
  nodeid: number;
  ip: string;
  level: '' | 'c';
  maxcpu: number;
  cpu: number;
  maxmem: number;
  mem: number;
  maxdisk: number;
  disk: number;
  uptime: number;
}

interface GenGuest {
  vmid: number;
  node: string;
  type: GuestType;
  name: string;
  running: boolean;
  template: boolean;
  maxcpu: number;
  maxmem: number;
  maxdisk: number;
  /** Memory as the guest sees it (resources, status/current). */
  guestMem: number;
  /** Memory the host spends on it (cgroup; QEMU list "mem" and "memhost"). */
  hostMem: number;
  disk: number;
  cpu: number;
  uptime: number;
  netin: number;
  netout: number;
  diskread: number;
  diskwrite: number;
  storage: string;
  pool?: string;
  tags?: string;
  hastate?: 'started' | 'stopped';
  lock?: string;
  onboot?: 0 | 1;
  agent: boolean;
  backedUp: boolean;
}

interface GenStorage {
  storage: string;
  plugintype: string;
  content: string;
  shared: 0 | 1;
  /** node -> [maxdisk, disk] */
  usage: Map<string, [number, number]>;
}

interface GenReplicationJob {
  id: string;
  guest: GenGuest;
  target: string;
  failing: boolean;
  ordinal: number;
}

interface Generated {
  name: string;
  nodes: GenNode[];
  guests: GenGuest[];
  storages: GenStorage[];
  jobs: GenReplicationJob[];
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------

/** FNV-1a, to turn an entity key into a 32-bit seed. */
function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32: small, fast and good enough for test data. */
function seededRandom(key: string): () => number {
  let state = hashKey(key);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pickFrom<T>(rng: () => number, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)];
}

function roundTo(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function hex(value: number, width: number): string {
  return value.toString(16).toUpperCase().padStart(width, '0');
}

// ---------------------------------------------------------------------------------------------
// Entities
// ---------------------------------------------------------------------------------------------

function generate(spec: GeneratedCluster): Generated {
  if (!Number.isInteger(spec.nodes) || spec.nodes < 1) throw new Error('simulator: generated.nodes must be an integer >= 1');
  if (!Number.isInteger(spec.guestsPerNode) || spec.guestsPerNode < 0) {
    throw new Error('simulator: generated.guestsPerNode must be an integer >= 0');
  }
  const nodes = Array.from({ length: spec.nodes }, (_, i) => generateNode(i + 1));
  const storages = generateStorages(nodes, spec.storagesPerNode ?? 2);
  const guests = nodes.flatMap((node, i) =>
    Array.from({ length: spec.guestsPerNode }, (_, j) => generateGuest(node, 100 + i * spec.guestsPerNode + j, j, storages)),
  );
  settleNodeMemory(nodes, guests);
  settleStorageUsage(nodes, storages, guests);
  const jobs = generateReplicationJobs(nodes, guests, spec.guestsPerNode, spec.replicationJobsPerNode ?? 1);
  return { name: spec.name ?? 'gen', nodes, guests, storages, jobs };
}

function generateNode(index: number): GenNode {
  const name = `pve${index}`;
  const rng = seededRandom(`node:${name}`);
  const maxcpu = pickFrom(rng, [16, 32, 48, 64]);
  const maxdisk = 100861726720;
  return {
    name,
    nodeid: index,
    ip: `10.${Math.floor(index / 250)}.0.${10 + (index % 250)}`,
    // Every fourth node runs without a subscription, like pve3 of the reference cluster.
    level: index % 4 === 0 ? '' : 'c',
    maxcpu,
    cpu: roundTo(0.02 + rng() * 0.3, 7),
    maxmem: 0,
    mem: 0,
    maxdisk,
    disk: Math.round(maxdisk * (0.1 + rng() * 0.1)),
    uptime: 2_000_000 + Math.floor(rng() * 2_000_000),
  };
}

/** "local" (dir) on every node, then one shared RBD pool, then node-local pools. */
function generateStorages(nodes: GenNode[], extra: number): GenStorage[] {
  const local: GenStorage = { storage: 'local', plugintype: 'dir', content: 'vztmpl,iso,backup', shared: 0, usage: new Map() };
  const others: GenStorage[] = [];
  for (let k = 0; k < extra; k++) {
    if (k === 0) others.push({ storage: 'ceph-vm', plugintype: 'rbd', content: 'rootdir,images', shared: 1, usage: new Map() });
    else if (k === 1) others.push({ storage: 'local-lvm', plugintype: 'lvmthin', content: 'rootdir,images', shared: 0, usage: new Map() });
    else if (k === 2) others.push({ storage: 'tank', plugintype: 'zfspool', content: 'images,rootdir', shared: 0, usage: new Map() });
    else others.push({ storage: `data${k}`, plugintype: 'lvmthin', content: 'rootdir,images', shared: 0, usage: new Map() });
  }
  for (const node of nodes) local.usage.set(node.name, [node.maxdisk, node.disk]);
  return [local, ...others];
}

function generateGuest(node: GenNode, vmid: number, j: number, storages: GenStorage[]): GenGuest {
  const rng = seededRandom(`guest:${vmid}`);
  const type: GuestType = j % 2 === 0 ? 'qemu' : 'lxc';
  const role = ROLES[(j >> 1) % ROLES.length];
  const template = type === 'qemu' && j % 40 === 6;
  const running = !template && j % 10 !== 4 && j % 10 !== 9;
  const maxcpu = pickFrom(rng, type === 'qemu' ? [1, 2, 4, 8] : [1, 2, 4]);
  const maxmem = pickFrom(rng, type === 'qemu' ? [1, 2, 4, 8] : [0.5, 1, 2]) * GiB;
  const maxdisk = pickFrom(rng, [8, 16, 32, 64]) * GiB;
  const guestMem = running ? Math.round(maxmem * (0.2 + rng() * 0.6)) : 0;
  const hostMem = running && type === 'qemu' ? guestMem + 256 * MiB : guestMem;
  const shared = storages.find((s) => s.shared === 1);
  const thin = storages.find((s) => s.storage === 'local-lvm');
  const storage = (type === 'qemu' && j % 4 === 0 ? shared : thin)?.storage ?? 'local';
  const haIndex = j % 40;
  const guest: GenGuest = {
    vmid,
    node: node.name,
    type,
    name: type === 'qemu' ? `${role}-${vmid}` : `${role}-ct${vmid}`,
    running,
    template,
    maxcpu,
    maxmem,
    maxdisk,
    guestMem,
    hostMem,
    disk: running && type === 'lxc' ? Math.round(maxdisk * (0.1 + rng() * 0.5)) : 0,
    cpu: running ? roundTo(rng() * 0.3, 7) : 0,
    uptime: running ? Math.floor(node.uptime * (0.2 + rng() * 0.8)) : 0,
    netin: running ? Math.floor(rng() * 1e11) : 0,
    netout: running ? Math.floor(rng() * 1e11) : 0,
    diskread: running ? Math.floor(rng() * 1e11) : 0,
    diskwrite: running ? Math.floor(rng() * 1e11) : 0,
    storage,
    agent: type === 'qemu' && (j >> 1) % 2 === 1, // half of the VMs
    // A seventh of the guests is excluded from the backup job.
    backedUp: j % 7 !== 3,
  };
  if (j % 5 === 0) guest.pool = POOLS[(node.nodeid + j / 5) % POOLS.length];
  if (j % 3 === 0) guest.tags = [role, 'prod'].sort().join(';');
  else if (j % 3 === 1) guest.tags = role;
  if (type === 'qemu' && !template && haIndex === 0) guest.hastate = 'started';
  if (type === 'qemu' && !template && haIndex === 14) guest.hastate = 'stopped';
  if (j % 50 === 12) guest.lock = 'backup';
  if (j % 50 === 27) guest.lock = 'snapshot';
  const pair = j >> 1;
  if (pair % 2 === 0) guest.onboot = 1;
  else if (pair % 10 === 3) guest.onboot = 0;
  return guest;
}

/** Host memory = base system + what running guests use; RAM sized with headroom. */
function settleNodeMemory(nodes: GenNode[], guests: GenGuest[]): void {
  for (const node of nodes) {
    const used = guests.filter((g) => g.node === node.name).reduce((s, g) => s + g.hostMem, 6 * GiB);
    node.mem = used;
    node.maxmem = Math.max(node.maxcpu * 4 * GiB, Math.ceil((used * 1.4) / (64 * GiB)) * 64 * GiB);
  }
}

/** Pools other than "local" hold the guests' disks (thin-provisioned: allocation = 40%). */
function settleStorageUsage(nodes: GenNode[], storages: GenStorage[], guests: GenGuest[]): void {
  for (const s of storages) {
    if (s.storage === 'local') continue;
    const onIt = guests.filter((g) => g.storage === s.storage);
    if (s.shared === 1) {
      const used = onIt.reduce((sum, g) => sum + Math.round(g.maxdisk * 0.4), 0);
      const size = Math.max(2 * 1024 * GiB, Math.ceil((used * 2) / (1024 * GiB)) * 1024 * GiB);
      for (const node of nodes) s.usage.set(node.name, [size, used]);
      continue;
    }
    for (const node of nodes) {
      const used = onIt.filter((g) => g.node === node.name).reduce((sum, g) => sum + Math.round(g.maxdisk * 0.4), 0);
      const size = Math.max(1024 * GiB, Math.ceil((used * 2) / (256 * GiB)) * 256 * GiB);
      s.usage.set(node.name, [size, used]);
    }
  }
}

/** Job r of node i replicates the r-th container of that node to the next node. */
function generateReplicationJobs(nodes: GenNode[], guests: GenGuest[], perNode: number, jobsPerNode: number): GenReplicationJob[] {
  if (nodes.length < 2) return [];
  const jobs: GenReplicationJob[] = [];
  nodes.forEach((node, i) => {
    for (let r = 0; r < jobsPerNode; r++) {
      const j = 2 * r + 1;
      if (j >= perNode) break;
      const guest = guests[i * perNode + j];
      jobs.push({ id: `${guest.vmid}-0`, guest, target: nodes[(i + 1) % nodes.length].name, failing: (i + r) % 5 === 4, ordinal: r });
    }
  });
  return jobs;
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

export function buildGeneratedModel(spec: GeneratedCluster, files: EndpointFiles): ClusterModel {
  const gen = generate(spec);
  const standalone = gen.nodes.length === 1;
  const bodies = new Map<string, ApiBody | ApiError>();
  const set = (path: string, data: Json, extra: JsonObject = {}): void => {
    bodies.set(path, { data, ...extra });
  };
  const example = (template: string): ApiBody | undefined => files.get(template)?.example;

  set('/version', example('/version')?.data ?? { release: '9.1', repoid: '42db4a6cf33dac83', version: '9.1.1' });
  set('/cluster/status', clusterStatus(gen, standalone));
  set('/cluster/resources', clusterResources(gen));
  set('/cluster/backup', backupJobs(gen));
  set('/cluster/backup-info/not-backed-up', notBackedUp(gen));
  set('/cluster/config/qdevice', gen.nodes.length % 2 === 0 ? (example('/cluster/config/qdevice')?.data ?? {}) : {});
  set('/cluster/ha/status/current', haCurrent(gen));
  set('/cluster/ha/status/manager_status', haManagerStatus(gen));
  set('/cluster/tasks', gen.nodes.flatMap((n) => nodeTasks(n).map((t) => ({ ...t, saved: '1' }))));
  const ceph = example('/cluster/ceph/status');
  // Ceph needs three monitors; smaller clusters answer like a node without Ceph.
  const cephInstalled = gen.nodes.length >= 3 && ceph !== undefined;
  bodies.set('/cluster/ceph/status', cephInstalled ? ceph : new ApiError(500, 'binary not installed: /usr/bin/ceph-mon\n'));

  for (const node of gen.nodes) addNodeBodies(gen, node, set, example);
  for (const guest of gen.guests) addGuestBodies(guest, set, example);
  for (const job of gen.jobs) set(`/nodes/${job.guest.node}/replication/${job.id}/status`, replicationEntry(job));

  const guests = new Map<number, GuestRef>(gen.guests.map((g) => [g.vmid, { vmid: g.vmid, node: g.node, type: g.type }]));
  return {
    clusterName: standalone ? null : gen.name,
    localNode: gen.nodes[0].name,
    nodes: gen.nodes.map((n) => n.name),
    offlineInData: [],
    guests,
    bodies,
  };
}

type SetBody = (path: string, data: Json, extra?: JsonObject) => void;
type ExampleOf = (template: string) => ApiBody | undefined;

function clusterStatus(gen: Generated, standalone: boolean): JsonObject[] {
  const nodeEntries: JsonObject[] = gen.nodes.map((n, i) => ({
    type: 'node',
    id: `node/${n.name}`,
    name: n.name,
    nodeid: standalone ? 0 : n.nodeid,
    ip: n.ip,
    local: i === 0 ? 1 : 0,
    online: 1,
    level: n.level,
  }));
  if (standalone) return nodeEntries;
  return [{ type: 'cluster', id: 'cluster', name: gen.name, nodes: gen.nodes.length, version: 3, quorate: 1 }, ...nodeEntries];
}

/** Order as PVE: pools, guests (vmid sorted as strings), nodes, storages, network. */
function clusterResources(gen: Generated): JsonObject[] {
  const guestEntries = [...gen.guests]
    .sort((a, b) => (String(a.vmid) < String(b.vmid) ? -1 : 1))
    .map(guestResource);
  const pools = POOLS.filter((p) => gen.guests.some((g) => g.pool === p)).map((pool) =>
    poolEntry(
      { id: `/pool/${pool}`, pool },
      guestEntries.filter((e) => e.pool === pool && e.status === 'running'),
    ),
  );
  const nodeEntries = gen.nodes.map(nodeResource);
  const storageEntries = gen.storages.flatMap((s) => gen.nodes.map((n) => storageResource(s, n.name)));
  const networkEntries = gen.nodes.map((n) => ({
    id: `network/${n.name}/zone/localnetwork`,
    type: 'network',
    'network-type': 'zone',
    network: 'localnetwork',
    node: n.name,
    status: 'ok',
  }));
  return [...pools, ...guestEntries, ...nodeEntries, ...storageEntries, ...networkEntries];
}

function guestResource(g: GenGuest): JsonObject {
  const entry: JsonObject = {
    id: `${g.type}/${g.vmid}`,
    vmid: g.vmid,
    node: g.node,
    type: g.type,
    status: g.running ? 'running' : 'stopped',
    name: g.name,
    uptime: g.uptime,
    template: g.template ? 1 : 0,
    maxcpu: g.maxcpu,
    cpu: g.cpu,
    maxmem: g.maxmem,
    mem: g.guestMem,
    maxdisk: g.maxdisk,
    disk: g.disk,
    netin: g.netin,
    netout: g.netout,
    diskread: g.diskread,
    diskwrite: g.diskwrite,
    memhost: g.type === 'qemu' ? g.hostMem : 0,
  };
  if (g.pool !== undefined) entry.pool = g.pool;
  if (g.tags !== undefined) entry.tags = g.tags;
  if (g.lock !== undefined) entry.lock = g.lock;
  if (g.hastate !== undefined) entry.hastate = g.hastate;
  return entry;
}

function nodeResource(n: GenNode): JsonObject {
  return {
    id: `node/${n.name}`,
    node: n.name,
    type: 'node',
    status: 'online',
    level: n.level,
    uptime: n.uptime,
    cpu: n.cpu,
    maxcpu: n.maxcpu,
    mem: n.mem,
    maxmem: n.maxmem,
    disk: n.disk,
    maxdisk: n.maxdisk,
    'cgroup-mode': 2,
    hastate: 'online',
  };
}

function storageResource(s: GenStorage, node: string): JsonObject {
  const [maxdisk, disk] = s.usage.get(node) ?? [0, 0];
  return {
    id: `storage/${node}/${s.storage}`,
    storage: s.storage,
    node,
    type: 'storage',
    plugintype: s.plugintype,
    status: 'available',
    shared: s.shared,
    content: s.content,
    maxdisk,
    disk,
  };
}

function backupJobs(gen: Generated): JsonObject[] {
  const excluded = gen.guests.filter((g) => !g.backedUp).map((g) => g.vmid);
  const job: JsonObject = {
    id: 'backup-5e1f0c2a-7b3d',
    type: 'vzdump',
    schedule: '02:30',
    enabled: 1,
    all: 1,
    storage: 'local',
    mode: 'snapshot',
    compress: 'zstd',
    'notification-mode': 'notification-system',
    'prune-backups': { 'keep-daily': '7', 'keep-weekly': '4' },
    'next-run': NOW - (NOW % 86400) + 86400 + 9000,
  };
  if (excluded.length > 0) job.exclude = excluded.join(',');
  return [job];
}

function notBackedUp(gen: Generated): JsonObject[] {
  return gen.guests.filter((g) => !g.backedUp).map((g) => ({ vmid: g.vmid, type: g.type, name: g.name }));
}

const HA_TIME = 'Sat Dec  6 05:46:37 2025';

function haCurrent(gen: Generated): JsonObject[] {
  const local = gen.nodes[0].name;
  const managed = gen.guests.filter((g) => g.hastate !== undefined);
  const entries: JsonObject[] = [{ id: 'quorum', type: 'quorum', node: local, status: 'OK', quorate: 1 }];
  if (managed.length === 0) return entries;
  entries.push({ id: 'master', type: 'master', node: local, status: `${local} (active, ${HA_TIME})`, timestamp: NOW - 3 });
  for (const n of gen.nodes) {
    const active = managed.some((g) => g.node === n.name);
    const status = `${n.name} (${active ? 'active' : 'idle'}, ${HA_TIME})`;
    entries.push({ id: `lrm:${n.name}`, type: 'lrm', node: n.name, status, timestamp: NOW - 2 });
  }
  for (const g of managed) {
    const state = g.hastate ?? 'started';
    entries.push({
      id: `service:vm:${g.vmid}`,
      type: 'service',
      sid: `vm:${g.vmid}`,
      node: g.node,
      crm_state: state,
      state,
      status: `vm:${g.vmid} (${g.node}, ${state})`,
      request_state: state,
      max_restart: 1,
      max_relocate: 1,
      failback: 1,
    });
  }
  return entries;
}

function haManagerStatus(gen: Generated): JsonObject {
  const local = gen.nodes[0].name;
  const managed = gen.guests.filter((g) => g.hastate !== undefined);
  const quorum = { node: local, quorate: 1 };
  if (managed.length === 0) return { manager_status: {}, quorum };
  const uid = (vmid: number): string => createHash('sha1').update(`ha:${vmid}`).digest('base64url').slice(0, 22);
  return {
    manager_status: {
      master_node: local,
      node_status: Object.fromEntries(gen.nodes.map((n) => [n.name, 'online'])),
      service_status: Object.fromEntries(
        managed.map((g) => {
          const state = g.hastate ?? 'started';
          return [`vm:${g.vmid}`, { node: g.node, running: state === 'started' ? 1 : 0, state, uid: uid(g.vmid) }];
        }),
      ),
      timestamp: NOW - 3,
    },
    quorum,
    lrm_status: Object.fromEntries(
      gen.nodes.map((n) => {
        const active = managed.some((g) => g.node === n.name);
        return [n.name, { mode: 'active', results: {}, state: active ? 'active' : 'wait_for_agent_lock', timestamp: NOW - 2 }];
      }),
    ),
  };
}

function addNodeBodies(gen: Generated, node: GenNode, set: SetBody, example: ExampleOf): void {
  const base = `/nodes/${node.name}`;
  const onNode = gen.guests.filter((g) => g.node === node.name);
  set(`${base}/status`, nodeStatus(node, example('/nodes/{node}/status')?.data));
  set(`${base}/subscription`, subscription(node));
  set(`${base}/storage`, gen.storages.map((s) => nodeStorage(s, node.name)));
  set(`${base}/qemu`, onNode.filter((g) => g.type === 'qemu').map(qemuListEntry));
  set(`${base}/lxc`, onNode.filter((g) => g.type === 'lxc').map(lxcListEntry));
  set(`${base}/replication`, gen.jobs.filter((j) => j.guest.node === node.name).map(replicationEntry));
  const tasks = nodeTasks(node);
  set(`${base}/tasks`, tasks, { total: tasks.length });
  set(`${base}/disks/list`, healthyDisks(example('/nodes/{node}/disks/list')?.data));
  set(`${base}/disks/zfs`, zpools(gen, node));
  set(`${base}/certificates/info`, renameNode(example('/nodes/{node}/certificates/info')?.data ?? [], node.name));
  set(`${base}/apt/update`, example('/nodes/{node}/apt/update')?.data ?? []);
}

/** The reference node status with this node's numbers (memory.used = total - available). */
function nodeStatus(n: GenNode, template: Json | undefined): JsonObject {
  const rng = seededRandom(`status:${n.name}`);
  const load = (): string => (rng() * 2).toFixed(2);
  const tpl = typeof template === 'object' && template !== null && !Array.isArray(template) ? template : {};
  const cpuinfo = typeof tpl.cpuinfo === 'object' && tpl.cpuinfo !== null && !Array.isArray(tpl.cpuinfo) ? tpl.cpuinfo : {};
  const available = n.maxmem - n.mem;
  const rootfsFree = n.maxdisk - n.disk;
  return {
    ...tpl,
    uptime: n.uptime,
    idle: 0,
    loadavg: [load(), load(), load()],
    cpu: n.cpu,
    wait: roundTo(rng() * 0.002, 5),
    cpuinfo: { ...cpuinfo, cpus: n.maxcpu, cores: n.maxcpu / 2, sockets: n.maxcpu > 32 ? 2 : 1 },
    memory: { total: n.maxmem, free: Math.round(available * 0.4), available, used: n.mem },
    swap: { total: 8589930496, free: 8589930496, used: 0 },
    ksm: { shared: 0 },
    rootfs: { total: n.maxdisk, used: n.disk, free: rootfsFree, avail: rootfsFree - Math.round(n.maxdisk * 0.05) },
  };
}

function subscription(n: GenNode): JsonObject {
  const serverid = createHash('md5').update(`server:${n.name}`).digest('hex').toUpperCase();
  if (n.level === '') return { status: 'notfound', message: 'There is no subscription key', url: SUBSCRIPTION_URL, serverid };
  return {
    status: 'active',
    checktime: NOW - 36000,
    key: `pve1c-${serverid.slice(0, 10).toLowerCase()}`,
    level: n.level,
    nextduedate: '2026-03-01',
    productname: 'Proxmox VE Community Subscription 1 CPU/year',
    regdate: '2025-03-01 00:00:00',
    serverid,
    sockets: 1,
    url: SUBSCRIPTION_URL,
  };
}

function nodeStorage(s: GenStorage, node: string): JsonObject {
  const [total, used] = s.usage.get(node) ?? [0, 0];
  return {
    storage: s.storage,
    type: s.plugintype,
    content: s.content,
    shared: s.shared,
    enabled: 1,
    active: 1,
    total,
    used,
    avail: total - used,
    used_fraction: total > 0 ? used / total : 0,
  };
}

function qemuListEntry(g: GenGuest): JsonObject {
  const entry: JsonObject = {
    vmid: g.vmid,
    name: g.name,
    status: g.running ? 'running' : 'stopped',
    cpus: g.maxcpu,
    maxmem: g.maxmem,
    maxdisk: g.maxdisk,
    disk: 0,
    uptime: g.uptime,
    cpu: g.cpu,
    // PVE 9 without "full": the cgroup usage, same as memhost.
    mem: g.hostMem,
    netin: g.netin,
    netout: g.netout,
    memhost: g.hostMem,
  };
  addOptionalGuestKeys(entry, g);
  if (g.running) {
    entry.pid = 10000 + g.vmid;
    Object.assign(entry, pressure(g, (v) => v));
  }
  return entry;
}

function lxcListEntry(g: GenGuest): JsonObject {
  const entry: JsonObject = {
    vmid: g.vmid,
    type: 'lxc',
    name: g.name,
    status: g.running ? 'running' : 'stopped',
    cpus: g.maxcpu,
    maxmem: g.maxmem,
    mem: g.guestMem,
    maxswap: 512 * MiB,
    swap: 0,
    maxdisk: g.maxdisk,
    disk: g.disk,
    uptime: g.uptime,
    cpu: g.cpu,
    netin: g.netin,
    netout: g.netout,
    diskread: g.diskread,
    diskwrite: g.diskwrite,
  };
  addOptionalGuestKeys(entry, g);
  if (g.running) {
    entry.pid = 10000 + g.vmid;
    // Containers copy the cgroup pressure files verbatim: strings, not numbers.
    Object.assign(entry, pressure(g, (v) => v.toFixed(2)));
  }
  return entry;
}

function addOptionalGuestKeys(entry: JsonObject, g: GenGuest): void {
  if (g.tags !== undefined) entry.tags = g.tags;
  if (g.template) entry.template = 1;
  if (g.lock !== undefined) entry.lock = g.lock;
}

function pressure(g: GenGuest, format: (value: number) => Json): JsonObject {
  const rng = seededRandom(`pressure:${g.vmid}`);
  const some = roundTo(rng() * 2, 2);
  const io = roundTo(rng() * 3, 2);
  return {
    pressurecpusome: format(some),
    pressurecpufull: format(roundTo(some * 0.8, 2)),
    pressureiosome: format(io),
    pressureiofull: format(roundTo(io * 0.9, 2)),
    pressurememorysome: format(0),
    pressurememoryfull: format(0),
  };
}

function addGuestBodies(g: GenGuest, set: SetBody, example: ExampleOf): void {
  const base = `/nodes/${g.node}/${g.type}/${g.vmid}`;
  set(`${base}/config`, g.type === 'qemu' ? qemuConfig(g) : lxcConfig(g));
  set(`${base}/status/current`, g.type === 'qemu' ? qemuCurrent(g) : { ...lxcListEntry(g), ha: haOf(g) });
  if (g.type === 'qemu') {
    set(`${base}/agent/get-fsinfo`, example('/nodes/{node}/qemu/{vmid}/agent/get-fsinfo')?.data ?? { result: [] });
  }
}

function haOf(g: GenGuest): JsonObject {
  return g.hastate === undefined ? { managed: 0 } : { managed: 1, group: null, state: g.hastate };
}

function qemuCurrent(g: GenGuest): JsonObject {
  const entry: JsonObject = { ...qemuListEntry(g), mem: g.guestMem, ha: haOf(g), qmpstatus: g.running ? 'running' : 'stopped' };
  if (g.agent) entry.agent = 1;
  if (g.running) {
    entry['running-machine'] = 'pc-i440fx-10.0+pve0';
    entry['running-qemu'] = '10.0.2';
    entry.diskread = g.diskread;
    entry.diskwrite = g.diskwrite;
  }
  return entry;
}

function macOf(vmid: number): string {
  return `BC:24:11:${hex((vmid >> 16) & 0xff, 2)}:${hex((vmid >> 8) & 0xff, 2)}:${hex(vmid & 0xff, 2)}`;
}

/** Only keys that are set appear, as in a real config; "digest" is the SHA-1 of the file. */
function withConfigKeys(config: JsonObject, g: GenGuest): JsonObject {
  if (g.onboot !== undefined) config.onboot = g.onboot;
  if (g.tags !== undefined) config.tags = g.tags;
  if (g.lock !== undefined) config.lock = g.lock;
  if (g.template) config.template = 1;
  config.digest = createHash('sha1').update(JSON.stringify(config)).digest('hex');
  return config;
}

function qemuConfig(g: GenGuest): JsonObject {
  const config: JsonObject = {
    boot: 'order=scsi0;net0',
    cores: g.maxcpu,
    cpu: 'x86-64-v2-AES',
    // PVE 8.1+ serialises memory as a string property.
    memory: String(g.maxmem / MiB),
    name: g.name,
    net0: `virtio=${macOf(g.vmid)},bridge=vmbr0`,
    ostype: 'l26',
    scsi0: `${g.storage}:vm-${g.vmid}-disk-0,size=${g.maxdisk / GiB}G`,
    scsihw: 'virtio-scsi-single',
    sockets: 1,
  };
  if (g.agent) config.agent = '1';
  return withConfigKeys(config, g);
}

function lxcConfig(g: GenGuest): JsonObject {
  return withConfigKeys(
    {
      arch: 'amd64',
      cores: g.maxcpu,
      hostname: g.name,
      memory: g.maxmem / MiB,
      net0: `name=eth0,bridge=vmbr0,hwaddr=${macOf(g.vmid)},ip=dhcp,type=veth`,
      ostype: 'debian',
      rootfs: `${g.storage}:subvol-${g.vmid}-disk-0,size=${g.maxdisk / GiB}G`,
      swap: 512,
      unprivileged: 1,
    },
    g,
  );
}

function replicationEntry(job: GenReplicationJob): JsonObject {
  const entry: JsonObject = {
    id: job.id,
    type: 'local',
    guest: job.guest.vmid,
    jobnum: 0,
    target: job.target,
    source: job.guest.node,
    schedule: '*/15',
    vmtype: job.guest.type,
    last_sync: job.failing ? NOW - 86400 : NOW - 600,
    last_try: job.failing ? NOW - 480 : NOW - 600,
    fail_count: job.failing ? 3 : 0,
    duration: roundTo(1.2 + job.ordinal * 0.37 + (job.guest.vmid % 7) * 0.11, 6),
    next_sync: job.failing ? NOW + 1320 : NOW + 300,
  };
  if (job.failing) entry.error = `storage 'local-lvm' is not available on node '${job.target}'`;
  return entry;
}

function upid(node: string, pid: number, start: number, type: string, id: string): string {
  return `UPID:${node}:${hex(pid, 8)}:${hex(pid * 7, 8)}:${hex(start, 8)}:${type}:${id}:root@pam:`;
}

/** A few finished tasks per node, newest first (the default source=archive view). */
function nodeTasks(n: GenNode): JsonObject[] {
  const pid = 100000 + n.nodeid * 1000;
  const task = (offset: number, type: string, id: string, duration: number, status: string): JsonObject => {
    const start = NOW - offset;
    return {
      upid: upid(n.name, pid + offset, start, type, id),
      node: n.name,
      pid: pid + offset,
      pstart: (pid + offset) * 7,
      starttime: start,
      type,
      id,
      user: 'root@pam',
      endtime: start + duration,
      status,
    };
  };
  return [
    task(900, 'vzdump', '', 420, n.nodeid % 5 === 0 ? 'job errors' : 'OK'),
    task(5400, 'aptupdate', '', 12, 'OK'),
    task(88000, 'vzdump', '', 400, 'OK'),
  ];
}

/** Generated nodes have healthy disks; the reference data's failing disk stays in the scenarios. */
function healthyDisks(template: Json | undefined): Json {
  if (!Array.isArray(template)) return [];
  return template.map((d) => (typeof d === 'object' && d !== null && !Array.isArray(d) ? { ...d, health: 'PASSED' } : d));
}

/**
 * Every generated node boots from a ZFS mirror (rpool, the PVE installer's ZFS layout, sized like
 * its root filesystem), so the zfs collector has a pool on every node; a zfspool storage adds its
 * own pool.
 */
function zpools(gen: Generated, node: GenNode): JsonObject[] {
  const rpoolSize = Math.round(node.maxdisk * 1.05);
  const rpoolAlloc = node.disk;
  const pools: JsonObject[] = [
    { name: 'rpool', size: rpoolSize, alloc: rpoolAlloc, free: rpoolSize - rpoolAlloc, frag: 2 + (node.nodeid % 5), dedup: 1, health: 'ONLINE' },
  ];
  const tank = gen.storages.find((s) => s.plugintype === 'zfspool');
  const usage = tank?.usage.get(node.name);
  if (tank === undefined || usage === undefined) return pools;
  const size = Math.round(usage[0] * 1.03);
  pools.push({ name: tank.storage, size, alloc: usage[1], free: size - usage[1], frag: 1 + (node.nodeid % 9), dedup: 1, health: 'ONLINE' });
  return pools;
}

/** The reference certificates name pve1; give each node its own names. */
function renameNode(data: Json, node: string): Json {
  return JSON.parse(JSON.stringify(data).replace(/\bpve1\b/g, node)) as Json;
}
