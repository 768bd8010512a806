// Structure of deploy/grafana/pve-exporter.json: importable as is (uid, datasource variable, no
// unresolved __inputs), panels that do not overlap, every query on the selectable data source,
// and the rows and joins docs/dashboard.md promises. The queries themselves are evaluated
// against a real Prometheus in prom-expressions.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { allPanels, dashboardExpressions, dashboardFile, substituteVariables } from './helpers/prom-expressions.ts';

interface GridPos { x: number; y: number; w: number; h: number }
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: GridPos;
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { type: string; uid: string } }[];
  panels?: Panel[];
}
interface Variable { name: string; type: string; query?: unknown; datasource?: { uid: string } }

const raw = readFileSync(dashboardFile, 'utf8');
const dash = JSON.parse(raw) as {
  uid: string;
  title: string;
  __inputs?: unknown[];
  panels: Panel[];
  templating: { list: Variable[] };
};

test('the dashboard is importable without input mapping', () => {
  assert.equal(dash.uid, 'pve-exporter');
  assert.ok(dash.title.length > 0);
  assert.deepEqual(dash.__inputs ?? [], [], 'no __inputs: the data source is a variable');
  assert.doesNotMatch(raw, /\$\{DS_[A-Z_]+\}/, 'no ${DS_...} placeholders left');
  const ds = dash.templating.list.find((v) => v.type === 'datasource');
  assert.ok(ds, 'a datasource variable');
  assert.equal(ds.query, 'prometheus');
  for (const v of dash.templating.list.filter((x) => x.type === 'query')) {
    assert.equal(v.datasource?.uid, `\${${ds.name}}`, `variable ${v.name} uses the datasource variable`);
  }
});

test('every panel and query uses the datasource variable, ids and refIds are unique', () => {
  const panels = allPanels(dash as never) as unknown as Panel[];
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids unique');
  for (const p of panels) {
    if (p.type === 'row') continue;
    assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: panel datasource`);
    assert.ok((p.targets ?? []).length > 0, `${p.title}: no queries`);
    const refs = (p.targets ?? []).map((t) => t.refId);
    assert.equal(new Set(refs).size, refs.length, `${p.title}: refIds unique`);
    for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${datasource}', `${p.title}/${t.refId}`);
  }
});

test('panels stay inside the 24-column grid and do not overlap', () => {
  const panels = (allPanels(dash as never) as unknown as Panel[]).map((p) => ({ title: p.title, ...p.gridPos }));
  for (const p of panels) {
    assert.ok(p.x >= 0 && p.w > 0 && p.x + p.w <= 24 && p.h > 0 && p.y >= 0, `${p.title}: ${JSON.stringify(p)}`);
  }
  for (let i = 0; i < panels.length; i++) {
    for (let j = i + 1; j < panels.length; j++) {
      const a = panels[i];
      const b = panels[j];
      const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
      assert.ok(!overlap, `"${a.title}" overlaps "${b.title}"`);
    }
  }
});

test('the dashboard has the promised rows', () => {
  const rows = dash.panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.deepEqual(rows, [
    'Cluster overview',
    'Nodes',
    'Guests',
    'Storage',
    'Backups',
    'Replication',
    'Subscription',
    'HA',
    'Ceph',
    'ZFS and disks',
    'Certificates and updates',
    'Exporter health',
  ]);
});

test('guest panels are labelled by name through a pve_guest_info join, filtered by the variables', () => {
  const guestRowStart = dash.panels.findIndex((p) => p.type === 'row' && p.title === 'Guests');
  const guestRowEnd = dash.panels.findIndex((p, i) => i > guestRowStart && p.type === 'row');
  const guestPanels = dash.panels.slice(guestRowStart + 1, guestRowEnd);
  assert.ok(guestPanels.length >= 6);
  for (const p of guestPanels) {
    for (const t of p.targets ?? []) {
      // on(id) for the cluster-wide series of the same target; on(cluster, id) for series of the
      // per-node targets (guest filesystems), so clusters with the same VMIDs stay apart.
      assert.match(t.expr, /on\((cluster, )?id\) group_left\(name[^)]*\) pve_guest_info\{instance="\$instance", node=~"\$node", name=~"\$guest"\}/, `${p.title}/${t.refId}`);
    }
  }
  const titles = guestPanels.map((p) => p.title).join(' | ');
  for (const w of ['CPU', 'memory', 'network', 'disk I/O', 'disk usage', 'filesystem']) assert.ok(titles.includes(w), `no guest ${w} panel: ${titles}`);
});

test('every dashboard variable used in a query is defined (or a Grafana built-in)', () => {
  const defined = Object.fromEntries(dash.templating.list.map((v) => [v.name, 'x']));
  for (const e of dashboardExpressions()) {
    assert.doesNotThrow(
      () => substituteVariables(e.raw, { vars: defined, rateInterval: '1m', interval: '15s', range: '1h' }),
      e.key,
    );
  }
});

// Issue 9: the node collectors' series come from per-node targets (and pve_node_* also from the
// cluster target's node-metrics); a panel reading them must keep to the selected cluster and
// nodes through pve_node_info, and merge the two sources of pve_node_* into one series per node.
test('panels of the node collectors are joined to the selected cluster and nodes', () => {
  const perNode = /\b(pve_node_(load1|cpu_iowait_ratio|swap_\w+|rootfs_\w+|memory_available_bytes|cpu_info|version_info|disk_\w+|certificate_\w+|updates_pending)|pve_zfs_pool_\w+|pve_guest_(filesystem_\w+|agent_up))\b/;
  let checked = 0;
  for (const p of allPanels(dash)) {
    for (const t of p.targets ?? []) {
      if (t.expr === undefined || !perNode.test(t.expr)) continue;
      checked++;
      assert.match(t.expr, /pve_(node|guest)_info\{instance="\$instance", (node=~"\$node", )?name=~"\$(node|guest)"\}/, `${p.title}/${t.refId}: not joined to the selected cluster`);
      assert.match(t.expr, /on\(cluster, (id|node)\)/, `${p.title}/${t.refId}: joined without the cluster label`);
      if (/pve_node_(load1|cpu_iowait_ratio|swap_|rootfs_)/.test(t.expr)) assert.match(t.expr, /max by \(cluster, id\)/, `${p.title}/${t.refId}: node-status and node-metrics not merged`);
    }
  }
  assert.ok(checked >= 12, `only ${checked} node-collector queries`);
});
