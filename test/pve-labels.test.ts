// Label names taken from PVE keys are valid Prometheus label names (issue 7, bug 9): a key a later
// PVE release adds with a dash, a leading digit or the reserved "__" prefix is dropped, and the
// exposition stays parseable (promtool when installed, our parser always).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { buildClusterInfo } from '../src/collectors/cluster.ts';
import { labelNamesFrom } from '../src/collectors/types.ts';
import { encode } from '../src/exposition/encode.ts';
import type { ClusterStatusEntry } from '../src/pve/types.ts';
import { parseExposition } from './helpers/promtext.ts';
import { hasTool } from './helpers/tools.ts';

const oddCluster = [
  { type: 'cluster', name: 'pvec', id: 'cluster', nodes: 3, quorate: 1, version: 5, 'ha-state': 'ok', '2fa': 1, __internal: 'x', 'ümlaut': 1, config_digest: 'ab' },
  { type: 'node', name: 'pve1', id: 'node/pve1', nodeid: 1, online: 1, local: 1, ip: '127.0.0.11', level: '' },
] as unknown as ClusterStatusEntry[];

test('labelNamesFrom keeps [a-zA-Z_][a-zA-Z0-9_]* without the reserved prefix', () => {
  assert.deepEqual(labelNamesFrom(['id', 'ha-state', '2fa', '__x', '_ok', 'a1', 'ümlaut', '']), ['id', '_ok', 'a1']);
});

test('pve_cluster_info drops keys that are not label names; the exposition stays valid', () => {
  const fams = buildClusterInfo(oddCluster);
  assert.deepEqual([...fams[0].spec.labels], ['id', 'nodes', 'quorate', 'version', 'config_digest']);
  const text = encode(fams, 'text');
  const parsed = parseExposition(text);
  assert.deepEqual([...(parsed.get('pve_cluster_info')?.samples.values() ?? [])], [1]);
  assert.match(text, /^pve_cluster_info\{id="cluster\/pvec",nodes="3",quorate="1",version="5",config_digest="ab"\} 1$/m);
  if (hasTool('promtool')) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.doesNotMatch(`${r.stdout}${r.stderr}`, /error|invalid|parse/i, r.stderr);
  }
});
