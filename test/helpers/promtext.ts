// A small parser of the Prometheus text format (and OpenMetrics) for semantic comparison:
// families with HELP, TYPE and samples keyed by their sorted label set.
import assert from 'node:assert/strict';

export interface ParsedFamily {
  name: string;
  help?: string;
  type?: string;
  /** key: sample name + sorted labels, value: the number. */
  samples: Map<string, number>;
}

export type Exposition = Map<string, ParsedFamily>;

function parseValue(raw: string): number {
  if (raw === '+Inf' || raw === 'Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (raw === 'NaN') return NaN;
  const n = Number(raw);
  if (raw.trim() === '' || Number.isNaN(n)) throw new Error(`bad sample value "${raw}"`);
  return n;
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses `name{a="x",b="y"} value [timestamp]` into its name, labels and value. */
export function parseSampleLine(line: string): { name: string; labels: Record<string, string>; value: number } {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
  if (!m) throw new Error(`cannot parse sample line: ${line}`);
  const labels: Record<string, string> = {};
  const body = m[3] ?? '';
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;
  let pos = 0;
  while (pos < body.length) {
    re.lastIndex = pos;
    const lm = re.exec(body);
    if (!lm) throw new Error(`cannot parse labels in: ${line}`);
    if (lm[1] in labels) throw new Error(`duplicate label ${lm[1]} in: ${line}`);
    labels[lm[1]] = unescapeLabel(lm[2]);
    pos = re.lastIndex;
  }
  return { name: m[1], labels, value: parseValue(m[4]) };
}

export function sampleKey(name: string, labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  return name + '{' + keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',') + '}';
}

export function parseExposition(text: string): Exposition {
  const out: Exposition = new Map();
  let current: ParsedFamily | undefined;
  const family = (name: string): ParsedFamily => {
    let f = out.get(name);
    if (!f) {
      f = { name, samples: new Map() };
      out.set(name, f);
    }
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '' || line === '# EOF') continue;
    const meta = /^# (HELP|TYPE|UNIT) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      current = family(meta[2]);
      if (meta[1] === 'HELP') current.help = (meta[3] ?? '').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      if (meta[1] === 'TYPE') current.type = meta[3];
      continue;
    }
    if (line.startsWith('#')) continue;
    const s = parseSampleLine(line);
    // A sample belongs to the family declared before it when its name extends that family's.
    const owner = current && s.name.startsWith(current.name) ? current : family(s.name);
    const key = sampleKey(s.name, s.labels);
    if (owner.samples.has(key)) throw new Error(`duplicate series ${key}`);
    owner.samples.set(key, s.value);
  }
  return out;
}

function sameNumber(a: number, b: number): boolean {
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  if (a === b) return true;
  return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

/**
 * Differences between an expected and an actual exposition, as readable lines. Families whose
 * names match `ignore` in `actual` (e.g. our own pve_exporter_*) are left out.
 */
export function diffExpositions(
  expected: Exposition,
  actual: Exposition,
  ignore: RegExp | ((name: string) => boolean) = /^pve_exporter_/,
): string[] {
  const ignored = typeof ignore === 'function' ? ignore : (name: string) => ignore.test(name);
  const diffs: string[] = [];
  for (const [name, exp] of expected) {
    const act = actual.get(name);
    if (!act) {
      diffs.push(`missing family ${name}`);
      continue;
    }
    if (exp.type !== act.type) diffs.push(`${name}: TYPE ${act.type} instead of ${exp.type}`);
    if (exp.help !== act.help) diffs.push(`${name}: HELP ${JSON.stringify(act.help)} instead of ${JSON.stringify(exp.help)}`);
    for (const [key, v] of exp.samples) {
      const av = act.samples.get(key);
      if (av === undefined) diffs.push(`missing series ${key} (expected ${v})`);
      else if (!sameNumber(v, av)) diffs.push(`${key}: ${av} instead of ${v}`);
    }
    for (const key of act.samples.keys()) if (!exp.samples.has(key)) diffs.push(`unexpected series ${key}`);
  }
  for (const name of actual.keys()) {
    if (!expected.has(name) && !ignored(name)) diffs.push(`unexpected family ${name}`);
  }
  return diffs;
}

/** pve_exporter_collector_success of a scrape (which must have it), by collector name. */
export function collectorSuccess(exp: Exposition): Record<string, number> {
  const fam = exp.get('pve_exporter_collector_success');
  assert.ok(fam, 'pve_exporter_collector_success missing');
  const out: Record<string, number> = {};
  for (const [key, v] of fam.samples) out[/collector="([^"]+)"/.exec(key)![1]] = v;
  return out;
}
