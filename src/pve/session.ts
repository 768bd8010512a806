// One scrape's view of the PVE API: every endpoint is fetched at most once, whichever collector
// asks first, and the others share the same promise.
import { waitWithin, type Decoder, type PveClient, type RequestContext } from './client.ts';
import { decodeMetricsExportNodes } from './metrics-export-scan.ts';
import type { TtlCache } from './ttl-cache.ts';
import { PveError } from './errors.ts';
import { guestConfigFields, type GuestConfigFields } from './guest-config.ts';
import type {
  BackupJob,
  CephStatus,
  GuestFsInfo,
  HaStatusEntry,
  NodeTask,
  TaskLogLine,
  AptUpdate,
  CertificateInfo,
  ClusterResource,
  ClusterStatusEntry,
  ClusterStatusNode,
  DiskInfo,
  GuestConfig,
  GuestType,
  MetricsExportEntry,
  NodeStatus,
  NotBackedUpGuest,
  QDeviceStatus,
  ReplicationJob,
  SubscriptionInfo,
  VersionInfo,
  ZfsPool,
} from './types.ts';

/** A VM's guest agent answer to get-fsinfo, or why it gave none (the agent is down or hangs). */
export type AgentFsAnswer = { readonly up: true; readonly fsinfo: GuestFsInfo } | { readonly up: false; readonly reason: string };

/** Cache names of the collectors that keep slow-changing data (their --collector.<name>.ttl). */
export const GUEST_FS_CACHE = 'guest-filesystem';
export const BACKUP_CACHE = 'backup';
/** A finished task's log never changes: kept a week (bounded by the cache's entry cap). */
export const TASK_LOG_CACHE = 'backup-task-logs';
export const TASK_LOG_TTL_SECONDS = 7 * 86400;
/** vzdump tasks read per node, newest first: a month of daily runs. */
export const VZDUMP_TASKS_PER_NODE = 30;

export interface GuestOnboot {
  readonly type: GuestType;
  readonly vmid: number;
  readonly node: string;
  readonly onboot: number | undefined;
}

/** A guest whose config lives on a node, as its node's guest list or /cluster/resources shows it. */
export interface LocalGuest {
  readonly type: GuestType;
  readonly vmid: number;
  readonly status?: string;
  readonly name?: string;
  readonly template?: number;
}

/** An entry of /nodes/{node}/qemu or /nodes/{node}/lxc (only what LocalGuest needs). */
interface NodeGuestEntry {
  vmid: number | string;
  status?: string;
  name?: string;
  template?: number | string;
}

export interface SessionOptions {
  /**
   * Whether this scrape reads /cluster/resources anyway (a cluster-scope collector needs it). If not, the guests of a
   * node come from that node's own lists, as the reference reads them: a node-scope scrape of one
   * node does not make PVE build the whole cluster's answer.
   */
  readonly clusterScope: boolean;
}

export interface GuestOnbootResult {
  readonly guests: GuestOnboot[];
  /** Guests whose config could not be fetched and had no cached value. */
  readonly failures: PveError[];
  readonly fetched: number;
}

/** One guest with the config fields the exporter keeps (see guest-config.ts). */
export interface GuestWithConfig {
  readonly type: GuestType;
  readonly vmid: number;
  readonly node: string;
  readonly fields: GuestConfigFields;
}

export interface GuestConfigsResult {
  readonly guests: GuestWithConfig[];
  /** Guests whose config could not be fetched and had no cached value. */
  readonly failures: PveError[];
  readonly fetched: number;
}

function asArray<T>(data: unknown, path: string): T[] {
  if (!Array.isArray(data)) throw new PveError('parse', path, 'expected a list in "data"');
  return data as T[];
}

function asObject<T>(data: unknown, path: string): T {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new PveError('parse', path, 'expected an object in "data"');
  }
  return data as T;
}

export class PveSession {
  private readonly memo = new Map<string, Promise<unknown>>();
  /** Successful and failed API calls of this scrape (for the 500-or-partial decision). */
  succeeded = 0;
  readonly failures: PveError[] = [];
  /** Guest config calls made (cache misses). */
  configFetches = 0;
  /** Per cache name: how often an expired entry stood in for a failed refresh in this scrape. */
  readonly staleServed = new Map<string, number>();

  constructor(
    private readonly client: PveClient,
    readonly ctx: RequestContext,
    private readonly opts: SessionOptions = { clusterScope: true },
  ) {}

  /** The client's guest config cache: it lives as long as the client (per module settings and target). */
  private get configCache() {
    return this.client.guestConfigs;
  }

  /**
   * One API call; `shape` checks what `data` holds. A call counts as a success only when the
   * answer is what PVE sends, so a web server that is not PVE never makes a scrape look good.
   */
  private async call<T>(
    path: string,
    shape: (data: unknown, path: string) => T,
    query?: Record<string, string>,
    ctx: RequestContext = this.ctx,
    decode?: Decoder,
  ): Promise<T> {
    try {
      const data = shape(await this.client.get<unknown>(path, ctx, query, decode), path);
      this.succeeded++;
      return data;
    } catch (err) {
      this.failures.push(err instanceof PveError ? err : new PveError('parse', path, err instanceof Error ? err.message : String(err)));
      throw err;
    }
  }

  /**
   * call() for an endpoint that older PVE releases lack: once it answered 501, it is not asked
   * again for a while (the client remembers), so an old cluster costs no call per scrape.
   */
  private async callSince<T>(path: string, shape: (data: unknown, path: string) => T, decode?: Decoder): Promise<T> {
    const unsupported = this.client.knownUnsupported(path);
    if (unsupported) throw unsupported;
    try {
      return await this.call(path, shape, undefined, this.ctx, decode);
    } catch (err) {
      if (err instanceof PveError && err.status === 501) this.client.rememberUnsupported(path, err);
      throw err;
    }
  }

  private once<T>(key: string, fetch: () => Promise<T>): Promise<T> {
    let p = this.memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = fetch();
      // Rejections are handled by whoever awaits; avoid unhandled-rejection noise for unused memo entries.
      p.catch(() => undefined);
      this.memo.set(key, p);
    }
    return p;
  }

  /**
   * One API call through the client's TTL cache `cache` (a collector's name): a fresh entry is
   * used as it is; otherwise the call is made and its answer kept. When the call fails, an
   * expired entry still within its stale window stands in, counted in `staleServed`; answers
   * that are definite (403 no permission, 501 no such endpoint, 401) are not papered over.
   */
  private cachedCall<T>(cache: string, path: string, shape: (data: unknown, path: string) => T, query?: Record<string, string>): Promise<T> {
    const key = query ? `${path}?${new URLSearchParams(query).toString()}` : path;
    return this.once(`cache:${cache}:${key}`, async () => {
      const store = this.client.caches.get<T>(cache);
      const fresh = store.fresh(key);
      if (fresh !== undefined) {
        this.ctx.trace?.cacheHit?.(key);
        return fresh;
      }
      // The refresh is work for the cache, not for this scrape: it runs under the module timeout
      // and is shared with any scrape that needs it meanwhile (smartctl on every disk can take
      // longer than one scrape's deadline; the next scrape then finds the answer).
      // The scrape that starts the fill logs its call (debug=true), the others a wait on it.
      const fill = store.inflight(key) ?? this.fillCache(store, key, this.call(path, shape, query, { ...this.client.ownContext(this.ctx.module), trace: this.ctx.trace }));
      return this.waitForFill(fill, store, key, cache, path, 'PVE (the answer is cached when it comes)');
    });
  }

  /** `call`'s answer goes into `store` under `key` once it comes; scrapes meanwhile share the fill. */
  private fillCache<T>(store: TtlCache<T>, key: string, call: Promise<T>): Promise<T> {
    const fill = call.then((value) => {
      store.set(key, value);
      return value;
    });
    fill.catch(() => undefined);
    store.track(key, fill);
    return fill;
  }

  /**
   * A cache fill awaited within this scrape's deadline. When it fails, an expired entry still
   * within its stale window stands in, counted in `staleServed` under `cache`; answers that are
   * definite (401, 403 no permission, 501 no such endpoint) are not papered over.
   */
  private async waitForFill<T>(fill: Promise<T>, store: TtlCache<T>, key: string, cache: string, path: string, waitingFor: string): Promise<T> {
    try {
      return await waitWithin(fill, this.ctx.signal, () => new PveError('deadline', path, `scrape deadline reached while waiting for ${waitingFor}`));
    } catch (err) {
      const definite = err instanceof PveError && (err.kind === 'auth' || err.status === 403 || err.status === 501);
      const stale = definite ? undefined : store.stale(key);
      if (stale === undefined) throw err;
      this.staleServed.set(cache, (this.staleServed.get(cache) ?? 0) + 1);
      return stale;
    }
  }

  clusterStatus(): Promise<ClusterStatusEntry[]> {
    const path = '/cluster/status';
    return this.once(path, async () => this.call(path, asArray<ClusterStatusEntry>));
  }

  resources(): Promise<ClusterResource[]> {
    const path = '/cluster/resources';
    return this.once(path, async () => this.call(path, asArray<ClusterResource>));
  }

  version(): Promise<VersionInfo> {
    const path = '/version';
    return this.once(path, async () => this.call(path, asObject<VersionInfo>));
  }

  notBackedUp(): Promise<NotBackedUpGuest[]> {
    const path = '/cluster/backup-info/not-backed-up';
    return this.once(path, async () => this.call(path, asArray<NotBackedUpGuest>));
  }

  qdevice(): Promise<QDeviceStatus> {
    const path = '/cluster/config/qdevice';
    return this.once(path, async () => this.call(path, (d, p) => asObject<QDeviceStatus>(d ?? {}, p)));
  }

  subscription(node: string): Promise<SubscriptionInfo> {
    const path = `/nodes/${encodeURIComponent(node)}/subscription`;
    return this.once(path, async () => this.call(path, asObject<SubscriptionInfo>));
  }

  replication(node: string): Promise<ReplicationJob[]> {
    const path = `/nodes/${encodeURIComponent(node)}/replication`;
    return this.once(path, async () => this.call(path, asArray<ReplicationJob>));
  }

  /**
   * The guests whose config lives on `node`: from /cluster/resources when this scrape reads it
   * anyway, otherwise from /nodes/{node}/qemu and /nodes/{node}/lxc (two small answers instead of
   * the whole cluster's).
   */
  localGuests(node: string): Promise<LocalGuest[]> {
    // The work is a method, not the closure given to once(): a closure made per scrape has its
    // optimized code dropped once it dies, and this one loops over every guest (see byTypeAndVmid
    // in collectors/types.ts).
    return this.once(`guests:${node}`, () => this.readLocalGuests(node));
  }

  private async readLocalGuests(node: string): Promise<LocalGuest[]> {
    if (this.opts.clusterScope) {
      // Loops rather than filter/map with closures made per scrape (see byTypeAndVmid in collectors/types.ts).
      const local: LocalGuest[] = [];
      for (const r of await this.resources()) {
        if ((r.type === 'qemu' || r.type === 'lxc') && r.node === node && typeof r.vmid === 'number') {
          local.push({ type: r.type, vmid: r.vmid, status: r.status, name: r.name, template: r.template });
        }
      }
      return local;
    }
    const base = `/nodes/${encodeURIComponent(node)}`;
    const [qemu, lxc] = await Promise.all([
      this.once(`${base}/qemu`, async () => this.call(`${base}/qemu`, asArray<NodeGuestEntry>)),
      this.once(`${base}/lxc`, async () => this.call(`${base}/lxc`, asArray<NodeGuestEntry>)),
    ]);
    const out: LocalGuest[] = [];
    for (const [type, list] of [['qemu', qemu], ['lxc', lxc]] as const) {
      for (const g of list) {
        // PVE before 7 sent the vmid of containers as a string.
        const vmid = Number(g.vmid);
        if (!Number.isInteger(vmid)) continue;
        out.push({ type, vmid, status: g.status, name: g.name, template: g.template === undefined ? undefined : Number(g.template) });
      }
    }
    return out;
  }

  /** /nodes/{node}/status: load, iowait, swap, KSM, root filesystem, CPU, versions. */
  nodeStatus(node: string): Promise<NodeStatus> {
    const path = `/nodes/${encodeURIComponent(node)}/status`;
    return this.once(path, async () => this.call(path, asObject<NodeStatus>));
  }

  /**
   * /cluster/metrics/export (PVE 8.2.5+): pvestatd's newest samples of every online node. Only
   * the node entries are parsed (metrics-export-scan.ts): the guests' and storages' are not used.
   */
  metricsExportNodes(): Promise<MetricsExportEntry[]> {
    const path = '/cluster/metrics/export';
    // The handler returns {data: [...]}, which the API wraps again: {"data": {"data": [...]}}.
    return this.once(path, async () =>
      this.callSince(path, (d, p) => asArray<MetricsExportEntry>(asObject<{ data?: unknown }>(d, p).data, p), decodeMetricsExportNodes),
    );
  }

  /** /nodes/{node}/disks/zfs: the imported zpools. */
  zfsPools(node: string): Promise<ZfsPool[]> {
    const path = `/nodes/${encodeURIComponent(node)}/disks/zfs`;
    return this.once(path, async () => this.call(path, asArray<ZfsPool>));
  }

  /** /nodes/{node}/disks/list (runs smartctl on every disk): cached, TTL of the disks collector. */
  disks(node: string): Promise<DiskInfo[]> {
    return this.cachedCall('disks', `/nodes/${encodeURIComponent(node)}/disks/list`, asArray<DiskInfo>);
  }

  /** /nodes/{node}/certificates/info: cached, TTL of the certificates collector. */
  certificates(node: string): Promise<CertificateInfo[]> {
    return this.cachedCall('certificates', `/nodes/${encodeURIComponent(node)}/certificates/info`, asArray<CertificateInfo>);
  }

  /** /nodes/{node}/apt/update (needs Sys.Modify): cached, TTL of the updates collector. */
  aptUpdates(node: string): Promise<AptUpdate[]> {
    return this.cachedCall('updates', `/nodes/${encodeURIComponent(node)}/apt/update`, asArray<AptUpdate>);
  }

  /** The node that answers for this target (`local: 1` in /cluster/status). */
  localNode(): Promise<ClusterStatusNode> {
    return this.once('localNode', async () => {
      const status = await this.clusterStatus();
      const local = status.find((e): e is ClusterStatusNode => e.type === 'node' && Number(e.local) === 1);
      if (!local) throw new PveError('parse', '/cluster/status', 'no entry with local=1: cannot tell which node answers');
      return local;
    });
  }

  /** Cluster name, or the node's name on a standalone node (as the reference does). */
  clusterName(): Promise<string> {
    return this.once('clusterName', async () => {
      const status = await this.clusterStatus();
      const first = status[0];
      if (!first) throw new PveError('parse', '/cluster/status', 'empty cluster status');
      return first.name;
    });
  }

  /** The onboot value of every guest on `node` (the config collector): see guestConfigs(). */
  async guestOnboot(node: string): Promise<GuestOnbootResult> {
    const r = await this.guestConfigs(node);
    const guests: GuestOnboot[] = [];
    for (const g of r.guests) guests.push({ type: g.type, vmid: g.vmid, node: g.node, onboot: g.fields.onboot });
    return { guests, failures: r.failures, fetched: r.fetched };
  }

  /**
   * The kept config fields of every guest on `node`: from the cache where fresh, otherwise from
   * /nodes/{node}/{type}/{vmid}/config, all requests in flight at once (the client's pool caps
   * them). The guest list is localGuests(node); every collector of the scrape that asks shares
   * the same calls.
   */
  guestConfigs(node: string): Promise<GuestConfigsResult> {
    return this.once(`configs:${node}`, () => this.readGuestConfigs(node));
  }

  private async readGuestConfigs(node: string): Promise<GuestConfigsResult> {
    const guests = await this.localGuests(node);
    const failures: PveError[] = [];
    let fetched = 0;
    const present = new Set<string>();
    // Cached configs are taken as they are; only the misses wait for a call (at 2,000 guests
    // an async function per guest and scrape was garbage for nothing).
    const out: Array<GuestWithConfig | undefined> = new Array(guests.length);
    const calls: Promise<void>[] = [];
    for (let i = 0; i < guests.length; i++) {
      const g = guests[i];
      present.add(`${g.type}/${g.vmid}`);
      const cached = this.configCache.fresh(g.type, g.vmid, node);
      if (cached) {
        this.ctx.trace?.cacheHit?.(`/nodes/${encodeURIComponent(node)}/${g.type}/${g.vmid}/config`);
        out[i] = { type: g.type, vmid: g.vmid, node, fields: cached.fields };
        continue;
      }
      const path = `/nodes/${encodeURIComponent(node)}/${g.type}/${g.vmid}/config`;
      calls.push(
        this.call(path, asObject<GuestConfig>)
          .then((cfg) => {
            fetched++;
            this.configFetches++;
            const fields = guestConfigFields(g.type, cfg);
            this.configCache.store(g.type, g.vmid, node, fields);
            out[i] = { type: g.type, vmid: g.vmid, node, fields };
          })
          .catch((err: unknown) => {
            const stale = this.configCache.stale(g.type, g.vmid, node);
            if (stale) out[i] = { type: g.type, vmid: g.vmid, node, fields: stale.fields };
            else failures.push(err instanceof PveError ? err : new PveError('parse', path, String(err)));
          }),
      );
    }
    await Promise.all(calls);
    this.configCache.retainOnly(present);
    const got: GuestWithConfig[] = [];
    for (const g of out) if (g !== undefined) got.push(g);
    return { guests: got, failures, fetched };
  }

  /** /cluster/ceph/status, or undefined when the cluster has no Ceph (PVE answers 500 then; not a failure). */
  cephStatus(): Promise<CephStatus | undefined> {
    const path = '/cluster/ceph/status';
    return this.once(path, async () => {
      try {
        return await this.call(path, asObject<CephStatus>);
      } catch (err) {
        if (!isNoCephAnswer(err)) throw err;
        // PVE answered, and what it said is "no Ceph here": a successful call, not a failure.
        const i = this.failures.indexOf(err as PveError);
        if (i >= 0) this.failures.splice(i, 1);
        this.succeeded++;
        return undefined;
      }
    });
  }

  haStatus(): Promise<HaStatusEntry[]> {
    const path = '/cluster/ha/status/current';
    return this.once(path, async () => this.call(path, asArray<HaStatusEntry>));
  }

  backupJobs(): Promise<BackupJob[]> {
    const path = '/cluster/backup';
    return this.once(path, async () => this.call(path, asArray<BackupJob>));
  }

  /** A node's finished vzdump tasks, newest first, cached for the backup collector's TTL. */
  vzdumpTasks(node: string): Promise<NodeTask[]> {
    const path = `/nodes/${encodeURIComponent(node)}/tasks`;
    return this.cachedCall(BACKUP_CACHE, path, asArray<NodeTask>, { typefilter: 'vzdump', limit: String(VZDUMP_TASKS_PER_NODE) });
  }

  /**
   * The lines of a finished task's log, parsed by `parse` and kept by UPID for a week: the log
   * of a finished task never changes, so a warm scrape makes no log call. `keep` says which
   * UPIDs are still listed (others are dropped, so the cache follows PVE's task index).
   */
  finishedTaskLog<V>(node: string, upid: string, parse: (lines: string[]) => V): Promise<V> {
    return this.once(`tasklog:${upid}`, async () => {
      const store = this.client.caches.get<V>(TASK_LOG_CACHE, TASK_LOG_TTL_SECONDS);
      const cached = store.fresh(upid);
      if (cached !== undefined) return cached;
      const path = `/nodes/${encodeURIComponent(node)}/tasks/${encodeURIComponent(upid)}/log`;
      // A cache fill: under the module timeout, shared with any scrape that needs it meanwhile.
      // limit=0: every line (pve-common's dump_logfile reads to the end); the default is 50.
      const fill =
        store.inflight(upid) ??
        this.fillCache(
          store,
          upid,
          this.call(path, asArray<TaskLogLine>, { limit: '0' }, { ...this.client.ownContext(this.ctx.module), trace: this.ctx.trace }).then((lines) => parse(lines.map((l) => String(l.t)))),
        );
      return waitWithin(fill, this.ctx.signal, () => new PveError('deadline', path, 'scrape deadline reached while waiting for a task log (kept when it comes)'));
    });
  }

  /** Drops cached task logs of tasks no node lists any more. */
  retainTaskLogs(listed: ReadonlySet<string>): void {
    this.client.caches.get(TASK_LOG_CACHE, TASK_LOG_TTL_SECONDS).retainOnly((upid) => listed.has(upid));
  }

  /**
   * One VM's guest agent get-fsinfo answer, cached per guest for the guest-filesystem TTL,
   * answer or silence alike (an agent that hangs is not asked again every scrape). The call has
   * its own short timeout. An agent that is down or hangs is an answer (up: false); failures
   * that are not the agent's (403, node unreachable, deadline) throw, and a stale entry stands
   * in for them where one is left (counted).
   */
  guestFsInfo(node: string, vmid: number, timeoutMs: number): Promise<AgentFsAnswer> {
    const key = `qemu/${vmid}`;
    return this.once(`fsinfo:${key}`, async () => {
      const store = this.client.caches.get<AgentFsAnswer>(GUEST_FS_CACHE);
      const fresh = store.fresh(key);
      if (fresh !== undefined) return fresh;
      const path = `/nodes/${encodeURIComponent(node)}/qemu/${vmid}/agent/get-fsinfo`;
      // A cache fill under its own short timeout, shared with any scrape that needs it meanwhile.
      let fill = store.inflight(key);
      if (!fill) {
        const ctx: RequestContext = { ...this.client.ownContext(this.ctx.module), trace: this.ctx.trace, callTimeoutMs: timeoutMs };
        const answer = this.call(path, asObject<GuestFsInfo>, undefined, ctx).then(
          (fsinfo): AgentFsAnswer => ({ up: true, fsinfo }),
          (err: unknown): AgentFsAnswer => {
            const silent = agentSilence(err);
            if (silent === undefined) throw err;
            // The agent's silence is what PVE answered: not a failed call of this scrape.
            const i = this.failures.indexOf(err as PveError);
            if (i >= 0) this.failures.splice(i, 1);
            this.succeeded++;
            return { up: false, reason: silent };
          },
        );
        fill = this.fillCache(store, key, answer);
      }
      // Failures that are not the agent's (403, node unreachable, deadline): a stale answer stands in where one is left.
      return this.waitForFill(fill, store, key, GUEST_FS_CACHE, path, 'the guest agent (kept when it comes)');
    });
  }

  /** Drops cached agent answers of guests that no longer run with the agent on this node. */
  retainGuestFsInfo(keys: ReadonlySet<string>): void {
    this.client.caches.get(GUEST_FS_CACHE).retainOnly((k) => keys.has(k));
  }
}

/** The 500s PVE gives when the cluster has no Ceph (pve-manager PVE/Ceph/Tools.pm, PVE/API2/Cluster/Ceph.pm). */
export function isNoCephAnswer(err: unknown): boolean {
  return err instanceof PveError && err.status === 500 && /binary not installed|not initialized|ceph\.conf/i.test(err.message);
}

/**
 * Why the guest agent gave no answer, when that is what happened: qemu-server answers 500 ("QEMU
 * guest agent is not running", "... qga command 'guest-get-fsinfo' failed - got timeout", "VM
 * 101 is not running", "No QEMU guest agent configured"), or the call ran into its own timeout.
 */
export function agentSilence(err: unknown): string | undefined {
  if (!(err instanceof PveError)) return undefined;
  if (err.kind === 'timeout') return err.message;
  if (err.kind === 'http' && err.status === 500) return err.message.replace(/^500\s*/, '');
  return undefined;
}
