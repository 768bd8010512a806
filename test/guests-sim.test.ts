// The guest agent, backup, HA and Ceph collectors against the simulator over HTTPS: what they
// report for the model cluster and its variants, and what a warm scrape costs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimulator } from '../sim/index.ts';
import type { SimVariant, Simulator } from '../sim/types.ts';
import { byNode } from './helpers/fixtures.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { parseExposition, type Exposition } from './helpers/promtext.ts';
import type { NodeTask } from '../src/pve/types.ts';

interface Running {
  sim: Simulator;
  exporter: RunningExporter;
}

async function start(variants: SimVariant[], args: string[] = [], module: Record<string, unknown> = {}): Promise<Running> {
  const sim = await startSimulator({ variants });
  const exporter = await startExporter(simModule(sim, 'default', module), args);
  return { sim, exporter };
}

async function scrape(r: Running, query = 'cluster=1&node=1'): Promise<Exposition> {
  const res = await get(`${r.exporter.url}/pve?target=127.0.0.1&${query}`);
  assert.equal(res.status, 200, res.body);
  return parseExposition(res.body);
}

function value(exp: Exposition, family: string, labels: string): number | undefined {
  return exp.get(family)?.samples.get(`${family}${labels}`);
}

function success(exp: Exposition, collector: string): number | undefined {
  return value(exp, 'pve_exporter_collector_success', `{collector="${collector}"}`);
}

function logCalls(sim: Simulator): number {
  return [...sim.stats().calls].filter(([path]) => /\/tasks\/[^/]+\/log$/.test(path)).reduce((n, [, c]) => n + c, 0);
}

const pve1Vzdump = byNode<NodeTask[]>('nodes__{node}__tasks', 'pve1').filter((t) => t.type === 'vzdump');

describe('backup collector', () => {
  let r: Running;
  before(async () => {
    r = await start(['backup-failed']);
  });
  after(async () => {
    await r?.exporter.close();
    await r?.sim.close();
  });

  test('multi-guest run parsed from its task log: 101 failed in the newest run, its last success is the run before', async () => {
    const exp = await scrape(r);
    assert.equal(success(exp, 'backup'), 1);
    assert.equal(value(exp, 'pve_backup_last_failed', '{id="qemu/101"}'), 1);
    assert.equal(value(exp, 'pve_backup_last_run_timestamp_seconds', '{id="qemu/101"}'), pve1Vzdump[0].endtime);
    assert.equal(value(exp, 'pve_backup_last_success_timestamp_seconds', '{id="qemu/101"}'), pve1Vzdump[1].endtime);
    assert.equal(value(exp, 'pve_backup_last_failed', '{id="qemu/100"}'), 0);
    assert.equal(value(exp, 'pve_backup_last_success_timestamp_seconds', '{id="lxc/200"}'), pve1Vzdump[0].endtime);
    // The single-guest run of pve3 ended in "job errors": 104 failed, its last success the day before.
    assert.equal(value(exp, 'pve_backup_last_failed', '{id="qemu/104"}'), 1);
    assert.equal(value(exp, 'pve_backup_last_success_timestamp_seconds', '{id="qemu/104"}'), 1764912805);
    assert.equal(value(exp, 'pve_backup_last_failed', '{id="lxc/201"}'), 0);
    assert.equal(value(exp, 'pve_backup_job_next_run_timestamp_seconds', '{id="backup-4f3c2b1a-8d7e"}'), 1765085400);
    // Guests no run covered have no per-guest series.
    assert.equal(value(exp, 'pve_backup_last_run_timestamp_seconds', '{id="qemu/102"}'), undefined);
  });

  test('warm scrape: no task log and no task list call again, only /cluster/backup', async () => {
    await scrape(r);
    r.sim.resetStats();
    const exp = await scrape(r);
    assert.equal(success(exp, 'backup'), 1);
    assert.equal(logCalls(r.sim), 0, 'finished task logs are cached by UPID');
    const calls = r.sim.stats().calls;
    assert.equal(calls.get('/nodes/pve1/tasks'), undefined, 'task lists are cached for the TTL');
    assert.equal(calls.get('/cluster/backup'), 1);
    assert.equal(value(exp, 'pve_backup_last_failed', '{id="qemu/101"}'), 1, 'the cached log gives the same answer');
  });
});

describe('backup collector with --collector.backup.ttl 0', () => {
  let r: Running;
  before(async () => {
    r = await start([], ['--collector.backup.ttl', '0']);
  });
  after(async () => {
    await r?.exporter.close();
    await r?.sim.close();
  });

  test('task lists are fetched every scrape, a finished task log still only once', async () => {
    const first = await scrape(r, 'cluster=1&node=0');
    assert.equal(value(first, 'pve_backup_last_failed', '{id="qemu/101"}'), 0);
    assert.ok(logCalls(r.sim) >= 2, 'the cold scrape reads the logs of the multi-guest runs');
    r.sim.resetStats();
    const exp = await scrape(r, 'cluster=1&node=0');
    assert.equal(r.sim.stats().calls.get('/nodes/pve1/tasks'), 1);
    assert.equal(logCalls(r.sim), 0);
    assert.equal(value(exp, 'pve_backup_last_success_timestamp_seconds', '{id="qemu/101"}'), pve1Vzdump[0].endtime);
  });
});

describe('backup collector when a task log cannot be read', () => {
  let r: Running;
  before(async () => {
    r = await start([]);
  });
  after(async () => {
    await r?.exporter.close();
    await r?.sim.close();
  });

  test('the collector fails, guests of that node keep no guessed answer, the other collectors are fine; the next scrape recovers', async () => {
    r.sim.addFault({ path: /^\/nodes\/pve1\/tasks\/UPID(:|%3A)pve1(:|%3A)0001B7D8[^/]*\/log$/, status: 500, reason: 'unable to read log', times: 1 });
    const exp = await scrape(r, 'cluster=1&node=0');
    assert.equal(success(exp, 'backup'), 0);
    assert.equal(success(exp, 'resources'), 1);
    assert.equal(value(exp, 'pve_backup_last_run_timestamp_seconds', '{id="qemu/100"}'), undefined, 'the older run must not pass for the newest');
    assert.equal(value(exp, 'pve_backup_last_failed', '{id="qemu/104"}'), 1, 'other nodes are still reported');
    const again = await scrape(r, 'cluster=1&node=0');
    assert.equal(success(again, 'backup'), 1);
    assert.equal(value(again, 'pve_backup_last_run_timestamp_seconds', '{id="qemu/100"}'), pve1Vzdump[0].endtime);
  });
});

describe('ceph and ha collectors', () => {
  test('HEALTH_WARN: status, checks and OSDs; HA quorum and master', async () => {
    const r = await start(['ceph-health-warn']);
    try {
      const exp = await scrape(r, 'cluster=1&node=0');
      assert.equal(success(exp, 'ceph'), 1);
      assert.equal(value(exp, 'pve_ceph_health_status', '{status="HEALTH_WARN"}'), 1);
      assert.equal(value(exp, 'pve_ceph_health_status', '{status="HEALTH_OK"}'), 0);
      assert.equal(value(exp, 'pve_ceph_health_check_info', '{check="OSD_DOWN",muted="0",severity="HEALTH_WARN"}'), 1);
      assert.equal(value(exp, 'pve_ceph_up_osds', '{}'), 2);
      assert.equal(success(exp, 'ha'), 1);
      assert.equal(value(exp, 'pve_ha_quorate', '{}'), 1);
      assert.equal(value(exp, 'pve_ha_crm_master_info', '{node="pve2",state="active"}'), 1);
    } finally {
      await r.exporter.close();
      await r.sim.close();
    }
  });

  test('a cluster without Ceph: no Ceph series, the collector succeeds, nothing logged as a failure', async () => {
    const r = await start(['no-ceph']);
    try {
      const exp = await scrape(r, 'cluster=1&node=0');
      assert.equal(success(exp, 'ceph'), 1);
      assert.deepEqual([...exp.keys()].filter((n) => n.startsWith('pve_ceph_')), []);
      assert.equal(r.exporter.logs.filter((l) => l.includes('ceph')).length, 0, r.exporter.logs.join('\n'));
    } finally {
      await r.exporter.close();
      await r.sim.close();
    }
  });

  test('Ceph failing otherwise (403) fails the collector and names the privilege', async () => {
    const r = await start([]);
    try {
      r.sim.addFault({ path: '/cluster/ceph/status', status: 403, reason: 'Permission check failed (/, Sys.Audit)' });
      const exp = await scrape(r, 'cluster=1&node=0');
      assert.equal(success(exp, 'ceph'), 0);
      assert.equal(success(exp, 'ha'), 1);
      assert.ok(r.exporter.logs.some((l) => l.includes('Sys.Audit or Datastore.Audit on /')), r.exporter.logs.join('\n'));
    } finally {
      await r.exporter.close();
      await r.sim.close();
    }
  });
});

function fsinfoCalls(sim: Simulator): string[] {
  return [...sim.stats().calls.keys()].filter((p) => p.endsWith('/agent/get-fsinfo'));
}

describe('guest-filesystem collector', () => {
  test('off by default: no agent call', async () => {
    const r = await start([]);
    try {
      const exp = await scrape(r, 'cluster=0&node=1');
      assert.equal(success(exp, 'guest-filesystem'), undefined);
      assert.deepEqual(fsinfoCalls(r.sim), []);
    } finally {
      await r.exporter.close();
      await r.sim.close();
    }
  });

  test('running VMs with the agent on the answering node: filesystems, a silent agent reported, answers cached', async () => {
    const r = await start(['agent-not-running'], ['--collector.guest-filesystem']);
    try {
      const exp = await scrape(r, 'cluster=0&node=1');
      assert.equal(success(exp, 'guest-filesystem'), 1);
      assert.equal(value(exp, 'pve_guest_agent_up', '{id="qemu/100"}'), 1);
      assert.equal(value(exp, 'pve_guest_agent_up', '{id="qemu/101"}'), 0);
      assert.equal(value(exp, 'pve_guest_filesystem_used_bytes', '{id="qemu/100",mountpoint="/",type="ext4"}'), 9875234816);
      assert.equal(value(exp, 'pve_guest_filesystem_size_bytes', '{id="qemu/100",mountpoint="/boot/efi",type="vfat"}'), 129718272);
      // Only the answering node's running VMs with the agent: 100 and 101 (200 is a container).
      assert.deepEqual(fsinfoCalls(r.sim).sort(), ['/nodes/pve1/qemu/100/agent/get-fsinfo', '/nodes/pve1/qemu/101/agent/get-fsinfo']);
      r.sim.resetStats();
      const warm = await scrape(r, 'cluster=0&node=1');
      assert.deepEqual(fsinfoCalls(r.sim), [], 'answers and silences are cached for the TTL');
      assert.equal(value(warm, 'pve_guest_agent_up', '{id="qemu/101"}'), 0);
      // A VM that stops is no longer asked and no longer reported.
      r.sim.setGuestStatus(100, 'stopped');
      const stopped = await scrape(r, 'cluster=0&node=1');
      assert.equal(value(stopped, 'pve_guest_agent_up', '{id="qemu/100"}'), undefined);
    } finally {
      await r.exporter.close();
      await r.sim.close();
    }
  });

  test('an agent call that hangs is cut by the per-call timeout: agent down, collector ok, other guests reported', async () => {
    // Module timeout and scrape deadline both longer than the agent call timeout (4 s): only the
    // per-call timeout can turn the hang into "agent down" before the scrape gives up.
    const r = await start([], ['--collector.guest-filesystem', '--scrape.default-timeout', '12'], { timeout: 60 });
    try {
      r.sim.addFault({ path: '/nodes/pve1/qemu/101/agent/get-fsinfo', hang: true });
      const exp = await scrape(r, 'cluster=0&node=1');
      assert.equal(success(exp, 'guest-filesystem'), 1);
      assert.equal(value(exp, 'pve_guest_agent_up', '{id="qemu/101"}'), 0);
      assert.equal(value(exp, 'pve_guest_agent_up', '{id="qemu/100"}'), 1);
      assert.equal(success(exp, 'resources'), undefined, 'node scope only');
      assert.equal(success(exp, 'config'), 1);
    } finally {
      await r.exporter.close();
      await r.sim.close();
    }
  });

  test('403 (PVE 7/8 without VM.Monitor): the collector fails, names both privileges, the rest of the scrape is fine', async () => {
    const r = await start([], ['--collector.guest-filesystem']);
    try {
      r.sim.addFault({ path: /\/agent\/get-fsinfo$/, status: 403, reason: 'Permission check failed (/vms/100, VM.Monitor)' });
      const exp = await scrape(r, 'cluster=0&node=1');
      assert.equal(success(exp, 'guest-filesystem'), 0);
      assert.equal(success(exp, 'config'), 1);
      assert.equal(exp.get('pve_guest_agent_up')?.samples.size ?? 0, 0, 'a refused call says nothing about the agent');
      assert.ok(r.exporter.logs.some((l) => l.includes('VM.Monitor on /vms/{vmid}') && l.includes('VM.GuestAgent.Audit')), r.exporter.logs.join('\n'));
    } finally {
      await r.exporter.close();
      await r.sim.close();
    }
  });
});

describe('generated cluster with the variants', () => {
  test('every collector succeeds; the variants show; a warm scrape reads no agent, task list or task log', async () => {
    const sim = await startSimulator({ generated: { nodes: 3, guestsPerNode: 12 }, variants: ['agent-not-running', 'backup-failed', 'ceph-health-warn'] });
    const exporter = await startExporter(simModule(sim), ['--collector.guest-filesystem']);
    const r = { sim, exporter };
    try {
      const exp = await scrape(r);
      for (const c of ['guest-filesystem', 'backup', 'ha', 'ceph']) assert.equal(success(exp, c), 1, c);
      const up = exp.get('pve_guest_agent_up')?.samples ?? new Map<string, number>();
      assert.ok(up.size >= 2, 'the answering node has VMs with the agent');
      assert.equal([...up.values()].filter((v) => v === 0).length, 1, 'one silent agent');
      const failed = exp.get('pve_backup_last_failed')?.samples ?? new Map<string, number>();
      assert.ok([...failed.values()].includes(1), 'a failed backup');
      assert.equal(value(exp, 'pve_ceph_health_status', '{status="HEALTH_WARN"}'), 1);
      sim.resetStats();
      await scrape(r);
      const paths = [...sim.stats().calls.keys()];
      assert.deepEqual(paths.filter((p) => p.endsWith('/agent/get-fsinfo') || /\/tasks(\/|$)/.test(p)), []);
    } finally {
      await exporter.close();
      await sim.close();
    }
  });
});
