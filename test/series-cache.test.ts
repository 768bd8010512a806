// The encoder with a SeriesCache must write exactly what the plain encoder writes, whatever
// changed since the previous scrape, and hold no more series than the last scrape had.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricFamily, counter, familyWithLabels, gauge } from '../src/exposition/family.ts';
import { encode, encodeChunks, type Format } from '../src/exposition/encode.ts';
import { SeriesCache, SeriesCacheStore } from '../src/exposition/series-cache.ts';
import { constants, crc32, gunzipSync, inflateRawSync } from 'node:zlib';
import { BYTE_PIECES, crc32Combine, GZIP_PIECES, GzipMember, type DeflatedPiece } from '../src/exposition/gzip-pieces.ts';
import { encodePieces, TEXT_PIECES } from '../src/exposition/encode.ts';

const cached = (families: MetricFamily[], format: Format, cache: SeriesCache) => [...encodeChunks(families, format, cache)].join('');

/** A deterministic pseudo-random sequence (the same cases every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 0x1_0000_0000;
  };
}

const VALUES = [0, 1, -0, 2.5, 1e21, 1.7723232e9, NaN, Infinity, -Infinity, 42];
const LABEL_VALUES = ['qemu/100', 'qemu/101', 'lxc/200', 'a"quote', 'back\\slash', 'new\nline', '', 'ünïcode', 'started', 'stopped'];

/** One scrape's families: ids come and go, values and label values change, order shuffles. */
function scrape(r: () => number): MetricFamily[] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const ids = LABEL_VALUES.filter(() => r() < 0.7);
  // Now and then PVE lists them in another order.
  if (r() < 0.3) ids.sort(() => r() - 0.5);
  const one = new MetricFamily(gauge('pve_memory_usage_bytes', 'Used memory', ['id']));
  for (const id of ids) one.add1(id, pick(VALUES));
  const hot = new MetricFamily(gauge('pve_ha_state', 'HA "state"\\', ['id', 'state']));
  for (const id of ids) for (const s of ['started', 'stopped', 'error']) hot.add2(id, s, s === pick(['started', 'stopped']) ? 1 : 0);
  const info = new MetricFamily(gauge('pve_guest_info', 'VM/CT info', ['id', 'node', 'name']));
  for (const id of ids) info.add([id, pick(['pve1', 'pve2']), pick(LABEL_VALUES)], 1);
  const total = new MetricFamily(counter('pve_network_transmit_bytes_total', 'sent', ['id']));
  for (const id of ids) total.add1(id, pick(VALUES));
  const deprecated = new MetricFamily(gauge('pve_network_transmit_bytes', 'sent (deprecated)', ['id']));
  for (const id of ids) deprecated.add1(id, pick(VALUES));
  const noLabels = new MetricFamily(gauge('pve_no_labels', 'none', [])).add([], pick(VALUES));
  const dynamic = familyWithLabels(gauge('pve_version_info', 'versions', []), r() < 0.5 ? ['release', 'version'] : ['version']);
  dynamic.add(dynamic.spec.labels.map(() => pick(LABEL_VALUES)), 1);
  const all = [one, hot, info, total, deprecated, noLabels, dynamic].filter(() => r() < 0.85);
  if (r() < 0.5) all.reverse();
  return all;
}

describe('SeriesCache', () => {
  for (const format of ['text', 'openmetrics'] as const) {
    test(`${format}: 300 changing scrapes encode exactly as without a cache`, () => {
      const r = rng(format === 'text' ? 1 : 2);
      const cache = new SeriesCache();
      for (let i = 0; i < 300; i++) {
        const families = scrape(r);
        assert.equal(cached(families, format, cache), encode(families, format), `scrape ${i}`);
        // Bounded: only the series of this scrape are kept.
        const series = families.reduce((n, f) => n + f.values.length, 0);
        assert.equal(cache.seriesCount, series, `scrape ${i}: cache holds ${cache.seriesCount} series, the scrape had ${series}`);
      }
    });
  }

  for (const format of ['text', 'openmetrics'] as const) {
    test(`gzip pieces, ${format}: 200 changing scrapes inflate to exactly the plain encode, unchanged pieces sent as compressed before`, () => {
      const r = rng(format === 'text' ? 4 : 7);
      const cache = new SeriesCache<DeflatedPiece>();
      let reused = 0;
      let previous = new Set<Buffer>();
      let families: MetricFamily[] = [];
      let repeatedPieces = 0;
      for (let i = 0; i < 200; i++) {
        // Every scrape is followed by two of the same (a cluster at rest): a chunk that changed is
        // rendered once more when it stops changing, then reused; by the second, all of it is.
        const repeat = i % 3 === 2;
        if (i % 3 === 0) families = scrape(r);
        const member = new GzipMember();
        const pieces = [...encodePieces(families, format, cache, GZIP_PIECES)];
        const body = Buffer.concat([member.header(), ...pieces.map((p) => member.add(p)), member.end()]);
        // gunzip checks the trailer's CRC-32 and length, so the combination is checked too.
        assert.equal(gunzipSync(body).toString('utf8'), encode(families, format), `scrape ${i}`);
        reused += pieces.filter((p) => previous.has(p.deflated)).length;
        if (repeat) repeatedPieces += pieces.length;
        previous = new Set(pieces.map((p) => p.deflated));
      }
      assert.ok(reused >= repeatedPieces && repeatedPieces > 100, `${reused} pieces reused, ${repeatedPieces} in repeated scrapes`);
    });
  }

  test('one cache used for both formats never mixes them', () => {
    const cache = new SeriesCache<string>();
    const fam = () => [new MetricFamily(gauge('x', 'say "hi"', ['id'])).add(['1'], 1)];
    for (const format of ['text', 'openmetrics', 'text', 'openmetrics'] as const) {
      assert.equal([...encodePieces(fam(), format, cache, TEXT_PIECES)].join(''), encode(fam(), format), format);
    }
  });

  test('identity pieces: the bytes of the plain encode, reused when unchanged', () => {
    const r = rng(5);
    const cache = new SeriesCache<Buffer>();
    for (let i = 0; i < 100; i++) {
      const families = scrape(r);
      assert.equal(Buffer.concat([...encodePieces(families, 'text', cache, BYTE_PIECES)]).toString('utf8'), encode(families, 'text'), `scrape ${i}`);
    }
  });

  test('a kept gzip piece holds a buffer of its own size, not a slice of zlib\'s 16 KiB output chunk', () => {
    // Regression: pieces deflated to a few hundred bytes each held a 16 KiB chunk for as long as
    // they were reused (2.2 MB of the resident memory at 2,000 guests).
    const SYNC = { finishFlush: constants.Z_SYNC_FLUSH };
    const small = GZIP_PIECES.encode(Buffer.from('# HELP a_b c\n# TYPE a_b gauge\na_b{id="qemu/100"} 1\n'));
    assert.equal(small.deflated.buffer.byteLength, small.deflated.byteLength);
    assert.equal(inflateRawSync(small.deflated, SYNC).toString(), '# HELP a_b c\n# TYPE a_b gauge\na_b{id="qemu/100"} 1\n');
    let big = '';
    for (let i = 0; i < 4000; i++) big += `a_b{id="qemu/${i}",x="${(i * 7919) % 104729}"} ${(i * 104729) % 7919}\n`;
    const large = GZIP_PIECES.encode(Buffer.from(big));
    assert.ok(large.deflated.byteLength > 16 * 1024, 'a piece beyond one output chunk');
    assert.ok(large.deflated.buffer.byteLength <= large.deflated.byteLength + 8 * 1024, `${large.deflated.buffer.byteLength} bytes held for ${large.deflated.byteLength}`);
    assert.equal(inflateRawSync(large.deflated, SYNC).toString(), big);
  });

  test('crc32Combine agrees with zlib over random splits, and across 2^32 bytes of length', () => {
    const r = rng(6);
    for (let i = 0; i < 200; i++) {
      const whole = Buffer.from(Array.from({ length: Math.floor(r() * 3000) }, () => Math.floor(r() * 256)));
      const at = Math.floor(r() * (whole.length + 1));
      const [a, b] = [whole.subarray(0, at), whole.subarray(at)];
      assert.equal(crc32Combine(crc32(a), crc32(b), b.length), crc32(whole), `split ${at} of ${whole.length}`);
    }
    // crc(zeros(n)) for huge n from the combination of halves must equal the combination of the whole.
    const memo = new Map<number, number>();
    const zeros = (n: number): number => {
      if (n === 1) return crc32(Buffer.alloc(1));
      let c = memo.get(n);
      if (c === undefined) memo.set(n, (c = crc32Combine(zeros(Math.floor(n / 2)), zeros(n - Math.floor(n / 2)), n - Math.floor(n / 2))));
      return c;
    };
    assert.equal(zeros(5000), crc32(Buffer.alloc(5000)));
    assert.equal(zeros(2 ** 32 + 3), crc32Combine(zeros(2 ** 31), zeros(2 ** 31 + 3), 2 ** 31 + 3));
  });

  test('a changed label value is escaped again, a changed value printed again', () => {
    const cache = new SeriesCache();
    const first = new MetricFamily(gauge('x', 'h', ['id', 'name'])).add(['qemu/100', 'web'], 1);
    assert.equal(cached([first], 'text', cache), '# HELP x h\n# TYPE x gauge\nx{id="qemu/100",name="web"} 1\n');
    const renamed = new MetricFamily(gauge('x', 'h', ['id', 'name'])).add(['qemu/100', 'w"eb'], 0.5);
    assert.equal(cached([renamed], 'text', cache), '# HELP x h\n# TYPE x gauge\nx{id="qemu/100",name="w\\"eb"} 0.5\n');
    assert.equal(cache.seriesCount, 1);
  });

  test('a family of several chunks: the changed chunk is rendered again, the others reused', () => {
    const cache = new SeriesCache();
    const build = (changeAt: number, label: string, value: number, count = 3000) => {
      const f = new MetricFamily(gauge('pve_up', 'up', ['id', 'name']));
      for (let i = 0; i < count; i++) f.add2(`qemu/${i}`, i === changeAt ? label : `vm${i}`, i === changeAt ? value : i % 2);
      return [f];
    };
    for (const families of [build(-1, '', 0), build(1500, 'renamed"', 1), build(1500, 'renamed"', 7.5), build(1500, 'renamed"', 8), build(1500, 'renamed"', 8), build(1500, 'renamed"', 8), build(2999, 'last', NaN), build(-1, '', 0, 2500), build(-1, '', 0, 3100)]) {
      assert.equal(cached(families, 'text', cache), encode(families, 'text'));
      assert.equal(cache.seriesCount, families[0].values.length);
    }
  });

  test('chunks whose values change are written from their kept prefixes, exactly as the plain encoder, in every form', () => {
    // Counters of running guests change every scrape while their labels stay: such chunks keep the
    // bytes before each value and print the new values next to them (chunk-bytes.ts).
    const r = rng(8);
    const wide = [0, -0, 1, -1, -7, 0.5, -2.5e-300, 1e-7, 9, 10, 99, 1e9 - 1, 1e9, 1e9 + 1, 2 ** 31, 2 ** 32 + 5, 1e15, 1e16 - 1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 2 ** 60, 1e21, -1e12, 1e12 + 0.5, 5e-324, 1.7976931348623157e308, NaN, Infinity, -Infinity];
    const value = (): number => {
      const x = r();
      if (x < 0.3) return wide[Math.floor(r() * wide.length)];
      if (x < 0.6) return Math.floor(r() * 10 ** Math.floor(r() * 17));
      if (x < 0.8) return -Math.floor(r() * 10 ** Math.floor(r() * 12));
      return r() * 10 ** Math.floor(r() * 20 - 10);
    };
    const names = Array.from({ length: 2100 }, (_, i) => (i % 97 === 0 ? `vm-ü${i}"x\\` : i % 89 === 0 ? `línea\n${i}` : `vm${i}`));
    const build = (help: string) => {
      const bytes = new MetricFamily(counter('pve_network_transmit_bytes_total', help, ['id', 'name']));
      const cpu = new MetricFamily(gauge('pve_cpu_usage_ratio', 'CPU', ['id']));
      for (let i = 0; i < names.length; i++) {
        bytes.add2(`qemu/${i}`, names[i], value());
        cpu.add1(`qemu/${i}`, value());
      }
      const none = new MetricFamily(gauge('pve_no_labels', 'none', [])).add([], value());
      return [bytes, cpu, none];
    };
    for (const format of ['text', 'openmetrics'] as const) {
      const text = new SeriesCache<string>();
      const bytes = new SeriesCache<Buffer>();
      const gzip = new SeriesCache<DeflatedPiece>();
      const help = (i: number) => (i % 5 === 4 ? 'sent, "new" help' : 'sent');
      for (let i = 0; i < 12; i++) {
        const families = build(help(i));
        const want = encode(families, format);
        assert.equal([...encodePieces(families, format, text, TEXT_PIECES)].join(''), want, `${format} text, scrape ${i}`);
        assert.equal(Buffer.concat([...encodePieces(families, format, bytes, BYTE_PIECES)]).toString('utf8'), want, `${format} bytes, scrape ${i}`);
        const member = new GzipMember();
        const pieces = [...encodePieces(families, format, gzip, GZIP_PIECES)].map((p) => member.add(p));
        assert.equal(gunzipSync(Buffer.concat([member.header(), ...pieces, member.end()])).toString('utf8'), want, `${format} gzip, scrape ${i}`);
        // From the second scrape on every chunk has changed values: all 7 keep their prefixes
        // (3 + 3 chunks of 2,100 series, 1 without labels), but a first chunk whose HELP changed
        // is a new one: it keeps its output.
        if (i > 0) assert.equal(text.prefixedChunks, help(i) === help(i - 1) ? 7 : 6, `scrape ${i}`);
      }
    }
  });

  test('two encodes of one cache interleaved (concurrent scrapes) both stay exact', () => {
    const r = rng(3);
    const cache = new SeriesCache();
    for (let i = 0; i < 50; i++) {
      const a = scrape(r);
      const b = scrape(r);
      const ga = encodeChunks(a, 'text', cache);
      const gb = encodeChunks(b, 'text', cache);
      const outA: string[] = [];
      const outB: string[] = [];
      for (;;) {
        const x = ga.next();
        const y = gb.next();
        if (!x.done) outA.push(x.value);
        if (!y.done) outB.push(y.value);
        if (x.done && y.done) break;
      }
      assert.equal(outA.join(''), encode(a, 'text'));
      assert.equal(outB.join(''), encode(b, 'text'));
    }
  });

  test('a family left out of a scrape is dropped from the cache', () => {
    const cache = new SeriesCache();
    const a = new MetricFamily(gauge('a', 'h', ['id'])).add(['1'], 1).add(['2'], 1);
    const b = new MetricFamily(gauge('b', 'h', ['id'])).add(['1'], 1);
    cached([a, b], 'text', cache);
    assert.equal(cache.seriesCount, 3);
    cached([b], 'text', cache);
    assert.equal(cache.seriesCount, 1);
  });

  test('the store keeps one cache per kind of scrape, bounded by count and series', () => {
    const store = new SeriesCacheStore({ maxCaches: 2, maxSeries: 9 });
    const one = store.for('a');
    assert.equal(store.for('a'), one);
    store.for('b');
    store.for('c');
    assert.equal(store.size, 2);
    assert.notEqual(store.for('a'), one, 'the least recently used cache was dropped');
    const big = store.for('big');
    cached([new MetricFamily(gauge('x', 'h', ['id'])).add(['1'], 1).add(['2'], 2).add(['3'], 3).add(['4'], 4).add(['5'], 5).add(['6'], 6).add(['7'], 7).add(['8'], 8).add(['9'], 9)], 'text', big);
    store.for('big'); // its 9 series now count against the bound of 9: the others go
    assert.equal(store.size, 1);
  });
});
