import { MetricFamily, gauge } from '../exposition/family.ts';
import type { QDeviceStatus } from '../pve/types.ts';
import type { ScrapeCollector } from './types.ts';

const UP = gauge('pve_qdevice_up', 'Proxmox VE QDevice is connected (1) or not (0)', ['id']);
const INFO = gauge('pve_qdevice_info', 'Proxmox VE QDevice info (1 if configured)', [
  'algorithm',
  'id',
  'model',
  'qnetd_host',
  'state',
  'tie_breaker',
]);

/** No QDevice configured: PVE answers {} and there are no families at all. */
export function buildQDevice(clusterName: string, q: QDeviceStatus): MetricFamily[] {
  if (Object.keys(q).length === 0) return [];
  const id = `cluster/${clusterName}`;
  const state = q['State'] ?? '';
  return [
    new MetricFamily(UP).add([id], state === 'Connected' ? 1 : 0),
    new MetricFamily(INFO).add([q['Algorithm'] ?? '', id, q['Model'] ?? '', q['QNetd host'] ?? '', state, q['Tie-breaker'] ?? ''], 1),
  ];
}

export const qdeviceCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'qdevice',
  scope: 'cluster',
  defaultEnabled: true,
  origin: 'reference',
  description: 'Corosync QDevice connection state and settings (no series when none is configured).',
  endpoints: [
    { path: '/cluster/config/qdevice', privilege: 'Sys.Audit on /', cost: 'cluster' },
    { path: '/cluster/status', privilege: 'Sys.Audit on /', cost: 'cluster' },
  ],
  families: [UP, INFO],
  async collect(s) {
    const [name, q] = await Promise.all([s.clusterName(), s.qdevice()]);
    return buildQDevice(name, q);
  },
};
