// Text exposition encoders: Prometheus text format 0.0.4 and OpenMetrics 1.0.0.
// Written by hand because prom-client's registry is far too slow for a 100k-sample scrape
// (see DESIGN.md); each series' label string is built exactly once.
import type { MetricFamily } from './family.ts';

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export type Format = 'text' | 'openmetrics';

function escapeLabelValue(v: string): string {
  // Fast path: most values need no escaping.
  if (!/[\\"\n]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string, format: Format): string {
  const s = v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  return format === 'openmetrics' ? s.replace(/"/g, '\\"') : s;
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * Encodes families in the order given. In OpenMetrics a counter family is named without
 * `_total`; where that name is taken by another family (the reference keeps deprecated gauges
 * such as pve_network_transmit_bytes next to pve_network_transmit_bytes_total), the counter is
 * exposed as a gauge under its full name, so every series keeps its name and value. (`unknown`
 * would be the closer OpenMetrics type, but promtool's text parser rejects it.)
 */
export function* encodeChunks(families: readonly MetricFamily[], format: Format): Generator<string> {
  const names = new Set(families.map((f) => f.spec.name));
  for (const fam of families) {
    const { name, help, labels } = fam.spec;
    let type: string = fam.spec.type;
    let familyName = name;
    if (format === 'openmetrics' && type === 'counter') {
      const base = name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
      if (name.endsWith('_total') && !names.has(base)) familyName = base;
      else if (name.endsWith('_total')) type = 'gauge';
    }
    const sampleName = format === 'openmetrics' && type === 'counter' && familyName === name ? name + '_total' : name;
    yield `# HELP ${familyName} ${escapeHelp(help, format)}\n# TYPE ${familyName} ${type}\n`;
    const n = labels.length;
    const openers = labels.map((l, i) => (i === 0 ? '{' : ',') + l + '="');
    const lv = fam.labelValues;
    const values = fam.values;
    // Lines are joined in batches of 512: each line's pieces die young, and the batch goes out to
    // the response at once (long ropes were promoted and made GC the main cost; a whole 3.6 MB
    // body held as string, UTF-8 buffer and gzip output made the resident memory).
    let batch: string[] = [];
    for (let i = 0, k = 0; i < values.length; i++) {
      let line = sampleName;
      for (let j = 0; j < n; j++, k++) line += openers[j] + escapeLabelValue(lv[k]) + '"';
      batch.push(line + (n > 0 ? '} ' : ' ') + formatValue(values[i]) + '\n');
      if (batch.length === 512) {
        yield batch.join('');
        batch = [];
      }
    }
    if (batch.length > 0) yield batch.join('');
  }
  if (format === 'openmetrics') yield '# EOF\n';
}

/** The whole exposition as one string (tests, small outputs); the server streams encodeChunks. */
export function encode(families: readonly MetricFamily[], format: Format): string {
  return [...encodeChunks(families, format)].join('');
}
