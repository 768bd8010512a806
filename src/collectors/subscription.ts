import { MetricFamily, gauge } from '../exposition/family.ts';
import type { SubscriptionInfo } from '../pve/types.ts';
import type { ScrapeCollector } from './types.ts';

const INFO = gauge('pve_subscription_info', 'Proxmox VE subscription info (1 if present)', ['id', 'level']);
const STATUS = gauge('pve_subscription_status', 'Proxmox VE subscription status (1 if matches status)', ['id', 'status']);
const NEXT_DUE = gauge('pve_subscription_next_due_timestamp_seconds', 'Subscription next due date as Unix timestamp', ['id']);

export const SUBSCRIPTION_STATES = ['new', 'notfound', 'active', 'invalid', 'expired', 'suspended'] as const;

/** "YYYY-MM-DD" -> Unix seconds of that day's midnight in the exporter's local time zone. */
export function parseDueDate(s: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s.trim());
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]) - 1, Number(m[3])];
  const date = new Date(y, mo, d);
  // Date rolls 2026-13-45 over into 2027; PVE never sends that, so treat it as unparseable.
  if (date.getFullYear() !== y || date.getMonth() !== mo || date.getDate() !== d) return undefined;
  return date.getTime() / 1000;
}

export function buildSubscription(node: string, sub: SubscriptionInfo): MetricFamily[] {
  const id = `node/${node}`;
  const info = new MetricFamily(INFO).add([id, sub.level ?? 'unknown'], 1);
  const status = new MetricFamily(STATUS);
  // PVE before 7.2-8 capitalised the status ("Active", "NotFound").
  const current = String(sub.status ?? '').toLowerCase();
  for (const s of SUBSCRIPTION_STATES) status.add([id, s], s === current ? 1 : 0);
  const due = new MetricFamily(NEXT_DUE);
  const ts = sub.nextduedate ? parseDueDate(sub.nextduedate) : undefined;
  if (ts !== undefined) due.add([id], ts);
  return [info, status, due];
}

export const subscriptionCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'subscription',
  scope: 'node',
  defaultEnabled: true,
  origin: 'reference',
  description: 'Subscription level, status and next due date of the answering node.',
  endpoints: [
    { path: '/nodes/{node}/subscription', privilege: 'none; level and next due date need Sys.Audit on /nodes/{node}', cost: 'node' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  families: [INFO, STATUS, NEXT_DUE],
  async collect(s) {
    const node = (await s.localNode()).name;
    return buildSubscription(node, await s.subscription(node));
  },
};
