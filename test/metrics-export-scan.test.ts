// The node-entry scan of /cluster/metrics/export must give the node-metrics collector exactly what
// a full parse gives it, and fall back to a full parse for any answer unlike PVE's.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { gunzipSync } from 'node:zlib';
import { buildNodeMetrics } from '../src/collectors/node-metrics.ts';
import { decodeMetricsExportNodes, SCAN_MIN_BYTES } from '../src/pve/metrics-export-scan.ts';
import type { MetricsExportEntry } from '../src/pve/types.ts';
import { encode } from '../src/exposition/encode.ts';
import { startSimulator } from '../sim/index.ts';

type Entry = Record<string, unknown>;
const entriesOf = (parsed: unknown) => (parsed as { data: { data: Entry[] } }).data.data;

/** A generated cluster's answer, as the exporter receives it (real HTTPS, gzip). */
async function simAnswer(nodes: number, guestsPerNode: number): Promise<Buffer> {
  const sim = await startSimulator({ generated: { nodes, guestsPerNode } });
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: sim.port,
          path: '/api2/json/cluster/metrics/export',
          ca: readFileSync(sim.caFile),
          headers: {
            authorization: `PVEAPIToken=${sim.credentials.user}!${sim.credentials.tokenName}=${sim.credentials.tokenValue}`,
            'accept-encoding': 'gzip',
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const raw = Buffer.concat(chunks);
            resolve(res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw);
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  } finally {
    await sim.close();
  }
}

function answer(entries: Entry[], spacing = ''): Buffer {
  return Buffer.from(`{"data":${spacing}{"data":${spacing}[${entries.map((e) => JSON.stringify(e)).join(`,${spacing}`)}]}}`);
}

/** Guest and storage entries enough to pass the size under which the whole answer is parsed. */
function filler(n: number): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) {
    out.push({ id: `qemu/${100 + i}`, metric: 'net_in', value: i * 4096, timestamp: 1764600000, type: 'derive' });
    out.push({ id: `storage/pve1/store${i}`, metric: 'disk_used', value: i, timestamp: 1764600000, type: 'gauge' });
  }
  return out;
}

const node = (name: string, metric: string, value: number, timestamp = 1764600000): Entry => ({ id: `node/${name}`, metric, value, timestamp, type: 'gauge' });

describe('metrics/export node scan', () => {
  test('a generated 8-node, 2,000-guest answer: the node entries of a full parse, in order, and the same families', async () => {
    const raw = await simAnswer(8, 250);
    assert.ok(raw.length > SCAN_MIN_BYTES);
    const full = entriesOf(JSON.parse(raw.toString('utf8')));
    const scanned = entriesOf(decodeMetricsExportNodes(raw));
    const nodes = full.filter((e) => String(e.id).startsWith('node/'));
    assert.ok(nodes.length >= 8 * 15, `${nodes.length} node entries`);
    assert.ok(full.length > 10 * nodes.length, 'the answer is mostly guests');
    assert.deepEqual(scanned, nodes);
    assert.equal(
      encode(buildNodeMetrics(scanned as unknown as MetricsExportEntry[]), 'text'),
      encode(buildNodeMetrics(full as unknown as MetricsExportEntry[]), 'text'),
    );
  });

  test('an entry naming "node/ twice is taken once; whitespace between tokens is fine', () => {
    const odd = { ...node('pve1', 'cpu_avg1', 0.5), note: 'node/pve1' };
    const raw = answer([...filler(200), odd, node('pve2', 'cpu_avg5', 1)], '\n ');
    assert.deepEqual(entriesOf(decodeMetricsExportNodes(raw)), [odd, node('pve2', 'cpu_avg5', 1)]);
  });

  test('node names ending in "node": their storages\' `node/` is no node entry, their own entries are', () => {
    const storages = ['pvenode', 'node'].map((n) => ({ id: `storage/${n}/local`, metric: 'disk_used', value: 1, timestamp: 1764600000, type: 'gauge' }));
    const raw = answer([...filler(200), node('pvenode', 'cpu_avg1', 0.5), ...storages, { ...node('pvenode', 'cpu_avg5', 1), id: 'xnode/pvenode' }, node('node', 'cpu_avg5', 1)]);
    assert.deepEqual(entriesOf(decodeMetricsExportNodes(raw)), [node('pvenode', 'cpu_avg1', 0.5), node('node', 'cpu_avg5', 1)]);
  });

  test('a backslash anywhere, another wrapping, braces in strings or a broken entry: the whole answer is parsed', () => {
    const body = [...filler(200), node('pve1', 'cpu_avg1', 0.5)];
    const cases: Array<[string, Buffer]> = [
      ['escaped slash', Buffer.from(answer(body).toString().replace('node/pve1', 'node\\/pve1'))],
      ['one level of data', Buffer.from(`{"data":[${body.map((e) => JSON.stringify(e)).join(',')}]}`)],
      ['a brace in a string before the id', answer([...filler(200), { metric: 'a{b', id: 'node/pve1', value: 1, timestamp: 1, type: 'gauge' }])],
      ['extra member after the list', Buffer.from(answer(body).toString().replace(/\]\}\}$/, '],"total":1}}'))],
    ];
    for (const [what, raw] of cases) {
      assert.deepEqual(decodeMetricsExportNodes(raw), JSON.parse(raw.toString('utf8')), what);
    }
    // A full parse refuses what it refuses: an entry the scan cannot parse is not skipped.
    const broken = Buffer.from(answer(body).toString().replace('"metric":"cpu_avg1"', '"metric":cpu_avg1'));
    assert.throws(() => decodeMetricsExportNodes(broken), SyntaxError);
    assert.throws(() => decodeMetricsExportNodes(Buffer.from('<html>' + 'x'.repeat(SCAN_MIN_BYTES) + '</html>')), SyntaxError);
  });

  test('a small answer is parsed whole, whatever it holds', () => {
    const raw = answer([node('pve1', 'cpu_avg1', 0.5), { id: 'qemu/100', metric: 'cpu_current', value: 0.1, timestamp: 1, type: 'gauge' }]);
    assert.ok(raw.length < SCAN_MIN_BYTES);
    assert.deepEqual(decodeMetricsExportNodes(raw), JSON.parse(raw.toString('utf8')));
  });
});
