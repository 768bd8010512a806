// Text exposition encoders: Prometheus text format 0.0.4 and OpenMetrics 1.0.0.
// Written by hand because prom-client's registry is far too slow for a 100k-sample scrape
// (see DESIGN.md); each series' label string is built once per scrape, or once for as long as
// it stays the same with a SeriesCache.
import type { MetricFamily } from './family.ts';
import type { SeriesCache } from './series-cache.ts';

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

/** A family's name, type and sample name in `format` (OpenMetrics renames counters). */
function naming(fam: MetricFamily, format: Format, names: ReadonlySet<string>): { familyName: string; type: string; sampleName: string } {
  const { name } = fam.spec;
  let type: string = fam.spec.type;
  let familyName = name;
  if (format === 'openmetrics' && type === 'counter') {
    const base = name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
    if (name.endsWith('_total') && !names.has(base)) familyName = base;
    else if (name.endsWith('_total')) type = 'gauge';
  }
  const sampleName = format === 'openmetrics' && type === 'counter' && familyName === name ? name + '_total' : name;
  return { familyName, type, sampleName };
}

function header(familyName: string, type: string, help: string, format: Format): string {
  return `# HELP ${familyName} ${escapeHelp(help, format)}\n# TYPE ${familyName} ${type}\n`;
}

/** `name{a="x",b="y"} ` for the labels of sample i (k = offset of its first label value). */
function seriesPrefix(sampleName: string, openers: readonly string[], lv: readonly string[], k: number): string {
  const n = openers.length;
  if (n === 0) return sampleName + ' ';
  const parts = [sampleName];
  for (let j = 0; j < n; j++) parts.push(openers[j], escapeLabelValue(lv[k + j]), '"');
  parts.push('} ');
  return parts.join(''); // one flat string: it is kept across scrapes
}

/** Lines go out in batches of this many strings (about 45 KB): fewer writes, young garbage. */
const BATCH_PARTS = 2048;
const ZERO = '0\n';
const ONE = '1\n';

function valueLine(v: number): string {
  return v === 0 ? ZERO : v === 1 ? ONE : formatValue(v) + '\n';
}

/**
 * Encodes families in the order given. In OpenMetrics a counter family is named without
 * `_total`; where that name is taken by another family (the reference keeps deprecated gauges
 * such as pve_network_transmit_bytes next to pve_network_transmit_bytes_total), the counter is
 * exposed as a gauge under its full name, so every series keeps its name and value. (`unknown`
 * would be the closer OpenMetrics type, but promtool's text parser rejects it.)
 *
 * With a SeriesCache (one per kind of scrape), each series' rendered labels and value text are
 * reused from the previous encode when unchanged; the output is the same either way.
 */
export function* encodeChunks(families: readonly MetricFamily[], format: Format, cache?: SeriesCache): Generator<string> {
  const names = new Set(families.map((f) => f.spec.name));
  const round = cache?.begin() ?? 0;
  for (const fam of families) {
    if (cache) yield* encodeFamilyCached(fam, format, names, cache, round);
    else yield* encodeFamily(fam, format, names);
  }
  cache?.end(round);
  if (format === 'openmetrics') yield '# EOF\n';
}

function* encodeFamily(fam: MetricFamily, format: Format, names: ReadonlySet<string>): Generator<string> {
  const { familyName, type, sampleName } = naming(fam, format, names);
  yield header(familyName, type, fam.spec.help, format);
  const labels = fam.spec.labels;
  const n = labels.length;
  const openers = labels.map((l, i) => (i === 0 ? '{' : ',') + l + '="');
  const lv = fam.labelValues;
  const values = fam.values;
  // Lines are joined in batches: each line's pieces die young, and the batch goes out to the
  // response at once (long ropes were promoted and made GC the main cost; a whole 3.6 MB body
  // held as string, UTF-8 buffer and gzip output made the resident memory).
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

function* encodeFamilyCached(fam: MetricFamily, format: Format, names: ReadonlySet<string>, cache: SeriesCache, round: number): Generator<string> {
  const { familyName, type, sampleName } = naming(fam, format, names);
  const labels = fam.spec.labels;
  const memo = cache.family(`${familyName}\u0000${sampleName}\u0000${labels.join('\u0000')}`, round);
  if (memo.headerHelp !== fam.spec.help || memo.headerType !== type) {
    memo.header = header(familyName, type, fam.spec.help, format);
    memo.headerHelp = fam.spec.help;
    memo.headerType = type;
  }
  yield memo.header;
  const n = labels.length;
  const openers = labels.map((l, i) => (i === 0 ? '{' : ',') + l + '="');
  const lv = fam.labelValues;
  const values = fam.values;
  // What the previous encode of this family left; this one builds new arrays (another encode of
  // the same cache may run between two of our batches and must still see a consistent memo).
  const prev = memo.last;
  const prevLv = prev?.labelValues ?? [];
  const prevCount = prev ? prev.prefixes.length : 0;
  const prefixes: string[] = new Array<string>(values.length);
  const texts: string[] = new Array<string>(values.length);
  const batch: string[] = [];
  for (let i = 0, k = 0; i < values.length; i++, k += n) {
    // The same series at the same place as last time: its labels were escaped and joined then.
    let same = i < prevCount;
    for (let j = 0; same && j < n; j++) same = lv[k + j] === prevLv[k + j];
    const v = values[i];
    let prefix: string;
    let text: string;
    if (same) {
      prefix = prev!.prefixes[i];
      // NaN never equals itself: its text is made again, which is right.
      text = prev!.values[i] === v ? prev!.texts[i] : valueLine(v);
    } else {
      prefix = seriesPrefix(sampleName, openers, lv, k);
      text = valueLine(v);
    }
    prefixes[i] = prefix;
    texts[i] = text;
    batch.push(prefix, text);
    if (batch.length >= BATCH_PARTS) {
      yield batch.join('');
      batch.length = 0;
    }
  }
  if (batch.length > 0) yield batch.join('');
  memo.last = { labelValues: lv, values, prefixes, texts };
}

/** The whole exposition as one string (tests, small outputs); the server streams encodeChunks. */
export function encode(families: readonly MetricFamily[], format: Format): string {
  return [...encodeChunks(families, format)].join('');
}
