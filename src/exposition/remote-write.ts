// Prometheus remote write 1.0: families -> time series -> prometheus.WriteRequest (protobuf),
// snappy block-compressed. The wire writer is @bufbuild/protobuf's BinaryWriter: the message has
// four types (WriteRequest, TimeSeries, Label, Sample), so a generated schema and its build step
// would buy nothing over writing the fields by number with the library's own encoder.
//
//   WriteRequest { repeated TimeSeries timeseries = 1; }
//   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//   Label        { string name = 1; string value = 2; }
//   Sample       { double value = 1; int64 timestamp = 2; }   // timestamp: ms since the epoch
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import snappy from 'snappyjs';
import type { MetricFamily } from './family.ts';

export const REMOTE_WRITE_HEADERS = {
  'Content-Encoding': 'snappy',
  'Content-Type': 'application/x-protobuf',
  'X-Prometheus-Remote-Write-Version': '0.1.0',
} as const;

/** A series with its labels sorted by name, __name__ included. */
export interface TimeSeries {
  readonly labels: readonly (readonly [string, string])[];
  readonly samples: readonly { readonly value: number; readonly timestampMs: number }[];
}

/**
 * Prometheus' staleness marker: a NaN with this exact bit pattern (value.StaleNaN). JavaScript
 * may canonicalise NaN payloads when a number passes through arithmetic, so the marker is kept
 * as bytes and written raw, never as a number.
 */
export const STALE_NAN_BITS = 0x7ff0000000000002n;
const STALE_NAN_BYTES = (() => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, STALE_NAN_BITS, true);
  return b;
})();

/** A sample value that stands for the staleness marker (the numeric NaN stays an ordinary NaN). */
export const STALE = Symbol('stale');
export type SampleValue = number | typeof STALE;

export interface SeriesSample {
  readonly labels: readonly (readonly [string, string])[];
  readonly value: SampleValue;
}

/**
 * The series of `families` as a scrape would store them: `__name__`, the family's labels, then
 * `extra` labels (job, instance, external labels) where the sample has no label of that name
 * (Prometheus' honor_labels: false would rename clashes to exported_*; our families never carry
 * job or instance). Sorted by label name. Families hold samples by their exposed sample name, so
 * a histogram or summary (its _bucket/_sum/_count series) arrives already expanded.
 */
export function familiesToSamples(families: readonly MetricFamily[], extra: readonly (readonly [string, string])[]): SeriesSample[] {
  const out: SeriesSample[] = [];
  for (const fam of families) {
    const names = fam.spec.labels;
    const n = names.length;
    // The label order is the same for every sample of a family: sort it once. A slot is either
    // the index of one of the family's labels or a fixed (name, value) pair.
    const own = new Set(names);
    const slots: (number | readonly [string, string])[] = [['__name__', fam.spec.name] as const];
    for (let j = 0; j < n; j++) slots.push(j);
    for (const l of extra) if (!own.has(l[0]) && l[0] !== '__name__' && l[1] !== '') slots.push(l);
    const nameOf = (slot: number | readonly [string, string]) => (typeof slot === 'number' ? names[slot] : slot[0]);
    slots.sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0));
    for (let i = 0; i < fam.values.length; i++) {
      const labels: (readonly [string, string])[] = [];
      for (const slot of slots) {
        if (typeof slot !== 'number') labels.push(slot);
        else {
          const v = fam.labelValues[i * n + slot];
          // An empty label value is the same as no label in Prometheus; remote write must not send it.
          if (v !== '') labels.push([names[slot], v]);
        }
      }
      out.push({ labels, value: fam.values[i] });
    }
  }
  return out;
}

export function byName(a: readonly [string, string], b: readonly [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/** The identity of a series (its sorted labels), as a map key. */
export function seriesKey(labels: readonly (readonly [string, string])[]): string {
  let s = '';
  for (const [k, v] of labels) s += k + '\u0000' + v + '\u0001';
  return s;
}

/** One timestamped sample per series, the unit the push queue holds. */
export interface PushSample {
  readonly labels: readonly (readonly [string, string])[];
  readonly value: SampleValue;
  readonly timestampMs: number;
}

/** The protobuf WriteRequest of `samples`, one TimeSeries per sample (uncompressed). */
export function encodeWriteRequest(samples: readonly PushSample[]): Uint8Array {
  const w = new BinaryWriter();
  for (const s of samples) {
    w.tag(1, WireType.LengthDelimited).fork();
    for (const [name, value] of s.labels) {
      w.tag(1, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).string(name);
      w.tag(2, WireType.LengthDelimited).string(value);
      w.join();
    }
    w.tag(2, WireType.LengthDelimited).fork();
    if (s.value === STALE) w.tag(1, WireType.Bit64).raw(STALE_NAN_BYTES);
    else w.tag(1, WireType.Bit64).double(s.value);
    w.tag(2, WireType.Varint).int64(s.timestampMs);
    w.join();
    w.join();
  }
  return w.finish();
}

/** The HTTP body of a remote write request: snappy block format (not the framed format). */
export function compressWriteRequest(protobuf: Uint8Array): Uint8Array {
  return snappy.compress(protobuf);
}
