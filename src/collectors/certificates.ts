// Certificates of the answering node from /nodes/{node}/certificates/info: the cluster CA,
// pve-ssl.pem and a custom/ACME pveproxy-ssl.pem, each with its expiry. Cached for an hour
// (--collector.certificates.ttl): expiry is days away, and an alert needs no fresher data.
import { MetricFamily, gauge } from '../exposition/family.ts';
import type { CertificateInfo } from '../pve/types.ts';
import { labelValue, type ScrapeCollector } from './types.ts';

const EXPIRY = gauge('pve_node_certificate_expiry_timestamp_seconds', 'Unix time after which the node certificate is no longer valid (notAfter)', ['node', 'filename']);
const NOT_BEFORE = gauge('pve_node_certificate_not_before_timestamp_seconds', 'Unix time from which the node certificate is valid (notBefore)', ['node', 'filename']);
const INFO = gauge('pve_node_certificate_info', 'Node certificate subject, issuer and SHA-256 fingerprint (1)', ['node', 'filename', 'subject', 'issuer', 'fingerprint']);

export function buildCertificates(node: string, certs: readonly CertificateInfo[]): MetricFamily[] {
  const expiry = new MetricFamily(EXPIRY);
  const notBefore = new MetricFamily(NOT_BEFORE);
  const info = new MetricFamily(INFO);
  const seen = new Set<string>();
  for (const c of certs) {
    const file = labelValue(c.filename);
    // One entry per file in PVE; a duplicate name would make a duplicate series.
    if (file === '' || seen.has(file)) continue;
    seen.add(file);
    if (typeof c.notafter === 'number') expiry.add2(node, file, c.notafter);
    if (typeof c.notbefore === 'number') notBefore.add2(node, file, c.notbefore);
    info.add([node, file, labelValue(c.subject), labelValue(c.issuer), labelValue(c.fingerprint)], 1);
  }
  return [expiry, notBefore, info];
}

export const certificatesCollector: ScrapeCollector = {
  kind: 'scrape',
  name: 'certificates',
  scope: 'node',
  defaultEnabled: true,
  origin: 'addition',
  description: 'Validity period, subject, issuer and fingerprint of the answering node\'s certificates (cluster CA, pve-ssl.pem, pveproxy-ssl.pem).',
  endpoints: [
    { path: '/nodes/{node}/certificates/info', privilege: 'none (any authenticated user)', cost: 'node' },
    { path: '/cluster/status', privilege: 'Sys.Audit on / (to find the answering node)', cost: 'cluster' },
  ],
  cacheTtl: 3600,
  families: [EXPIRY, NOT_BEFORE, INFO],
  async collect(s) {
    const node = (await s.localNode()).name;
    return buildCertificates(node, await s.certificates(node));
  },
};
