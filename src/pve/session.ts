// One scrape's view of the PVE API: every endpoint is fetched at most once, whichever collector
// asks first, and the others share the same promise.
import { waitWithin, type PveClient, type RequestContext } from './client.ts';
import { PveError } from './errors.ts';
import { guestConfigFields, type GuestConfigFields } from './guest-config.ts';
import type {
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
  ): Promise<T> {
    try {
      const data = shape(await this.client.get<unknown>(path, ctx, query), path);
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
  private async callSince<T>(path: string, shape: (data: unknown, path: string) => T): Promise<T> {
    const unsupported = this.client.knownUnsupported(path);
    if (unsupported) throw unsupported;
    try {
      return await this.call(path, shape);
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
      if (fresh !== undefined) return fresh;
      // The refresh is work for the cache, not for this scrape: it runs under the module timeout
      // and is shared with any scrape that needs it meanwhile (smartctl on every disk can take
      // longer than one scrape's deadline; the next scrape then finds the answer).
      let fill = store.inflight(key);
      if (!fill) {
        fill = this.call(path, shape, query, this.client.ownContext(this.ctx.module)).then((value) => {
          store.set(key, value);
          return value;
        });
        fill.catch(() => undefined);
        store.track(key, fill);
      }
      try {
        return await waitWithin(fill, this.ctx.signal, () => new PveError('deadline', path, 'scrape deadline reached while waiting for PVE (the answer is cached when it comes)'));
      } catch (err) {
        const definite = err instanceof PveError && (err.kind === 'auth' || err.status === 403 || err.status === 501);
        const stale = definite ? undefined : store.stale(key);
        if (stale === undefined) throw err;
        this.staleServed.set(cache, (this.staleServed.get(cache) ?? 0) + 1);
        return stale;
      }
    });
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
    return this.once(`guests:${node}`, async () => {
      if (this.opts.clusterScope) {
        const resources = await this.resources();
        return resources
          .filter((r): r is ClusterResource & { type: GuestType; vmid: number } => (r.type === 'qemu' || r.type === 'lxc') && r.node === node && typeof r.vmid === 'number')
          .map((r) => ({ type: r.type, vmid: r.vmid, status: r.status, name: r.name, template: r.template }));
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
    });
  }

  /** /nodes/{node}/status: load, iowait, swap, KSM, root filesystem, CPU, versions. */
  nodeStatus(node: string): Promise<NodeStatus> {
    const path = `/nodes/${encodeURIComponent(node)}/status`;
    return this.once(path, async () => this.call(path, asObject<NodeStatus>));
  }

  /** /cluster/metrics/export (PVE 8.2.5+): pvestatd's newest samples of every online node. */
  metricsExport(): Promise<MetricsExportEntry[]> {
    const path = '/cluster/metrics/export';
    // The handler returns {data: [...]}, which the API wraps again: {"data": {"data": [...]}}.
    return this.once(path, async () => this.callSince(path, (d, p) => asArray<MetricsExportEntry>(asObject<{ data?: unknown }>(d, p).data, p)));
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
    return { guests: r.guests.map((g) => ({ type: g.type, vmid: g.vmid, node: g.node, onboot: g.fields.onboot })), failures: r.failures, fetched: r.fetched };
  }

  /**
   * The kept config fields of every guest on `node`: from the cache where fresh, otherwise from
   * /nodes/{node}/{type}/{vmid}/config, all requests in flight at once (the client's pool caps
   * them). The guest list is localGuests(node); every collector of the scrape that asks shares
   * the same calls.
   */
  guestConfigs(node: string): Promise<GuestConfigsResult> {
    return this.once(`configs:${node}`, async () => {
      const guests = await this.localGuests(node);
      const failures: PveError[] = [];
      let fetched = 0;
      const present = new Set<string>();
      const out = await Promise.all(
        guests.map(async (g): Promise<GuestWithConfig | undefined> => {
          present.add(`${g.type}/${g.vmid}`);
          const cached = this.configCache.fresh(g.type, g.vmid, node);
          if (cached) return { type: g.type, vmid: g.vmid, node, fields: cached.fields };
          const path = `/nodes/${encodeURIComponent(node)}/${g.type}/${g.vmid}/config`;
          try {
            const cfg = await this.call(path, asObject<GuestConfig>);
            fetched++;
            this.configFetches++;
            const fields = guestConfigFields(g.type, cfg);
            this.configCache.store(g.type, g.vmid, node, fields);
            return { type: g.type, vmid: g.vmid, node, fields };
          } catch (err) {
            const stale = this.configCache.stale(g.type, g.vmid, node);
            if (stale) return { type: g.type, vmid: g.vmid, node, fields: stale.fields };
            failures.push(err instanceof PveError ? err : new PveError('parse', path, String(err)));
            return undefined;
          }
        }),
      );
      this.configCache.retainOnly(present);
      return { guests: out.filter((g): g is GuestWithConfig => g !== undefined), failures, fetched };
    });
  }
}
