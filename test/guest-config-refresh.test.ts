// Cached guest configs are refreshed in the background before they expire: a scrape after the
// original expiry makes no config call, the refresh stays under its concurrency bound, and it
// stops with the client. The clock is injected, so no test waits for a TTL.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { parseConfigText } from '../src/config.ts';
import { PveClient, type RequestContext } from '../src/pve/client.ts';
import { PveSession } from '../src/pve/session.ts';
import { parseTarget } from '../src/query.ts';
import { simModule } from './helpers/exporter.ts';

const TTL = 300; // seconds

function configCalls(sim: Simulator): number {
  let n = 0;
  for (const [path, count] of sim.stats().calls) if (/\/config$/.test(path)) n += count;
  return n;
}

describe('background refresh of cached guest configs', () => {
  let sim: Simulator;
  let clock = 1_000_000;
  let client: PveClient;
  const ctx = (): RequestContext => {
    const signal = new AbortController().signal;
    setMaxListeners(0, signal); // a scrape's signal has one listener per request in flight, as the Deadline's
    return { signal, deadline: clock + 60_000 };
  };

  before(async () => {
    sim = await startSimulator({ generated: { nodes: 2, guestsPerNode: 40 }, configLatencyMs: 5 });
    const module = parseConfigText(simModule(sim), 'test-pve.yml').modules.get('default')!;
    client = new PveClient(module, parseTarget('127.0.0.1', module.port), { concurrency: 4, configCacheTtl: TTL, now: () => clock });
  });
  after(async () => {
    await client?.destroy();
    await sim?.close();
  });

  test('a scrape after the original expiry makes no config call; the refresh is bounded; it stops with the client', async () => {
    const node = (await new PveSession(client, ctx()).localNode()).name;
    sim.resetStats();
    const cold = new PveSession(client, ctx());
    const first = await cold.guestOnboot(node);
    const guests = first.guests.length;
    assert.ok(guests >= 20, `${guests} guests on ${node}`);
    assert.equal(cold.configFetches, guests, 'the cold scrape fetches every config');
    assert.ok(client.configRefresh.active, 'the refresh timer runs while the client is open');

    // Nothing is due right after the fill.
    sim.resetStats();
    await client.configRefresh.tick();
    assert.equal(configCalls(sim), 0);

    // Entries expire between 0.8 and 1.0 TTL after the fill and are due a fifth of the TTL before.
    // Just before the first expiries almost all are due; the rest on a later pass, before theirs.
    clock += 0.79 * TTL * 1000;
    await client.configRefresh.tick();
    const early = configCalls(sim);
    assert.ok(early > guests / 2 && early <= guests, `${early} of ${guests} refreshed at 0.79 TTL`);
    clock += 0.06 * TTL * 1000;
    await client.configRefresh.tick();
    assert.equal(configCalls(sim), guests, 'each cached config fetched once by the refresh');
    assert.ok(client.configRefresh.peakInFlight <= 2, `at most half the cap of 4 in flight, saw ${client.configRefresh.peakInFlight}`);
    assert.ok(client.configRefresh.peakInFlight >= 1);

    // Past every original expiry (1.0 TTL after the fill): the scrape finds fresh entries.
    clock += 0.25 * TTL * 1000;
    sim.resetStats();
    const warm = new PveSession(client, ctx());
    const again = await warm.guestOnboot(node);
    assert.equal(warm.configFetches, 0, 'no synchronous config call');
    assert.equal(configCalls(sim), 0);
    assert.deepEqual(again.guests, first.guests);

    // Closing the client ends the timer; later passes make no calls.
    await client.close();
    assert.equal(client.configRefresh.active, false, 'no timer left after close');
    clock += 2 * TTL * 1000;
    sim.resetStats();
    await client.configRefresh.tick();
    assert.equal(configCalls(sim), 0);
  });
});
