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
  private lv: string[] = [];
  private vs: number[] = [];
  /** Samples added so far (the arrays may be longer: reserve()). */
  private count = 0;

  constructor(readonly spec: FamilySpec) {}

  /** Label values of sample i are labelValues[i*n .. i*n+n-1], n = spec.labels.length. */
  get labelValues(): string[] {
    const want = this.count * this.spec.labels.length;
    if (this.lv.length !== want) this.lv.length = want; // trims what reserve() left unused, in place
    return this.lv;
  }

  get values(): number[] {
    if (this.vs.length !== this.count) this.vs.length = this.count;
    return this.vs;
  }

  /**
   * Room for `series` samples, allocated once. Arrays grown by push are copied at each step, and
   * past 128 KB each copy lands in V8's large-object space, which only a full collection frees:
   * the one-hot HA and lock families of 2,000 guests (40,000 series) made most of the scrape's
   * large-object garbage that way. Room left unused is trimmed when the family is read.
   */
  reserve(series: number): this {
    if (this.count === 0 && series > 0) {
      this.vs = new Array<number>(series);
      this.lv = new Array<string>(series * this.spec.labels.length);
    }
    return this;
  }

  add(labelValues: readonly string[], value: number): this {
    const n = this.spec.labels.length;
    if (labelValues.length !== n) {
      throw new Error(`metric ${this.spec.name}: ${labelValues.length} label values for ${n} labels`);
    }
    for (let j = 0, k = this.count * n; j < n; j++, k++) this.lv[k] = labelValues[j];
    this.vs[this.count++] = value;
    return this;
  }

  /** add() for one-label families, without an array per sample (hot path). */
  add1(label: string, value: number): void {
    if (this.spec.labels.length !== 1) throw new Error(`metric ${this.spec.name}: add1 on ${this.spec.labels.length} labels`);
    this.lv[this.count] = label;
    this.vs[this.count++] = value;
  }

  /** add() for two-label families, without an array per sample (hot path). */
  add2(a: string, b: string, value: number): void {
    if (this.spec.labels.length !== 2) throw new Error(`metric ${this.spec.name}: add2 on ${this.spec.labels.length} labels`);
    const k = this.count * 2;
    this.lv[k] = a;
    this.lv[k + 1] = b;
    this.vs[this.count++] = value;
  }

  /** The samples as objects (tests and tooling; the encoder reads the flat arrays). */
  get samples(): Sample[] {
    const n = this.spec.labels.length;
    const lv = this.labelValues;
    return this.values.map((value, i) => ({ labelValues: lv.slice(i * n, i * n + n), value }));
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
