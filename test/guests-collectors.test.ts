// Unit tests of the guest agent, backup, HA and Ceph collectors' builders, from the reference
// examples of reference/pve-api.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCeph } from '../src/collectors/ceph.ts';
import { buildHa, parseHaState } from '../src/collectors/ha.ts';
import { buildGuestFilesystems } from '../src/collectors/guest-filesystem.ts';
import { buildBackup, foldNodeTasks, parseVzdumpLog, type GuestBackupState } from '../src/collectors/backup.ts';
import { agentSilence, isNoCephAnswer } from '../src/pve/session.ts';
import { forEachLimited } from '../src/collectors/limited.ts';
import { PveError } from '../src/pve/errors.ts';
import type { BackupJob, CephStatus, GuestFsInfo, HaStatusEntry, NodeTask } from '../src/pve/types.ts';
import { byNode, example, variant } from './helpers/fixtures.ts';
import { series } from './helpers/families.ts';


describe('ceph', () => {
  test('HEALTH_OK example: one-hot status, no checks, OSDs, PGs, capacity', () => {
    const fams = buildCeph(example<CephStatus>('cluster__ceph__status'));
    assert.deepEqual([...series(fams, 'pve_ceph_health_status')], [['status=HEALTH_OK', 1], ['status=HEALTH_WARN', 0], ['status=HEALTH_ERR', 0]]);
    assert.equal(series(fams, 'pve_ceph_health_check_info').size, 0);
    assert.equal(series(fams, 'pve_ceph_osds').get(''), 3);
    assert.equal(series(fams, 'pve_ceph_up_osds').get(''), 3);
    assert.equal(series(fams, 'pve_ceph_in_osds').get(''), 3);
    assert.equal(series(fams, 'pve_ceph_monitors_in_quorum').get(''), 3);
    assert.equal(series(fams, 'pve_ceph_placement_groups').get(''), 129);
    assert.equal(series(fams, 'pve_ceph_pgs_by_state').get('state=active+clean'), 129);
    assert.equal(series(fams, 'pve_ceph_size_bytes').get(''), 5761441398784);
    assert.equal(series(fams, 'pve_ceph_used_bytes').get(''), 3298534883328);
    assert.equal(series(fams, 'pve_ceph_avail_bytes').get(''), 2462906515456);
    assert.equal(series(fams, 'pve_ceph_data_bytes').get(''), 1094523396096);
  });

  test('HEALTH_WARN variant: checks with severity and count, an OSD down, degraded PGs', () => {
    const warn = { ...example<CephStatus>('cluster__ceph__status'), ...variant<CephStatus>('cluster__ceph__status', 'health_warn') };
    const fams = buildCeph(warn);
    assert.equal(series(fams, 'pve_ceph_health_status').get('status=HEALTH_WARN'), 1);
    assert.equal(series(fams, 'pve_ceph_health_status').get('status=HEALTH_OK'), 0);
    assert.deepEqual([...series(fams, 'pve_ceph_health_check_info').keys()], ['check=OSD_DOWN,severity=HEALTH_WARN,muted=0', 'check=PG_DEGRADED,severity=HEALTH_WARN,muted=0']);
    assert.equal(series(fams, 'pve_ceph_health_check_items').get('check=PG_DEGRADED'), 86);
    assert.equal(series(fams, 'pve_ceph_up_osds').get(''), 2);
    assert.equal(series(fams, 'pve_ceph_pgs_by_state').get('state=active+undersized+degraded'), 43);
  });

  test('a cluster without Ceph is recognised by PVE\'s 500 texts, other 500s are failures', () => {
    const notInstalled = variant<{ http_status_line: string }>('cluster__ceph__status', 'not_installed');
    const reason = notInstalled.http_status_line.replace(/^HTTP\/1\.1 500 /, '');
    assert.equal(isNoCephAnswer(new PveError('http', '/cluster/ceph/status', `500 ${reason}`, 500)), true);
    assert.equal(
      isNoCephAnswer(new PveError('http', '/cluster/ceph/status', "500 pveceph configuration not initialized - missing '/etc/pve/ceph.conf'", 500)),
      true,
    );
    assert.equal(isNoCephAnswer(new PveError('http', '/cluster/ceph/status', '500 got timeout', 500)), false);
    assert.equal(isNoCephAnswer(new PveError('http', '/cluster/ceph/status', '403 Permission check failed', 403)), false);
  });
});

describe('ha', () => {
  test('status texts: state before the time, watchdog form, dead and unreadable', () => {
    assert.equal(parseHaState('pve1 (active, Sat Dec  6 05:46:38 2025)'), 'active');
    assert.equal(parseHaState('pve1 (active, watchdog active, Sat Dec  6 05:46:38 2025)'), 'active');
    assert.equal(parseHaState('pve2 (old timestamp - dead?, Sat Dec  6 05:40:00 2025)'), 'dead');
    assert.equal(parseHaState('pve3 (unable to read lrm status)'), 'unknown');
    assert.equal(parseHaState('pve3 (maintenance mode, Sat Dec  6 05:46:38 2025)'), 'maintenance');
    assert.equal(parseHaState('pve2 (active, Sat Dec  6 05:46:37 2025) - static load CRS'), 'active');
  });

  test('example: quorate, CRM master pve2, LRM states one-hot with their update times', () => {
    const fams = buildHa(example<HaStatusEntry[]>('cluster__ha__status__current'));
    assert.equal(series(fams, 'pve_ha_quorate').get(''), 1);
    assert.deepEqual([...series(fams, 'pve_ha_crm_master_info')], [['node=pve2,state=active', 1]]);
    assert.equal(series(fams, 'pve_ha_crm_master_last_update_timestamp_seconds').get('node=pve2'), 1764999997);
    const lrm = series(fams, 'pve_ha_lrm_state');
    assert.equal(lrm.get('node=pve1,state=active'), 1);
    assert.equal(lrm.get('node=pve1,state=idle'), 0);
    assert.equal(lrm.get('node=pve2,state=idle'), 1);
    assert.equal([...lrm.values()].reduce((a, b) => a + b, 0), 3, 'one state per node');
    assert.equal(series(fams, 'pve_ha_lrm_last_update_timestamp_seconds').get('node=pve3'), 1764999999);
  });

  test('no quorum: quorate 0', () => {
    const fams = buildHa([{ id: 'quorum', type: 'quorum', node: 'pve1', status: "No quorum on node 'pve1'!", quorate: 0 }]);
    assert.equal(series(fams, 'pve_ha_quorate').get(''), 0);
    assert.equal(series(fams, 'pve_ha_crm_master_info').size, 0);
  });
});

describe('guest filesystems', () => {
  test('example and Windows variant: size and used per mount point with type; agent up', () => {
    const linux = example<GuestFsInfo>('nodes__{node}__qemu__{vmid}__agent__get-fsinfo');
    const windows = variant<GuestFsInfo>('nodes__{node}__qemu__{vmid}__agent__get-fsinfo', 'windows');
    const fams = buildGuestFilesystems([
      { id: 'qemu/100', up: true, fsinfo: linux },
      { id: 'qemu/102', up: true, fsinfo: windows },
      { id: 'qemu/101', up: false, reason: 'QEMU guest agent is not running' },
    ]);
    assert.deepEqual([...series(fams, 'pve_guest_agent_up')], [['id=qemu/100', 1], ['id=qemu/101', 0], ['id=qemu/102', 1]]);
    const size = series(fams, 'pve_guest_filesystem_size_bytes');
    assert.equal(size.get('id=qemu/100,mountpoint=/,type=ext4'), 33501757440);
    assert.equal(size.get('id=qemu/100,mountpoint=/boot/efi,type=vfat'), 129718272);
    assert.equal(size.get('id=qemu/100,mountpoint=/snap/core22/2045,type=squashfs'), 77463552);
    assert.equal(size.get('id=qemu/102,mountpoint=C:\\,type=NTFS'), 85254762496);
    assert.equal(series(fams, 'pve_guest_filesystem_used_bytes').get('id=qemu/100,mountpoint=/,type=ext4'), 9875234816);
    assert.equal([...size.keys()].filter((k) => k.startsWith('id=qemu/101')).length, 0, 'a silent agent has no filesystem series');
  });

  test('entries without byte counts are left out; a mount point listed twice keeps the first', () => {
    const fams = buildGuestFilesystems([
      {
        id: 'qemu/7',
        up: true,
        fsinfo: {
          result: [
            { name: 'sdb1', mountpoint: '/data', type: 'xfs', 'total-bytes': 200, 'used-bytes': 20 },
            { name: 'sdb1', mountpoint: '/data', type: 'xfs', 'total-bytes': 100, 'used-bytes': 10 },
            { name: 'sdc1', mountpoint: '/old', type: 'ext4' },
          ],
        },
      },
    ]);
    assert.deepEqual([...series(fams, 'pve_guest_filesystem_size_bytes')], [['id=qemu/7,mountpoint=/data,type=xfs', 200]]);
  });

  test('agent silence: 500s and timeouts are the agent not answering; 403 and 595 are not', () => {
    const path = '/nodes/pve1/qemu/101/agent/get-fsinfo';
    assert.equal(agentSilence(new PveError('http', path, '500 QEMU guest agent is not running', 500)), 'QEMU guest agent is not running');
    assert.ok(agentSilence(new PveError('timeout', path, 'no complete answer within the call timeout of 4s')));
    assert.equal(agentSilence(new PveError('http', path, '403 Permission check failed (/vms/101, VM.Monitor)', 403)), undefined);
    assert.equal(agentSilence(new PveError('http', path, '595 Connection refused', 595)), undefined);
    assert.equal(agentSilence(new PveError('deadline', path, 'scrape deadline reached')), undefined);
  });
});

describe('backup', () => {
  const LOG = [
    'INFO: starting new backup job: vzdump 100 101 104 200 --mode snapshot --storage local',
    'INFO: Starting Backup of VM 100 (qemu)',
    'INFO: Finished Backup of VM 100 (00:00:42)',
    'INFO: Starting Backup of VM 101 (qemu)',
    "ERROR: Backup of VM 101 failed - unable to create temporary directory '/mnt/x' - No space left on device",
    'INFO: Starting Backup of VM 104 (qemu)',
    'INFO: Finished Backup of VM 104 (00:01:02)',
    'INFO: Starting Backup of VM 200 (lxc)',
    'ERROR: Backup job failed - interrupted by signal',
    'TASK ERROR: interrupted by signal',
  ];

  test('multi-guest log: finished, failed, and started but never finished (= failed)', () => {
    assert.deepEqual([...parseVzdumpLog(LOG)], [
      [100, 'ok'],
      [101, 'failed'],
      [104, 'ok'],
      [200, 'failed'],
    ]);
  });

  function folded(tasks: NodeTask[], logs: Record<string, string[]>): { complete: boolean; guests: Map<number, GuestBackupState> } {
    const guests = new Map<number, GuestBackupState>();
    const complete = foldNodeTasks(tasks, (upid) => (logs[upid] ? parseVzdumpLog(logs[upid]) : undefined), guests);
    return { complete, guests };
  }

  test('reference tasks: single-guest runs from their status (pve3: 104 "job errors" after an OK run)', () => {
    const { guests } = folded(byNode<NodeTask[]>('nodes__{node}__tasks', 'pve3'), {});
    assert.deepEqual(guests.get(104), { lastRun: 1764999210, lastFailed: true, lastSuccess: 1764912805 });
    const pve2 = folded(byNode<NodeTask[]>('nodes__{node}__tasks', 'pve2'), {});
    assert.deepEqual(pve2.guests.get(201), { lastRun: 1764999096, lastFailed: false, lastSuccess: 1764999096 });
    assert.equal(pve2.guests.has(102), false, 'qmstop tasks are not backups');
  });

  test('multi-guest runs need their log; a missing log stops at that run so nothing older is taken for the newest', () => {
    const tasks = byNode<NodeTask[]>('nodes__{node}__tasks', 'pve1');
    const [newest, older] = tasks.filter((t) => t.type === 'vzdump');
    const ok = (vmids: number[]) => vmids.map((v) => `INFO: Finished Backup of VM ${v} (00:00:10)`);
    const full = folded(tasks, {
      [newest.upid]: [...ok([100]), 'ERROR: Backup of VM 101 failed - no space', ...ok([200])],
      [older.upid]: ok([100, 101, 200]),
    });
    assert.equal(full.complete, true);
    assert.deepEqual(full.guests.get(101), { lastRun: newest.endtime, lastFailed: true, lastSuccess: older.endtime });
    assert.deepEqual(full.guests.get(100), { lastRun: newest.endtime, lastFailed: false, lastSuccess: newest.endtime });
    const missingNewest = folded(tasks, { [older.upid]: ok([100, 101, 200]) });
    assert.equal(missingNewest.complete, false);
    assert.equal(missingNewest.guests.size, 0, 'the older run must not pass for the newest');
  });

  test('families: jobs with schedule, enabled and next run; guests by id, unknown vmids left out', () => {
    const jobs = example<BackupJob[]>('cluster__backup');
    const guests = new Map<number, GuestBackupState>([
      [104, { lastRun: 200, lastFailed: true, lastSuccess: 100 }],
      [999, { lastRun: 200, lastFailed: false, lastSuccess: 200 }],
      [201, { lastRun: 300, lastFailed: true }],
    ]);
    const fams = buildBackup(jobs, guests, new Map([[104, 'qemu/104'], [201, 'lxc/201']]));
    assert.equal(series(fams, 'pve_backup_job_info').get('id=backup-4f3c2b1a-8d7e,schedule=05:30,storage=local,mode=snapshot'), 1);
    assert.equal(series(fams, 'pve_backup_job_enabled').get('id=backup-9a8b7c6d-5e4f'), 0);
    assert.equal(series(fams, 'pve_backup_job_next_run_timestamp_seconds').get('id=backup-4f3c2b1a-8d7e'), 1765085400);
    assert.deepEqual([...series(fams, 'pve_backup_last_failed')], [['id=qemu/104', 1], ['id=lxc/201', 1]]);
    assert.deepEqual([...series(fams, 'pve_backup_last_success_timestamp_seconds')], [['id=qemu/104', 100]]);
    assert.equal(series(fams, 'pve_backup_last_run_timestamp_seconds').get('id=lxc/201'), 300);
  });
});

describe('forEachLimited', () => {
  test('never more than the limit in flight, every item once; no new call after the signal aborts', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    const items = Array.from({ length: 20 }, (_, i) => i);
    await forEachLimited(items, 3, new AbortController().signal, async (i) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise<void>((resolve) => setImmediate(resolve));
      seen.push(i);
      inFlight--;
    });
    assert.equal(most, 3);
    assert.deepEqual([...seen].sort((a, b) => a - b), items);

    const abort = new AbortController();
    const started: number[] = [];
    await forEachLimited(items, 2, abort.signal, async (i) => {
      started.push(i);
      if (i === 3) abort.abort();
      await new Promise<void>((resolve) => setImmediate(resolve));
    });
    assert.ok(started.length <= 5, `stopped after the abort, started ${started.length}`);
  });
});
