import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildStatus } from '../src/collectors/status.ts';
import { buildResources } from '../src/collectors/resources.ts';
import { buildNodeInfo } from '../src/collectors/node.ts';
import { buildClusterInfo } from '../src/collectors/cluster.ts';
import { buildVersion } from '../src/collectors/version.ts';
import { buildBackupInfo } from '../src/collectors/backup-info.ts';
import { buildQDevice } from '../src/collectors/qdevice.ts';
import { buildSubscription, parseDueDate } from '../src/collectors/subscription.ts';
import { buildOnboot } from '../src/collectors/config.ts';
import { buildReplication } from '../src/collectors/replication.ts';
import { COLLECTORS, SCRAPE_COLLECTORS } from '../src/collectors/registry.ts';
import type { ClusterResource, ClusterStatusEntry, ReplicationJob, SubscriptionInfo, VersionInfo } from '../src/pve/types.ts';
import { byNode, example, variant } from './helpers/fixtures.ts';
import { series } from './helpers/families.ts';


test('status: cluster quorum, node online, guests running, storages available', () => {
  const fams = buildStatus(example<ClusterStatusEntry[]>('cluster__status'), example<ClusterResource[]>('cluster__resources'));
  const up = series(fams, 'pve_up');
  assert.equal(up.get('id=cluster/pvec'), 1);
  assert.equal(up.get('id=node/pve3'), 1);
  assert.equal(up.get('id=qemu/100'), 1);
  assert.equal(up.get('id=qemu/102'), 0);
  assert.equal(up.get('id=storage/pve2/tank'), 1);
  assert.equal(up.has('id=/pool/production'), false, 'pools have no up series');
  assert.equal(up.has('id=network/pve1/zone/lab'), false);
  assert.equal(up.size, 1 + 3 + 9 + 11);
});

test('status: offline node and unknown guest/storage are down', () => {
  const status = variant<ClusterStatusEntry[]>('cluster__status', 'node_pve3_offline_and_no_quorum_lost');
  const offline = variant<ClusterResource[]>('cluster__resources', 'pve3_offline_entries');
  const resources = example<ClusterResource[]>('cluster__resources').map((r) => offline.find((o) => o.id === r.id) ?? r);
  const up = series(buildStatus(status, resources), 'pve_up');
  assert.equal(up.get('id=node/pve3'), 0);
  assert.equal(up.get('id=qemu/104'), 0);
  assert.equal(up.get('id=storage/pve3/local'), 0);
});

test('resources: values only where the key exists, sorted storage content, one-hot states', () => {
  const offline = variant<ClusterResource[]>('cluster__resources', 'pve3_offline_entries');
  const resources = example<ClusterResource[]>('cluster__resources').map((r) => offline.find((o) => o.id === r.id) ?? r);
  const fams = buildResources(resources);
  const mem = series(fams, 'pve_memory_size_bytes');
  assert.equal(mem.get('id=/pool/production'), 43486543872);
  assert.equal(mem.has('id=qemu/104'), false, 'guest on an offline node has no numbers');
  assert.equal(series(fams, 'pve_disk_usage_bytes').has('id=node/pve3'), false);
  assert.equal(series(fams, 'pve_disk_size_bytes').get('id=node/pve3'), 67444723712);
  const info = series(fams, 'pve_storage_info');
  assert.equal(info.get('id=storage/pve1/local,node=pve1,storage=local,plugintype=dir,content=backup,iso,vztmpl'), 1);
  const guest = series(fams, 'pve_guest_info');
  assert.equal(guest.get('id=qemu/104,node=pve3,name=,type=qemu,template=,tags='), 1);
  assert.equal(guest.get('id=qemu/100,node=pve1,name=web01,type=qemu,template=0,tags=prod;web'), 1);
  const ha = series(fams, 'pve_ha_state');
  assert.equal(ha.get('id=qemu/100,state=started'), 1);
  assert.equal(ha.get('id=qemu/100,state=stopped'), 0);
  assert.equal(ha.get('id=node/pve3,state=unknown'), 1);
  assert.equal([...ha.keys()].filter((k) => k.startsWith('id=qemu/101,')).length, 11);
  const lock = series(fams, 'pve_lock_state');
  assert.equal(lock.get('id=qemu/101,state=backup'), 1);
  assert.equal([...lock.values()].reduce((a, b) => a + b, 0), 1);
  const tx = fams.find((f) => f.spec.name === 'pve_network_transmit_bytes_total')!;
  assert.equal(tx.spec.type, 'counter');
  assert.equal(fams.find((f) => f.spec.name === 'pve_network_transmit_bytes')!.spec.type, 'gauge');
});

test('node and cluster info; standalone node has no cluster family', () => {
  const status = example<ClusterStatusEntry[]>('cluster__status');
  assert.equal(series(buildNodeInfo(status), 'pve_node_info').get('id=node/pve3,level=,name=pve3,nodeid=3'), 1);
  const cluster = buildClusterInfo(status);
  assert.deepEqual([...cluster[0].spec.labels], ['id', 'nodes', 'version', 'quorate']);
  assert.equal(series(cluster, 'pve_cluster_info').get('id=cluster/pvec,nodes=3,version=5,quorate=1'), 1);
  const standalone = variant<ClusterStatusEntry[]>('cluster__status', 'standalone');
  assert.deepEqual(buildClusterInfo(standalone), []);
  assert.equal(series(buildNodeInfo(standalone), 'pve_node_info').get('id=node/pve1,level=c,name=pve1,nodeid=0'), 1);
});

test('version: labels are the known keys PVE returns', () => {
  const v = buildVersion(example<VersionInfo>('version'));
  assert.equal(series(v, 'pve_version_info').get('release=9.1,repoid=42db4a6cf33dac83,version=9.1.1'), 1);
  const withConsole = buildVersion(variant<VersionInfo>('version', 'with_console_set'));
  assert.deepEqual([...withConsole[0].spec.labels], ['release', 'repoid', 'version']);
  const partial = buildVersion({ release: '7.4', version: '7.4-3' });
  assert.deepEqual([...partial[0].spec.labels], ['release', 'version']);
});

test('backup-info: count and one series per guest, empty family kept', () => {
  const fams = buildBackupInfo('pvec', example('cluster__backup-info__not-backed-up'));
  assert.equal(series(fams, 'pve_not_backed_up_total').get('id=cluster/pvec'), 4);
  assert.equal(series(fams, 'pve_not_backed_up_info').get('id=lxc/202'), 1);
  const none = buildBackupInfo('pvec', []);
  assert.equal(series(none, 'pve_not_backed_up_total').get('id=cluster/pvec'), 0);
  assert.equal(series(none, 'pve_not_backed_up_info').size, 0);
});

test('qdevice: connected, failing, not configured', () => {
  const ok = buildQDevice('pvec', example('cluster__config__qdevice'));
  assert.equal(series(ok, 'pve_qdevice_up').get('id=cluster/pvec'), 1);
  assert.equal(
    series(ok, 'pve_qdevice_info').get(
      'algorithm=Fifty-Fifty split,id=cluster/pvec,model=Net,qnetd_host=10.0.0.20:5403,state=Connected,tie_breaker=Node with lowest node ID',
    ),
    1,
  );
  assert.equal(series(buildQDevice('pvec', variant('cluster__config__qdevice', 'qnetd_unreachable')), 'pve_qdevice_up').get('id=cluster/pvec'), 0);
  assert.deepEqual(buildQDevice('pvec', {}), []);
});

test('subscription: active, notfound, capitalised PVE 7 status, due date at local midnight', () => {
  const active = buildSubscription('pve1', byNode<SubscriptionInfo>('nodes__{node}__subscription', 'pve1'));
  assert.equal(series(active, 'pve_subscription_info').get('id=node/pve1,level=c'), 1);
  assert.equal(series(active, 'pve_subscription_status').get('id=node/pve1,status=active'), 1);
  assert.equal(series(active, 'pve_subscription_next_due_timestamp_seconds').get('id=node/pve1'), new Date(2026, 2, 1).getTime() / 1000);
  const notfound = buildSubscription('pve3', variant('nodes__{node}__subscription', 'notfound'));
  assert.equal(series(notfound, 'pve_subscription_info').get('id=node/pve3,level=unknown'), 1);
  assert.equal(series(notfound, 'pve_subscription_status').get('id=node/pve3,status=notfound'), 1);
  assert.equal(series(notfound, 'pve_subscription_next_due_timestamp_seconds').size, 0);
  const old = buildSubscription('pve1', variant('nodes__{node}__subscription', 'pve7_old_capitalised'));
  assert.equal(series(old, 'pve_subscription_status').get('id=node/pve1,status=active'), 1);
  assert.equal(parseDueDate('2026-13-45'), undefined);
  assert.equal(parseDueDate('2026-02-29'), undefined);
  assert.equal(parseDueDate('2028-02-29'), new Date(2028, 1, 29).getTime() / 1000);
  assert.equal(parseDueDate('soon'), undefined);
});

test('config: onboot only for guests whose config has the key', () => {
  const fams = buildOnboot([
    { type: 'lxc', vmid: 200, node: 'pve1', onboot: 1 },
    { type: 'qemu', vmid: 101, node: 'pve1', onboot: undefined },
    { type: 'qemu', vmid: 100, node: 'pve1', onboot: 1 },
    { type: 'qemu', vmid: 99, node: 'pve1', onboot: 0 },
  ]);
  const s = series(fams, 'pve_onboot_status');
  assert.deepEqual([...s.entries()], [
    ['id=qemu/99,node=pve1,type=qemu', 0],
    ['id=qemu/100,node=pve1,type=qemu', 1],
    ['id=lxc/200,node=pve1,type=lxc', 1],
  ]);
});

test('replication: values from the job list and info labels', () => {
  const fams = buildReplication(byNode<ReplicationJob[]>('nodes__{node}__replication', 'pve1'));
  assert.equal(series(fams, 'pve_replication_failed_syncs').get('id=200-1'), 2);
  assert.equal(series(fams, 'pve_replication_last_sync_timestamp_seconds').get('id=200-1'), 0);
  assert.equal(
    series(fams, 'pve_replication_info').get('id=200-0,type=local,source=node/pve1,target=node/pve2,guest=lxc/200'),
    1,
  );
  const neverRan = buildReplication([{ id: '300-0', type: 'local', guest: 300, vmtype: 'qemu', source: 'pve1', target: 'pve2', last_sync: 0 }]);
  assert.equal(series(neverRan, 'pve_replication_duration_seconds').size, 0);
});

test('registry: unique names, documented families, off-by-default self collectors', () => {
  const names = COLLECTORS.map((c) => c.name);
  assert.equal(new Set(names).size, names.length);
  // The reference's collectors, in the reference's order; this project's additions come after them.
  const reference = SCRAPE_COLLECTORS.filter((c) => c.origin === 'reference');
  assert.deepEqual(
    reference.filter((c) => c.scope === 'cluster').map((c) => c.name),
    ['status', 'resources', 'node', 'cluster', 'version', 'backup-info', 'qdevice'],
  );
  assert.deepEqual(reference.filter((c) => c.scope === 'node').map((c) => c.name), ['subscription', 'config', 'replication']);
  assert.deepEqual(SCRAPE_COLLECTORS.slice(0, reference.length), reference);
  for (const c of COLLECTORS) {
    assert.ok(c.families.length > 0, c.name);
    if (c.kind === 'self') assert.equal(c.defaultEnabled, false, c.name);
    else if (c.origin === 'reference') assert.equal(c.defaultEnabled, true, c.name);
    else if (!c.defaultEnabled) assert.ok(c.offReason, `${c.name}: off by default needs a reason for --help`);
  }
});
