// Answers one API call from the cluster model: finds the endpoint, checks the {node}, {vmid} and
// {id} parameters the way PVE does (unknown node 500, unreachable node 595, unknown guest or job
// 500), applies the live view and serialises the body. Serialised bodies (and their gzip) are
// cached until the live state changes, so big generated clusters answer in a few milliseconds.
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import {
  ApiError,
  filterResources,
  isJsonObject,
  isResourceTypeFilter,
  viewClusterStatus,
  viewGuestCurrent,
  viewGuestList,
  viewHaCurrent,
  viewHaManagerStatus,
  viewResources,
  type ApiBody,
  type ClusterModel,
  type GuestType,
  type Json,
  type JsonObject,
  type LiveState,
} from './model.ts';
import { viewMetricsExport } from './node-health.ts';
import { fillTemplate } from './pve-data.ts';
import { TASK_LOG_TEMPLATE, missingTaskLog, queryKey, viewNodeTasks, viewTaskLog } from './backup-and-agent.ts';

const gzipAsync = promisify(gzip);

export interface SerializedBody {
  json: Buffer;
  /** Compressed lazily, once, off the main thread (zlib's thread pool). */
  gzipped(): Promise<Buffer>;
}

interface Route {
  template: string;
  pattern: RegExp;
  params: string[];
}

interface MatchedRoute {
  template: string;
  params: Record<string, string>;
}

export class PveApi {
  private readonly routes: Route[];
  private cache = new Map<string, SerializedBody>();

  /** Answers given so far per drifting path (the drift of counters, see SimOptions.driftCounters). */
  private readonly driftTicks = new Map<string, number>();

  constructor(
    private readonly model: ClusterModel,
    private readonly state: LiveState,
    templates: Iterable<string>,
    private readonly opts: { driftCounters: boolean } = { driftCounters: false },
  ) {
    this.routes = [...templates].map(compileRoute);
  }

  /** Drops cached bodies; call after every change of the live state. */
  invalidate(): void {
    this.cache = new Map();
  }

  answerGet(apiPath: string, query: URLSearchParams, answering: string): SerializedBody | ApiError {
    const route = this.matchRoute(apiPath);
    if (route === null) return notImplemented('GET', apiPath);
    const typeFilter = route.template === '/cluster/resources' ? query.get('type') : null;
    const cacheKey = `${answering}\n${apiPath}\n${typeFilter ?? ''}\n${queryKey(route.template, query)}`;
    // A drifting answer is new each time: caching it would serve the first drift forever.
    const drifting = this.opts.driftCounters && DRIFTING_TEMPLATES.has(route.template);
    const cached = drifting ? undefined : this.cache.get(cacheKey);
    if (cached !== undefined) return cached;
    let result = this.resolve(route, apiPath, typeFilter, answering, query);
    if (result instanceof ApiError) return result;
    if (drifting) {
      const tick = (this.driftTicks.get(cacheKey) ?? 0) + 1;
      this.driftTicks.set(cacheKey, tick);
      result = driftCounters(result, tick);
    }
    // A drifting answer is compressed anew for each call: at the lowest level, so that the
    // simulator still answers in about its latency (a benchmark's floor is measured with it).
    const serialized = serialize(result, drifting ? 1 : undefined);
    if (!drifting) this.cache.set(cacheKey, serialized);
    return serialized;
  }

  private matchRoute(apiPath: string): MatchedRoute | null {
    for (const route of this.routes) {
      const match = route.pattern.exec(apiPath);
      if (match === null) continue;
      const params: Record<string, string> = {};
      route.params.forEach((name, i) => {
        params[name] = safeDecode(match[i + 1]);
      });
      return { template: route.template, params };
    }
    return null;
  }

  private resolve(route: MatchedRoute, apiPath: string, typeFilter: string | null, answering: string, query: URLSearchParams): ApiBody | ApiError {
    const { template, params } = route;
    const paramError = this.checkParams(template, params, answering);
    if (paramError !== null) return paramError;
    const stored = this.model.bodies.get(fillTemplate(template, params));
    if (stored === undefined && template === TASK_LOG_TEMPLATE) return viewTaskLog(missingTaskLog(), query);
    if (stored === undefined) {
      return params.id !== undefined ? new ApiError(500, `no such replication job '${params.id}'\n`) : notImplemented('GET', apiPath);
    }
    if (stored instanceof ApiError) return stored;
    if (template.endsWith('/agent/get-fsinfo')) {
      const agentError = this.checkGuestAgent(params.node, Number(params.vmid));
      if (agentError !== null) return agentError;
    }
    if (template === '/nodes/{node}/tasks') return viewNodeTasks(stored, query);
    if (template === TASK_LOG_TEMPLATE) return viewTaskLog(stored, query);
    return this.view(template, stored, typeFilter, answering);
  }

  private checkParams(template: string, params: Record<string, string>, answering: string): ApiError | null {
    const { node, vmid } = params;
    if (node === undefined) return null;
    if (!this.model.nodes.includes(node)) {
      return new ApiError(500, `hostname lookup '${node}' failed - failed to get address info for: ${node}: Name or service not known\n`);
    }
    // pveproxy forwards /nodes/<other>/... to that node; a dead node refuses the connection.
    if (node !== answering && this.state.unreachable.has(node)) {
      return new ApiError(595, 'Connection refused', { emptyBody: true });
    }
    if (vmid === undefined) return null;
    if (!/^[1-9]\d{2,8}$/.test(vmid)) {
      return new ApiError(400, 'Parameter verification failed.\n', { errors: { vmid: `value '${vmid}' does not look like a valid VM ID` } });
    }
    const type: GuestType = template.includes('/lxc/') ? 'lxc' : 'qemu';
    const guest = this.model.guests.get(Number(vmid));
    if (guest === undefined || guest.node !== node || guest.type !== type) {
      const dir = type === 'qemu' ? 'qemu-server' : 'lxc';
      return new ApiError(500, `Configuration file 'nodes/${node}/${dir}/${vmid}.conf' does not exist\n`);
    }
    return null;
  }

  /** qemu-server checks that the VM runs before it looks at the agent setting. */
  private checkGuestAgent(node: string, vmid: number): ApiError | null {
    if (this.guestStatus(node, vmid) !== 'running') return new ApiError(500, `VM ${vmid} is not running\n`);
    const config = this.model.bodies.get(`/nodes/${node}/qemu/${vmid}/config`);
    const agent = config instanceof ApiError || config === undefined || !isJsonObject(config.data) ? undefined : config.data.agent;
    return agentEnabled(agent) ? null : new ApiError(500, 'No QEMU guest agent configured\n');
  }

  private guestStatus(node: string, vmid: number): Json | undefined {
    const override = this.state.guestStatus.get(vmid);
    if (override !== undefined) return override;
    const current = this.model.bodies.get(`/nodes/${node}/qemu/${vmid}/status/current`);
    return current instanceof ApiError || current === undefined || !isJsonObject(current.data) ? undefined : current.data.status;
  }

  private view(template: string, body: ApiBody, typeFilter: string | null, answering: string): ApiBody | ApiError {
    switch (template) {
      case '/cluster/status':
        return viewClusterStatus(body, answering, this.state);
      case '/cluster/resources':
        return this.viewResources(body, typeFilter);
      case '/cluster/ha/status/current':
        return viewHaCurrent(body, answering);
      case '/cluster/ha/status/manager_status':
        return viewHaManagerStatus(body, answering);
      case '/cluster/metrics/export':
        return viewMetricsExport(body, this.model, this.state);
      case '/nodes/{node}/qemu':
        return viewGuestList(body, 'qemu', this.state);
      case '/nodes/{node}/lxc':
        return viewGuestList(body, 'lxc', this.state);
      case '/nodes/{node}/qemu/{vmid}/status/current':
        return viewGuestCurrent(body, 'qemu', this.state);
      case '/nodes/{node}/lxc/{vmid}/status/current':
        return viewGuestCurrent(body, 'lxc', this.state);
      default:
        return body;
    }
  }

  private viewResources(body: ApiBody, typeFilter: string | null): ApiBody | ApiError {
    if (typeFilter !== null && !isResourceTypeFilter(typeFilter)) {
      return new ApiError(400, 'Parameter verification failed.\n', {
        errors: { type: `value '${typeFilter}' does not have a value in the enumeration 'vm, storage, node, sdn'` },
      });
    }
    const live = viewResources(body, this.state);
    return typeFilter === null ? live : filterResources(live, typeFilter);
  }
}

/** The answers whose counters drift: the cluster's resources and each node's guest lists. */
const DRIFTING_TEMPLATES = new Set(['/cluster/resources', '/nodes/{node}/qemu', '/nodes/{node}/lxc']);
const DRIFTING = ['uptime', 'netin', 'netout', 'diskread', 'diskwrite'] as const;

/**
 * Running guests and online nodes, `tick` answers later: counters grown, CPU and memory moved
 * (memory within its size), as a live cluster's between two scrapes.
 */
export function driftCounters(body: ApiBody, tick: number): ApiBody {
  if (!Array.isArray(body.data)) return body;
  const data = body.data.map((entry) => {
    if (!isJsonObject(entry) || (entry.status !== 'running' && entry.status !== 'online')) return entry;
    const out: JsonObject = { ...entry };
    for (const key of DRIFTING) if (typeof out[key] === 'number') out[key] = (out[key] as number) + tick * (key === 'uptime' ? 15 : 4096);
    if (typeof out.cpu === 'number') out.cpu = ((out.cpu as number) + tick * 0.001) % 1;
    if (typeof out.mem === 'number' && typeof out.maxmem === 'number') out.mem = Math.min(out.maxmem, (out.mem as number) + (tick % 16) * 1_048_576);
    return out;
  });
  return { ...body, data };
}

export function notImplemented(method: string, apiPath: string): ApiError {
  return new ApiError(501, `Method '${method} ${apiPath}' not implemented`);
}

function compileRoute(template: string): Route {
  const params: string[] = [];
  const source = template
    .split(/(\{\w+\})/)
    .map((part) => {
      const param = /^\{(\w+)\}$/.exec(part);
      if (param === null) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      params.push(param[1]);
      return '([^/]+)';
    })
    .join('');
  return { template, pattern: new RegExp(`^${source}$`), params };
}

function serialize(body: ApiBody, level?: number): SerializedBody {
  const json = Buffer.from(JSON.stringify(body));
  let compressed: Promise<Buffer> | undefined;
  return {
    json,
    gzipped: () => (compressed ??= gzipAsync(json, { level })),
  };
}

/** The agent option is "1", "enabled=1" or "1,fstrim_cloned_disks=1" (or a number). */
function agentEnabled(agent: Json | undefined): boolean {
  if (agent === 1 || agent === true) return true;
  if (typeof agent !== 'string') return false;
  const first = agent.split(',')[0].trim();
  return first === '1' || first === 'enabled=1';
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
