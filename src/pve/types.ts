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
