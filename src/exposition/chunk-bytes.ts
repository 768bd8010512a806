// A chunk of series written as bytes, for the cached encoder (encode.ts encodePieces). Most chunks
// that change between two scrapes change only in their values (counters, CPU, memory of running
// guests: a quarter of a 2,000-guest exposition, every scrape), so such a chunk keeps the text
// before each value ("name{id="qemu/100"} ") as UTF-8 bytes, and the next render copies those
// bytes and prints the values next to them: no string per series, no UTF-8 conversion of the
// whole chunk. Building each line as a string was most of the encoder's CPU and garbage.
// The plain encoder (encode.ts encodeFamily) still builds strings; the tests hold the two to the
// same output.

/** The bytes before each series' value in a chunk, as the last render wrote them. */
export interface ChunkPrefixes {
  /** The prefixes one after another, in a buffer of their own size. */
  readonly bytes: Buffer;
  /** ends[i]: where series i's prefix ends in `bytes` (it begins where series i - 1's ended). */
  readonly ends: Uint32Array;
}

/** A label value as the formats quote it: backslash, double quote and newline escaped. */
export function escapeLabelValue(v: string): string {
  // Fast path: most values need no escaping.
  if (!/[\\"\n]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Zeros that pad the low nine digits of a split integer. */
const ZEROS = ['', '0', '00', '000', '0000', '00000', '000000', '0000000', '00000000'];

/**
 * A number as the exposition prints it: what String() prints, with NaN and the infinities as the
 * formats spell them.
 */
export function formatValue(v: number): string {
  // Integers of 10 to 16 digits (byte and packet counters, sizes) are printed as two halves below
  // 10^9. String() of a number beyond the small-integer range takes V8's shortest-double path,
  // twice as slow as String() of two small integers (229 against 112 ns a value); the digits are
  // the same (test/encode.test.ts).
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

/** Where a chunk is written: one buffer for every chunk, grown to the largest. */
let out = Buffer.allocUnsafeSlow(64 * 1024);

function room(bytes: number): void {
  if (out.length < bytes) out = Buffer.allocUnsafeSlow(Math.max(bytes, out.length * 2));
}

const DIGIT_0 = 0x30;
const NEWLINE = 0x0a;
const MINUS = 0x2d;
/** The longest value text: "-1.7976931348623157e+308" and its like (24 characters). */
const VALUE_MAX_BYTES = 24;

/** The decimal digits of 0 <= n < 10^9 (a small integer), ending at `end`. */
function digitsBefore(o: Buffer, end: number, n: number, width: number): void {
  for (let i = end - 1; i >= end - width; i--) {
    const q = (n / 10) | 0;
    o[i] = DIGIT_0 + n - q * 10;
    n = q;
  }
}

function widthOf(n: number): number {
  let w = 1;
  while (n >= 10) {
    n = (n / 10) | 0;
    w++;
  }
  return w;
}

/** Writes formatValue(v) at `at`; returns where it ends. */
function writeValue(o: Buffer, at: number, v: number): number {
  // Integers up to 2^53 (most values: counters, sizes, states) digit by digit; the others as
  // String() prints them.
  if (Number.isInteger(v) && v <= Number.MAX_SAFE_INTEGER && v >= -Number.MAX_SAFE_INTEGER) {
    if (v < 0) {
      o[at++] = MINUS;
      v = -v;
    }
    if (v < 1e9) {
      const w = widthOf(v);
      digitsBefore(o, at + w, v, w);
      return at + w;
    }
    const high = Math.floor(v / 1e9);
    const w = widthOf(high);
    digitsBefore(o, at + w, high, w);
    digitsBefore(o, at + w + 9, v - high * 1e9, 9);
    return at + w + 9;
  }
  const s = formatValue(v);
  for (let i = 0; i < s.length; i++) o[at++] = s.charCodeAt(i);
  return at;
}

/**
 * The prefixes of series [from, to): sampleName, then for each label its opener ({name=" or
 * ,name="), the escaped value and a quote, then `close`.
 */
export function buildPrefixes(
  sampleName: string,
  openers: readonly string[],
  close: string,
  lv: readonly string[],
  from: number,
  to: number,
): ChunkPrefixes {
  const n = openers.length;
  const ends = new Uint32Array(to - from);
  // One string for the chunk (a rope flattened once by the conversion), its units counted as it grows.
  let text = '';
  for (let i = from, k = from * n; i < to; i++) {
    let line = sampleName;
    for (let j = 0; j < n; j++, k++) line += openers[j] + escapeLabelValue(lv[k]) + '"';
    text += line + close;
    ends[i - from] = text.length;
  }
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length !== text.length) {
    // Some label value is beyond ASCII: UTF-16 units are not bytes, count each prefix's bytes.
    let at = 0;
    for (let i = 0, begin = 0; i < ends.length; i++) {
      at += Buffer.byteLength(text.slice(begin, ends[i]), 'utf8');
      begin = ends[i];
      ends[i] = at;
    }
  }
  return { bytes, ends };
}

/**
 * The bytes of a chunk: `header` (HELP and TYPE, or ''), then for each series of [from, to) its
 * prefix and value and a newline. The buffer returned is valid until the next call.
 */
export function renderChunk(header: string, prefixes: ChunkPrefixes, values: readonly number[], from: number): Buffer {
  const { bytes, ends } = prefixes;
  const count = ends.length;
  room(header.length * 3 + bytes.length + count * (VALUE_MAX_BYTES + 1));
  const o = out;
  let at = header.length > 0 ? o.write(header, 0, 'utf8') : 0;
  for (let i = 0, begin = 0; i < count; i++) {
    const end = ends[i];
    for (let b = begin; b < end; b++) o[at++] = bytes[b];
    begin = end;
    at = writeValue(o, at, values[from + i]);
    o[at++] = NEWLINE;
  }
  return o.subarray(0, at);
}
