// Simulated data for the backup, guest agent and Ceph collectors: the task log of every finished
// vzdump task (GET /nodes/{node}/tasks/{upid}/log, which the reference data has no file for, so
// the lines are written here in pve-manager's PVE/VZDump.pm wording), the tasks list filters the
// collectors use, and the selectable variants (Ceph HEALTH_WARN, no Ceph, a guest whose agent
// does not run, a failed multi-guest vzdump). Works on any ClusterModel, so scenarios and
// generated clusters both get it.
import { ApiError, isJsonObject, objectEntries, type ApiBody, type ClusterModel, type Json, type JsonObject } from './model.ts';
import type { SimVariant } from './types.ts';

export const TASK_LOG_TEMPLATE = '/nodes/{node}/tasks/{upid}/log';

/** Every SimVariant, for command lines (sim/cli.ts, the demo) to check names against. */
export const SIM_VARIANTS: readonly SimVariant[] = ['ceph-health-warn', 'no-ceph', 'agent-not-running', 'backup-failed'];

export function isSimVariant(name: string): name is SimVariant {
  return (SIM_VARIANTS as readonly string[]).includes(name);
}

/** The guest whose agent the "agent-not-running" variant stops: a running VM with the agent on, on the answering node if one is. */
export function agentVariantGuest(model: ClusterModel): number | undefined {
  const candidates = [...model.guests.values()]
    .filter((g) => g.type === 'qemu' && agentOn(model, g.node, g.vmid) && runningInData(model, g.node, g.vmid))
    .sort((a, b) => Number(b.node === model.localNode) - Number(a.node === model.localNode) || a.vmid - b.vmid);
  // The second candidate, so the model keeps one answering agent next to the silent one.
  return (candidates[1] ?? candidates[0])?.vmid;
}

function agentOn(model: ClusterModel, node: string, vmid: number): boolean {
  const cfg = model.bodies.get(`/nodes/${node}/qemu/${vmid}/config`);
  if (cfg === undefined || cfg instanceof ApiError || !isJsonObject(cfg.data)) return false;
  const agent = cfg.data.agent;
  if (agent === 1) return true;
  return typeof agent === 'string' && ['1', 'enabled=1'].includes(agent.split(',')[0].trim());
}

function runningInData(model: ClusterModel, node: string, vmid: number): boolean {
  const cur = model.bodies.get(`/nodes/${node}/qemu/${vmid}/status/current`);
  return cur !== undefined && !(cur instanceof ApiError) && isJsonObject(cur.data) && cur.data.status === 'running';
}

/** Applies the selected variants to the model's bodies (before the first request). */
export function applyVariants(model: ClusterModel, variants: readonly SimVariant[]): void {
  for (const v of variants) {
    switch (v) {
      case 'ceph-health-warn': {
        const body = model.bodies.get('/cluster/ceph/status');
        if (body === undefined || body instanceof ApiError || !isJsonObject(body.data)) {
          throw new Error('simulator: variant ceph-health-warn needs a cluster with Ceph');
        }
        model.bodies.set('/cluster/ceph/status', { ...body, data: { ...body.data, ...CEPH_HEALTH_WARN } });
        break;
      }
      case 'no-ceph':
        model.bodies.set('/cluster/ceph/status', new ApiError(500, 'binary not installed: /usr/bin/ceph-mon\n'));
        break;
      case 'agent-not-running': {
        const vmid = agentVariantGuest(model);
        const guest = vmid === undefined ? undefined : model.guests.get(vmid);
        if (guest === undefined) throw new Error('simulator: variant agent-not-running needs a running VM with the agent enabled');
        model.bodies.set(`/nodes/${guest.node}/qemu/${guest.vmid}/agent/get-fsinfo`, new ApiError(500, 'QEMU guest agent is not running\n'));
        break;
      }
      case 'backup-failed':
        failNewestMultiGuestRun(model);
        break;
      default:
        throw new Error(`simulator: unknown variant "${String(v)}"`);
    }
  }
}

/** From reference/pve-api cluster__ceph__status.json variants.health_warn (health, osdmap, pgmap). */
const CEPH_HEALTH_WARN: JsonObject = {
  health: {
    status: 'HEALTH_WARN',
    mutes: [],
    checks: {
      OSD_DOWN: { severity: 'HEALTH_WARN', summary: { message: '1 osds down', count: 1 }, detail: [{ message: 'osd.2 (root=default,host=pve3) is down' }], muted: false },
      PG_DEGRADED: {
        severity: 'HEALTH_WARN',
        summary: { message: 'Degraded data redundancy: 88478/796296 objects degraded (11.111%), 43 pgs degraded, 43 pgs undersized', count: 86 },
        detail: [],
        muted: false,
      },
    },
  },
  osdmap: { epoch: 1187, num_osds: 3, num_up_osds: 2, osd_up_since: 1763790400, num_in_osds: 3, osd_in_since: 1736500000, num_remapped_pgs: 0 },
  pgmap: {
    pgs_by_state: [
      { state_name: 'active+clean', count: 86 },
      { state_name: 'active+undersized+degraded', count: 43 },
    ],
    num_pgs: 129,
    num_pools: 2,
    num_objects: 265432,
    data_bytes: 1094523396096,
    bytes_used: 3298534883328,
    bytes_avail: 2462906515456,
    bytes_total: 5761441398784,
    read_bytes_sec: 2345678,
    write_bytes_sec: 8765432,
    read_op_per_sec: 120,
    write_op_per_sec: 455,
  },
};

/** The newest multi-guest vzdump run of the answering node ends with "job errors". */
function failNewestMultiGuestRun(model: ClusterModel): void {
  const path = `/nodes/${model.localNode}/tasks`;
  const body = model.bodies.get(path);
  if (body === undefined || body instanceof ApiError) throw new Error('simulator: variant backup-failed needs tasks on the answering node');
  const tasks = objectEntries(body.data);
  const newest = tasks
    .filter((t) => t.type === 'vzdump' && t.id === '' && typeof t.endtime === 'number')
    .sort((a, b) => (b.endtime as number) - (a.endtime as number))[0];
  if (newest === undefined || backedUpGuests(model, model.localNode, newest).length < 2) {
    throw new Error('simulator: variant backup-failed needs a multi-guest vzdump run on the answering node');
  }
  model.bodies.set(path, { ...body, data: tasks.map((t) => (t === newest ? { ...t, status: 'job errors' } : t)) });
}

/** The guest of a multi-guest "job errors" run that failed: the second one backed up. */
export function failedGuestOfRun(guests: readonly number[]): number | undefined {
  return guests.length > 1 ? guests[1] : guests[0];
}

/** Guests a node backed up in a vzdump run: the task's id, or the jobs' guests on that node. */
export function backedUpGuests(model: ClusterModel, node: string, task: JsonObject): number[] {
  if (typeof task.id === 'string' && task.id !== '') return [Number(task.id)];
  const jobs = model.bodies.get('/cluster/backup');
  const covered = new Set<number>();
  const onNode = [...model.guests.values()].filter((g) => g.node === node).map((g) => g.vmid);
  if (jobs !== undefined && !(jobs instanceof ApiError)) {
    for (const job of objectEntries(jobs.data)) {
      const excluded = new Set(String(job.exclude ?? '').split(',').filter(Boolean).map(Number));
      const listed = typeof job.vmid === 'string' ? new Set(job.vmid.split(',').map(Number)) : undefined;
      for (const vmid of onNode) {
        if (job.all === 1 ? !excluded.has(vmid) : listed?.has(vmid) === true) covered.add(vmid);
      }
    }
  }
  return [...covered].sort((a, b) => a - b);
}

function stamp(t: number): string {
  return new Date(t * 1000).toISOString().slice(0, 19).replace('T', ' ');
}

function hms(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60].map((n) => String(n).padStart(2, '0')).join(':');
}

/** The lines of one run's task log, as VZDump.pm prints them (each guest gets an equal share of the run). */
export function vzdumpLogLines(model: ClusterModel, node: string, task: JsonObject): string[] {
  const guests = backedUpGuests(model, node, task);
  const start = Number(task.starttime);
  const end = Number(task.endtime ?? start);
  const status = String(task.status ?? '');
  const failedGuest = status === 'job errors' ? failedGuestOfRun(guests) : undefined;
  const warnings = /^WARNINGS: (\d+)$/.exec(status);
  const share = guests.length > 0 ? (end - start) / guests.length : 0;
  const lines = [`INFO: starting new backup job: vzdump ${guests.join(' ')} --mode snapshot --storage local --compress zstd`];
  guests.forEach((vmid, i) => {
    const type = model.guests.get(vmid)?.type ?? 'qemu';
    const t0 = start + share * i;
    lines.push(`INFO: Starting Backup of VM ${vmid} (${type})`, `INFO: Backup started at ${stamp(t0)}`, 'INFO: status = running');
    if (warnings !== null && i === 0) lines.push('WARN: unable to freeze guest filesystems - guest agent did not answer');
    if (vmid === failedGuest) {
      lines.push(`ERROR: Backup of VM ${vmid} failed - unable to create temporary directory '/mnt/backup/dump/vzdump-${type}-${vmid}.tmp' - No space left on device`);
      lines.push(`INFO: Failed at ${stamp(t0 + share)}`);
    } else {
      lines.push(`INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-${type}-${vmid}.${type === 'lxc' ? 'tar' : 'vma'}.zst'`);
      lines.push(`INFO: Finished Backup of VM ${vmid} (${hms(share)})`, `INFO: Backup finished at ${stamp(t0 + share)}`);
    }
  });
  if (failedGuest !== undefined) lines.push('INFO: Backup job finished with errors', 'TASK ERROR: job errors');
  else if (status === 'OK' || warnings !== null) {
    lines.push('INFO: Backup job finished successfully', warnings !== null ? `TASK WARNINGS: ${warnings[1]}` : 'TASK OK');
  } else lines.push(`TASK ERROR: ${status}`);
  return lines;
}

/** Stores a log body for every finished task of every node (vzdump runs get their real lines). */
export function addTaskLogs(model: ClusterModel): void {
  for (const node of model.nodes) {
    const body = model.bodies.get(`/nodes/${node}/tasks`);
    if (body === undefined || body instanceof ApiError) continue;
    for (const task of objectEntries(body.data)) {
      if (typeof task.upid !== 'string') continue;
      const lines = task.type === 'vzdump' ? vzdumpLogLines(model, node, task) : [`TASK ${task.status === 'OK' ? 'OK' : `ERROR: ${String(task.status ?? '')}`}`];
      model.bodies.set(taskLogPath(node, task.upid), logBody(lines));
    }
  }
}

export function taskLogPath(node: string, upid: string): string {
  return `/nodes/${node}/tasks/${upid}/log`;
}

function logBody(lines: readonly string[]): ApiBody {
  return { data: lines.map((t, i) => ({ n: i + 1, t })), total: lines.length };
}

/** pve-common's dump_logfile: lines start..start+limit (limit 0 = to the end); default limit 50. */
export function viewTaskLog(body: ApiBody, query: URLSearchParams): ApiBody {
  const all = Array.isArray(body.data) ? body.data : [];
  const start = Math.max(0, Number(query.get('start') ?? 0) || 0);
  const limitRaw = query.get('limit');
  const limit = limitRaw === null ? 50 : Math.max(0, Number(limitRaw) || 0);
  const data = limit === 0 ? all.slice(start) : all.slice(start, start + limit);
  return { ...body, data };
}

/** A log of an unknown task: PVE cannot open the file and says so in a line, with status 200. */
export function missingTaskLog(): ApiBody {
  return logBody(['unable to open file - No such file or directory']);
}

/** The tasks list filters the collectors use: typefilter, vmid, errors, start, limit (default 50). */
export function viewNodeTasks(body: ApiBody, query: URLSearchParams): ApiBody {
  let tasks: Json[] = objectEntries(body.data);
  const type = query.get('typefilter');
  if (type !== null) tasks = tasks.filter((t) => isJsonObject(t) && t.type === type);
  const vmid = query.get('vmid');
  if (vmid !== null) tasks = tasks.filter((t) => isJsonObject(t) && t.id === vmid);
  if (query.get('errors') === '1') tasks = tasks.filter((t) => isJsonObject(t) && t.status !== 'OK');
  const total = tasks.length;
  const start = Math.max(0, Number(query.get('start') ?? 0) || 0);
  const limit = Math.max(0, Number(query.get('limit') ?? 50) || 0);
  return { ...body, data: tasks.slice(start, start + limit), total };
}

/** The query part of the answer cache key for endpoints whose answer depends on it. */
export function queryKey(template: string, query: URLSearchParams): string {
  if (template !== '/nodes/{node}/tasks' && template !== TASK_LOG_TEMPLATE) return '';
  const keys = ['typefilter', 'vmid', 'errors', 'start', 'limit'];
  return keys.map((k) => `${k}=${query.get(k) ?? ''}`).join('&');
}
