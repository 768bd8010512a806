// The contract of the PVE API simulator (sim/index.ts). Tests, the demo and the benchmarks
// depend only on this file; keep it stable.

/** Scenarios built from reference/pve-api, matching the folders of reference/compat. */
export type ScenarioName = 'default' | 'pve8' | 'degraded' | 'standalone';

/** A generated cluster of any size, consistent across all endpoints. */
export interface GeneratedCluster {
  /** Cluster name (default "gen"). */
  name?: string;
  /** Number of nodes, named pve1..pveN (default 3). */
  nodes: number;
  /** Guests per node; vmids start at 100, half QEMU half LXC (default 10). */
  guestsPerNode: number;
  /** Storages per node besides "local" (default 2). */
  storagesPerNode?: number;
  /** Replication jobs per node (default 1). */
  replicationJobsPerNode?: number;
}

export interface FaultRule {
  /** Matches the API path after /api2/json, e.g. "/cluster/status" or /^\/nodes\/pve2\//. */
  path: string | RegExp;
  /** HTTP status to answer (e.g. 401, 403, 500, 501, 595). */
  status?: number;
  /** Reason phrase for the status line (PVE puts the error text there). */
  reason?: string;
  /** Extra delay before answering, in ms. */
  delayMs?: number;
  /** Answer 200 with a body that is not JSON. */
  garbage?: boolean;
  /** Never answer (keep the socket open until the client gives up or the simulator closes). */
  hang?: boolean;
  /** Apply this many times, then disappear (default: forever). */
  times?: number;
}

/**
 * Variants of the served data, for tests and the demo (any scenario or generated cluster):
 * - ceph-health-warn: /cluster/ceph/status is HEALTH_WARN (an OSD down, PGs degraded);
 * - no-ceph: /cluster/ceph/status answers 500 "binary not installed" (a cluster without Ceph);
 * - agent-not-running: one running VM with the agent enabled (on the answering node if it has
 *   two: the model's 101) answers get-fsinfo with 500 "QEMU guest agent is not running";
 * - backup-failed: the answering node's newest multi-guest vzdump run ends in "job errors", its
 *   second guest (the model's 101) failed.
 */
export type SimVariant = 'ceph-health-warn' | 'no-ceph' | 'agent-not-running' | 'backup-failed';

/**
 * Node health variants for the node-level endpoints (disks/zfs, disks/list, apt/update), on top
 * of a scenario or a generated cluster. The model cluster already has pve1's zpool tank DEGRADED
 * and its /dev/sdc SMART "FAILED!"; generated clusters are healthy unless told otherwise.
 */
export interface NodeHealthVariant {
  /** Every zpool ONLINE and every disk PASSED first (then the lists below apply). */
  healthy?: boolean;
  /** Nodes whose zpools report DEGRADED. */
  degradedPools?: string[];
  /** Nodes on which one disk (the last HDD) reports SMART "FAILED!". */
  failedDisks?: string[];
  /** /nodes/{node}/apt/update answers 403 "Permission check failed (/nodes/<n>, Sys.Modify)", as for a PVEAuditor token. */
  aptForbidden?: boolean;
}

export interface SimOptions {
  /** Variants of the data (see SimVariant), applied in order. */
  variants?: SimVariant[];
  /** A scenario of reference/compat (default "default"), or a generated cluster. */
  scenario?: ScenarioName;
  generated?: GeneratedCluster;
  /** Node health variants (zpool DEGRADED, SMART FAILED, 403 on apt, all healthy). */
  nodeHealth?: NodeHealthVariant;
  /** Listen address (default 127.0.0.1; only loopback is allowed). Port 0 = ephemeral. */
  host?: string;
  port?: number;
  /** Latency added to every API call, ms (default 0). */
  latencyMs?: number;
  /** Latency for guest config calls (/nodes/{n}/qemu|lxc/{id}/config), ms (default latencyMs). */
  configLatencyMs?: number;
  /**
   * Each answer of /cluster/resources and /nodes/{node}/qemu|lxc advances the counters of running
   * guests and online nodes (uptime, netin, netout, diskread, diskwrite) and moves their CPU and
   * memory, as a live cluster's change between two scrapes (default off: answers stay the same).
   * For benchmarks that must not flatter caches.
   */
  driftCounters?: boolean;
  /** Nodes answering 595 for proxied calls (/nodes/<node>/...) and shown offline. */
  offlineNodes?: string[];
  /**
   * Ticket lifetime in seconds (PVE: 7200). Tickets carry their issue time in whole seconds, as
   * PVE's do, so a ticket lives between L-1 and L seconds: a test that needs a ticket to end at a
   * known moment calls expireTickets() instead of waiting for a short lifetime.
   */
  ticketLifetimeSec?: number;
  /** Delay of 401 answers in ms (PVE: ~3000; default 0 in tests). */
  authFailureDelayMs?: number;
  /**
   * Give every node its own loopback address 127.0.0.(10+i) (pve1 = 127.0.0.11, ...), listen on
   * each of them (same port), report them as `ip` in /cluster/status, and answer a request as the
   * node whose address it arrived on (`local: 1`, /nodes/{that node}/...). Lets service discovery
   * and per-node scrapes be tested on loopback. Default false: the shared examples' addresses are
   * reported as they are (never connect to them).
   */
  loopbackNodes?: boolean;
}

/** Credentials the simulator accepts (fixed, test-only). */
export interface SimCredentials {
  user: string; // "monitoring@pve"
  password: string;
  tokenName: string; // "exporter"
  tokenValue: string;
}

export interface SimStats {
  /** Number of answered requests per API path (after /api2/json, without query string). */
  calls: Map<string, number>;
  total: number;
  /** POST /access/ticket calls (logins and renewals). */
  logins: number;
  /** TCP connections accepted. */
  connections: number;
}

export interface Simulator {
  /** e.g. "127.0.0.1" and the bound port. */
  host: string;
  port: number;
  /** "https://127.0.0.1:<port>" */
  url: string;
  /** With loopbackNodes: node name -> its loopback address. */
  nodeAddresses: Map<string, string>;
  credentials: SimCredentials;
  /** PEM of the CA that signed the simulator's certificate (for ca_file). */
  caFile: string;
  /** SHA-256 fingerprint of the server certificate as the PVE GUI shows it: "AB:CD:...". */
  fingerprint: string;
  stats(): SimStats;
  resetStats(): void;
  /**
   * Every ticket and CSRF token issued so far stops working at once (401 "invalid PVE ticket",
   * as for an expired ticket, and no renewal with it); logins with the password still work.
   */
  expireTickets(): void;
  addFault(rule: FaultRule): void;
  clearFaults(): void;
  /** Change a guest's state (running|stopped) everywhere it shows. */
  setGuestStatus(vmid: number, status: 'running' | 'stopped'): void;
  setNodeOffline(node: string, offline: boolean): void;
  /**
   * Make a storage unavailable (status "unknown", no usage, as PVE reports an unreachable or
   * inactive storage) on the given nodes, or on every node when `nodes` is omitted; `true`
   * restores the stored state.
   */
  setStorageAvailable(storage: string, available: boolean, nodes?: string[]): void;
  close(): Promise<void>;
}
