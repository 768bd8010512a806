// Several scrapers, one cost: identical scrapes in flight share one collection (each within its
// own deadline, the collection under a deadline of its own), and --scrape.cache-ttl answers
// identical scrapes from the last result without PVE calls. Against the HTTPS simulator.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { ResultCache } from '../src/scrape/result-cache.ts';
import { get, simModule, startExporter, type RunningExporter, useSimAndExporter } from './helpers/exporter.ts';
import { parseExposition } from './helpers/promtext.ts';

function callsTo(sim: Simulator, path: string): number {
  return sim.stats().calls.get(path) ?? 0;
}

/** pve_exporter_scrapes_total by result, from /metrics. */
async function scrapeCounts(exp: RunningExporter, module = 'default'): Promise<Record<string, number>> {
  const body = (await get(`${exp.url}/metrics`)).body;
  const out: Record<string, number> = {};
  for (const m of body.matchAll(/^pve_exporter_scrapes_total\{module="([^"]*)",result="(\w+)"\} (\S+)$/gm)) {
    if (m[1] === module) out[m[2]] = Number(m[3]);
  }
  return out;
}

/** Resolves once the simulator has seen a call to `path` (bounded polling, no fixed sleep). */
async function callArrived(sim: Simulator, path: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (callsTo(sim, path) === 0) {
    if (Date.now() > until) throw new Error(`no call to ${path} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function failedCollectors(body: string): string[] {
  const fam = parseExposition(body).get('pve_exporter_collector_success');
  assert.ok(fam, `no pve_exporter_collector_success in:\n${body.slice(0, 500)}`);
  return [...fam.samples].filter(([, v]) => v === 0).map(([k]) => /collector="([^"]+)"/.exec(k)![1]);
}

function scrape(exp: RunningExporter, timeoutSeconds?: number, signal?: AbortSignal, query = 'target=127.0.0.1'): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = timeoutSeconds ? { 'X-Prometheus-Scrape-Timeout-Seconds': String(timeoutSeconds) } : {};
  return fetch(`${exp.url}/pve?${query}`, { headers, signal: signal ?? AbortSignal.timeout(30_000) }).then(async (r) => ({
    status: r.status,
    body: await r.text(),
  }));
}

describe('identical scrapes in flight share one collection', () => {
  const env = useSimAndExporter({ resetAfterEach: true });

  test('the second waits for the first: one set of PVE calls, the same answer, counted as shared', async () => {
    const before = await scrapeCounts(env.exp);
    // Generous delays: the later scrape must arrive while the first is in flight, on a loaded machine too.
    env.sim.addFault({ path: '/cluster/resources', delayMs: 2000, times: 1 });
    const first = scrape(env.exp, 10);
    await callArrived(env.sim, '/cluster/resources');
    const second = scrape(env.exp, 10);
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.status, 200, a.body);
    assert.equal(b.status, 200, b.body);
    assert.deepEqual(failedCollectors(a.body), []);
    assert.equal(a.body, b.body, 'both got the same families');
    assert.equal(callsTo(env.sim, '/cluster/resources'), 1);
    assert.equal(callsTo(env.sim, '/cluster/status'), 1);
    const after = await scrapeCounts(env.exp);
    assert.equal(after.collected - before.collected, 1);
    assert.equal(after.shared - before.shared, 1);
    assert.equal(after.cached - before.cached, 0);
  });

  test('other scopes are another collection', async () => {
    env.sim.addFault({ path: '/cluster/resources', delayMs: 300, times: 1 });
    const first = scrape(env.exp, 10);
    await callArrived(env.sim, '/cluster/resources');
    const nodeOnly = await scrape(env.exp, 10, undefined, 'target=127.0.0.1&cluster=0');
    assert.equal(nodeOnly.status, 200, nodeOnly.body);
    assert.equal((await first).status, 200);
    assert.equal(callsTo(env.sim, '/cluster/status'), 2, 'each collection read /cluster/status');
  });

  test('the first scraper hanging up does not cancel the collection the second waits for', async () => {
    const sharedBefore = (await scrapeCounts(env.exp)).shared;
    env.sim.addFault({ path: '/cluster/resources', delayMs: 3000, times: 1 });
    const hangup = new AbortController();
    const first = scrape(env.exp, 10, hangup.signal).catch((err: Error) => err);
    await callArrived(env.sim, '/cluster/resources');
    const second = scrape(env.exp, 10);
    // The second has joined once its request is in: wait until the exporter counts it.
    const until = Date.now() + 10_000;
    while ((await scrapeCounts(env.exp)).shared < 1 + sharedBefore) {
      if (Date.now() > until) throw new Error('second scrape never joined');
      await new Promise((r) => setTimeout(r, 5));
    }
    hangup.abort();
    assert.ok((await first) instanceof Error, 'the first request was aborted');
    const b = await second;
    assert.equal(b.status, 200, b.body);
    assert.deepEqual(failedCollectors(b.body), [], 'no collector was cut short by the first one leaving');
    assert.equal(callsTo(env.sim, '/cluster/resources'), 1);
  });

  test('a waiter with a short deadline gets a 500 of its own; the collection goes on for the other', async () => {
    env.sim.addFault({ path: '/cluster/resources', delayMs: 3000, times: 1 });
    const long = scrape(env.exp, 10);
    await callArrived(env.sim, '/cluster/resources');
    const short = await scrape(env.exp, 0.5);
    assert.equal(short.status, 500);
    assert.match(short.body, /scrape deadline .*waiting for a collection shared with another scrape/);
    const l = await long;
    assert.equal(l.status, 200, l.body);
    assert.deepEqual(failedCollectors(l.body), []);
  });

  test('a later waiter with a longer deadline moves the shared deadline: its answer is complete', async () => {
    // Without the move, the collection would stop at the first scrape's 2 s deadline and the
    // second would get resources (and the collectors reading it) failed by the deadline.
    env.sim.addFault({ path: '/cluster/resources', delayMs: 4000, times: 1 });
    const short = scrape(env.exp, 2);
    await callArrived(env.sim, '/cluster/resources');
    const long = scrape(env.exp, 10);
    const [s, l] = await Promise.all([short, long]);
    assert.equal(s.status, 500, 'the short one gave up at its own deadline');
    assert.equal(l.status, 200, l.body);
    assert.deepEqual(failedCollectors(l.body), []);
    assert.equal(callsTo(env.sim, '/cluster/resources'), 1);
  });

  test('when every waiter has hung up, the collection stops and the next scrape starts afresh', async () => {
    env.sim.addFault({ path: '/cluster/resources', hang: true, times: 1 });
    const hangup = new AbortController();
    const first = scrape(env.exp, 30, hangup.signal).catch((err: Error) => err);
    await callArrived(env.sim, '/cluster/resources');
    const inFlight = () => env.exp.app.state.scraper.sharing.inFlight;
    assert.equal(inFlight(), 1);
    hangup.abort();
    await first;
    const until = Date.now() + 10_000;
    while (inFlight() !== 0) {
      if (Date.now() > until) throw new Error('the abandoned collection is still in flight');
      await new Promise((r) => setTimeout(r, 5));
    }
    const next = await scrape(env.exp, 10);
    assert.equal(next.status, 200, next.body);
    assert.deepEqual(failedCollectors(next.body), []);
    assert.equal(callsTo(env.sim, '/cluster/resources'), 2, 'a new collection, not the abandoned one');
  });
});

describe('--scrape.cache-ttl', () => {
  let sim: Simulator;
  let cached: RunningExporter;
  let uncached: RunningExporter;
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    cached = await startExporter(simModule(sim), ['--scrape.cache-ttl', '60']);
    uncached = await startExporter(simModule(sim));
  });
  after(async () => {
    await cached.close();
    await uncached.close();
    await sim.close();
  });
  afterEach(() => {
    sim.clearFaults();
    sim.resetStats();
  });

  test('a scrape within the TTL is served from the last result, with no PVE call', async () => {
    const a = await scrape(cached, 10);
    assert.equal(a.status, 200, a.body);
    const calls = sim.stats().total;
    assert.ok(calls > 0);
    const b = await scrape(cached, 10);
    assert.equal(b.status, 200);
    assert.equal(b.body, a.body);
    assert.equal(sim.stats().total, calls, 'no PVE call for the cached scrape');
    const counts = await scrapeCounts(cached);
    assert.equal(counts.cached, 1);
    assert.equal(counts.collected, 1);
  });

  test('the format is encoded per answer: an OpenMetrics scraper is served from a text scrape\'s result', async () => {
    const text = await scrape(cached, 10, undefined, 'target=127.0.0.1&node=0');
    assert.equal(text.status, 200);
    const calls = sim.stats().total;
    const res = await fetch(`${cached.url}/pve?target=127.0.0.1&node=0`, { headers: { accept: 'application/openmetrics-text;version=1.0.0' } });
    const body = await res.text();
    assert.match(res.headers.get('content-type') ?? '', /^application\/openmetrics-text/);
    assert.ok(body.endsWith('# EOF\n'));
    assert.equal(sim.stats().total, calls, 'served from the cache');
  });

  test('off by default: every scrape collects', async () => {
    await scrape(uncached, 10);
    await scrape(uncached, 10);
    assert.equal(callsTo(sim, '/cluster/status'), 2);
    assert.equal(callsTo(sim, '/cluster/resources'), 2);
    assert.equal((await scrapeCounts(uncached)).cached, 0);
  });

  test('other scopes or modules are not served from it; failed scrapes are not cached', async () => {
    const nodeOnly = await scrape(cached, 10, undefined, 'target=127.0.0.1&cluster=0');
    assert.equal(nodeOnly.status, 200);
    assert.ok(sim.stats().total > 0, 'cluster=0 collected');
    const other = await startExporter(simModule(sim), ['--scrape.cache-ttl', '60']);
    try {
      sim.addFault({ path: /.*/, status: 500, reason: 'down for a moment', times: 100 });
      const failed = await scrape(other, 10);
      assert.equal(failed.status, 500);
      sim.clearFaults();
      const again = await scrape(other, 10);
      assert.equal(again.status, 200, 'the 500 was not served again');
    } finally {
      await other.close();
    }
  });
});

describe('ResultCache', () => {
  test('ages from the collection start; an older collection does not replace a newer one', () => {
    let now = 1_000_000;
    const cache = new ResultCache<string>(10, 10, () => now);
    cache.set('k', 'first', now - 4000);
    assert.equal(cache.get('k')?.value, 'first');
    now += 5999;
    assert.equal(cache.get('k')?.value, 'first', 'age 9.999 s < 10 s');
    now += 1;
    assert.equal(cache.get('k'), undefined, 'age 10 s: expired');
    cache.set('k', 'new', now);
    cache.set('k', 'old', now - 1000);
    assert.equal(cache.get('k')?.value, 'new');
    cache.set('gone', 'x', now - 10_000);
    assert.equal(cache.get('gone'), undefined, 'already expired when it finished: not kept');
  });

  test('bounded: the least recently used entry goes', () => {
    const cache = new ResultCache<number>(60, 2);
    cache.set('a', 1, Date.now());
    cache.set('b', 2, Date.now());
    cache.get('a');
    cache.set('c', 3, Date.now());
    assert.equal(cache.size, 2);
    assert.equal(cache.get('b'), undefined);
    assert.equal(cache.get('a')?.value, 1);
  });

  test('TTL 0 keeps nothing', () => {
    const cache = new ResultCache<number>(0, 10);
    cache.set('a', 1, Date.now());
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.enabled, false);
  });
});
