// A metric family as collectors produce it: declared once (name, type, help, label names),
// filled with samples whose label values line up with the declared label names.
// Samples are stored flat (one array of label values, one of numbers): a 2,000-guest cluster
// yields ~80k samples per scrape, and per-sample objects made garbage collection the main cost.

/** Scrape output uses gauge and counter; histogram and summary describe /metrics in the docs. */
export type MetricType = 'gauge' | 'counter' | 'histogram' | 'summary';

export interface FamilySpec {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labels: readonly string[];
}

export interface Sample {
  readonly labelValues: readonly string[];
  readonly value: number;
}

export class MetricFamily {
  /** Label values of sample i are labelValues[i*n .. i*n+n-1], n = spec.labels.length. */
  readonly labelValues: string[] = [];
  readonly values: number[] = [];

  constructor(readonly spec: FamilySpec) {}

  add(labelValues: readonly string[], value: number): this {
    if (labelValues.length !== this.spec.labels.length) {
      throw new Error(`metric ${this.spec.name}: ${labelValues.length} label values for ${this.spec.labels.length} labels`);
    }
    for (const v of labelValues) this.labelValues.push(v);
    this.values.push(value);
    return this;
  }

  /** add() for one-label families, without an array per sample (hot path). */
  add1(label: string, value: number): void {
    if (this.spec.labels.length !== 1) throw new Error(`metric ${this.spec.name}: add1 on ${this.spec.labels.length} labels`);
    this.labelValues.push(label);
    this.values.push(value);
  }

  /** add() for two-label families, without an array per sample (hot path). */
  add2(a: string, b: string, value: number): void {
    if (this.spec.labels.length !== 2) throw new Error(`metric ${this.spec.name}: add2 on ${this.spec.labels.length} labels`);
    this.labelValues.push(a, b);
    this.values.push(value);
  }

  /** The samples as objects (tests and tooling; the encoder reads the flat arrays). */
  get samples(): Sample[] {
    const n = this.spec.labels.length;
    return this.values.map((value, i) => ({ labelValues: this.labelValues.slice(i * n, i * n + n), value }));
  }
}

/** A family whose label names are only known at run time (pve_version_info, pve_cluster_info). */
export function familyWithLabels(spec: FamilySpec, labels: readonly string[]): MetricFamily {
  return new MetricFamily({ ...spec, labels });
}

export function gauge(name: string, help: string, labels: readonly string[]): FamilySpec {
  return { name, type: 'gauge', help, labels };
}

export function counter(name: string, help: string, labels: readonly string[]): FamilySpec {
  return { name, type: 'counter', help, labels };
}
