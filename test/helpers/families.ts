// Reading built metric families in unit tests of the collectors.
import assert from 'node:assert/strict';
import type { MetricFamily } from '../../src/exposition/family.ts';

/** The samples of family `name` (which must be there), keyed "label=value,label=value". */
export function series(fams: MetricFamily[], name: string): Map<string, number> {
  const fam = fams.find((f) => f.spec.name === name);
  assert.ok(fam, `family ${name} missing`);
  const out = new Map<string, number>();
  for (const s of fam.samples) out.set(fam.spec.labels.map((l, i) => `${l}=${s.labelValues[i]}`).join(','), s.value);
  return out;
}
