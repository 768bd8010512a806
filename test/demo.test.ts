// `npm run demo` as a newcomer uses it: --help, a mistyped flag, the printed URLs, the landing
// page's links, the service-discovery targets scraped one by one, and Ctrl-C / SIGTERM leaving no
// temporary files behind. The demo runs as a child process with its own TMPDIR, so "nothing left"
// is checked on a folder nobody else writes to.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { runDemo, startDemo, type RunningDemo } from './helpers/demo.ts';
import { get } from './helpers/exporter.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'pve-exporter-demo-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh TMPDIR for one demo run. */
function demoEnv(name: string): { env: NodeJS.ProcessEnv; tmp: string } {
  const dir = mkdtempSync(path.join(scratch, `${name}-`));
  return { env: { ...process.env, TMPDIR: dir }, tmp: dir };
}

/** What is left in a demo's TMPDIR, less tsx's compile cache (tsx-<uid>, tsx's, not the demo's). */
function leftOver(tmp: string): string[] {
  return readdirSync(tmp).filter((name) => !/^tsx-\d+$/.test(name));
}

interface SdGroup {
  targets: string[];
  labels: Record<string, string>;
}

async function stopWith(demo: RunningDemo, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  demo.child.kill(signal);
  const bound = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`demo still running 30 s after ${signal}`)), 30_000).unref());
  return Promise.race([demo.exited, bound]);
}

test('--help prints the options and exits 0 (no stack trace)', async () => {
  const run = await runDemo(['--help']);
  assert.equal(run.code, 0, run.stderr);
  for (const flag of ['--scenario', '--nodes', '--guests-per-node', '--port', '--help']) assert.ok(run.stdout.includes(flag), `${flag} in --help`);
  assert.equal(run.stderr, '');
  assert.doesNotMatch(run.stdout, /^\s+at /m);
});

test('a mistyped flag or a bad value: the error first, exit 2, no stack trace', async () => {
  for (const [args, reason] of [
    [['--scenaro', 'pve8'], /Unknown option '--scenaro'/],
    [['--scenario', 'pve7'], /--scenario: unknown scenario "pve7" \(one of: default, pve8, degraded, standalone\)/],
    [['--nodes', '500'], /--nodes: expected a whole number 1\.\.64, got "500"/],
  ] as const) {
    const run = await runDemo([...args]);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr.split('\n')[0], reason);
    assert.doesNotMatch(run.stderr, /^\s+at /m);
    assert.equal(run.stdout, '');
  }
});

describe('a running demo', () => {
  let demo: RunningDemo;
  let tmp = '';

  test('starts, prints its URL and writes its pve.yml under TMPDIR', async () => {
    const e = demoEnv('sigint');
    tmp = e.tmp;
    demo = await startDemo(['--port', '0'], { env: e.env });
    assert.match(demo.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(path.dirname(demo.configDir), tmp);
    assert.ok(existsSync(path.join(demo.configDir, 'pve.yml')));
  });

  test('every URL it prints answers 200', async () => {
    const urls = [...demo.stdout().matchAll(/curl '([^']+)'/g)].map((m) => m[1]);
    assert.ok(urls.length >= 4, demo.stdout());
    for (const url of urls) {
      const res = await get(url);
      assert.equal(res.status, 200, `${url}: ${res.body}`);
    }
  });

  test("the landing page's links work against the demo", async () => {
    const page = await get(`${demo.url}/`);
    assert.equal(page.status, 200);
    const links = [...page.body.matchAll(/href="([^"]+)"/g)].map((m) => m[1].replaceAll('&amp;', '&'));
    assert.ok(links.some((l) => l.startsWith('pve?')) && links.some((l) => l.startsWith('pve/sd?')), links.join(' '));
    for (const link of links) {
      const res = await get(new URL(link, `${demo.url}/`).toString());
      assert.equal(res.status, 200, `${link}: ${res.body}`);
      if (link.startsWith('pve?')) assert.match(res.body, /^pve_up\{id="cluster\/pvec"\} 1$/m);
    }
  });

  test('each /pve/sd target is a loopback address that scrapes as its own node', async () => {
    const sd = await get(`${demo.url}/pve/sd?target=localhost&module=default`);
    assert.equal(sd.status, 200, sd.body);
    const groups = JSON.parse(sd.body) as SdGroup[];
    assert.deepEqual(groups.map((g) => g.labels.__meta_pve_node), ['pve1', 'pve2', 'pve3']);
    for (const g of groups) {
      assert.match(g.labels.__param_target, /^127\.\d+\.\d+\.\d+(:\d+)?$/, 'a loopback address, never the example data\'s LAN addresses');
      const q = new URLSearchParams({ target: g.labels.__param_target, module: g.labels.__param_module, cluster: '0', node: '1' });
      const res = await get(`${demo.url}/pve?${q}`);
      assert.equal(res.status, 200, res.body);
      const node = g.labels.__meta_pve_node;
      assert.match(res.body, new RegExp(`^pve_subscription_info\\{id="node/${node}",`, 'm'), `target ${g.labels.__param_target} answers as ${node}`);
      assert.doesNotMatch(res.body, /^pve_exporter_collector_success\{[^}]*\} 0$/m);
    }
  });

  test('Ctrl-C (SIGINT) stops it with exit 0 and removes its temporary files', async () => {
    const end = await stopWith(demo, 'SIGINT');
    assert.deepEqual(end, { code: 0, signal: null }, demo.stderr());
    assert.equal(existsSync(demo.configDir), false, `${demo.configDir} left behind`);
    assert.deepEqual(leftOver(tmp), []);
  });
});

test('SIGTERM also removes its temporary files', async () => {
  const { env, tmp } = demoEnv('sigterm');
  const demo = await startDemo(['--port', '0', '--nodes', '2', '--guests-per-node', '4'], { env });
  assert.ok(existsSync(path.join(demo.configDir, 'pve.yml')));
  const end = await stopWith(demo, 'SIGTERM');
  assert.deepEqual(end, { code: 0, signal: null }, demo.stderr());
  assert.deepEqual(leftOver(tmp), []);
});
