// Allocation against capacity from /cluster/resources (already fetched for the resources
// collector: no extra call): the vCPUs and memory assigned to running guests per node and for
// the cluster, next to what the online nodes have. Overcommit is allocated / capacity; the
// per-node capacity is also the reference's pve_cpu_usage_limit / pve_memory_size_bytes.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { ClusterResource } from '../pve/types.ts';
import { numberValue, type ScrapeCollector } from './types.ts';

const NODE_VCPUS = gauge('pve_node_vcpus_allocated', 'vCPUs assigned to the running guests of the node', ['id']);
const NODE_MEMORY = gauge('pve_node_memory_allocated_bytes', 'Memory assigned to the running guests of the node (their configured maximum)', ['id']);
const CLUSTER_VCPUS = gauge('pve_cluster_vcpus_allocated', 'vCPUs assigned to the running guests of the cluster', ['id']);
const CLUSTER_MEMORY = gauge('pve_cluster_memory_allocated_bytes', 'Memory assigned to the running guests of the cluster (their configured maximum)', ['id']);
const CLUSTER_CPUS = gauge('pve_cluster_cpus', 'Logical CPUs of the online nodes of the cluster', ['id']);
const CLUSTER_MEMORY_SIZE = gauge('pve_cluster_memory_size_bytes', 'Memory of the online nodes of the cluster', ['id']);

function n(v: unknown): number {
  const x = numberValue(v);
  return Number.isFinite(x) ? x : 0;
}

export function buildAllocation(clusterName: string, resources: readonly ClusterResource[]): MetricFamily[] {
  const perNode = new Map<string, { vcpus: number; memory: number }>();
  let cpus = 0;
  let memory = 0;
  for (const r of resources) {
    if (r.type === 'node' && typeof r.node === 'string') {
      if (!perNode.has(r.node)) perNode.set(r.node, { vcpus: 0, memory: 0 });
      if (r.status === 'online') {
        cpus += n(r.maxcpu);
        memory += n(r.maxmem);
      }
    }
  }
  let vcpus = 0;
  let assigned = 0;
  for (const r of resources) {
    if ((r.type !== 'qemu' && r.type !== 'lxc') || r.status !== 'running' || typeof r.node !== 'string') continue;
    const entry = perNode.get(r.node) ?? { vcpus: 0, memory: 0 };
    entry.vcpus += n(r.maxcpu);
    entry.memory += n(r.maxmem);
    perNode.set(r.node, entry);
    vcpus += n(r.maxcpu);
    assigned += n(r.maxmem);
  }
  const nodeVcpus = new MetricFamily(NODE_VCPUS);
  const nodeMemory = new MetricFamily(NODE_MEMORY);
  for (const [node, a] of [...perNode].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
    nodeVcpus.add1(`node/${node}`, a.vcpus);
    nodeMemory.add1(`node/${node}`, a.memory);
  }
  const id = `cluster/${clusterName}`;
  return [
    nodeVcpus,
    nodeMemory,
    new MetricFamily(CLUSTER_VCPUS).add([id], vcpus),
    new MetricFamily(CLUSTER_MEMORY).add([id], assigned),
    new MetricFamily(CLUSTER_CPUS).add([id], cpus),
    new MetricFamily(CLUSTER_MEMORY_SIZE).add([id], memory),
  ];
}

export const allocationCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'allocation',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'addition',
  description:
    'vCPUs and memory assigned to running guests per node and for the cluster, and the cluster\'s CPUs and memory (from /cluster/resources, no extra call).',
  endpoints: [
    { path: '/cluster/resources', privilege: 'none (entries filtered by VM.Audit and Sys.Audit)', cost: 'cluster' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (cluster name)', cost: 'cluster' },
  ],
  families: [NODE_VCPUS, NODE_MEMORY, CLUSTER_VCPUS, CLUSTER_MEMORY, CLUSTER_CPUS, CLUSTER_MEMORY_SIZE],
  async collect(s) {
    const [name, resources] = await Promise.all([s.clusterName(), s.resources()]);
    return buildAllocation(name, resources);
  },
};
