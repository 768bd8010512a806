import type { FamilySpec, MetricFamily } from '../exposition/family.ts';
import type { PveSession } from '../pve/session.ts';
import type { PveError } from '../pve/errors.ts';

export type Scope = 'cluster' | 'node';

/** A collector that turns PVE API data into metric families for /pve. */
export interface ScrapeCollector {
  readonly kind: 'scrape';
  readonly name: string;
  readonly scope: Scope;
  readonly defaultEnabled: boolean;
  readonly description: string;
  /** PVE API endpoints read, and the privilege each needs (for the docs). */
  readonly endpoints: readonly { path: string; privilege: string }[];
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
}
