// Shapes of the PVE API responses the exporter reads (see reference/pve-api for the full
// reference). Only the fields we use are typed; PVE serialises booleans as 0/1 numbers.

export interface ClusterStatusCluster {
  type: 'cluster';
  id: string;
  name: string;
  nodes?: number;
  version?: number;
  quorate?: number;
  [key: string]: unknown;
}

export interface ClusterStatusNode {
  type: 'node';
  id: string;
  name: string;
  nodeid?: number;
  ip?: string;
  local?: number;
  online?: number;
  level?: string;
  [key: string]: unknown;
}

export type ClusterStatusEntry = ClusterStatusCluster | ClusterStatusNode;

/** One entry of /cluster/resources; which keys exist depends on type and state. */
export interface ClusterResource {
  id: string;
  type: string;
  node?: string;
  status?: string;
  name?: string;
  vmid?: number;
  template?: number;
  tags?: string;
  lock?: string;
  hastate?: string;
  storage?: string;
  plugintype?: string;
  content?: string;
  [key: string]: unknown;
}

export type VersionInfo = Record<string, string>;

export interface NotBackedUpGuest {
  vmid: number;
  type: string;
  name?: string;
}

export type QDeviceStatus = Record<string, string>;

export interface SubscriptionInfo {
  status?: string;
  level?: string;
  nextduedate?: string;
  [key: string]: unknown;
}

export interface ReplicationJob {
  id: string;
  type?: string;
  guest?: number;
  vmtype?: string;
  source?: string;
  target?: string;
  duration?: number;
  last_sync?: number;
  last_try?: number;
  next_sync?: number;
  fail_count?: number;
  error?: string;
  [key: string]: unknown;
}

export type GuestConfig = Record<string, unknown>;

export type GuestType = 'qemu' | 'lxc';

/** /cluster/ceph/status: raw `ceph status` JSON (health from `ceph health detail`); Ceph owns the shape. */
export interface CephHealthCheck {
  severity?: string;
  summary?: { message?: string; count?: number };
  muted?: boolean;
  [key: string]: unknown;
}

export interface CephStatus {
  fsid?: string;
  health?: { status?: string; checks?: Record<string, CephHealthCheck>; [key: string]: unknown };
  quorum_names?: string[];
  osdmap?: { num_osds?: number; num_up_osds?: number; num_in_osds?: number; [key: string]: unknown };
  pgmap?: {
    pgs_by_state?: { state_name: string; count: number }[];
    num_pgs?: number;
    data_bytes?: number;
    bytes_used?: number;
    bytes_avail?: number;
    bytes_total?: number;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** One entry of /cluster/ha/status/current (quorum, master, lrm, service, fencing). */
export interface HaStatusEntry {
  id: string;
  type: string;
  node?: string;
  status?: string;
  quorate?: number;
  timestamp?: number;
  sid?: string;
  state?: string;
  [key: string]: unknown;
}

/** One filesystem of the QEMU guest agent's guest-get-fsinfo answer (agent >= 3.0 has the byte counts). */
export interface GuestFsInfoEntry {
  name?: string;
  mountpoint?: string;
  type?: string;
  'total-bytes'?: number;
  'used-bytes'?: number;
  [key: string]: unknown;
}

/** /nodes/{node}/qemu/{vmid}/agent/get-fsinfo: the agent's reply, passed through in "result". */
export interface GuestFsInfo {
  result?: GuestFsInfoEntry[];
  [key: string]: unknown;
}

/** One task of /nodes/{node}/tasks (finished tasks: endtime and status present). */
export interface NodeTask {
  upid: string;
  node: string;
  type: string;
  id?: string;
  starttime: number;
  endtime?: number;
  status?: string;
  [key: string]: unknown;
}

/** One line of /nodes/{node}/tasks/{upid}/log. */
export interface TaskLogLine {
  n: number;
  t: string;
}

/** One vzdump job of /cluster/backup. */
export interface BackupJob {
  id: string;
  type?: string;
  schedule?: string;
  enabled?: number;
  'next-run'?: number;
  storage?: string;
  mode?: string;
  [key: string]: unknown;
}

/** GET /nodes/{node}/status (the fields the node-status collector reads). */
export interface NodeStatus {
  /** Load average 1/5/15 min, as strings ("0.87"). */
  loadavg?: (string | number)[];
  /** iowait share 0..1. */
  wait?: number;
  kversion?: string;
  'current-kernel'?: { release?: string; [key: string]: unknown };
  cpuinfo?: { model?: string; cpus?: number; sockets?: number; cores?: number; [key: string]: unknown };
  /** available: PVE 9.0+. */
  memory?: { total?: number; used?: number; free?: number; available?: number };
  swap?: { total?: number; used?: number; free?: number };
  ksm?: { shared?: number };
  rootfs?: { total?: number; used?: number; free?: number; avail?: number };
  /** "pve-manager/9.1.1/42db4a6cf33dac83" */
  pveversion?: string;
  [key: string]: unknown;
}

/** One sample of GET /cluster/metrics/export (body {"data": {"data": [...]}}). */
export interface MetricsExportEntry {
  /** "node/<node>", "qemu/<vmid>", "lxc/<vmid>", "storage/<node>/<storage>" */
  id: string;
  metric: string;
  value: number;
  timestamp: number;
  type?: string;
}

/** One entry of GET /nodes/{node}/disks/zfs. */
export interface ZfsPool {
  name: string;
  size?: number;
  alloc?: number;
  free?: number;
  /** Percent. */
  frag?: number;
  dedup?: number;
  health?: string;
  [key: string]: unknown;
}

/** One entry of GET /nodes/{node}/disks/list. */
export interface DiskInfo {
  devpath: string;
  size?: number;
  model?: string;
  serial?: string;
  type?: string;
  /** "PASSED", "OK", "FAILED!", "UNKNOWN", ... */
  health?: string;
  /** Remaining life in percent (SSD/NVMe) or "N/A". */
  wearout?: number | string;
  [key: string]: unknown;
}

/** One entry of GET /nodes/{node}/certificates/info. */
export interface CertificateInfo {
  filename?: string;
  fingerprint?: string;
  subject?: string;
  issuer?: string;
  notbefore?: number;
  notafter?: number;
  [key: string]: unknown;
}

/** One entry of GET /nodes/{node}/apt/update. */
export interface AptUpdate {
  Package: string;
  Version?: string;
  OldVersion?: string;
  Origin?: string;
  [key: string]: unknown;
}
