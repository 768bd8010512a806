// Ceph health, OSDs, placement groups and capacity from /cluster/ceph/status (raw `ceph status`
// output that PVE relays). A cluster without Ceph answers 500 ("binary not installed", "not
// initialized"): that is no Ceph, not a failure, so the collector yields nothing and succeeds.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { CephStatus } from '../pve/types.ts';
import { numberValue, type ScrapeCollector } from './types.ts';

export const CEPH_HEALTH_STATES = ['HEALTH_OK', 'HEALTH_WARN', 'HEALTH_ERR'] as const;

const HEALTH = gauge('pve_ceph_health_status', 'Ceph health status, one series per status: 1 for the current one (HEALTH_OK, HEALTH_WARN, HEALTH_ERR).', ['status']);
const CHECK = gauge('pve_ceph_health_check_info', 'Present (1) for each active Ceph health check, with its severity; muted is 1 for a muted check.', ['check', 'severity', 'muted']);
const CHECK_COUNT = gauge('pve_ceph_health_check_items', 'The count Ceph reports in the summary of an active health check (e.g. OSDs down, PGs degraded).', ['check']);
const MONS_QUORUM = gauge('pve_ceph_monitors_in_quorum', 'Number of Ceph monitors in quorum.', []);
const OSDS = gauge('pve_ceph_osds', 'Number of Ceph OSDs in the OSD map.', []);
const OSDS_UP = gauge('pve_ceph_up_osds', 'Number of Ceph OSDs that are up.', []);
const OSDS_IN = gauge('pve_ceph_in_osds', 'Number of Ceph OSDs that are in.', []);
const PGS = gauge('pve_ceph_placement_groups', 'Number of Ceph placement groups.', []);
const PGS_BY_STATE = gauge('pve_ceph_pgs_by_state', 'Number of Ceph placement groups per combined state (e.g. active+clean).', ['state']);
const SIZE = gauge('pve_ceph_size_bytes', 'Raw capacity of the Ceph cluster in bytes.', []);
const USED = gauge('pve_ceph_used_bytes', 'Raw capacity used in the Ceph cluster in bytes (all replicas).', []);
const AVAIL = gauge('pve_ceph_avail_bytes', 'Raw capacity available in the Ceph cluster in bytes.', []);
const DATA = gauge('pve_ceph_data_bytes', 'Bytes of data stored in Ceph (before replication).', []);

const FAMILIES = [HEALTH, CHECK, CHECK_COUNT, MONS_QUORUM, OSDS, OSDS_UP, OSDS_IN, PGS, PGS_BY_STATE, SIZE, USED, AVAIL, DATA];

function scalar(spec: typeof OSDS, v: unknown): MetricFamily {
  const fam = new MetricFamily(spec);
  if (v !== undefined && v !== null && Number.isFinite(numberValue(v))) fam.add([], numberValue(v));
  return fam;
}

export function buildCeph(status: CephStatus): MetricFamily[] {
  const health = new MetricFamily(HEALTH);
  const current = status.health?.status;
  for (const s of CEPH_HEALTH_STATES) health.add([s], s === current ? 1 : 0);
  // A status Ceph adds later still shows, rather than reading as "none of the three".
  if (current !== undefined && !(CEPH_HEALTH_STATES as readonly string[]).includes(current)) health.add([current], 1);
  const check = new MetricFamily(CHECK);
  const checkCount = new MetricFamily(CHECK_COUNT);
  for (const [code, c] of Object.entries(status.health?.checks ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    check.add([code, c.severity ?? '', c.muted === true ? '1' : '0'], 1);
    if (c.summary?.count !== undefined) checkCount.add([code], numberValue(c.summary.count));
  }
  const pgsByState = new MetricFamily(PGS_BY_STATE);
  for (const p of status.pgmap?.pgs_by_state ?? []) pgsByState.add([p.state_name], numberValue(p.count));
  const pg = status.pgmap;
  return [
    health,
    check,
    checkCount,
    scalar(MONS_QUORUM, status.quorum_names?.length),
    scalar(OSDS, status.osdmap?.num_osds),
    scalar(OSDS_UP, status.osdmap?.num_up_osds),
    scalar(OSDS_IN, status.osdmap?.num_in_osds),
    scalar(PGS, pg?.num_pgs),
    pgsByState,
    scalar(SIZE, pg?.bytes_total),
    scalar(USED, pg?.bytes_used),
    scalar(AVAIL, pg?.bytes_avail),
    scalar(DATA, pg?.data_bytes),
  ];
}

export const cephCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'ceph',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'addition',
  description: 'Ceph health status and checks, monitors in quorum, OSDs up/in, placement groups by state and capacity (no series without Ceph).',
  endpoints: [{ path: '/cluster/ceph/status', privilege: 'Sys.Audit or Datastore.Audit on /', cost: 'cluster' }],
  families: FAMILIES,
  async collect(s) {
    const status = await s.cephStatus();
    return status === undefined ? [] : buildCeph(status);
  },
};
