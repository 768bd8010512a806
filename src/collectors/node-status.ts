// Node metrics of the answering node from /nodes/{node}/status: load, iowait, swap, root
// filesystem (shared names with node-metrics), and what only this endpoint has: memory
// available, KSM sharing, CPU model and counts, kernel and PVE versions.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { NodeStatus } from '../pve/types.ts';
import {
  NODE_IOWAIT,
  NODE_LOAD1,
  NODE_LOAD15,
  NODE_LOAD5,
  NODE_ROOTFS_SIZE,
  NODE_ROOTFS_USED,
  NODE_SWAP_SIZE,
  NODE_SWAP_USED,
  SHARED_NODE_FAMILIES,
} from './node-families.ts';
import { numberValue, type ScrapeCollector } from './types.ts';

const ROOTFS_AVAIL = gauge('pve_node_rootfs_available_bytes', 'Space of the node\'s root filesystem available to unprivileged users', ['id']);
const MEM_AVAILABLE = gauge('pve_node_memory_available_bytes', 'Memory available for new work on the node (MemAvailable; PVE 9 and later)', ['id']);
const KSM_SHARED = gauge('pve_node_ksm_shared_bytes', 'Memory merged by kernel samepage merging (KSM) on the node', ['id']);
const CPU_INFO = gauge('pve_node_cpu_info', 'CPU model and counts of the node (1)', ['id', 'model', 'sockets', 'cores', 'cpus']);
const VERSION_INFO = gauge('pve_node_version_info', 'Running kernel release and pve-manager version of the node (1)', ['id', 'kernel', 'pve_manager']);

/** "Linux 6.17.2-1-pve #1 SMP ..." -> "6.17.2-1-pve" (PVE before 8.1 has no current-kernel). */
export function kernelRelease(s: NodeStatus): string {
  const release = s['current-kernel']?.release;
  if (typeof release === 'string' && release !== '') return release;
  const m = /^\S+\s+(\S+)/.exec(s.kversion ?? '');
  return m ? m[1] : '';
}

/** "pve-manager/9.1.1/42db4a6cf33dac83" -> "9.1.1" */
export function managerVersion(pveversion: string | undefined): string {
  const m = /^pve-manager\/([^/]+)/.exec(pveversion ?? '');
  return m ? m[1] : (pveversion ?? '');
}

function addIf(fam: MetricFamily, id: string, v: unknown): void {
  if (v === undefined || v === null || v === '') return;
  const n = numberValue(v);
  if (Number.isFinite(n)) fam.add1(id, n);
}

export function buildNodeStatus(node: string, s: NodeStatus): MetricFamily[] {
  const id = `node/${node}`;
  const load = s.loadavg ?? [];
  const fams = {
    load1: new MetricFamily(NODE_LOAD1),
    load5: new MetricFamily(NODE_LOAD5),
    load15: new MetricFamily(NODE_LOAD15),
    iowait: new MetricFamily(NODE_IOWAIT),
    swapSize: new MetricFamily(NODE_SWAP_SIZE),
    swapUsed: new MetricFamily(NODE_SWAP_USED),
    rootSize: new MetricFamily(NODE_ROOTFS_SIZE),
    rootUsed: new MetricFamily(NODE_ROOTFS_USED),
  };
  addIf(fams.load1, id, load[0]);
  addIf(fams.load5, id, load[1]);
  addIf(fams.load15, id, load[2]);
  addIf(fams.iowait, id, s.wait);
  addIf(fams.swapSize, id, s.swap?.total);
  addIf(fams.swapUsed, id, s.swap?.used);
  addIf(fams.rootSize, id, s.rootfs?.total);
  addIf(fams.rootUsed, id, s.rootfs?.used);
  const avail = new MetricFamily(ROOTFS_AVAIL);
  addIf(avail, id, s.rootfs?.avail);
  const memAvail = new MetricFamily(MEM_AVAILABLE);
  addIf(memAvail, id, s.memory?.available);
  const ksm = new MetricFamily(KSM_SHARED);
  addIf(ksm, id, s.ksm?.shared);
  const cpu = new MetricFamily(CPU_INFO);
  const ci = s.cpuinfo;
  if (ci) cpu.add([id, String(ci.model ?? ''), String(ci.sockets ?? ''), String(ci.cores ?? ''), String(ci.cpus ?? '')], 1);
  const version = new MetricFamily(VERSION_INFO).add([id, kernelRelease(s), managerVersion(s.pveversion)], 1);
  return [...Object.values(fams), avail, memAvail, ksm, cpu, version];
}

export const nodeStatusCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'node-status',
  scope: 'node',
  defaultEnabled: true,
  origin: 'addition',
  description:
    'Load 1/5/15, CPU iowait, swap, root filesystem, memory available, KSM sharing, CPU model and counts, kernel and pve-manager version of the answering node.',
  endpoints: [
    { path: '/nodes/{node}/status', privilege: 'Sys.Audit on /nodes/{node}', cost: 'node' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  families: [...SHARED_NODE_FAMILIES, ROOTFS_AVAIL, MEM_AVAILABLE, KSM_SHARED, CPU_INFO, VERSION_INFO],
  async collect(s) {
    const node = (await s.localNode()).name;
    return buildNodeStatus(node, await s.nodeStatus(node));
  },
};
