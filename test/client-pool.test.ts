// PveClient's connections (src/pve/client.ts RequestSlots, src/pve/tls.ts PveAgent): a healthy
// target keeps its keep-alive connections; a request given up at its deadline is destroyed with
// its connection (or has its handshake cut), and one given up while it waits for a slot never
// connects, so a target that accepts and never answers holds no more connections than the
// concurrency (plus those closing; the test allows 2 x) however the scrapes overlap, and none after.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimulator } from '../sim/index.ts';
import { exporterConfig } from '../sim/exporter-config.ts';
import { parseConfigText, type ModuleConfig } from '../src/config.ts';
import { PveClient, type RequestContext } from '../src/pve/client.ts';
import { PveError, classifyTransportError } from '../src/pve/errors.ts';
import { get, startExporter } from './helpers/exporter.ts';
import { startHangingTcp } from './helpers/faulty-pve.ts';

function moduleFromYaml(text: string): ModuleConfig {
  return parseConfigText(text, 'test.yml').modules.get('default')!;
}

/** A scrape's request context: aborted after `ms`, like a Deadline. */
function scrapeContext(ms: number): { ctx: RequestContext; done: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  return {
    ctx: { signal: controller.signal, deadline: Date.now() + ms },
    done: () => {
      clearTimeout(timer);
      controller.abort();
    },
  };
}

/** Polls `read` until it is 0 or `boundMs` passed; returns the last value. */
async function pollUntilZero(read: () => number, boundMs: number): Promise<number> {
  const until = Date.now() + boundMs;
  while (read() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return read();
}

const PATHS = ['/version', '/cluster/status', '/cluster/resources', '/cluster/ha/status/manager_status'];

describe('PveClient pools', () => {
  test('a healthy target: 20 rounds of two overlapping scrapes reuse the same connections', async () => {
    const sim = await startSimulator({ scenario: 'default', latencyMs: 5 });
    const concurrency = 4;
    const client = new PveClient(moduleFromYaml(exporterConfig(sim)), { host: sim.host, port: sim.port }, { concurrency });
    try {
      sim.resetStats();
      for (let round = 0; round < 20; round++) {
        const scrapes = [0, 1].map(async () => {
          const { ctx, done } = scrapeContext(30_000);
          client.hold();
          try {
            await Promise.all(PATHS.map((p) => client.get(p, ctx)));
          } finally {
            done();
            client.release();
          }
        });
        await Promise.all(scrapes);
      }
      const { connections, total } = sim.stats();
      assert.equal(total, 20 * 2 * PATHS.length);
      assert.ok(connections <= concurrency, `${connections} connections for ${total} requests (pool ${concurrency}): keep-alive not reused`);
    } finally {
      await client.destroy();
      await sim.close();
    }
  });

  test('warm scrapes through the exporter open no new connections', async () => {
    const sim = await startSimulator({ scenario: 'default' });
    const exp = await startExporter(exporterConfig(sim));
    try {
      const first = await get(`${exp.url}/pve?target=${sim.host}`);
      assert.equal(first.status, 200, first.body);
      const afterFirst = sim.stats().connections;
      for (let i = 0; i < 20; i++) {
        const [a, b] = await Promise.all([get(`${exp.url}/pve?target=${sim.host}`), get(`${exp.url}/pve?target=${sim.host}`)]);
        assert.equal(a.status, 200, a.body);
        assert.equal(b.status, 200, b.body);
      }
      const total = sim.stats().connections;
      // --pve.concurrency (8) connections at most, all of them reused scrape after scrape.
      assert.ok(total <= 8, `${total} connections to the target over 41 scrapes (${afterFirst} after the first)`);
    } finally {
      await exp.close();
      await sim.close();
    }
  });

  test('an abandoned request does not cut an overlapping scrape still waiting on the same pool', async () => {
    const sim = await startSimulator({ scenario: 'default', latencyMs: 400 });
    const client = new PveClient(moduleFromYaml(exporterConfig(sim)), { host: sim.host, port: sim.port }, { concurrency: 2 });
    try {
      const long = scrapeContext(30_000);
      const short = scrapeContext(50);
      const longScrape = client.get<{ version: string }>('/version', long.ctx);
      await assert.rejects(client.get('/version', short.ctx), /deadline/);
      // The short scrape's request was given up; the long scrape's request, on its own connection, stays.
      const v = await longScrape;
      assert.equal(typeof v.version, 'string');
      // And the client serves the next scrape.
      const next = scrapeContext(30_000);
      assert.equal(typeof (await client.get<{ version: string }>('/version', next.ctx)).version, 'string');
      long.done();
      short.done();
      next.done();
    } finally {
      await client.destroy();
      await sim.close();
    }
  });

  test('close() waits for the request in flight; destroy() then gives it up, ends the close and closes the connection', async () => {
    const hanging = await startHangingTcp();
    const m = moduleFromYaml('default: {user: monitoring@pve, token_name: exporter, token_value: not-used, verify_ssl: false, timeout: 60}');
    const client = new PveClient(m, { host: hanging.host, port: hanging.port }, { concurrency: 2 });
    const { ctx, done } = scrapeContext(30_000);
    try {
      const request = client.get('/version', ctx);
      request.catch(() => undefined);
      while (hanging.open() === 0) await new Promise((r) => setTimeout(r, 10));
      let closed = false;
      const closing = client.close().then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(closed, false, 'close() did not wait for the request in flight');
      await client.destroy();
      await Promise.race([closing, new Promise((_, reject) => setTimeout(() => reject(new Error('close() never ended after destroy()')), 5_000))]);
      await assert.rejects(request, (err: unknown) => err instanceof PveError && /client of this target was closed/.test(err.message));
      assert.equal(await pollUntilZero(() => hanging.open(), 5_000), 0, 'the connection in its handshake was left open');
      await assert.rejects(client.get('/version', ctx), /client of this target is closed/);
    } finally {
      done();
      await client.destroy();
      await hanging.close();
    }
  });

  test("the agent's own connect errors are reported as connect failures, not as TLS ones", () => {
    for (const [code, message] of [
      ['PVE_CONNECT_TIMEOUT', 'connect timeout: no connection within the module timeout of 5s'],
      ['PVE_CONNECT_ABANDONED', 'connection cut in its handshake: the request was given up'],
    ]) {
      const e = classifyTransportError(Object.assign(new Error(message), { code }), '/version');
      assert.equal(e.kind, 'connect', code);
      assert.equal(e.message, message);
    }
  });

  test('a target that accepts and never answers: three overlapping scrapers (two short, one long) keep at most 2 x concurrency connections, none after', async () => {
    const hanging = await startHangingTcp();
    const concurrency = 2;
    // A 1 s module timeout (= connect timeout): several connect timeouts pass during the run.
    const m = moduleFromYaml('default: {user: monitoring@pve, token_name: exporter, token_value: not-used, verify_ssl: false, timeout: 1}');
    const client = new PveClient(m, { host: hanging.host, port: hanging.port }, { concurrency });
    let stop = false;
    const failures: string[] = [];
    const scraper = async (startAfterMs: number, deadlineMs: number) => {
      await new Promise((r) => setTimeout(r, startAfterMs));
      while (!stop) {
        const { ctx, done } = scrapeContext(deadlineMs);
        client.hold();
        try {
          const results = await Promise.allSettled(PATHS.map((p) => Promise.race([client.get(p, ctx), new Promise((r) => ctx.signal.addEventListener('abort', r, { once: true }))])));
          // Each request either ran into the deadline or failed with a PveError (the connect
          // timeout), never with a raw transport error.
          failures.push(...results.filter((r) => r.status === 'rejected' && !(r.reason instanceof PveError)).map((r) => String((r as PromiseRejectedResult).reason)));
        } finally {
          done();
          client.release();
        }
      }
    };
    try {
      // Two short scrapers and a long one: requests given up in their handshake and in the queue.
      const scrapers = [scraper(0, 300), scraper(150, 300), scraper(50, 1000)];
      let maxOpen = 0;
      const until = Date.now() + 4_000;
      while (Date.now() < until) {
        maxOpen = Math.max(maxOpen, hanging.open());
        await new Promise((r) => setTimeout(r, 20));
      }
      stop = true;
      await Promise.all(scrapers);
      const left = await pollUntilZero(() => hanging.open(), 5_000);
      assert.ok(hanging.accepted() > concurrency, `only ${hanging.accepted()} connections accepted: the test did not exercise giving up`);
      assert.ok(maxOpen <= 2 * concurrency, `${maxOpen} connections open at once (pool ${concurrency})`);
      assert.equal(left, 0, 'connections left open after the scrapes ended');
      assert.deepEqual(failures, []);
    } finally {
      stop = true;
      await client.destroy();
      await hanging.close();
    }
  });
});
