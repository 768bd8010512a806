// Content negotiation with q-values (issue 7, bug 6): unit cases for the header parsing, and the
// running exporter answering what the scraper prefers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { negotiateFormat, negotiateGzip } from '../src/web/negotiate.ts';
import { useSimAndExporter } from './helpers/exporter.ts';
import { PROMETHEUS_ACCEPT } from './helpers/prom-stack.ts';

/** What Prometheus 3 sends with its default scrape_protocols. */
const PROMETHEUS_3_ACCEPT =
  'application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1';

describe('negotiation rules', () => {
  test('the format the Accept header prefers', () => {
    const cases: [string | undefined, 'text' | 'openmetrics'][] = [
      [undefined, 'text'],
      ['*/*', 'text'],
      [PROMETHEUS_ACCEPT, 'openmetrics'],
      [PROMETHEUS_3_ACCEPT, 'openmetrics'],
      ['application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5', 'openmetrics'],
      // Prefers text although OpenMetrics is acceptable: the old substring test served OpenMetrics.
      ['text/plain;q=0.9,application/openmetrics-text;q=0.5', 'text'],
      ['application/openmetrics-text;q=0.1,text/plain;version=0.0.4', 'text'],
      ['text/plain;version=0.0.4,application/openmetrics-text;version=1.0.0;q=0', 'text'],
      ['application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.9', 'text'],
      ['application/json', 'text'],
    ];
    for (const [accept, want] of cases) assert.equal(negotiateFormat(accept === undefined ? {} : { accept }), want, String(accept));
  });

  test('gzip only when acceptable and not refused with q=0', () => {
    const cases: [string | undefined, boolean][] = [
      [undefined, false],
      ['', false],
      ['gzip', true],
      ['gzip, deflate, br', true],
      ['*', true],
      ['gzip;q=0', false],
      ['gzip;q=0, identity', false],
      ['GZIP;Q=0', false],
      ['gzip;q=0.5, identity', false],
      ['identity;q=0.5, gzip', true],
      ['br', false],
    ];
    for (const [ae, want] of cases) assert.equal(negotiateGzip(ae === undefined ? {} : { 'accept-encoding': ae }), want, String(ae));
  });
});

/** Raw GET (node:http does not decode), so the test sees exactly what was sent. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe('the exporter answers what the scraper prefers', () => {
  const env = useSimAndExporter();

  test('text when Accept prefers text, OpenMetrics for Prometheus', async () => {
    const text = await rawGet(`${env.exp.url}/pve?target=127.0.0.1`, { accept: 'text/plain;q=0.9,application/openmetrics-text;q=0.5' });
    assert.equal(text.status, 200);
    assert.match(String(text.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.ok(!text.body.toString().includes('# EOF'));
    const om = await rawGet(`${env.exp.url}/pve?target=127.0.0.1`, { accept: PROMETHEUS_ACCEPT });
    assert.match(String(om.headers['content-type']), /^application\/openmetrics-text; version=1\.0\.0/);
    assert.ok(om.body.toString().endsWith('# EOF\n'));
  });

  test('gzip;q=0 gets identity, gzip gets gzip (on /pve and /metrics)', async () => {
    for (const path of ['/pve?target=127.0.0.1', '/metrics']) {
      const plain = await rawGet(`${env.exp.url}${path}`, { 'accept-encoding': 'gzip;q=0, identity' });
      assert.equal(plain.status, 200);
      assert.equal(plain.headers['content-encoding'], undefined, path);
      // /metrics opens with the comment saying where the PVE metrics are.
      const start = path === '/metrics' ? /^# This is the exporter's own metrics\..*\n# HELP / : /^# HELP /;
      assert.match(plain.body.toString(), start, path);
      const zipped = await rawGet(`${env.exp.url}${path}`, { 'accept-encoding': 'gzip' });
      assert.equal(zipped.headers['content-encoding'], 'gzip', path);
      assert.match(gunzipSync(zipped.body).toString(), start, path);
    }
  });
});
