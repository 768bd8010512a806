import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricFamily, counter, gauge } from '../src/exposition/family.ts';
import { encode, formatValue } from '../src/exposition/encode.ts';
import { parseExposition } from './helpers/promtext.ts';

test('text format: HELP, TYPE, escaped label values, special floats', () => {
  const g = new MetricFamily(gauge('x_info', 'Some "help"\\ with\nnewline', ['a', 'b']));
  g.add(['q"uote', 'back\\slash\nnl'], 1);
  g.add(['', 'plain'], NaN);
  const out = encode([g], 'text');
  assert.equal(
    out,
    '# HELP x_info Some "help"\\\\ with\\nnewline\n# TYPE x_info gauge\n' +
      'x_info{a="q\\"uote",b="back\\\\slash\\nnl"} 1\n' +
      'x_info{a="",b="plain"} NaN\n',
  );
  const parsed = parseExposition(out);
  assert.equal(parsed.get('x_info')!.samples.get('x_info{a="q\\"uote",b="back\\\\slash\\nnl"}'), 1);
  assert.equal(formatValue(Infinity), '+Inf');
  assert.equal(formatValue(-Infinity), '-Inf');
  assert.equal(formatValue(1.7723232e9), '1772323200');
});

test('formatValue writes what String() writes, for every kind of number', () => {
  // Integers of 10 to 16 digits take a faster path than String(); it must give the same digits.
  const values = [0, -0, 1, -1, 0.5, 1e9 - 1, 1e9, 1e9 + 1, 2 ** 31, 2 ** 32 + 5, 1e15, 1e16 - 1, 1e16, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 2 ** 60, 1e21, -1e12, 1e12 + 0.5, 5e-324, 1.7976931348623157e308];
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let digits = 1; digits <= 17; digits++) {
    for (let i = 0; i < 2000; i++) {
      const v = Math.floor(random() * 10 ** digits);
      values.push(v, v + random(), 10 ** (digits - 1) + (i % 10), v * 1000);
    }
  }
  for (const v of values) assert.equal(formatValue(v), String(v), `formatValue(${v})`);
});

test('empty family keeps HELP and TYPE (as the reference)', () => {
  assert.equal(encode([new MetricFamily(gauge('e', 'h', ['id']))], 'text'), '# HELP e h\n# TYPE e gauge\n');
});

test('OpenMetrics: counter family without _total, clash with a deprecated gauge becomes a gauge, EOF', () => {
  const c = new MetricFamily(counter('a_bytes_total', 'c', ['id'])).add(['1'], 5);
  const g = new MetricFamily(gauge('b_bytes', 'g', ['id'])).add(['1'], 5);
  const clash = new MetricFamily(counter('b_bytes_total', 'c2', ['id'])).add(['1'], 5);
  const out = encode([c, g, clash], 'openmetrics');
  assert.match(out, /^# HELP a_bytes c\n# TYPE a_bytes counter\na_bytes_total\{id="1"\} 5\n/);
  assert.match(out, /# TYPE b_bytes gauge\nb_bytes\{id="1"\} 5\n/);
  assert.match(out, /# TYPE b_bytes_total gauge\nb_bytes_total\{id="1"\} 5\n/);
  assert.ok(out.endsWith('# EOF\n'));
});

test('a family rejects samples whose label count is wrong', () => {
  assert.throws(() => new MetricFamily(gauge('x', 'h', ['a'])).add([], 1), /0 label values for 1 labels/);
});

test('MetricFamily.reserve: room left unused is not output, adding past it or after a read still works', () => {
  const build = (room: number | undefined, n: number, readHalfway: boolean) => {
    const f = new MetricFamily(gauge('r', 'h', ['id', 'state']));
    if (room !== undefined) f.reserve(room);
    for (let i = 0; i < n; i++) {
      if (readHalfway && i === n >> 1) assert.equal(f.values.length, i);
      f.add2(`g${i}`, i % 2 ? 'on' : 'off', i * 1.5);
    }
    return f;
  };
  const plain = build(undefined, 50, false);
  for (const [room, readHalfway] of [[200, false], [50, false], [10, true], [200, true]] as const) {
    const f = build(room, 50, readHalfway);
    assert.equal(f.values.length, 50, `reserve(${room})`);
    assert.equal(f.labelValues.length, 100);
    assert.ok(!f.values.includes(undefined as unknown as number), 'no holes');
    assert.equal(encode([f], 'text'), encode([plain], 'text'), `reserve(${room})${readHalfway ? ', read halfway' : ''}`);
  }
  const once = new MetricFamily(gauge('o', 'h', ['id'])).reserve(5);
  once.add1('a', 1);
  once.reserve(1000); // only before the first sample
  assert.deepEqual(once.samples, [{ labelValues: ['a'], value: 1 }]);
  assert.equal(encode([new MetricFamily(gauge('e', 'h', ['id'])).reserve(10)], 'text'), '# HELP e h\n# TYPE e gauge\n');
});
