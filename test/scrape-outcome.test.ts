// The outcome of a scrape that gets no data, the one deadline (clamped, aborting what is pending),
// and a scraper hanging up: issue 7, bugs 1 and 9.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Deadline, MAX_SCRAPE_TIMEOUT_SECONDS, effectiveTimeoutSeconds } from '../src/scrape/deadline.ts';
import { get, startExporter, type RunningExporter, useSimAndExporter } from './helpers/exporter.ts';
import { fakeTargetModule, startHangingListener, startHttpsTarget, type FakeTarget } from './helpers/fake-targets.ts';
import { parseExposition } from './helpers/promtext.ts';

// A module timeout far beyond the scrape deadline: a connection the exporter leaves open would
// stay open this long, so "closed soon after the answer" can only come from the abort.
const LONG_MODULE_TIMEOUT = { timeout: 60 };
const CLOSE_BOUND_MS = 15_000;

describe('a target that accepts and never answers (bug 1)', () => {
  let hang: FakeTarget;
  let exp: RunningExporter;
  before(async () => {
    hang = await startHangingListener();
    exp = await startExporter(fakeTargetModule('default', LONG_MODULE_TIMEOUT));
  });
  after(async () => {
    await exp.close();
    await hang.close();
  });

  test('scrape timeout 4 s: 500 with the reason, and every connection closed once answered', async () => {
    const res = await get(`${exp.url}/pve?target=127.0.0.1:${hang.port}`, { 'X-Prometheus-Scrape-Timeout-Seconds': '4' });
    assert.equal(res.status, 500, res.body);
    assert.match(res.body, /^Error scraping target 127\.0\.0\.1: no answer from PVE within the scrape deadline \(4s/);
    assert.ok(hang.accepted > 0, 'the exporter did connect');
    await hang.waitFor(() => hang.open === 0, 'all connections closed by the exporter', CLOSE_BOUND_MS);
  });

  test('/pve/sd uses the same deadline: 500 with the reason, connections closed', async () => {
    const res = await get(`${exp.url}/pve/sd?target=127.0.0.1:${hang.port}`, { 'X-Prometheus-Scrape-Timeout-Seconds': '2' });
    assert.equal(res.status, 500, res.body);
    assert.match(res.body, /\/cluster\/status: no answer from PVE within the scrape deadline \(2s/);
    await hang.waitFor(() => hang.open === 0, 'all connections closed by the exporter', CLOSE_BOUND_MS);
  });
});

describe('an HTTPS server that is not PVE (bug 1)', () => {
  let mode: 'not-found' | 'proxy-502' | 'html-200' = 'not-found';
  let web: FakeTarget;
  let exp: RunningExporter;
  before(async () => {
    web = await startHttpsTarget((_req, res) => {
      if (mode === 'not-found') {
        res.writeHead(404, 'Not Found', { 'content-type': 'text/plain' }).end('404 page not found\n');
      } else if (mode === 'proxy-502') {
        res.writeHead(502, 'Bad Gateway', { 'content-type': 'text/html' }).end('<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>\n');
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html><html><head><title>Welcome</title></head><body>It works!</body></html>\n');
      }
    });
    exp = await startExporter(fakeTargetModule());
  });
  after(async () => {
    await exp.close();
    await web.close();
  });

  const cases = [
    { mode: 'not-found', reason: /: 404 Not Found \(is the target the PVE API/ },
    { mode: 'proxy-502', reason: /: 502 Bad Gateway \(is the target the PVE API/ },
    { mode: 'html-200', reason: /: answer is not JSON \(starts with "<!DOCTYPE html>/ },
  ] as const;
  for (const c of cases) {
    test(`${c.mode}: 500 with the reason`, async () => {
      mode = c.mode;
      const res = await get(`${exp.url}/pve?target=127.0.0.1:${web.port}`);
      assert.equal(res.status, 500, res.body);
      assert.match(res.body, c.reason);
      assert.ok(!res.body.includes('FAKE-TARGET-TOKEN-SECRET'));
    });
  }
});

describe('a scraper that hangs up (bug 9)', () => {
  let web: FakeTarget;
  let exp: RunningExporter;
  before(async () => {
    web = await startHttpsTarget(() => undefined); // every request hangs
    exp = await startExporter(fakeTargetModule('default', LONG_MODULE_TIMEOUT));
  });
  after(async () => {
    await exp.close();
    await web.close();
  });

  test('cancels its scrape: the PVE requests are aborted, their connections closed', async () => {
    const req = http.get(`${exp.url}/pve?target=127.0.0.1:${web.port}`, { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '120' } });
    req.on('error', () => undefined);
    await web.waitFor(() => web.requests > 0, 'a PVE request arrived');
    req.destroy();
    await web.waitFor(() => web.open === 0, 'all PVE connections closed after the hang-up', CLOSE_BOUND_MS);
    // The exporter still serves.
    assert.equal((await get(`${exp.url}/-/healthy`)).status, 200);
  });
});

describe('the deadline itself (bug 9)', () => {
  test('a huge X-Prometheus-Scrape-Timeout-Seconds is clamped, not overflowed', () => {
    assert.equal(effectiveTimeoutSeconds(1e10, 10), MAX_SCRAPE_TIMEOUT_SECONDS);
    assert.equal(effectiveTimeoutSeconds(undefined, 10), 10);
    assert.equal(effectiveTimeoutSeconds(4, 10), 4);
    const d = Deadline.forScrape(1e10, 10);
    try {
      assert.equal(d.signal.aborted, false);
      assert.ok(d.remainingMs() > 500_000 && d.remainingMs() <= MAX_SCRAPE_TIMEOUT_SECONDS * 1000);
    } finally {
      d.dispose();
    }
  });

  test('dispose clears the timer; a hang-up fires the signal with its cause', () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const hangup = new AbortController();
    const d = Deadline.forScrape(30, 10, hangup.signal);
    assert.equal(timers(), before + 1);
    hangup.abort();
    assert.equal(d.signal.aborted, true);
    assert.equal(d.cause, 'hangup');
    d.dispose();
    assert.equal(timers(), before);
  });

  describe('against the simulator', () => {
    const env = useSimAndExporter();

    test('a scrape with a 10^10 s timeout header succeeds in full', async () => {
      const res = await get(`${env.exp.url}/pve?target=127.0.0.1`, { 'X-Prometheus-Scrape-Timeout-Seconds': '10000000000' });
      assert.equal(res.status, 200, res.body);
      const success = parseExposition(res.body).get('pve_exporter_collector_success');
      assert.ok(success);
      for (const [key, v] of success.samples) assert.equal(v, 1, key);
    });
  });
});
