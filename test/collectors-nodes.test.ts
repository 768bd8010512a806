// Unit tests of the node-level and config-derived collectors, from the reference examples.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildNodeStatus, kernelRelease, managerVersion } from '../src/collectors/node-status.ts';
import { buildNodeMetrics } from '../src/collectors/node-metrics.ts';
import { buildZfs, ZPOOL_STATES } from '../src/collectors/zfs.ts';
import { buildDisks, smartPassed } from '../src/collectors/disks.ts';
import { buildCertificates } from '../src/collectors/certificates.ts';
import { buildUpdates } from '../src/collectors/updates.ts';
import { buildGuestConfig } from '../src/collectors/guest-config.ts';
import { buildAllocation } from '../src/collectors/allocation.ts';
import { SCRAPE_COLLECTORS } from '../src/collectors/registry.ts';
import { buildCommand, parseCli } from '../src/cli.ts';
import { agentEnabled, guestConfigFields } from '../src/pve/guest-config.ts';
import type { GuestWithConfig } from '../src/pve/session.ts';
import { mergeSameName } from '../src/scrape.ts';
import type {
  AptUpdate,
  CertificateInfo,
  ClusterResource,
  DiskInfo,
  GuestConfig,
  MetricsExportEntry,
  NodeStatus,
  ZfsPool,
} from '../src/pve/types.ts';
import { byNode, endpointFile, example, variant } from './helpers/fixtures.ts';
import { series } from './helpers/families.ts';


function exportEntries(): MetricsExportEntry[] {
  return (example<{ data: MetricsExportEntry[] }>('cluster__metrics__export')).data;
}

describe('node-status', () => {
  test('PVE 9 status of pve1: load, iowait, swap, rootfs, memory available, KSM, CPU and versions', () => {
    const fams = buildNodeStatus('pve1', example<NodeStatus>('nodes__{node}__status'));
    assert.equal(series(fams, 'pve_node_load1').get('id=node/pve1'), 0.87);
    assert.equal(series(fams, 'pve_node_load5').get('id=node/pve1'), 0.92);
    assert.equal(series(fams, 'pve_node_load15').get('id=node/pve1'), 0.95);
    assert.equal(series(fams, 'pve_node_cpu_iowait_ratio').get('id=node/pve1'), 0.00121);
    assert.equal(series(fams, 'pve_node_swap_size_bytes').get('id=node/pve1'), 8589930496);
    assert.equal(series(fams, 'pve_node_swap_used_bytes').get('id=node/pve1'), 0);
    assert.equal(series(fams, 'pve_node_rootfs_size_bytes').get('id=node/pve1'), 100861726720);
    assert.equal(series(fams, 'pve_node_rootfs_used_bytes').get('id=node/pve1'), 14283612160);
    assert.equal(series(fams, 'pve_node_memory_available_bytes').get('id=node/pve1'), 76322115584);
    assert.equal(series(fams, 'pve_node_ksm_shared_bytes').get('id=node/pve1'), 0);
    assert.equal(
      series(fams, 'pve_node_cpu_info').get('id=node/pve1,model=AMD EPYC 7302P 16-Core Processor,sockets=1,cores=16,cpus=32'),
      1,
    );
    assert.equal(series(fams, 'pve_node_version_info').get('id=node/pve1,kernel=6.17.2-1-pve,pve_manager=9.1.1'), 1);
  });

  test('PVE 7 status: kernel from kversion, no memory available series', () => {
    const s = variant<NodeStatus>('nodes__{node}__status', 'pve7');
    assert.equal(kernelRelease(s), '5.15.131-2-pve');
    assert.equal(managerVersion(s.pveversion), '7.4-17');
    const fams = buildNodeStatus('pve1', s);
    assert.equal(series(fams, 'pve_node_memory_available_bytes').size, 0);
    assert.equal(series(fams, 'pve_node_load1').get('id=node/pve1'), 0.87);
  });
});

describe('node-metrics (/cluster/metrics/export)', () => {
  test('every node of the example, with the values /nodes/{node}/status gives', () => {
    const fams = buildNodeMetrics(exportEntries());
    const load1 = series(fams, 'pve_node_load1');
    assert.deepEqual([...load1.keys()], ['id=node/pve1', 'id=node/pve2', 'id=node/pve3']);
    for (const node of ['pve1', 'pve2', 'pve3']) {
      const fromStatus = buildNodeStatus(node, byNode<NodeStatus>('nodes__{node}__status', node));
      for (const name of ['pve_node_load1', 'pve_node_load5', 'pve_node_load15', 'pve_node_cpu_iowait_ratio', 'pve_node_swap_size_bytes', 'pve_node_swap_used_bytes', 'pve_node_rootfs_size_bytes', 'pve_node_rootfs_used_bytes']) {
        assert.equal(series(fams, name).get(`id=node/${node}`), series(fromStatus, name).get(`id=node/${node}`), `${name} of ${node}: one name, one meaning`);
      }
    }
    // Guest and storage samples are not node metrics.
    assert.equal(series(fams, 'pve_node_swap_size_bytes').size, 3);
  });

  test('a cumulative iowait counter (pve-manager before 8.3.4) is dropped, not exposed as a share', () => {
    const fams = buildNodeMetrics([
      { id: 'node/a', metric: 'cpu_iowait', value: 123456, timestamp: 10, type: 'gauge' },
      { id: 'node/b', metric: 'cpu_iowait', value: 0.25, timestamp: 10, type: 'gauge' },
    ]);
    assert.deepEqual([...series(fams, 'pve_node_cpu_iowait_ratio')], [['id=node/b', 0.25]]);
  });

  test('with history, the newest sample per node and metric wins', () => {
    const fams = buildNodeMetrics([
      { id: 'node/a', metric: 'cpu_avg1', value: 2, timestamp: 20, type: 'gauge' },
      { id: 'node/a', metric: 'cpu_avg1', value: 1, timestamp: 10, type: 'gauge' },
    ]);
    assert.equal(series(fams, 'pve_node_load1').get('id=node/a'), 2);
  });

  test('with node-status in the same scrape, the answering node has one series per family', () => {
    const status = buildNodeStatus('pve1', byNode<NodeStatus>('nodes__{node}__status', 'pve1'));
    const merged = mergeSameName([...status, ...buildNodeMetrics(exportEntries())]);
    const names = merged.map((f) => f.spec.name);
    assert.equal(new Set(names).size, names.length, 'one family per name');
    assert.deepEqual([...series(merged, 'pve_node_load1').keys()].sort(), ['id=node/pve1', 'id=node/pve2', 'id=node/pve3']);
  });
});

describe('zfs', () => {
  test('the DEGRADED tank of pve1: one-hot health, sizes, fragmentation as a ratio', () => {
    const fams = buildZfs('pve1', byNode<ZfsPool[]>('nodes__{node}__disks__zfs', 'pve1'));
    const health = series(fams, 'pve_zfs_pool_health');
    assert.equal(health.size, ZPOOL_STATES.length);
    assert.equal(health.get('node=pve1,pool=tank,state=DEGRADED'), 1);
    assert.equal(health.get('node=pve1,pool=tank,state=ONLINE'), 0);
    assert.equal([...health.values()].reduce((a, b) => a + b, 0), 1);
    assert.equal(series(fams, 'pve_zfs_pool_size_bytes').get('node=pve1,pool=tank'), 3985729650688);
    assert.equal(series(fams, 'pve_zfs_pool_allocated_bytes').get('node=pve1,pool=tank'), 214748364800);
    assert.equal(series(fams, 'pve_zfs_pool_free_bytes').get('node=pve1,pool=tank'), 3770981285888);
    assert.equal(series(fams, 'pve_zfs_pool_fragmentation_ratio').get('node=pve1,pool=tank'), 0.03);
  });

  test('no pools: no series', () => {
    for (const f of buildZfs('pve3', [])) assert.equal(f.values.length, 0);
  });
});

describe('disks', () => {
  test('pve1: /dev/sdc fails SMART, SSD/NVMe wearout as remaining life, HDDs have none', () => {
    const fams = buildDisks('pve1', example<DiskInfo[]>('nodes__{node}__disks__list'));
    const passed = series(fams, 'pve_node_disk_smart_passed');
    assert.equal(passed.get('node=pve1,devpath=/dev/sdc'), 0);
    assert.equal(passed.get('node=pve1,devpath=/dev/sdb'), 1);
    assert.equal(passed.get('node=pve1,devpath=/dev/nvme0n1'), 1);
    const life = series(fams, 'pve_node_disk_life_remaining_ratio');
    assert.equal(life.get('node=pve1,devpath=/dev/nvme0n1'), 0.97);
    assert.equal(life.get('node=pve1,devpath=/dev/sda'), 0.99);
    assert.equal(life.has('node=pve1,devpath=/dev/sdb'), false, 'wearout "N/A" of an HDD gives no series');
    assert.equal(
      series(fams, 'pve_node_disk_info').get('node=pve1,devpath=/dev/sdc,type=hdd,model=ST4000NM0035-1V4107,serial=ZC1D4E5F,health=FAILED!'),
      1,
    );
  });

  test('SMART health texts: OK (SAS) passes, UNKNOWN and disabled say nothing', () => {
    assert.equal(smartPassed('PASSED'), 1);
    assert.equal(smartPassed('OK'), 1);
    assert.equal(smartPassed('FAILED!'), 0);
    assert.equal(smartPassed('UNKNOWN'), undefined);
    assert.equal(smartPassed('SMART Disabled'), undefined);
    assert.equal(smartPassed(undefined), undefined);
  });
});

describe('certificates', () => {
  test('the three files of pve1 with their notAfter', () => {
    const fams = buildCertificates('pve1', example<CertificateInfo[]>('nodes__{node}__certificates__info'));
    const expiry = series(fams, 'pve_node_certificate_expiry_timestamp_seconds');
    assert.deepEqual(Object.fromEntries(expiry), {
      'node=pve1,filename=pve-root-ca.pem': 1956400000,
      'node=pve1,filename=pve-ssl.pem': 1812072000,
      'node=pve1,filename=pveproxy-ssl.pem': 1767776000,
    });
    assert.equal(series(fams, 'pve_node_certificate_not_before_timestamp_seconds').get('node=pve1,filename=pveproxy-ssl.pem'), 1760000000);
    const info = [...series(fams, 'pve_node_certificate_info').keys()].find((k) => k.includes('pveproxy-ssl.pem'));
    assert.match(info ?? '', /issuer=\/C=US\/O=Let's Encrypt\/CN=R12/);
  });
});

describe('updates', () => {
  test('four upgradable packages, by origin', () => {
    const fams = buildUpdates('pve1', example<AptUpdate[]>('nodes__{node}__apt__update'));
    assert.equal(series(fams, 'pve_node_updates_pending').get('node=pve1'), 4);
    assert.deepEqual(Object.fromEntries(series(fams, 'pve_node_updates_pending_by_origin')), {
      'node=pve1,origin=Debian': 1,
      'node=pve1,origin=Proxmox': 3,
    });
  });

  test('up to date: 0, not absent', () => {
    assert.equal(series(buildUpdates('pve1', []), 'pve_node_updates_pending').get('node=pve1'), 0);
  });
});

describe('guest-config', () => {
  const configs = endpointFile('nodes__{node}__qemu__{vmid}__config').examples_by_vmid!;
  const lxc = endpointFile('nodes__{node}__lxc__{vmid}__config').examples_by_vmid!;
  const guest = (type: 'qemu' | 'lxc', vmid: number): GuestWithConfig => {
    const src = type === 'qemu' ? configs : lxc;
    return { type, vmid, node: 'pve1', fields: guestConfigFields(type, src[String(vmid)].data as GuestConfig) };
  };

  test('config fields: memory as a string or property, agent forms, ctime from meta', () => {
    const f100 = guestConfigFields('qemu', configs['100'].data as GuestConfig);
    assert.equal(f100.memoryMiB, 8192);
    assert.equal(f100.balloonMiB, 2048);
    assert.equal(f100.agent, true);
    assert.equal(f100.createdAt, 1718012345);
    assert.equal(f100.onboot, 1);
    assert.equal(guestConfigFields('qemu', { memory: 'current=4096' }).memoryMiB, 4096);
    assert.equal(guestConfigFields('qemu', { memory: 2048 }).memoryMiB, 2048);
    for (const [v, want] of [['1', true], ['1,fstrim_cloned_disks=1', true], ['enabled=1,type=virtio', true], ['0', false], ['enabled=0', false], [1, true], [undefined, false]] as const) {
      assert.equal(agentEnabled(v), want, String(v));
    }
    assert.equal(guestConfigFields('lxc', lxc['200'].data as GuestConfig).agent, false);
  });

  test('values per guest, PVE defaults for unset keys, no series for what is unknown', () => {
    const fams = buildGuestConfig([guest('qemu', 100), guest('qemu', 103), guest('qemu', 101), guest('lxc', 200), guest('lxc', 201)]);
    const id = (t: string, v: number) => `id=${t}/${v},node=pve1,type=${t}`;
    assert.equal(series(fams, 'pve_guest_cpu_cores').get(id('qemu', 101)), 8);
    assert.equal(series(fams, 'pve_guest_cpu_sockets').get(id('qemu', 103)), 1, 'sockets default 1');
    assert.equal(series(fams, 'pve_guest_memory_configured_bytes').get(id('qemu', 101)), 32768 * 1024 * 1024);
    assert.equal(series(fams, 'pve_guest_memory_configured_bytes').get(id('lxc', 200)), 512 * 1024 * 1024);
    assert.equal(series(fams, 'pve_guest_balloon_min_bytes').get(id('qemu', 100)), 2048 * 1024 * 1024);
    assert.equal(series(fams, 'pve_guest_balloon_min_bytes').has(id('qemu', 101)), false);
    assert.equal(series(fams, 'pve_guest_agent_enabled').get(id('qemu', 103)), 0);
    assert.equal(series(fams, 'pve_guest_agent_enabled').has(id('lxc', 200)), false, 'containers have no QEMU agent');
    assert.equal(series(fams, 'pve_guest_created_timestamp_seconds').get(id('qemu', 101)), 1709123456);
    assert.equal(series(fams, 'pve_guest_created_timestamp_seconds').has(id('qemu', 103)), false);
    assert.equal(series(fams, 'pve_guest_protection').get(id('lxc', 201)), 0);
    // Ordered like pve_onboot_status: qemu by vmid, then lxc.
    assert.deepEqual([...series(fams, 'pve_guest_cpu_cores').keys()].map((k) => k.split(',')[0]), ['id=qemu/100', 'id=qemu/101', 'id=qemu/103', 'id=lxc/200', 'id=lxc/201']);
  });
});

describe('allocation', () => {
  test('running guests per node and for the cluster against online nodes', () => {
    const resources = example<ClusterResource[]>('cluster__resources');
    const fams = buildAllocation('pvec', resources);
    const running = resources.filter((r) => (r.type === 'qemu' || r.type === 'lxc') && r.status === 'running');
    const sum = (rs: ClusterResource[], k: string) => rs.reduce((a, r) => a + Number(r[k] ?? 0), 0);
    for (const node of ['pve1', 'pve2', 'pve3']) {
      const on = running.filter((r) => r.node === node);
      assert.equal(series(fams, 'pve_node_vcpus_allocated').get(`id=node/${node}`), sum(on, 'maxcpu'));
      assert.equal(series(fams, 'pve_node_memory_allocated_bytes').get(`id=node/${node}`), sum(on, 'maxmem'));
    }
    assert.equal(series(fams, 'pve_cluster_vcpus_allocated').get('id=cluster/pvec'), sum(running, 'maxcpu'));
    const nodes = resources.filter((r) => r.type === 'node' && r.status === 'online');
    assert.equal(series(fams, 'pve_cluster_cpus').get('id=cluster/pvec'), sum(nodes, 'maxcpu'));
    assert.equal(series(fams, 'pve_cluster_memory_size_bytes').get('id=cluster/pvec'), sum(nodes, 'maxmem'));
  });

  test('a node with no running guest shows 0; an offline node adds no capacity', () => {
    const fams = buildAllocation('c', [
      { id: 'node/a', type: 'node', node: 'a', status: 'online', maxcpu: 8, maxmem: 100 },
      { id: 'node/b', type: 'node', node: 'b', status: 'offline', maxcpu: 8, maxmem: 100 },
      { id: 'qemu/1', type: 'qemu', node: 'b', status: 'stopped', vmid: 1, maxcpu: 4, maxmem: 10 },
    ]);
    assert.equal(series(fams, 'pve_node_vcpus_allocated').get('id=node/a'), 0);
    assert.equal(series(fams, 'pve_node_vcpus_allocated').get('id=node/b'), 0);
    assert.equal(series(fams, 'pve_cluster_cpus').get('id=cluster/c'), 8);
  });
});

describe('registry of the additions', () => {
  test('each declares cost per endpoint; off by default only with a reason; cached ones have a TTL', () => {
    for (const c of SCRAPE_COLLECTORS) {
      assert.ok(c.endpoints.length > 0, c.name);
      for (const e of c.endpoints) assert.ok(['cluster', 'node', 'guest', 'disk'].includes(e.cost), `${c.name} ${e.path}`);
      if (!c.defaultEnabled) assert.ok(c.offReason, `${c.name} is off by default without a reason`);
    }
    const byName = new Map(SCRAPE_COLLECTORS.map((c) => [c.name, c]));
    assert.equal(byName.get('updates')?.defaultEnabled, false);
    assert.match(byName.get('updates')?.offReason ?? '', /Sys\.Modify/);
    assert.equal(byName.get('certificates')?.cacheTtl, 3600);
    assert.ok((byName.get('disks')?.cacheTtl ?? 0) > 0);
  });
});

describe('collector flags from the registry', () => {
  test('--collector.<name>.ttl for collectors with a cache, defaults from the registry', () => {
    const opts = parseCli(['node', 'pve-exporter', '--collector.disks.ttl', '30', '--collector.updates']);
    assert.deepEqual(opts.collectorTtls, { disks: 30, certificates: 3600, updates: 3600, 'guest-filesystem': 300, backup: 300 });
    assert.equal(opts.collectors.updates, true);
    assert.equal(parseCli(['node', 'pve-exporter']).collectors.updates, false);
  });

  test('a bad TTL is refused with the flag named; --help gives the reason a collector is off', () => {
    const cmd = buildCommand().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    assert.throws(() => cmd.parse(['node', 'pve-exporter', '--collector.disks.ttl', 'soon']), /--collector\.disks\.ttl must be a whole number from 0 to 604800/);
    const help = buildCommand().helpInformation().replace(/\s+/g, ' ');
    assert.match(help, /--collector\.updates .*Off by default: the call needs Sys\.Modify/);
    assert.match(help, /--collector\.certificates\.ttl <seconds>.*\(default: 3600\)/);
  });
});
