// Node-level endpoints of the simulator beyond the reference exporter's: the node health
// variants (zpool DEGRADED, SMART FAILED, 403 on apt, or everything healthy) applied to a built
// model, scenario or generated alike, the /cluster/metrics/export body of a generated cluster,
// and the live view of that endpoint (nodes that are offline are left out, as PVE does).
import { ApiError, isJsonObject, objectEntries, type ApiBody, type ClusterModel, type Json, type JsonObject, type LiveState } from './model.ts';
import type { NodeHealthVariant } from './types.ts';

const NOW = 1765000000;

function listAt(model: ClusterModel, path: string): JsonObject[] | undefined {
  const body = model.bodies.get(path);
  if (body === undefined || body instanceof ApiError || !Array.isArray(body.data)) return undefined;
  return objectEntries(body.data);
}

function checkNodes(model: ClusterModel, key: string, nodes: readonly string[] | undefined): readonly string[] {
  for (const n of nodes ?? []) if (!model.nodes.includes(n)) throw new Error(`simulator: nodeHealth.${key}: no node "${n}" in this cluster`);
  return nodes ?? [];
}

/** Changes the model's disk, zpool and apt bodies as the variant says (in place). */
export function applyNodeHealth(model: ClusterModel, variant: NodeHealthVariant | undefined): void {
  if (variant === undefined) return;
  const degraded = new Set(checkNodes(model, 'degradedPools', variant.degradedPools));
  const failed = new Set(checkNodes(model, 'failedDisks', variant.failedDisks));
  for (const node of model.nodes) {
    const zfsPath = `/nodes/${node}/disks/zfs`;
    const pools = listAt(model, zfsPath);
    if (pools !== undefined) {
      const health = degraded.has(node) ? 'DEGRADED' : variant.healthy ? 'ONLINE' : undefined;
      if (health !== undefined) model.bodies.set(zfsPath, { data: pools.map((p) => ({ ...p, health })) });
    }
    const disksPath = `/nodes/${node}/disks/list`;
    const disks = listAt(model, disksPath);
    if (disks !== undefined) {
      let next: JsonObject[] = variant.healthy ? disks.map((d) => ({ ...d, health: 'PASSED' })) : disks;
      // The last HDD (or the last disk) of the node fails, as /dev/sdc does in the model.
      if (failed.has(node) && next.length > 0) {
        const hdds = next.map((d, i) => [d, i] as const).filter(([d]) => d.type === 'hdd');
        const victim = hdds.length > 0 ? hdds[hdds.length - 1][1] : next.length - 1;
        next = next.map((d, i) => (i === victim ? { ...d, health: 'FAILED!' } : d));
      }
      model.bodies.set(disksPath, { data: next });
    }
    if (variant.aptForbidden) {
      // What a PVEAuditor token gets: the call needs Sys.Modify on the node.
      model.bodies.set(`/nodes/${node}/apt/update`, new ApiError(403, `Permission check failed (/nodes/${node}, Sys.Modify)\n`));
    }
  }
}

/**
 * /cluster/metrics/export of a generated cluster, from the bodies already built: 15 node
 * metrics from each node's status and resources entry, the guest and storage metrics from
 * /cluster/resources, each node's samples stamped a few seconds before "now".
 */
export function generatedMetricsExport(model: ClusterModel): ApiBody {
  const resources = listAt(model, '/cluster/resources') ?? [];
  const stamp = new Map(model.nodes.map((n, i) => [n, NOW - 2 - (i % 7)]));
  const out: JsonObject[] = [];
  const add = (id: string, node: string, metric: string, value: Json | undefined, type = 'gauge') => {
    if (typeof value !== 'number') return;
    out.push({ metric, id, value, timestamp: stamp.get(node) ?? NOW - 2, type });
  };
  for (const r of resources) {
    const node = typeof r.node === 'string' ? r.node : '';
    if (r.type === 'node') {
      const status = model.bodies.get(`/nodes/${node}/status`);
      const s = status !== undefined && !(status instanceof ApiError) && isJsonObject(status.data) ? status.data : {};
      const sub = (k: string, f: string): Json | undefined => (isJsonObject(s[k]) ? (s[k] as JsonObject)[f] : undefined);
      const load = Array.isArray(s.loadavg) ? s.loadavg.map(Number) : [];
      const id = `node/${node}`;
      add(id, node, 'uptime', r.uptime);
      add(id, node, 'net_in', Math.round(Number(r.maxmem ?? 0) / 10), 'derive');
      add(id, node, 'net_out', Math.round(Number(r.maxmem ?? 0) / 12), 'derive');
      add(id, node, 'cpu_avg1', load[0]);
      add(id, node, 'cpu_avg5', load[1]);
      add(id, node, 'cpu_avg15', load[2]);
      add(id, node, 'cpu_max', r.maxcpu);
      add(id, node, 'cpu_current', r.cpu);
      add(id, node, 'cpu_iowait', s.wait);
      add(id, node, 'mem_total', r.maxmem);
      add(id, node, 'mem_used', r.mem);
      add(id, node, 'swap_total', sub('swap', 'total'));
      add(id, node, 'swap_used', sub('swap', 'used'));
      add(id, node, 'disk_total', sub('rootfs', 'total'));
      add(id, node, 'disk_used', sub('rootfs', 'used'));
    } else if (r.type === 'qemu' || r.type === 'lxc') {
      const id = `${r.type}/${String(r.vmid)}`;
      add(id, node, 'uptime', r.uptime);
      add(id, node, 'cpu_max', r.maxcpu);
      add(id, node, 'mem_total', r.maxmem);
      add(id, node, 'disk_total', r.maxdisk);
      if (r.status === 'running') {
        add(id, node, 'cpu_current', r.cpu);
        add(id, node, 'mem_used', r.mem);
        for (const [metric, key] of [['disk_read', 'diskread'], ['disk_write', 'diskwrite'], ['net_in', 'netin'], ['net_out', 'netout']]) add(id, node, metric, r[key], 'derive');
        if (r.type === 'lxc') add(id, node, 'disk_used', r.disk);
      }
    } else if (r.type === 'storage') {
      add(String(r.id), node, 'disk_total', r.maxdisk);
      add(String(r.id), node, 'disk_used', r.disk);
    }
  }
  out.sort((a, b) => Number(a.timestamp) - Number(b.timestamp));
  return { data: { data: out } };
}

/** The node an export sample belongs to: node/<n>, storage/<n>/<s>, or the guest's node. */
function nodeOfSample(id: string, model: ClusterModel): string | undefined {
  const [kind, a] = id.split('/');
  if (kind === 'node' || kind === 'storage') return a;
  if (kind === 'qemu' || kind === 'lxc') return model.guests.get(Number(a))?.node;
  return undefined;
}

/** PVE asks only the online members: samples of unreachable nodes (and their guests) are absent. */
export function viewMetricsExport(body: ApiBody, model: ClusterModel, state: LiveState): ApiBody {
  if (state.unreachable.size === 0 || !isJsonObject(body.data)) return body;
  const samples = objectEntries(body.data.data);
  const kept = samples.filter((e) => {
    const node = typeof e.id === 'string' ? nodeOfSample(e.id, model) : undefined;
    return node === undefined || !state.unreachable.has(node);
  });
  return { ...body, data: { ...body.data, data: kept } };
}
