// A metric family as collectors produce it: declared once (name, type, help, label names),
// filled with samples whose label values line up with the declared label names.

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
  readonly samples: Sample[] = [];
  constructor(readonly spec: FamilySpec) {}

  add(labelValues: readonly string[], value: number): this {
    if (labelValues.length !== this.spec.labels.length) {
      throw new Error(
        `metric ${this.spec.name}: ${labelValues.length} label values for ${this.spec.labels.length} labels`,
      );
    }
    this.samples.push({ labelValues, value });
    return this;
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
