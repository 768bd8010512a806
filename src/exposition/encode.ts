// Text exposition encoders: Prometheus text format 0.0.4 and OpenMetrics 1.0.0.
// Written by hand because prom-client's registry is far too slow for a 100k-sample scrape
// (see DESIGN.md); each series' label string is built once per scrape, or once for as long as
// it stays the same with a SeriesCache.
import type { MetricFamily } from './family.ts';
import type { EncodedFamily, SeriesCache } from './series-cache.ts';

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

/** Series per chunk of output: about 45 KB, few writes, and the unit the cache reuses. */
const CHUNK_SERIES = 1024;

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

/** The lines of series [from, to) of a family, joined. */
function renderLines(sampleName: string, openers: readonly string[], lv: readonly string[], values: readonly number[], from: number, to: number): string {
  const n = openers.length;
  const lines: string[] = [];
  for (let i = from, k = from * n; i < to; i++) {
    let line = sampleName;
    for (let j = 0; j < n; j++, k++) line += openers[j] + escapeLabelValue(lv[k]) + '"';
    lines.push(line + (n > 0 ? '} ' : ' ') + formatValue(values[i]) + '\n');
  }
  return lines.join('');
}

function openersOf(labels: readonly string[]): string[] {
  return labels.map((l, i) => (i === 0 ? '{' : ',') + l + '="');
}

// Lines are joined in chunks: each line's pieces die young, and the chunk goes out to the
// response at once (long ropes were promoted and made GC the main cost; a whole 3.6 MB body
// held as string, UTF-8 buffer and gzip output made the resident memory).
function* encodeFamily(fam: MetricFamily, format: Format, names: ReadonlySet<string>): Generator<string> {
  const { familyName, type, sampleName } = naming(fam, format, names);
  yield header(familyName, type, fam.spec.help, format);
  const openers = openersOf(fam.spec.labels);
  const count = fam.values.length;
  for (let from = 0; from < count; from += CHUNK_SERIES) {
    yield renderLines(sampleName, openers, fam.labelValues, fam.values, from, Math.min(count, from + CHUNK_SERIES));
  }
}

/** Whether series [from, to) are last time's chunk: as many series, same label values and values. */
function sameSeries(n: number, lv: readonly string[], values: readonly number[], prev: EncodedFamily, from: number, to: number): boolean {
  // The last chunk of a family that shrank or grew covers other series than this one.
  if (Math.min(prev.values.length, from + CHUNK_SERIES) !== to) return false;
  const plv = prev.labelValues;
  const pv = prev.values;
  for (let i = from; i < to; i++) if (values[i] !== pv[i]) return false;
  for (let k = from * n, end = to * n; k < end; k++) if (lv[k] !== plv[k]) return false;
  return true;
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
  const openers = openersOf(labels);
  const lv = fam.labelValues;
  const values = fam.values;
  const count = values.length;
  // What the previous encode of this family left; this one builds a new memo (another encode of
  // the same cache may run between two of our chunks and must still see a consistent one).
  const prev = memo.last;
  const chunks: Array<string | undefined> = [];
  for (let from = 0, c = 0; from < count; from += CHUNK_SERIES, c++) {
    const to = Math.min(count, from + CHUNK_SERIES);
    const known = prev !== undefined && c < prev.chunks.length;
    const same = known && sameSeries(n, lv, values, prev!, from, to);
    const kept = same ? prev!.chunks[c] : undefined;
    // A chunk whose series are all as last time (labels and values) is last time's text.
    const chunk = kept ?? renderLines(sampleName, openers, lv, values, from, to);
    // Text is kept for chunks likely to be the same next time: new ones and unchanged ones. A
    // chunk that changed (counters, CPU) keeps only its values to compare with: keeping text
    // that never comes back would be memory and GC for nothing.
    chunks.push(known && !same ? undefined : chunk);
    yield chunk;
  }
  memo.last = { labelValues: lv, values, chunks };
}

/** The whole exposition as one string (tests, small outputs); the server streams encodeChunks. */
export function encode(families: readonly MetricFamily[], format: Format): string {
  return [...encodeChunks(families, format)].join('');
}
