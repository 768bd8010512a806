// The PVE client and its cache: answer size cap (bug 2), clients kept across a reload and closed
// only after their scrapes (bug 3), a shared login under its own timeout (bug 5), a bounded
// number of (module, target) clients (bug 7).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGzip, gzipSync } from 'node:zlib';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { buildCommand } from '../src/cli.ts';
import { parseConfigText, type ModuleConfig } from '../src/config.ts';
import { ClientCache, connectionSettingsDigest, inflateCapped, inflateChunkSize, SYNC_INFLATE_MAX } from '../src/pve/client.ts';
import { get, simModule, simPasswordModule, startExporter, type RunningExporter, useSimAndExporter } from './helpers/exporter.ts';
import { fakeTargetModule, startHttpsTarget, type FakeTarget } from './helpers/fake-targets.ts';
import { getFreePort } from './helpers/net.ts';
import { parseExposition } from './helpers/promtext.ts';

const MiB = 1024 * 1024;

/** A gzip stream of `inflatedBytes` zeros, made chunk by chunk (never held inflated). */
async function gzipBomb(inflatedBytes: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const done = new Promise<void>((resolve, reject) => {
    gz.on('end', resolve);
    gz.on('error', reject);
  });
  const zeros = Buffer.alloc(MiB);
  for (let written = 0; written < inflatedBytes; written += MiB) {
    if (!gz.write(zeros)) await new Promise((r) => gz.once('drain', r));
  }
  gz.end();
  await done;
  return Buffer.concat(out);
}

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function allCollectorsSucceeded(body: string): void {
  const success = parseExposition(body).get('pve_exporter_collector_success');
  assert.ok(success && success.samples.size > 0, 'pve_exporter_collector_success missing');
  for (const [key, v] of success.samples) assert.equal(v, 1, key);
}

function until(pred: () => boolean, what: string, boundMs = 10_000): Promise<void> {
  const end = Date.now() + boundMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pred()) return resolve();
      if (Date.now() > end) return reject(new Error(`${what}: not reached within ${boundMs} ms`));
      setTimeout(check, 10);
    };
    check();
  });
}

// First in this file, so the peak RSS before it is the process's baseline.
test('inflate buffer size: one byte more than the gzip trailer states, within 16 KiB..8 MiB + 1 and the cap', () => {
  const MiB = 1024 * 1024;
  const of = (n: number) => gzipSync(Buffer.alloc(n, 'a'));
  assert.equal(inflateChunkSize(of(1_600_000), 64 * MiB), 1_600_001);
  assert.equal(inflateChunkSize(of(100), 64 * MiB), 16 * 1024, 'small answers: zlib default');
  assert.equal(inflateChunkSize(of(1_600_000), MiB), MiB, 'never above the cap');
  const liar = of(1000);
  liar.writeUInt32LE(0xffffffff, liar.length - 4);
  assert.equal(inflateChunkSize(liar, 64 * MiB), 8 * MiB + 1, 'a lying trailer costs one 8 MiB buffer at most');
  assert.equal(inflateChunkSize(Buffer.from('not gzip'), 64 * MiB), 16 * 1024);
});

test('inflate: a typical answer costs one buffer of its own size (zlib allocated a second one as large when the first was exactly filled)', async () => {
  const plain = Buffer.from(JSON.stringify({ data: Array.from({ length: 20_000 }, (_, i) => ({ id: `qemu/${i}`, cpu: i / 7 })) }));
  const gz = gzipSync(plain);
  // zlib's sync inflate takes its output buffers from Buffer.allocUnsafe: count the large ones.
  const sizes: number[] = [];
  const allocUnsafe = Buffer.allocUnsafe;
  Buffer.allocUnsafe = (n: number) => {
    if (n >= 64 * 1024) sizes.push(n);
    return allocUnsafe(n);
  };
  let out: Buffer;
  try {
    out = await inflateCapped(gz, 64 * 1024 * 1024);
  } finally {
    Buffer.allocUnsafe = allocUnsafe;
  }
  assert.ok(out.equals(plain));
  assert.deepEqual(sizes, [plain.length + 1], 'one output buffer, one byte larger than the answer');
});

test('inflate: on the main thread up to 8 MiB, past it in the threadpool, the cap holding on both ways', async () => {
  const MiB = 1024 * 1024;
  const text = (n: number) => Buffer.from(JSON.stringify({ data: 'abcdefghij'.repeat(Math.ceil(n / 10)).slice(0, n) }));
  for (const size of [100, 2 * MiB, SYNC_INFLATE_MAX - 64, SYNC_INFLATE_MAX + 64, 12 * MiB]) {
    const plain = text(size);
    assert.ok((await inflateCapped(gzipSync(plain), 64 * MiB)).equals(plain), `${size} bytes under a 64 MiB cap`);
  }
  const over = (cap: number, size: number) =>
    assert.rejects(inflateCapped(gzipSync(text(size)), cap), (err: NodeJS.ErrnoException) => err.code === 'ERR_BUFFER_TOO_LARGE', `${size} bytes over a cap of ${cap}`);
  await over(4 * MiB, 5 * MiB); // cap below the main thread's share
  await over(10 * MiB, 12 * MiB); // past the main thread's share, then over the cap
  // A trailer stating another size than the data's is refused, whichever way the answer went.
  const liar = gzipSync(text(12 * MiB));
  liar.writeUInt32LE(1000, liar.length - 4);
  await assert.rejects(inflateCapped(liar, 64 * MiB), /size|check/i, 'the trailer is checked at the end');
  await assert.rejects(inflateCapped(Buffer.from('not gzip at all'), 64 * MiB), (err: NodeJS.ErrnoException) => err.code === 'Z_DATA_ERROR');
});

describe('answer size cap (bug 2)', () => {
  const INFLATED = 512 * MiB;
  let bomb: Buffer;
  let mode: 'bomb' | 'big-declared' | 'big-chunked' = 'bomb';
  let web: FakeTarget;
  let exp: RunningExporter;
  before(async () => {
    bomb = await gzipBomb(INFLATED);
    web = await startHttpsTarget((_req, res) => {
      if (mode === 'bomb') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bomb.length }).end(bomb);
      } else {
        const body = JSON.stringify({ data: 'x'.repeat(5 * MiB) });
        const headers: Record<string, string | number> = { 'content-type': 'application/json' };
        if (mode === 'big-declared') headers['content-length'] = Buffer.byteLength(body);
        res.writeHead(200, headers);
        // Chunked: the size shows only while reading.
        for (let i = 0; i < body.length; i += 64 * 1024) res.write(body.slice(i, i + 64 * 1024));
        res.end();
      }
    });
    exp = await startExporter(fakeTargetModule(), ['--pve.max-response-size', '4MiB']);
  });
  after(async () => {
    await exp.close();
    await web.close();
  });

  test('a 512 MiB gzip bomb fails each call with a clear error, and memory stays bounded', async () => {
    assert.ok(bomb.length < 2 * MiB, `bomb is ${bomb.length} bytes compressed`);
    const peakBefore = peakRssBytes();
    const res = await get(`${exp.url}/pve?target=127.0.0.1:${web.port}`);
    assert.equal(res.status, 500, res.body);
    assert.match(res.body, /\/[a-z/-]+: decompressed answer is larger than the cap of 4194304 bytes \(--pve\.max-response-size\)/);
    const growth = peakRssBytes() - peakBefore;
    // Without the cap one answer alone inflates to 512 MiB; with it, each is cut at 4 MiB.
    assert.ok(growth < 160 * MiB, `peak RSS grew by ${Math.round(growth / MiB)} MiB`);
  });

  test('a declared Content-Length above the cap is refused before reading', async () => {
    mode = 'big-declared';
    const res = await get(`${exp.url}/pve?target=127.0.0.1:${web.port}&node=0`);
    assert.equal(res.status, 500, res.body);
    assert.match(res.body, /answer \(Content-Length \d+\) is larger than the cap of 4194304 bytes/);
  });

  test('a chunked answer is cut when it passes the cap', async () => {
    mode = 'big-chunked';
    const res = await get(`${exp.url}/pve?target=127.0.0.1:${web.port}&node=0`);
    assert.equal(res.status, 500, res.body);
    assert.match(res.body, /: answer is larger than the cap of 4194304 bytes/);
  });

  test('--pve.max-response-size takes bytes or KiB/MiB/GiB and refuses nonsense', () => {
    const parse = (v: string) => buildCommand().exitOverride().configureOutput({ writeErr: () => undefined }).parse(['node', 'x', '--pve.max-response-size', v]).opts()['pve.maxResponseSize'];
    assert.equal(parse('64MiB'), 64 * MiB);
    assert.equal(parse('1048576'), MiB);
    assert.equal(parse('512 KiB'), 512 * 1024);
    assert.throws(() => parse('lots'), /must be a size/);
    assert.throws(() => parse('1'), /must be a size/);
  });
});

describe('answers asked for gzip unless the module sets gzip: false', () => {
  // pveproxy compresses every answer anew at level 6; gzip: false spares the node that work
  // (README, Performance).
  test('Accept-Encoding is gzip by default and identity with gzip: false; a gzip answer is inflated either way', async () => {
    const seen: string[] = [];
    const web = await startHttpsTarget((req, res) => {
      const accept = String(req.headers['accept-encoding'] ?? '');
      seen.push(accept);
      // Answers gzip whatever was asked, as a proxy in front of PVE may: the client inflates it.
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync('{"data":[]}'));
    });
    const exp = await startExporter(fakeTargetModule('plain', { gzip: false }) + fakeTargetModule('zipped'));
    try {
      const plain = await get(`${exp.url}/pve?module=plain&target=127.0.0.1:${web.port}&node=0`);
      assert.ok(seen.length > 0, 'no request reached the target');
      assert.deepEqual([...new Set(seen)], ['identity'], 'module with gzip: false');
      assert.match(plain.body, /^pve_exporter_collector_success\{collector="resources"\} 1$/m, 'the gzip answer was read');
      seen.length = 0;
      await get(`${exp.url}/pve?module=zipped&target=127.0.0.1:${web.port}&node=0`);
      assert.ok(seen.length > 0, 'no request reached the target');
      assert.deepEqual([...new Set(seen)], ['gzip'], 'module without the key');
    } finally {
      await exp.close();
      await web.close();
    }
  });

  test('the same metrics from the simulator with and without gzip', async () => {
    const sim = await startSimulator();
    const exp = await startExporter(simModule(sim, 'plain', { gzip: false }) + simModule(sim, 'zipped'));
    try {
      const scrape = async (module: string) => {
        const res = await get(`${exp.url}/pve?module=${module}&target=127.0.0.1`);
        assert.equal(res.status, 200, res.body);
        allCollectorsSucceeded(res.body);
        // The exporter's own families hold durations and byte counts; the PVE series must match.
        return [...parseExposition(res.body)].filter(([name]) => !name.startsWith('pve_exporter_'));
      };
      const plain = await scrape('plain');
      assert.ok(plain.length > 20, `${plain.length} families`);
      assert.deepEqual(await scrape('zipped'), plain);
    } finally {
      await exp.close();
      await sim.close();
    }
  });
});

describe('clients keyed by connection settings (bug 3)', () => {
  const base = { user: 'monitoring@pve', token_name: 'exporter', token_value: 'SECRET-TOKEN-VALUE-77', verify_ssl: false };
  const mod = (name: string, extra: Record<string, unknown> = {}): ModuleConfig =>
    parseConfigText(JSON.stringify({ [name]: { ...base, ...extra } }), 'test.yml').modules.get(name)!;

  test('equal settings under another name or key order share a key; any change makes a new one; no secret in it', () => {
    const a = mod('a');
    const b = parseConfigText(JSON.stringify({ b: { verify_ssl: false, token_value: base.token_value, token_name: 'exporter', user: base.user } }), 't.yml').modules.get('b')!;
    assert.equal(connectionSettingsDigest(a), connectionSettingsDigest(b));
    assert.notEqual(connectionSettingsDigest(a), connectionSettingsDigest(mod('a', { timeout: 7 })));
    assert.notEqual(connectionSettingsDigest(a), connectionSettingsDigest(mod('a', { token_value: 'OTHER' })));
    const key = ClientCache.key(a, { host: '127.0.0.1', port: 8006 });
    assert.ok(!key.includes(base.token_value) && !key.includes('exporter'), key);
    assert.match(key, /^[0-9a-f]{32}\|127\.0\.0\.1:8006$/);
  });
});

describe('reload during a scrape (bug 3)', () => {
  let sim: Simulator;
  let exp: RunningExporter;
  let yaml: string;
  before(async () => {
    sim = await startSimulator({ scenario: 'default', latencyMs: 150 });
    yaml = simPasswordModule(sim);
    exp = await startExporter(yaml);
  });
  after(async () => {
    await exp.close();
    await sim.close();
  });

  /** Starts a scrape and resolves once the simulator has seen its first API call. */
  async function scrapeInFlight(): Promise<{ done: Promise<{ status: number; body: string }>; settled: () => boolean }> {
    const before = sim.stats().total;
    let settled = false;
    const done = get(`${exp.url}/pve?target=127.0.0.1`).finally(() => (settled = true));
    await until(() => sim.stats().total > before, 'scrape reached the simulator');
    return { done, settled: () => settled };
  }

  test('an equal config keeps the client: the scrape in flight finishes, no second login', async () => {
    assert.equal((await get(`${exp.url}/pve?target=127.0.0.1`)).status, 200);
    assert.equal(sim.stats().logins, 1);
    const a = await scrapeInFlight();
    exp.app.state.config = parseConfigText(yaml, 'reloaded.yml');
    assert.equal(a.settled(), false, 'the reload happened during the scrape');
    const b = get(`${exp.url}/pve?target=127.0.0.1`);
    const [ra, rb] = await Promise.all([a.done, b]);
    assert.equal(ra.status, 200, ra.body);
    allCollectorsSucceeded(ra.body);
    assert.equal(rb.status, 200, rb.body);
    allCollectorsSucceeded(rb.body);
    assert.equal((await get(`${exp.url}/pve?target=127.0.0.1`)).status, 200);
    assert.equal(sim.stats().logins, 1, 'the unchanged module kept its ticket');
    assert.equal(exp.app.state.clients.size, 1);
  });

  test('a changed module gets a new client; the old one finishes its scrape first', async () => {
    const lease = exp.app.state.clients.acquire(exp.app.state.config.modules.get('default')!, { host: '127.0.0.1', port: sim.port });
    const old = lease.client;
    lease.release();
    const a = await scrapeInFlight();
    const changed = simPasswordModule(sim, 'default', { timeout: 7 });
    exp.app.state.config = parseConfigText(changed, 'changed.yml');
    assert.equal(a.settled(), false, 'the reload happened during the scrape');
    assert.equal(old.closed, false, 'not closed under the scrape in flight');
    const b = get(`${exp.url}/pve?target=127.0.0.1`);
    const [ra, rb] = await Promise.all([a.done, b]);
    assert.equal(ra.status, 200, ra.body);
    allCollectorsSucceeded(ra.body);
    assert.equal(rb.status, 200, rb.body);
    allCollectorsSucceeded(rb.body);
    assert.equal(old.closed, true, 'the old client closed once its scrape was done');
    assert.equal(sim.stats().logins, 2, 'the changed module logged in once');
    assert.equal(exp.app.state.clients.size, 1, 'the old client left the cache');
  });
});

describe('shared password login (bug 5)', () => {
  const env = useSimAndExporter({ config: (sim) => simPasswordModule(sim) });

  test('a 0.3 s scrape giving up does not abort the login a 10 s scrape shares', async () => {
    env.sim.addFault({ path: '/access/ticket', delayMs: 1000, times: 1 });
    const module = env.exp.app.state.config.modules.get('default')!;
    const target = { host: '127.0.0.1', port: env.sim.port };
    const scraper = env.exp.app.state.scraper;
    // Both start in the same tick: the short one starts the login, the long one joins it. Different
    // scopes, so they are two collections (identical scrapes would share one: scrape-sharing.test.ts).
    const short = scraper.scrape({ module, target, cluster: true, node: false, scrapeTimeoutSeconds: 0.3 });
    const long = scraper.scrape({ module, target, cluster: true, node: true, scrapeTimeoutSeconds: 10 });
    const [s, l] = await Promise.all([short, long]);
    assert.equal(s.status, 500);
    assert.match(s.error ?? '', /scrape deadline/);
    assert.equal(l.status, 200, l.error);
    assert.deepEqual(l.outcomes.filter((o) => !o.ok), []);
    assert.equal(env.sim.stats().logins, 1);
  });
});

describe('bounded (module, target) clients (bug 7)', () => {
  test('many distinct targets: the cache never holds more than --pve.max-targets', async () => {
    const port = await getFreePort();
    const exp = await startExporter(fakeTargetModule(), ['--pve.max-targets', '3']);
    try {
      for (let i = 1; i <= 10; i++) {
        const res = await get(`${exp.url}/pve?target=127.0.0.${i}:${port}`);
        assert.equal(res.status, 500);
        assert.match(res.body, /ECONNREFUSED/);
        assert.ok(exp.app.state.clients.size <= 3, `${exp.app.state.clients.size} clients after ${i} targets`);
      }
      assert.equal(exp.app.state.clients.size, 3);
    } finally {
      await exp.close();
    }
  });

  test('a client evicted during its scrape closes only after it', async () => {
    const sim = await startSimulator({ scenario: 'default', latencyMs: 150 });
    const exp = await startExporter(simPasswordModule(sim), ['--pve.max-targets', '1']);
    try {
      const refused = await getFreePort();
      const before = sim.stats().total;
      const a = get(`${exp.url}/pve?target=127.0.0.1`);
      await until(() => sim.stats().total > before, 'scrape reached the simulator');
      // Another target takes the only slot while the first scrape runs.
      assert.equal((await get(`${exp.url}/pve?target=127.0.0.2:${refused}`)).status, 500);
      assert.equal(exp.app.state.clients.size, 1);
      const ra = await a;
      assert.equal(ra.status, 200, ra.body);
      allCollectorsSucceeded(ra.body);
    } finally {
      await exp.close();
      await sim.close();
    }
  });

  test('idle clients are dropped by the sweep', async () => {
    const cache = new ClientCache({ concurrency: 1, idleMs: 30 });
    try {
      const m = parseConfigText('m: {user: a@pve, token_name: t, token_value: v, verify_ssl: false}', 't.yml').modules.get('m')!;
      cache.acquire(m, { host: '127.0.0.1', port: 1 }).release();
      assert.equal(cache.size, 1);
      await until(() => {
        cache.sweep();
        return cache.size === 0;
      }, 'idle client swept', 5000);
    } finally {
      await cache.close();
    }
  });
});
