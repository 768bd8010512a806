import type { FamilySpec, MetricFamily } from '../exposition/family.ts';
import type { PveSession } from '../pve/session.ts';
import { PveError } from '../pve/errors.ts';

export type Scope = 'cluster' | 'node';

/**
 * How many calls of an endpoint one scrape costs: 'cluster' one per scrape; 'node' one per node
 * covered (a node-scope collector covers the answering node only); 'guest' / 'disk' one per guest
 * or disk (acceptable only behind a TTL cache and the concurrency cap).
 */
export type EndpointCost = 'cluster' | 'node' | 'guest' | 'disk';

export interface EndpointUse {
  /** API path with {placeholders}, e.g. "/nodes/{node}/disks/list". */
  readonly path: string;
  /** The PVE privilege it needs, as an operator grants it ("Sys.Audit on /"). Named in 403 logs. */
  readonly privilege: string;
  readonly cost: EndpointCost;
  /**
   * The PVE release that added the endpoint ("pve-manager 8.2.5"). Older releases answer 501: for
   * such an endpoint that is no failure but a fact, logged once (and the session does not ask
   * again for an hour). A 501 of an endpoint without `since` stays a failure (a wrong path, a proxy).
   */
  readonly since?: string;
}

/** A collector that turns PVE API data into metric families for /pve. */
export interface ScrapeCollector {
  readonly kind: 'scrape';
  readonly name: string;
  readonly scope: Scope;
  readonly defaultEnabled: boolean;
  readonly description: string;
  /**
   * 'reference': families of prometheus-pve-exporter 3.10 (compared byte for byte by the compat
   * tests); 'addition': this project's own (absent from the reference output, so the compat
   * comparison ignores them).
   */
  readonly origin: 'reference' | 'addition';
  /** Why a collector is off by default (shown in --help and the docs); set when defaultEnabled is false. */
  readonly offReason?: string;
  /** PVE API endpoints read, the privilege each needs and what each costs per scrape. */
  readonly endpoints: readonly EndpointUse[];
  /**
   * Default TTL in seconds of the collector's cache of slow-changing data (per client, i.e. per
   * module settings and target); overridden by --collector.<name>.ttl. Absent: nothing cached.
   */
  readonly cacheTtl?: number;
  /** Every family it may produce (metrics reference, tests). */
  readonly families: readonly FamilySpec[];
  collect(session: PveSession): Promise<MetricFamily[]>;
}

/** A switch for the exporter's own metrics on /metrics (no PVE data of its own). */
export interface SelfCollector {
  readonly kind: 'self';
  readonly name: string;
  readonly defaultEnabled: boolean;
  readonly description: string;
  readonly families: readonly FamilySpec[];
}

export type Collector = ScrapeCollector | SelfCollector;

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * The PVE keys that can be label names: [a-zA-Z_][a-zA-Z0-9_]* and not the reserved "__" prefix.
 * A key PVE adds in a later release that breaks those rules is dropped, so one odd key cannot make
 * the whole exposition unparseable.
 */
export function labelNamesFrom(keys: readonly string[]): string[] {
  return keys.filter((k) => LABEL_NAME.test(k) && !k.startsWith('__'));
}

/** String form of a PVE value for a label (missing -> ""). */
export function labelValue(v: unknown): string {
  if (v === undefined || v === null) return '';
  return String(v);
}

/** Numeric form of a PVE value (PVE sometimes sends numbers as strings). */
export function numberValue(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}

/** A collector result that is incomplete: its families are exposed, its success is 0. */
export class PartialFailure extends Error {
  constructor(
    readonly families: MetricFamily[],
    readonly failure: PveError,
  ) {
    super(failure.message);
  }

  /**
   * Some of a collector's many calls of one kind failed (guest configs, task lists, get-fsinfo):
   * the series of the others, and a failure that counts them and tells the first. `path` names
   * the endpoint when the first failure is not a PveError.
   */
  static ofCalls(families: MetricFamily[], failures: readonly unknown[], what: string, path: string): PartialFailure {
    const first = failures[0];
    const err = first instanceof PveError ? first : new PveError('parse', path, String(first));
    return new PartialFailure(families, new PveError(err.kind, err.path, `${failures.length} ${what} call(s) failed, first: ${err.message}`, err.status));
  }
}

/**
 * QEMU guests before containers, each by VMID (the reference's order). Comparators and callbacks
 * run per guest live at module level, not as closures made in each scrape: V8 drops the optimized
 * code of closures that have died at each full collection, and compiles the next scrape's anew
 * (measured: 438 TurboFan compiles in the second half of 300 warm scrapes, 131 without these
 * closures; some 4 ms of compiler threads a scrape).
 */
export function byTypeAndVmid(a: { readonly type: string; readonly vmid: number }, b: { readonly type: string; readonly vmid: number }): number {
  return a.type === b.type ? a.vmid - b.vmid : a.type === 'qemu' ? -1 : 1;
}
