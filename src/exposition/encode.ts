// Text exposition encoders: Prometheus text format 0.0.4 and OpenMetrics 1.0.0.
// Written by hand because prom-client's registry is far too slow for a 100k-sample scrape
// (see DESIGN.md); each series' line is built once per scrape, or, with a SeriesCache, once for
// as long as its chunk of series stays the same (and then kept in the form it is sent in).
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

/** Zeros that pad the low nine digits of formatValue's split integers. */
const ZEROS = ['', '0', '00', '000', '0000', '00000', '000000', '0000000', '00000000'];

export function formatValue(v: number): string {
  // Integers of 10 to 16 digits (byte and packet counters, sizes: most of a scrape's changed
  // values) are printed as two halves below 10^9. String() of a number beyond the small-integer
  // range takes V8's shortest-double path, twice as slow as String() of two small integers
  // (229 against 112 ns a value); the digits are the same (test/encode.test.ts).
  if (v >= 1e9 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v)) {
    const high = Math.floor(v / 1e9);
    const low = String(v - high * 1e9);
    return String(high) + ZEROS[9 - low.length] + low;
  }
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
 * With a SeriesCache (one per kind of scrape), each chunk of series is reused from the previous
 * encode when unchanged; the output is the same either way.
 */
export function* encodeChunks(families: readonly MetricFamily[], format: Format, cache?: SeriesCache<string>): Generator<string> {
  if (cache) {
    yield* encodePieces(families, format, cache, TEXT_PIECES);
    return;
  }
  const names = new Set(families.map((f) => f.spec.name));
  for (const fam of families) yield* encodeFamily(fam, format, names);
  if (format === 'openmetrics') yield '# EOF\n';
}

/**
 * What an answer keeps of a piece of output for the next encode of its kind of scrape: the text
 * (tests), its bytes as sent (identity), or its bytes deflated (gzip, gzip-pieces.ts).
 */
export interface PieceCodec<T> {
  encode(text: string): T;
}

const TEXT_PIECES: PieceCodec<string> = { encode: (text) => text };

/**
 * encodeChunks with a cache, each piece of output in the form `codec` makes of its text: a
 * family's chunk of series (the first with the family's HELP and TYPE lines), taken from the
 * previous encode where its series are all as they were, and the closing `# EOF` of OpenMetrics.
 */
export function* encodePieces<T>(families: readonly MetricFamily[], format: Format, cache: SeriesCache<T>, codec: PieceCodec<T>): Generator<T> {
  const names = new Set(families.map((f) => f.spec.name));
  const round = cache.begin();
  for (const fam of families) yield* encodeFamilyCached(fam, format, names, cache, round, codec);
  cache.end(round);
  if (format === 'openmetrics') yield (cache.eof ??= codec.encode('# EOF\n'));
}

/** The lines of series [from, to) of a family, joined. */
function renderLines(sampleName: string, openers: readonly string[], lv: readonly string[], values: readonly number[], from: number, to: number): string {
  const n = openers.length;
  const close = n > 0 ? '} ' : ' ';
  // Appended to one string (a rope V8 flattens once, when the piece is encoded): fewer strings
  // in between than an array of lines joined, a fifth less garbage and time (measured).
  let out = '';
  for (let i = from, k = from * n; i < to; i++) {
    let line = sampleName;
    for (let j = 0; j < n; j++, k++) line += openers[j] + escapeLabelValue(lv[k]) + '"';
    out += line + close + formatValue(values[i]) + '\n';
  }
  return out;
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
function sameSeries<T>(n: number, lv: readonly string[], values: readonly number[], prev: EncodedFamily<T>, from: number, to: number): boolean {
  // The last chunk of a family that shrank or grew covers other series than this one.
  if (Math.min(prev.values.length, from + CHUNK_SERIES) !== to) return false;
  const plv = prev.labelValues;
  const pv = prev.values;
  for (let i = from; i < to; i++) {
    const a = values[i];
    const b = pv[i];
    // NaN is as it was when both are NaN (a !== a only for NaN).
    if (a !== b && (a === a || b === b)) return false;
  }
  for (let k = from * n, end = to * n; k < end; k++) if (lv[k] !== plv[k]) return false;
  return true;
}

function* encodeFamilyCached<T>(
  fam: MetricFamily,
  format: Format,
  names: ReadonlySet<string>,
  cache: SeriesCache<T>,
  round: number,
  codec: PieceCodec<T>,
): Generator<T> {
  const { familyName, type, sampleName } = naming(fam, format, names);
  const labels = fam.spec.labels;
  // The format is in the key: HELP is escaped differently in OpenMetrics (one cache, one format in
  // the server, but a cache used for both must not mix them).
  const memo = cache.family(`${format}\u0000${familyName}\u0000${sampleName}\u0000${labels.join('\u0000')}`, round);
  const n = labels.length;
  const openers = openersOf(labels);
  const lv = fam.labelValues;
  const values = fam.values;
  const count = values.length;
  // What the previous encode of this family left; this one builds a new memo (another encode of
  // the same cache may run between two of our chunks and must still see a consistent one).
  const prev = memo.last;
  const sameHeader = prev !== undefined && prev.help === fam.spec.help && prev.type === type;
  const chunks: Array<T | undefined> = [];
  // Chunk 0 carries the HELP and TYPE lines (and is the only one of a family without series).
  for (let from = 0, c = 0; from < count || c === 0; from += CHUNK_SERIES, c++) {
    const to = Math.min(count, from + CHUNK_SERIES);
    const known = prev !== undefined && c < prev.chunks.length && (c > 0 || sameHeader);
    const same = known && sameSeries(n, lv, values, prev!, from, to);
    const kept = same ? prev!.chunks[c] : undefined;
    // A chunk whose series are all as last time (labels and values) is last time's output.
    let piece = kept;
    if (piece === undefined) {
      const lines = renderLines(sampleName, openers, lv, values, from, to);
      piece = codec.encode(c === 0 ? header(familyName, type, fam.spec.help, format) + lines : lines);
    }
    // Output is kept for chunks likely to be the same next time: new ones and unchanged ones. A
    // chunk that changed (counters, CPU) keeps only its values to compare with: keeping output
    // that never comes back would be memory and GC for nothing.
    chunks.push(known && !same ? undefined : piece);
    yield piece;
  }
  memo.last = { labelValues: lv, values, chunks, help: fam.spec.help, type };
}

/** The whole exposition as one string (tests, small outputs); the server streams encodeChunks. */
export function encode(families: readonly MetricFamily[], format: Format): string {
  return [...encodeChunks(families, format)].join('');
}
