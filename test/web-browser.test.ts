// The landing page in a real browser: Debian's chromium, headless, driven by puppeteer-core (no
// browser download: it uses the system's chromium, /usr/bin/chromium on Debian). After a good, a
// partly failing and a failing scrape, the rows are there, the failing ones are marked in red, and
// the debug link opens the stored log. The page runs no script at all.
//
// PVE_EXPORTER_SCREENSHOT=docs/landing-page.png saves the screenshot shown in the README.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import YAML from 'yaml';
import { startSimulator } from '../sim/index.ts';
import { exporterModule } from '../sim/exporter-config.ts';
import type { Simulator } from '../sim/types.ts';
import { get, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { hasTool, requireTool } from './helpers/tools.ts';

/** Debian's /usr/bin/chromium, or whichever chromium is first on PATH. */
function chromiumPath(): string {
  const r = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '/usr/bin/chromium';
}

describe('landing page in Chromium', { skip: hasTool('chromium') || process.env.CI ? false : 'install chromium: apt-get install chromium' }, () => {
  let sim: Simulator;
  let exp: RunningExporter;
  let browser: Browser;

  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    const modules = {
      default: exporterModule(sim, { targets: ['127.0.0.1', '*.pve.example.com'] }),
      lab: exporterModule(sim, { token_value: 'wrong-secret' }),
    };
    exp = await startExporter(YAML.stringify(modules), ['--scrape.cache-ttl', '10']);
    browser = await puppeteer.launch({
      executablePath: chromiumPath(),
      headless: true,
      // As root (CI, containers) Chromium refuses to start with its sandbox.
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
  });
  after(async () => {
    await browser?.close();
    await exp?.close();
    await sim?.close();
  });

  test('rows of a good, a partly failing and a failing scrape; the debug link opens the log', async (t) => {
    if (!requireTool(t, 'chromium')) return;
    assert.equal((await get(`${exp.url}/pve?target=127.0.0.1`)).status, 200);
    assert.equal((await get(`${exp.url}/pve?target=127.0.0.1`)).status, 200, 'served from the cache');
    sim.addFault({ path: '/nodes/pve1/replication', status: 403, reason: 'Permission check failed (/vms/100, VM.Audit)' });
    assert.equal((await get(`${exp.url}/pve?target=127.0.0.1&cluster=0`)).status, 200);
    sim.clearFaults();
    assert.equal((await get(`${exp.url}/pve?target=127.0.0.1&module=lab`)).status, 500, 'wrong token');

    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const res = await page.goto(`${exp.url}/`, { waitUntil: 'load' });
    assert.equal(res?.status(), 200);
    const view = await page.evaluate(() => {
      const rows = [...document.querySelectorAll<HTMLTableRowElement>('#recent tr.scrape')];
      return {
        scripts: document.scripts.length,
        firstHeading: document.querySelector('#scrape-config pre')?.textContent ?? '',
        rows: rows.map((r) => ({
          id: r.dataset.id ?? '',
          failed: r.classList.contains('scrape-failed'),
          cells: [...r.cells].map((c) => c.textContent ?? ''),
          red: [...r.querySelectorAll('.failed')].map((e) => ({ text: e.textContent ?? '', color: getComputedStyle(e).color })),
          link: r.querySelector('a')?.getAttribute('href') ?? '',
        })),
      };
    });
    assert.equal(view.scripts, 0, 'the page runs no script');
    assert.match(view.firstHeading, /metrics_path: \/pve/);
    assert.equal(view.rows.length, 4, JSON.stringify(view.rows));
    const [failed, partial, cached, good] = view.rows;
    // Newest first: the 500, the partial one, the cached one, the first.
    assert.equal(failed.failed, true);
    assert.deepEqual(failed.cells.slice(1, 5), ['lab', `127.0.0.1:${sim.port}`, 'cluster, node', '500']);
    assert.ok(failed.red.some((r) => /authentication failed: 401/.test(r.text)), JSON.stringify(failed.red));
    assert.equal(partial.failed, false);
    assert.deepEqual(partial.red.map((r) => r.text), ['replication']);
    assert.equal(partial.red[0].color, 'rgb(176, 0, 32)', 'failing collectors are red');
    assert.equal(cached.cells[6], 'cached');
    assert.equal(good.cells[6], 'collected');
    assert.deepEqual(good.red, []);

    const shot = process.env.PVE_EXPORTER_SCREENSHOT ?? path.join(mkdtempSync(path.join(tmpdir(), 'pve-exporter-shot-')), 'landing-page.png');
    await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, 'screenshot written');

    // The debug link of the partly failing scrape opens its stored log.
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(`#recent tr[data-id="${partial.id}"] a`)]);
    assert.equal(new URL(page.url()).pathname, '/logs');
    const log = await page.evaluate(() => document.body.innerText);
    assert.match(log, new RegExp(`^Scrape #${partial.id} at `));
    assert.match(log, /replication +FAILED .*403 Permission check failed \(\/vms\/100, VM\.Audit\) \((needs|privilege for [^:]+:) VM\.Audit on \/vms\/\{vmid\}/);
    await page.close();
  });
});
