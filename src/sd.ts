// /pve/sd: Prometheus HTTP service discovery. One known address of a cluster yields every
// member node as a target, so node-scope jobs need no hand-kept node list.
import { isIP } from 'node:net';
import type { ClusterStatusEntry, ClusterStatusNode } from './pve/types.ts';

export interface SdTargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

export type SdAddress = 'ip' | 'name';

export function buildSdGroups(
  status: ClusterStatusEntry[],
  moduleName: string,
  port: number | undefined,
  address: SdAddress,
): SdTargetGroup[] {
  const cluster = status.find((e) => e.type === 'cluster');
  const nodes = status.filter((e): e is ClusterStatusNode => e.type === 'node');
  const clusterName = cluster?.name ?? nodes[0]?.name ?? '';
  return [...nodes]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((n) => {
      const host = address === 'ip' && n.ip ? n.ip : n.name;
      const hostPart = isIP(host) === 6 ? `[${host}]` : host;
      const addr = port !== undefined ? `${hostPart}:${port}` : hostPart;
      return {
        targets: [addr],
        labels: {
          __param_target: addr,
          __param_module: moduleName,
          __meta_pve_node: n.name,
          __meta_pve_cluster: clusterName,
          __meta_pve_node_online: String(Number(n.online) === 1 ? 1 : 0),
          __meta_pve_node_ip: n.ip ?? '',
        },
      };
    });
}
