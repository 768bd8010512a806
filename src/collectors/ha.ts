// HA manager state from /cluster/ha/status/current: the quorum as the HA stack sees it, the CRM
// master and each node's LRM state with the time of its last status update (age = time() - it).
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { HaStatusEntry } from '../pve/types.ts';
import { numberValue, type ScrapeCollector } from './types.ts';

/** LRM states as pve-ha-manager words them, normalised to label values (see parseHaState). */
export const LRM_STATES = ['active', 'idle', 'maintenance', 'wait_for_agent_lock', 'lost_agent_lock', 'dead', 'time_drift', 'unknown'] as const;

const QUORATE = gauge('pve_ha_quorate', 'Whether the HA stack on the answering node has quorum (1) or not (0).', []);
const MASTER = gauge('pve_ha_crm_master_info', 'Present (1) for the node that is the HA cluster resource manager (CRM) master, with its state.', ['node', 'state']);
const MASTER_TS = gauge('pve_ha_crm_master_last_update_timestamp_seconds', 'Time of the CRM master status update, Unix seconds.', ['node']);
const LRM = gauge('pve_ha_lrm_state', "HA local resource manager (LRM) state per node, one series per state: 1 for the current one (active, idle, maintenance, wait_for_agent_lock, lost_agent_lock, dead, time_drift, unknown).", ['node', 'state']);
const LRM_TS = gauge('pve_ha_lrm_last_update_timestamp_seconds', "Time of a node's last LRM status update, Unix seconds (its age: time() - value).", ['node']);

const FAMILIES = [QUORATE, MASTER, MASTER_TS, LRM, LRM_TS];

const STATE_WORDS: Record<string, string> = {
  'old timestamp - dead?': 'dead',
  'detected time drift!': 'time_drift',
  'unable to read lrm status': 'unknown',
  'maintenance mode': 'maintenance',
};

/**
 * The state inside a status text "<node> (<state>, <time>)" (also "<node> (active, watchdog
 * active, <time>)" since pve-ha-manager 5.1.3, or "<node> (unable to read lrm status)").
 */
export function parseHaState(status: string | undefined): string {
  if (status === undefined) return 'unknown';
  const open = status.indexOf('(');
  const close = status.lastIndexOf(')');
  if (open < 0 || close < open) return 'unknown';
  const first = status.slice(open + 1, close).split(',')[0].trim();
  return STATE_WORDS[first] ?? first.replace(/\s+/g, '_');
}

export function buildHa(entries: readonly HaStatusEntry[]): MetricFamily[] {
  const quorate = new MetricFamily(QUORATE);
  const master = new MetricFamily(MASTER);
  const masterTs = new MetricFamily(MASTER_TS);
  const lrm = new MetricFamily(LRM);
  const lrmTs = new MetricFamily(LRM_TS);
  for (const e of entries) {
    if (e.type === 'quorum' && e.quorate !== undefined) quorate.add([], numberValue(e.quorate));
    else if (e.type === 'master' && e.node !== undefined) {
      master.add([e.node, parseHaState(e.status)], 1);
      if (e.timestamp !== undefined) masterTs.add([e.node], numberValue(e.timestamp));
    } else if (e.type === 'lrm' && e.node !== undefined) {
      const state = parseHaState(e.status);
      for (const s of LRM_STATES) lrm.add([e.node, s], s === state ? 1 : 0);
      if (!(LRM_STATES as readonly string[]).includes(state)) lrm.add([e.node, state], 1);
      if (e.timestamp !== undefined) lrmTs.add([e.node], numberValue(e.timestamp));
    }
  }
  return [quorate, master, masterTs, lrm, lrmTs];
}

export const haCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'ha',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'addition',
  description: 'HA manager: quorum, the CRM master and each node\'s LRM state and last update time.',
  endpoints: [{ path: '/cluster/ha/status/current', privilege: 'Sys.Audit on /', cost: 'cluster' }],
  families: FAMILIES,
  async collect(s) {
    return buildHa(await s.haStatus());
  },
};
