// Text exposition encoders: Prometheus text format 0.0.4 and OpenMetrics 1.0.0.
// Written by hand because prom-client's registry is far too slow for a 100k-sample scrape
// (see DESIGN.md). Without a cache each series' line is built as a string; with a SeriesCache a
// chunk of series is written as bytes (chunk-bytes.ts) once for as long as it stays the same, then
// kept in the form it is sent in, and a chunk whose values change keeps the bytes before its values.
import type { MetricFamily } from './family.ts';
import type { EncodedFamily, SeriesCache } from './series-cache.ts';
import { buildPrefixes, escapeLabelValue, formatValue, renderChunk, type ChunkPrefixes } from './chunk-bytes.ts';

export { formatValue };

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export type Format = 'text' | 'openmetrics';

function escapeHelp(v: string, format: Format): string {
  const s = v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  return format === 'openmetrics' ? s.replace(/"/g, '\\"') : s;
}

/** The families' names (a loop: no callback made per scrape). */
function namesOf(families: readonly MetricFamily[]): Set<string> {
  const names = new Set<string>();
  for (const f of families) names.add(f.spec.name);
  return names;
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
  const names = namesOf(families);
  for (const fam of families) yield* encodeFamily(fam, format, names);
  if (format === 'openmetrics') yield '# EOF\n';
}

/**
 * What an answer keeps of a piece of output for the next encode of its kind of scrape: the text
 * (tests), its bytes as sent (identity), or its bytes deflated (gzip, gzip-pieces.ts).
 */
export interface PieceCodec<T> {
  /** `bytes` (UTF-8) are the encoder's own buffer, valid during the call only: keep a copy. */
  encode(bytes: Buffer): T;
}

export const TEXT_PIECES: PieceCodec<string> = { encode: (bytes) => bytes.toString('utf8') };

/**
 * encodeChunks with a cache, each piece of output in the form `codec` makes of its text: a
 * family's chunk of series (the first with the family's HELP and TYPE lines), taken from the
 * previous encode where its series are all as they were, and the closing `# EOF` of OpenMetrics.
 */
export function* encodePieces<T>(families: readonly MetricFamily[], format: Format, cache: SeriesCache<T>, codec: PieceCodec<T>): Generator<T> {
  const names = namesOf(families);
  const round = cache.begin();
  for (const fam of families) yield* encodeFamilyCached(fam, format, names, cache, round, codec);
  cache.end(round);
  if (format === 'openmetrics') yield (cache.eof ??= codec.encode(Buffer.from('# EOF\n')));
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

/** Whether series [from, to) have last time's values, position by position. */
function sameValues<T>(values: readonly number[], prev: EncodedFamily<T>, from: number, to: number): boolean {
  const pv = prev.values;
  for (let i = from; i < to; i++) {
    const a = values[i];
    const b = pv[i];
    // NaN is as it was when both are NaN (a !== a only for NaN).
    if (a !== b && (a === a || b === b)) return false;
  }
  return true;
}

/** Whether series [from, to) have last time's label values (and the chunk as many series). */
function sameLabels<T>(n: number, lv: readonly string[], prev: EncodedFamily<T>, from: number, to: number): boolean {
  // The last chunk of a family that shrank or grew covers other series than this one.
  if (Math.min(prev.values.length, from + CHUNK_SERIES) !== to) return false;
  const plv = prev.labelValues;
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
  const close = n > 0 ? '} ' : ' ';
  const lv = fam.labelValues;
  const values = fam.values;
  const count = values.length;
  // What the previous encode of this family left; this one builds a new memo (another encode of
  // the same cache may run between two of our chunks and must still see a consistent one).
  const prev = memo.last;
  const sameHeader = prev !== undefined && prev.help === fam.spec.help && prev.type === type;
  const chunks: Array<T | undefined> = [];
  const prefixes: Array<ChunkPrefixes | undefined> = [];
  // Chunk 0 carries the HELP and TYPE lines (and is the only one of a family without series).
  for (let from = 0, c = 0; from < count || c === 0; from += CHUNK_SERIES, c++) {
    const to = Math.min(count, from + CHUNK_SERIES);
    const labelled = prev !== undefined && c < prev.chunks.length && sameLabels(n, lv, prev, from, to);
    const known = labelled && (c > 0 || sameHeader);
    const same = known && sameValues(values, prev!, from, to);
    // A chunk whose series are all as last time (labels and values) is last time's output.
    let piece = same ? prev!.chunks[c] : undefined;
    let kept: ChunkPrefixes | undefined;
    if (piece === undefined) {
      // Series with last time's labels are written with last time's prefixes, when kept.
      const p = (labelled ? prev!.prefixes[c] : undefined) ?? buildPrefixes(sampleName, openers, close, lv, from, to);
      piece = codec.encode(renderChunk(c === 0 ? header(familyName, type, fam.spec.help, format) : '', p, values, from));
      kept = p;
    }
    // Output is kept for chunks likely to be the same next time: new ones and unchanged ones. A
    // chunk whose values changed (counters, CPU) keeps its prefixes instead, to write its next
    // values with: keeping output that never comes back would be memory and GC for nothing.
    const changed = known && !same;
    chunks.push(changed ? undefined : piece);
    prefixes.push(changed ? kept : undefined);
    yield piece;
  }
  memo.last = { labelValues: lv, values, chunks, prefixes, help: fam.spec.help, type };
}

/** The whole exposition as one string (tests, small outputs); the server streams encodeChunks. */
export function encode(families: readonly MetricFamily[], format: Format): string {
  return [...encodeChunks(families, format)].join('');
}
