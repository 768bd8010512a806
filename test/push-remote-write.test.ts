// Remote write push mode: the WriteRequest encoding (decoded back with the protobuf library's
// reader), the bounded queue, the strict push config, and end to end with a real Prometheus
// receiving remote write on loopback (behind basic auth): the pushed series and their labels,
// staleness, an outage of the receiver, and wrong credentials.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { makePki } from './helpers/web.ts';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import snappy from 'snappyjs';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { MetricFamily, gauge } from '../src/exposition/family.ts';
import {
  compressWriteRequest,
  encodeWriteRequest,
  familiesToSamples,
  STALE,
  STALE_NAN_BITS,
  type PushSample,
} from '../src/exposition/remote-write.ts';
import { parsePushConfigText, PushConfigError } from '../src/push/config.ts';
import { retryAfter } from '../src/push/remote-writer.ts';
import { BatchQueue } from '../src/push/batch-queue.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { createReceiver, type Receiver } from './helpers/push-receiver.ts';
import { waitUntil } from './helpers/prom-stack.ts';
import { hasTool } from './helpers/tools.ts';
import { parseExposition } from './helpers/promtext.ts';

interface Decoded {
  labels: [string, string][];
  samples: { value: number; bits: bigint; timestamp: bigint }[];
}

/** Decodes a WriteRequest with @bufbuild/protobuf's reader, field by field (no schema of ours involved). */
function decodeWriteRequest(bytes: Uint8Array): Decoded[] {
  const out: Decoded[] = [];
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    assert.equal(field, 1, 'WriteRequest field');
    assert.equal(wt, WireType.LengthDelimited);
    const ts = new BinaryReader(r.bytes());
    const series: Decoded = { labels: [], samples: [] };
    while (ts.pos < ts.len) {
      const [f] = ts.tag();
      const sub = new BinaryReader(ts.bytes());
      if (f === 1) {
        let name = '';
        let value = '';
        while (sub.pos < sub.len) {
          const [lf] = sub.tag();
          if (lf === 1) name = sub.string();
          else value = sub.string();
        }
        series.labels.push([name, value]);
      } else {
        assert.equal(f, 2);
        let bits = 0n;
        let value = 0;
        let timestamp = 0n;
        while (sub.pos < sub.len) {
          const [sf, swt] = sub.tag();
          if (sf === 1) {
            assert.equal(swt, WireType.Bit64);
            bits = BigInt(sub.fixed64());
            const view = new DataView(new ArrayBuffer(8));
            view.setBigUint64(0, bits, true);
            value = view.getFloat64(0, true);
          } else timestamp = BigInt(sub.int64());
        }
        series.samples.push({ value, bits, timestamp });
      }
    }
    out.push(series);
  }
  return out;
}

describe('remote write encoding', () => {
  test('families -> sorted, complete labels; values, timestamps and the exact stale NaN round-trip through protobuf and snappy', () => {
    const fam = new MetricFamily(gauge('pve_up', 'up', ['id']));
    fam.add(['qemu/100'], 1).add(['qemu/101'], 0).add([''], Number.NaN);
    const ext: [string, string][] = [['location', 'home'], ['instance', 'pve1'], ['job', 'pve'], ['zone', '']];
    const series = familiesToSamples([fam], ext);
    assert.deepEqual(series[0].labels, [['__name__', 'pve_up'], ['id', 'qemu/100'], ['instance', 'pve1'], ['job', 'pve'], ['location', 'home']]);
    // An empty label value is the same as no label: not sent.
    assert.deepEqual(series[2].labels.map(([k]) => k), ['__name__', 'instance', 'job', 'location']);
    const ts = 1_764_000_000_123;
    const samples: PushSample[] = [...series.map((s) => ({ ...s, timestampMs: ts })), { labels: series[0].labels, value: STALE, timestampMs: ts + 1 }];
    const body = compressWriteRequest(encodeWriteRequest(samples));
    const decoded = decodeWriteRequest(snappy.uncompress(body));
    assert.equal(decoded.length, 4);
    assert.deepEqual(decoded[0].labels, series[0].labels);
    assert.deepEqual(decoded[0].samples, [{ value: 1, bits: 0x3ff0000000000000n, timestamp: BigInt(ts) }]);
    assert.equal(decoded[1].samples[0].value, 0);
    // An ordinary NaN stays an ordinary NaN; the stale marker has Prometheus' exact bit pattern.
    assert.ok(Number.isNaN(decoded[2].samples[0].value));
    assert.notEqual(decoded[2].samples[0].bits, STALE_NAN_BITS);
    assert.equal(decoded[3].samples[0].bits, STALE_NAN_BITS);
    assert.equal(decoded[3].samples[0].timestamp, BigInt(ts + 1));
    for (const d of decoded) {
      const names = d.labels.map(([k]) => k);
      assert.deepEqual(names, [...names].sort(), 'labels sorted by name');
    }
  });

  test('the queue is bounded: the oldest batches go first and are counted', () => {
    const q = new BatchQueue(10);
    const b = (samples: number, tag: number) => ({ body: new Uint8Array([tag]), samples });
    assert.equal(q.push(b(4, 1)), 0);
    assert.equal(q.push(b(4, 2)), 0);
    assert.equal(q.push(b(4, 3)), 4, 'batch 1 dropped to make room');
    assert.equal(q.size, 8);
    assert.equal(q.shift()?.body[0], 2);
    assert.equal(q.push(b(10, 4)), 4);
    assert.equal(q.size, 10);
    assert.equal(q.shift()?.body[0], 4);
    assert.equal(q.shift(), undefined);
    assert.equal(q.size, 0);
    assert.equal(q.byteSize, 0);
    assert.throws(() => q.push(b(11, 5)), /exceeds the queue capacity/);
  });

  test('Retry-After: seconds or an HTTP date', () => {
    assert.equal(retryAfter('7'), 7);
    assert.equal(retryAfter(new Date(10_000).toUTCString(), 4_000), 6);
    assert.equal(retryAfter('soon'), undefined);
    assert.equal(retryAfter(undefined), undefined);
  });
});

describe('push config', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'push-config-'));
  const pw = path.join(dir, 'pw');
  writeFileSync(pw, 'hunter2-secret\n', { mode: 0o600 });
  const modules = new Set(['default']);
  const base = (extra = '', job = '') =>
    `remote_write:\n  url: https://vps.example.com/api/v1/write\n  basic_auth:\n    username: home\n    password_file: ${pw}\n${extra}jobs:\n  - job_name: pve\n    target: pve1.home.lan\n    interval: 15s\n${job}`;
  const refused = (text: string, re: RegExp) =>
    assert.throws(() => parsePushConfigText(text, 'push.yml', modules), (err: unknown) => {
      assert.ok(err instanceof PushConfigError, String(err));
      assert.match(err.message, re);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });

  test('a full config is read; the secret comes from the file', () => {
    const cfg = parsePushConfigText(
      base('  external_labels:\n    location: home\n    dc: 1\n  queue_config:\n    capacity: 1000\n    max_samples_per_send: 500\n    max_backoff: 2s\n', '    collectors: [status, version]\n    scopes: [cluster]\n    timeout: 5s\n'),
      'push.yml',
      modules,
    );
    assert.equal(cfg.remoteWrite.authorization, `Basic ${Buffer.from('home:hunter2-secret').toString('base64')}`);
    assert.deepEqual(cfg.remoteWrite.externalLabels, [['dc', '1'], ['location', 'home']]);
    assert.equal(cfg.remoteWrite.capacity, 1000);
    assert.equal(cfg.remoteWrite.maxBackoff, 2);
    assert.deepEqual(cfg.jobs[0], { jobName: 'pve', module: 'default', target: 'pve1.home.lan', cluster: true, node: false, collectors: ['status', 'version'], interval: 15, timeout: 5 });
  });

  test('unknown keys, inline secrets, bad values and missing files are refused with file:line and key', () => {
    refused(base('  passwrd_file: x\n'), /^push config push\.yml:6: remote_write\.passwrd_file: unknown key "passwrd_file"; known keys: url,/);
    refused(base('  bearer_token: abc\n'), /push\.yml:6: remote_write\.bearer_token: unknown key .*secrets come from files: use bearer_token_file/);
    refused(base('', '    intervall: 1m\n'), /push\.yml:10: jobs\[0\]\.intervall: unknown key/);
    refused(base('', '    interval: soon\n').replace('    interval: 15s\n', ''), /push\.yml:9: jobs\[0\]\.interval: must be a duration/);
    refused(base('', '    collectors: [statuz]\n'), /push\.yml:10: jobs\[0\]\.collectors\[0\]: unknown collector "statuz"/);
    refused(base('', '    module: other\n'), /jobs\[0\]\.module: module "other" is not in pve\.yml/);
    refused(base('  external_labels:\n    job: x\n'), /push\.yml:7: remote_write\.external_labels\.job: "job" is set per job/);
    refused(base().replace(pw, path.join(dir, 'missing')), /push\.yml:5: remote_write\.basic_auth\.password_file: cannot read .*missing: file not found/);
    refused(base('', '    timeout: 30s\n'), /jobs\[0\]\.timeout: must not exceed interval/);
    refused('jobs: []\n', /remote_write is required/);
  });

  test('--config.check checks the push config; a broken one stops the exporter with the error and exit 1', () => {
    const pveYml = path.join(dir, 'pve.yml');
    writeFileSync(pveYml, 'default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: x\n  targets: [pve1.home.lan]\n', { mode: 0o600 });
    const good = path.join(dir, 'push-good.yml');
    writeFileSync(good, base());
    const bad = path.join(dir, 'push-bad.yml');
    writeFileSync(bad, base('', '    intervall: 1m\n'));
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config.file', pveYml, '--web.listen-address', '127.0.0.1:0', ...args], { encoding: 'utf8', timeout: 60_000 });
    const ok = run(['--push.config.file', good, '--config.check']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /push config .*push-good\.yml OK \(1 job\)/);
    for (const args of [['--push.config.file', bad, '--config.check'], ['--push.config.file', bad]]) {
      const r = run(args);
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /push-bad\.yml:10: jobs\[0\]\.intervall: unknown key "intervall"/);
      assert.doesNotMatch(r.stderr, /hunter2/);
    }
  });
});

/** pve_exporter_push_* of the exporter's /metrics, by series. */
async function pushMetrics(exp: RunningExporter): Promise<Map<string, number>> {
  const res = await get(`${exp.url}/metrics`);
  const out = new Map<string, number>();
  for (const [name, fam] of parseExposition(res.body)) {
    if (!name.startsWith('pve_exporter_push')) continue;
    for (const [key, v] of fam.samples) out.set(key.replace(/\{\}$/, ''), v);
  }
  return out;
}

// Skipped without prometheus on a developer machine; under CI a missing tool fails (as requireTool).
const haveProm = hasTool('prometheus');

describe('push to a real Prometheus (remote write receiver)', { skip: haveProm || process.env.CI ? false : 'prometheus not installed (apt-get install prometheus)' }, () => {
  let sim: Simulator;
  let receiver: Receiver;
  let exp: RunningExporter;
  let dir: string;
  const CAPACITY = 4000;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'push-e2e-'));
    sim = await startSimulator({ scenario: 'default' });
    receiver = await createReceiver(dir);
    await receiver.start();
    writeFileSync(path.join(dir, 'password'), `${receiver.password}\n`, { mode: 0o600 });
    writeFileSync(
      path.join(dir, 'push.yml'),
      [
        'remote_write:',
        `  url: ${receiver.writeUrl}`,
        '  basic_auth:',
        `    username: ${receiver.user}`,
        `    password_file: ${path.join(dir, 'password')}`,
        '  external_labels: {location: home}',
        `  queue_config: {capacity: ${CAPACITY}, max_samples_per_send: 500, min_backoff: 50ms, max_backoff: 500ms}`,
        'jobs:',
        '  - {job_name: pve, module: default, target: 127.0.0.1, interval: 1s}',
        '',
      ].join('\n'),
    );
    exp = await startExporter(simModule(sim), ['--push.config.file', path.join(dir, 'push.yml')]);
  });
  after(async () => {
    await exp?.close();
    await receiver?.stop();
    await sim?.close();
  });

  test('the pushed series are in Prometheus with job, instance, external labels and the values /pve gives', async () => {
    const pushed = await waitUntil('pve_up in Prometheus', async () => {
      const r = await receiver.query('pve_up{job="pve"}');
      return r.length >= 10 ? r : undefined;
    }, 60_000);
    const scraped = parseExposition((await get(`${exp.url}/pve?target=127.0.0.1`)).body).get('pve_up')!;
    assert.equal(pushed.length, scraped.samples.size);
    for (const s of pushed) {
      const { __name__, id, instance, job, location, ...rest } = s.metric;
      assert.deepEqual({ __name__, instance, job, location, rest }, { __name__: 'pve_up', instance: '127.0.0.1', job: 'pve', location: 'home', rest: {} });
      assert.equal(Number(s.value[1]), scraped.samples.get(`pve_up{id="${id}"}`), id);
    }
    const up = await receiver.query('up{job="pve", instance="127.0.0.1", location="home"}');
    assert.equal(up.length, 1);
    assert.equal(up[0].value[1], '1');
    const samples = await receiver.query('scrape_samples_scraped{job="pve"}');
    assert.ok(Number(samples[0].value[1]) > 50, `scrape_samples_scraped ${samples[0]?.value[1]}`);
    assert.equal((await receiver.query('scrape_duration_seconds{job="pve"} > 0')).length, 1);
  });

  test('series that disappear get a stale marker (gone at once, not after 5 minutes); up turns 0', async () => {
    await waitUntil('pve_up pushed', async () => (await receiver.query('pve_up{job="pve"}')).length > 0, 60_000);
    sim.addFault({ path: /.*/, status: 401, reason: 'authentication failure' });
    try {
      await waitUntil('up 0 and no pve_up', async () => {
        const up = await receiver.query('up{job="pve"}');
        const series = await receiver.query('pve_up{job="pve"}');
        return up[0]?.value[1] === '0' && series.length === 0;
      }, 30_000);
    } finally {
      sim.clearFaults();
    }
    await waitUntil('pve_up back', async () => (await receiver.query('pve_up{job="pve"}')).length > 0, 30_000);
  });

  test('receiver down and back: retried with backoff, queue bounded (oldest dropped, counted), catches up, no crash', async () => {
    const before = await pushMetrics(exp);
    const stoppedAt = Date.now() / 1000;
    await receiver.stop();
    // While it is down: retries grow, the queue fills up to its capacity and no further.
    let maxQueue = 0;
    await waitUntil('samples dropped while the receiver is down', async () => {
      const m = await pushMetrics(exp);
      maxQueue = Math.max(maxQueue, m.get('pve_exporter_push_queue_samples') ?? 0);
      return (m.get('pve_exporter_push_samples_total{outcome="dropped"}') ?? 0) > 0 && (m.get('pve_exporter_push_retries_total') ?? 0) > (before.get('pve_exporter_push_retries_total') ?? 0);
    }, 60_000);
    assert.ok(maxQueue <= CAPACITY, `queue ${maxQueue} > capacity ${CAPACITY}`);
    assert.ok(maxQueue > 0);
    const restartedAt = Date.now() / 1000;
    await receiver.start();
    await waitUntil('queue drained', async () => (await pushMetrics(exp)).get('pve_exporter_push_queue_samples') === 0, 60_000);
    // Samples taken during the outage reached Prometheus: the newest ones (the oldest were dropped).
    const window = Math.ceil(restartedAt - stoppedAt);
    const during = await waitUntil('up samples of the outage', async () => {
      const r = await receiver.query(`count_over_time(up{job="pve"}[${window}s])`, restartedAt);
      return r.length === 1 && Number(r[0].value[1]) >= 1 ? r : undefined;
    }, 30_000);
    assert.ok(Number(during[0].value[1]) >= 1);
    const up = await waitUntil('fresh up', async () => {
      const r = await receiver.query('up{job="pve"}');
      return r[0]?.value[1] === '1' ? r : undefined;
    }, 30_000);
    assert.equal(up.length, 1);
    assert.equal((await get(`${exp.url}/-/healthy`)).status, 200);
    assert.ok(exp.logs.some((l) => /remote write failed; retrying with backoff/.test(l)));
    assert.ok(exp.logs.some((l) => /remote write recovered/.test(l)));
  });

  test('wrong credentials: a clear error, logged once with the reason, counted, not retried; no secret in logs', async () => {
    const wrongDir = mkdtempSync(path.join(tmpdir(), 'push-wrong-'));
    writeFileSync(path.join(wrongDir, 'password'), 'not-the-password-7c1e\n', { mode: 0o600 });
    writeFileSync(
      path.join(wrongDir, 'push.yml'),
      `remote_write:\n  url: ${receiver.writeUrl}\n  basic_auth: {username: home, password_file: ${path.join(wrongDir, 'password')}}\njobs:\n  - {job_name: wrong, target: 127.0.0.1, interval: 1s, collectors: [version]}\n`,
    );
    const wrong = await startExporter(simModule(sim), ['--push.config.file', path.join(wrongDir, 'push.yml')]);
    try {
      const m = await waitUntil('three rejected batches', async () => {
        const m = await pushMetrics(wrong);
        return (m.get('pve_exporter_push_requests_total{status="401"}') ?? 0) >= 3 ? m : undefined;
      }, 30_000);
      assert.ok((m.get('pve_exporter_push_samples_total{outcome="rejected"}') ?? 0) > 0);
      assert.equal(m.get('pve_exporter_push_retries_total') ?? 0, 0, 'a 401 is not retried');
      const refused = wrong.logs.filter((l) => /remote write refused/.test(l));
      assert.equal(refused.length, 1, 'logged once');
      assert.match(refused[0], /"status":401/);
      assert.match(refused[0], /"reason":"Unauthorized"/);
      assert.ok(!wrong.logs.join('\n').includes('not-the-password-7c1e'));
      assert.equal((await receiver.query('up{job="wrong"}')).length, 0);
    } finally {
      await wrong.close();
    }
  });
});

/**
 * A RemoteWriter sending to `server` (started here on loopback), with `remoteWriteExtra` (YAML
 * lines under remote_write) and a debug logger whose lines are kept.
 */
async function writerTo(server: import('node:net').Server, remoteWriteExtra: string) {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as import('node:net').AddressInfo;
  const { RemoteWriter } = await import('../src/push/remote-writer.ts');
  const { SelfMetrics } = await import('../src/self-metrics.ts');
  const { createLogger } = await import('../src/log.ts');
  const logs: string[] = [];
  const self = new SelfMetrics({ apiMetrics: false, targetMetrics: false });
  const cfg = parsePushConfigText(
    `remote_write:\n  url: http://127.0.0.1:${port}/api/v1/write\n${remoteWriteExtra}jobs:\n  - {job_name: x, target: t}\n`,
    'push.yml',
    new Set(['default']),
  );
  const writer = new RemoteWriter(cfg.remoteWrite, self, createLogger('debug', { write: (l: string) => void logs.push(l) }));
  return { writer, self, logs };
}

describe('remote write retries against a receiver answering 503 then 400', () => {
  test('429/5xx are retried (Retry-After honoured), other 4xx dropped without retry', async () => {
    const answers = [503, 429, 204, 400];
    const seen: { status: number; at: number; headers: http.IncomingHttpHeaders }[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const status = answers.shift() ?? 204;
        seen.push({ status, at: Date.now(), headers: req.headers });
        if (status === 429) res.setHeader('Retry-After', '1');
        res.statusCode = status;
        res.end(status === 400 ? 'out of order sample' : '');
      });
    });
    const { writer, self, logs } = await writerTo(server, '  queue_config: {min_backoff: 10ms, max_backoff: 20ms, max_samples_per_send: 2}\n');
    try {
      const s = (n: number): PushSample => ({ labels: [['__name__', 'm'], ['n', String(n)]], value: n, timestampMs: n });
      writer.enqueue([s(1), s(2), s(3), s(4)]);
      // Done when the writer has handled the fourth answer: `queued` leaves out the batch in
      // flight, and the receiver records a request before the writer reads its answer, so the
      // rejection's log line (written after its count) is what says the 400 was dealt with.
      const handled = () => logs.some((l) => /rejected by the receiver/.test(l));
      await waitUntil('four requests, the last one handled', async () => seen.length >= 4 && writer.queued === 0 && handled(), 10_000, 20);
      assert.deepEqual(seen.map((x) => x.status), [503, 429, 204, 400]);
      assert.ok(seen[2].at - seen[1].at >= 990, 'Retry-After: 1 waited for');
      for (const h of seen.map((x) => x.headers)) {
        assert.equal(h['content-encoding'], 'snappy');
        assert.equal(h['content-type'], 'application/x-protobuf');
        assert.equal(h['x-prometheus-remote-write-version'], '0.1.0');
        assert.match(h['user-agent'] ?? '', /^pve-exporter\//);
      }
      const metrics = await self.registry.metrics();
      assert.match(metrics, /pve_exporter_push_retries_total 2/);
      assert.match(metrics, /pve_exporter_push_samples_total\{outcome="sent"\} 2/);
      assert.match(metrics, /pve_exporter_push_samples_total\{outcome="rejected"\} 2/);
      assert.ok(logs.some((l) => /rejected by the receiver/.test(l) && /out of order sample/.test(l)));
    } finally {
      await writer.close();
      server.close();
    }
  });
});

describe('remote write to a receiver that accepts and never answers', () => {
  test('each attempt gives up at remote_write.timeout, is counted as an error with the reason, retried; close() ends it at once', async () => {
    const sockets = new Set<import('node:net').Socket>();
    let accepted = 0;
    const server = (await import('node:net')).createServer((s) => {
      accepted++;
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
      s.resume(); // read the request, never answer
    });
    const { writer, self, logs } = await writerTo(server, '  timeout: 1s\n  queue_config: {min_backoff: 10ms, max_backoff: 20ms}\n');
    try {
      writer.enqueue([{ labels: [['__name__', 'm']], value: 1, timestampMs: 1 }]);
      await waitUntil('two attempts given up', async () => /pve_exporter_push_requests_total\{status="error"\} [2-9]/.test(await self.registry.metrics()), 15_000, 50);
      assert.ok(logs.some((l) => /remote write failed; retrying with backoff/.test(l) && /timeout: no answer within 1s/.test(l)), logs.join('\n'));
      // A connection given up is closed, not left to pile up beside the next attempt's.
      assert.ok(sockets.size <= 1, `${sockets.size} connections open after ${accepted} attempts`);
      assert.equal(writer.queued, 0, 'the batch is in flight, not dropped');
    } finally {
      await writer.close();
      await waitUntil('connections closed after close()', async () => sockets.size === 0, 5_000, 20);
      server.close();
    }
  });
});

describe('remote write over TLS with a client certificate and a bearer token', { skip: hasTool('openssl') || process.env.CI ? false : 'openssl not installed (apt-get install openssl)' }, () => {
  test('ca_file, cert_file/key_file and server_name reach the receiver; the token comes from its file', async () => {
    const pki = makePki();
    const seen: { sni?: string; cn?: string; authorization?: string }[] = [];
    const server = https.createServer(
      { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert), ca: readFileSync(pki.caCert), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const sock = req.socket as TLSSocket & { servername?: string };
        seen.push({ sni: sock.servername, cn: String(sock.getPeerCertificate().subject?.CN), authorization: req.headers.authorization });
        req.resume();
        req.on('end', () => res.end());
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as import('node:net').AddressInfo;
    const dir = mkdtempSync(path.join(tmpdir(), 'push-tls-'));
    writeFileSync(path.join(dir, 'token'), 'tok-9a7b\n', { mode: 0o600 });
    const cfg = parsePushConfigText(
      [
        'remote_write:',
        `  url: https://127.0.0.1:${port}/api/v1/write`,
        `  bearer_token_file: ${path.join(dir, 'token')}`,
        `  tls_config: {ca_file: ${pki.caCert}, cert_file: ${pki.clientCert}, key_file: ${pki.clientKey}, server_name: exporter.test}`,
        'jobs:',
        '  - {job_name: x, target: t}',
        '',
      ].join('\n'),
      'push.yml',
      new Set(['default']),
    );
    const { RemoteWriter } = await import('../src/push/remote-writer.ts');
    const { SelfMetrics } = await import('../src/self-metrics.ts');
    const { createLogger } = await import('../src/log.ts');
    const self = new SelfMetrics({ apiMetrics: false, targetMetrics: false });
    const writer = new RemoteWriter(cfg.remoteWrite, self, createLogger('error', { write: () => undefined }));
    try {
      writer.enqueue([{ labels: [['__name__', 'm']], value: 1, timestampMs: 1 }]);
      await waitUntil('one request', async () => seen.length === 1, 10_000, 20);
      assert.deepEqual(seen[0], { sni: 'exporter.test', cn: 'prometheus', authorization: 'Bearer tok-9a7b' });
      await waitUntil('sent counted', async () => /pve_exporter_push_samples_total\{outcome="sent"\} 1/.test(await self.registry.metrics()), 5_000, 20);
    } finally {
      await writer.close();
      server.close();
    }
  });
});
