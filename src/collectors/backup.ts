// Backup results: each vzdump job's schedule and next run (/cluster/backup), and per guest the
// time of its last successful backup and whether its last backup failed. A vzdump task of one
// node carries the vmid only when that node backed up one guest; a run over several guests has
// an empty id and its per-guest results are only in the task log, whose lines pve-manager's
// PVE/VZDump.pm writes as "INFO: Starting Backup of VM <vmid> (<type>)", "INFO: Finished Backup
// of VM <vmid> (<hh:mm:ss>)" and "ERROR: Backup of VM <vmid> failed - <reason>". A finished
// task's log never changes, so it is fetched once and kept by UPID.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { PveSession } from '../pve/session.ts';
import type { BackupJob, ClusterStatusNode, NodeTask } from '../pve/types.ts';
import { forEachLimited } from './limited.ts';
import { PartialFailure, labelValue, numberValue, type ScrapeCollector } from './types.ts';

/** A guest's result in one vzdump run. */
export type GuestBackupResult = 'ok' | 'failed';

const STARTED = /\bStarting Backup of VM (\d+) \(/;
const FINISHED = /\bFinished Backup of VM (\d+) \(/;
const FAILED = /\bERROR: Backup of VM (\d+) failed - /;

/**
 * Per-guest results of one finished multi-guest run, from its log lines. A guest whose backup
 * started but neither finished nor failed (the worker was killed, the job aborted) failed.
 */
export function parseVzdumpLog(lines: readonly string[]): Map<number, GuestBackupResult> {
  const results = new Map<number, GuestBackupResult>();
  for (const line of lines) {
    let m = FINISHED.exec(line);
    if (m) {
      results.set(Number(m[1]), 'ok');
      continue;
    }
    m = FAILED.exec(line);
    if (m) {
      results.set(Number(m[1]), 'failed');
      continue;
    }
    m = STARTED.exec(line);
    if (m && !results.has(Number(m[1]))) results.set(Number(m[1]), 'failed');
  }
  // A "Starting" line is provisional: the outcome line that follows overrides it (set above).
  return results;
}

/** "OK" and "WARNINGS: <n>" are successful runs (PVE::UPID::normalize_status_type: ok, warning). */
export function taskSucceeded(status: string | undefined): boolean {
  return status === 'OK' || (status ?? '').startsWith('WARNINGS');
}

/** A finished vzdump task; multi-guest runs (empty id) need their log. */
export function isFinishedVzdump(t: NodeTask): boolean {
  return t.type === 'vzdump' && t.endtime !== undefined && t.status !== undefined && t.status !== 'RUNNING';
}

export function needsLog(t: NodeTask): boolean {
  return isFinishedVzdump(t) && (t.id ?? '') === '';
}

export interface GuestBackupState {
  /** End time of the newest run that covered the guest. */
  lastRun: number;
  lastFailed: boolean;
  /** End time of the newest run that backed the guest up. */
  lastSuccess?: number;
}

/** Tasks by end time, newest first (module-level comparators: see byTypeAndVmid in types.ts). */
function newestFirst(a: NodeTask, b: NodeTask): number {
  return (b.endtime ?? 0) - (a.endtime ?? 0);
}

function ascending(a: number, b: number): number {
  return a - b;
}

/**
 * Folds one node's finished vzdump tasks, newest first, into per-guest states. `logOf` gives a
 * multi-guest run's parsed log, or undefined when it could not be had: then older runs are not
 * looked at, since the missing run may be the newest of any guest (what is known stays exact).
 * Returns whether every needed log was there.
 */
export function foldNodeTasks(
  tasks: readonly NodeTask[],
  logOf: (upid: string) => ReadonlyMap<number, GuestBackupResult> | undefined,
  into: Map<number, GuestBackupState>,
): boolean {
  const ordered = tasks.filter(isFinishedVzdump).sort(newestFirst);
  const perNode = new Map<number, GuestBackupState>();
  let complete = true;
  for (const t of ordered) {
    let results: ReadonlyMap<number, GuestBackupResult>;
    if (needsLog(t)) {
      const parsed = logOf(t.upid);
      if (parsed === undefined) {
        complete = false;
        break;
      }
      results = parsed;
    } else {
      const vmid = Number(t.id);
      if (!Number.isInteger(vmid)) continue;
      results = new Map([[vmid, taskSucceeded(t.status) ? 'ok' : 'failed']]);
    }
    const end = numberValue(t.endtime);
    for (const [vmid, r] of results) {
      let s = perNode.get(vmid);
      if (!s) {
        s = { lastRun: end, lastFailed: r === 'failed' };
        perNode.set(vmid, s);
      }
      if (r === 'ok' && s.lastSuccess === undefined) s.lastSuccess = end;
    }
  }
  // Guests move between nodes: the newest run anywhere decides.
  for (const [vmid, s] of perNode) {
    const prev = into.get(vmid);
    if (!prev) into.set(vmid, s);
    else {
      const newer = s.lastRun > prev.lastRun ? s : prev;
      const successes = [s.lastSuccess, prev.lastSuccess].filter((x): x is number => x !== undefined);
      into.set(vmid, { lastRun: newer.lastRun, lastFailed: newer.lastFailed, lastSuccess: successes.length ? Math.max(...successes) : undefined });
    }
  }
  return complete;
}

const JOB_INFO = gauge('pve_backup_job_info', 'Backup (vzdump) job: its schedule, target storage and mode.', ['id', 'schedule', 'storage', 'mode']);
const JOB_ENABLED = gauge('pve_backup_job_enabled', 'Whether a backup job is enabled (1) or not (0).', ['id']);
const JOB_NEXT = gauge('pve_backup_job_next_run_timestamp_seconds', 'Next scheduled run of a backup job, Unix seconds.', ['id']);
const LAST_SUCCESS = gauge(
  'pve_backup_last_success_timestamp_seconds',
  'End time of the newest vzdump run that backed the guest up, Unix seconds (within the tasks each node lists).',
  ['id'],
);
const LAST_RUN = gauge('pve_backup_last_run_timestamp_seconds', 'End time of the newest vzdump run that covered the guest, Unix seconds.', ['id']);
const LAST_FAILED = gauge('pve_backup_last_failed', 'Whether the newest vzdump run that covered the guest failed for it (1) or not (0).', ['id']);

export const BACKUP_FAMILIES = [JOB_INFO, JOB_ENABLED, JOB_NEXT, LAST_SUCCESS, LAST_RUN, LAST_FAILED];

/** `guestIds` maps vmid -> "qemu/100" for the guests that exist (others, e.g. deleted ones, are left out). */
export function buildBackup(jobs: readonly BackupJob[], guests: ReadonlyMap<number, GuestBackupState>, guestIds: ReadonlyMap<number, string>): MetricFamily[] {
  const info = new MetricFamily(JOB_INFO);
  const enabled = new MetricFamily(JOB_ENABLED);
  const next = new MetricFamily(JOB_NEXT);
  for (const j of jobs) {
    info.add([j.id, labelValue(j.schedule), labelValue(j.storage), labelValue(j.mode)], 1);
    // "enabled" absent means enabled (jobs.cfg default).
    enabled.add1(j.id, j.enabled === undefined ? 1 : numberValue(j.enabled) ? 1 : 0);
    if (j['next-run'] !== undefined) next.add1(j.id, numberValue(j['next-run']));
  }
  const success = new MetricFamily(LAST_SUCCESS);
  const run = new MetricFamily(LAST_RUN);
  const failed = new MetricFamily(LAST_FAILED);
  for (const vmid of [...guests.keys()].sort(ascending)) {
    const id = guestIds.get(vmid);
    const s = guests.get(vmid);
    if (id === undefined || s === undefined) continue;
    if (s.lastSuccess !== undefined) success.add1(id, s.lastSuccess);
    run.add1(id, s.lastRun);
    failed.add1(id, s.lastFailed ? 1 : 0);
  }
  return [info, enabled, next, success, run, failed];
}

/** Task log calls in flight at once per scrape (only a cold cache reads logs). */
const TASK_LOGS_IN_FLIGHT = 4;

async function collectBackups(s: PveSession): Promise<MetricFamily[]> {
  const [jobs, status, resources] = await Promise.all([s.backupJobs(), s.clusterStatus(), s.resources()]);
  // Offline nodes answer 595 for proxied calls; their guests' runs show once they are back.
  const nodes = status.filter((e): e is ClusterStatusNode => e.type === 'node' && Number(e.online ?? 1) === 1).map((e) => e.name);
  const guestIds = new Map<number, string>();
  for (const r of resources) if ((r.type === 'qemu' || r.type === 'lxc') && typeof r.vmid === 'number') guestIds.set(r.vmid, r.id);
  const failures: unknown[] = [];
  const tasksByNode = new Map<string, NodeTask[]>();
  await Promise.all(
    nodes.map(async (node) => {
      try {
        tasksByNode.set(node, await s.vzdumpTasks(node));
      } catch (err) {
        failures.push(err);
      }
    }),
  );
  const allListed = tasksByNode.size === nodes.length;
  // Newest runs first: with a cold cache and a short deadline, the logs that decide are read first.
  const needed = [...tasksByNode.values()].flat().filter(needsLog).sort(newestFirst);
  const listed = new Set(needed.map((t) => t.upid));
  const logs = new Map<string, ReadonlyMap<number, GuestBackupResult>>();
  await forEachLimited(needed, TASK_LOGS_IN_FLIGHT, s.ctx.signal, async (t) => {
    try {
      logs.set(t.upid, await s.finishedTaskLog(t.node, t.upid, parseVzdumpLog));
    } catch (err) {
      failures.push(err);
    }
  });
  const guests = new Map<number, GuestBackupState>();
  for (const tasks of tasksByNode.values()) foldNodeTasks(tasks, (upid) => logs.get(upid), guests);
  if (allListed) s.retainTaskLogs(listed);
  const families = buildBackup(jobs, guests, guestIds);
  if (failures.length > 0) throw PartialFailure.ofCalls(families, failures, 'task', '/nodes/{node}/tasks');
  return families;
}

export const backupCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'backup',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'addition',
  description:
    "Backup jobs' schedule and next run; per guest the end time of its last successful backup and whether its last backup failed, from each node's vzdump tasks (the newest 30, cached for the TTL) and the logs of multi-guest runs (fetched once per run).",
  endpoints: [
    { path: '/cluster/backup', privilege: 'Sys.Audit on /', cost: 'cluster' },
    { path: '/nodes/{node}/tasks', privilege: 'Sys.Audit on /nodes/{node} (without it only the token\'s own tasks are listed)', cost: 'node' },
    { path: '/nodes/{node}/tasks/{upid}/log', privilege: 'Sys.Audit on /nodes/{node} (unless the token started the task)', cost: 'node' },
    { path: '/cluster/resources', privilege: 'none (guests filtered by VM.Audit)', cost: 'cluster' },
    { path: '/cluster/status', privilege: 'Sys.Audit on /', cost: 'cluster' },
  ],
  cacheTtl: 300,
  families: BACKUP_FAMILIES,
  collect: collectBackups,
};
