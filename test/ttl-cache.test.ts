// The collectors' TTL cache: expiry spread, stale window, bound, all on an injected clock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CacheSet, STALE_FACTOR, TtlCache, spreadFactor } from '../src/pve/ttl-cache.ts';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('TtlCache', () => {
  test('an entry is fresh until its spread expiry, between 80 % and 100 % of the TTL', () => {
    const c = clock();
    const cache = new TtlCache<string>(100, c.now);
    cache.set('a', 'x');
    const lifeMs = 100_000 * spreadFactor('a');
    assert.ok(lifeMs >= 80_000 && lifeMs < 100_000);
    c.advance(Math.floor(lifeMs) - 1);
    assert.equal(cache.fresh('a'), 'x');
    c.advance(2);
    assert.equal(cache.fresh('a'), undefined);
    assert.equal(cache.stale('a'), 'x', 'expired but within the stale window');
  });

  test('expiries of many keys written at once are spread, not one instant', () => {
    const factors = new Set<number>();
    for (let i = 0; i < 200; i++) factors.add(Math.round(spreadFactor(`/nodes/pve${i}/disks/list`) * 1000));
    assert.ok(factors.size > 50, `only ${factors.size} distinct expiry instants for 200 keys`);
    for (const f of factors) assert.ok(f >= 800 && f <= 1000);
  });

  test('the stale fallback ends STALE_FACTOR TTLs after the write', () => {
    const c = clock();
    const cache = new TtlCache<number>(10, c.now);
    cache.set('k', 1);
    c.advance(10_000 * STALE_FACTOR - 1);
    assert.equal(cache.stale('k'), 1);
    c.advance(1);
    assert.equal(cache.stale('k'), undefined);
    assert.equal(cache.size, 0, 'a dead entry is dropped when found');
  });

  test('TTL 0 keeps nothing', () => {
    const cache = new TtlCache<number>(0);
    cache.set('k', 1);
    assert.equal(cache.fresh('k'), undefined);
    assert.equal(cache.stale('k'), undefined);
    assert.equal(cache.size, 0);
  });

  test('bounded: the entry written longest ago goes first; a rewrite counts as new', () => {
    const cache = new TtlCache<number>(60, Date.now, 3);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    cache.set('a', 10); // a is now the newest
    cache.set('d', 4); // evicts b
    assert.equal(cache.size, 3);
    assert.equal(cache.fresh('b'), undefined);
    assert.equal(cache.fresh('a'), 10);
    assert.equal(cache.fresh('c'), 3);
    assert.equal(cache.fresh('d'), 4);
  });

  test('retainOnly drops keys that are gone upstream', () => {
    const cache = new TtlCache<number>(60);
    cache.set('x/1', 1);
    cache.set('x/2', 2);
    cache.retainOnly((k) => k === 'x/2');
    assert.equal(cache.fresh('x/1'), undefined);
    assert.equal(cache.fresh('x/2'), 2);
  });
});

describe('CacheSet', () => {
  test('one cache per name, with the TTL configured for that name, 0 for others', () => {
    const set = new CacheSet({ disks: 600 });
    assert.equal(set.get('disks').ttlSeconds, 600);
    assert.equal(set.get('disks'), set.get('disks'));
    assert.equal(set.get('other').ttlSeconds, 0);
  });
});
