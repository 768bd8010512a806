// Writes docs/metrics.md from the collector registry, so the reference cannot drift from the
// code (test/docs.test.ts fails when the committed file is stale). Run: npm run docs:metrics
import { writeFileSync } from 'node:fs';
import { COLLECTORS } from '../src/collectors/registry.ts';
import { COLLECTOR_DURATION, COLLECTOR_SUCCESS } from '../src/scrape.ts';
import { SELF_FAMILIES } from '../src/self-metrics.ts';
import type { FamilySpec } from '../src/exposition/family.ts';

function row(f: FamilySpec, collector: string): string {
  const labels = f.labels.length ? f.labels.map((l) => `\`${l}\``).join(', ') : '';
  return `| \`${f.name}\` | ${f.type} | ${labels} | ${collector} | ${f.help.replace(/\|/g, '\\|')} |`;
}

export function renderMetricsDoc(): string {
  const lines: string[] = [
    '# Metrics reference',
    '',
    '<!-- Generated from src/collectors/registry.ts by `npm run docs:metrics`; do not edit by hand. -->',
    '',
    'Names, types, HELP texts and labels of `/pve` are those of prometheus-pve-exporter 3.10, so',
    'existing dashboards and alerts keep working. Families marked *new* are this project\'s additions.',
    '',
    '## Collectors',
    '',
    'Calls: how many calls of the endpoint one scrape makes: *per cluster* one, *per node* one per node',
    'covered (a node-scope collector covers the answering node only), *per guest* / *per disk* one per',
    'guest or disk. A collector with a cache TTL fetches again only when its entry expired (TTL flag',
    '`--collector.<name>.ttl <seconds>`; 0 fetches every scrape); when a refresh fails, the expired entry',
    'is served for up to 10 TTLs and counted in `pve_exporter_cache_stale_total` (not after a 401, 403 or',
    '501). A 403 is logged once, naming the privilege below, and fails only that collector; a 501 of an',
    'endpoint marked *since* (older PVE releases lack it) is logged once, is not a failure, and is not',
    'asked again for an hour.',
    '',
    '| collector | scope | default | PVE endpoints (privilege; calls) | cache TTL | what |',
    '|---|---|---|---|---|---|',
  ];
  for (const c of COLLECTORS) {
    const scope = c.kind === 'scrape' ? c.scope : '/metrics';
    const endpoints = c.kind === 'scrape' ? c.endpoints.map((e) => `\`${e.path}\` (${e.privilege}; per ${e.cost}${e.since ? `; since ${e.since}` : ''})`).join('<br>') : '-';
    const ttl = c.kind === 'scrape' && c.cacheTtl !== undefined ? `${c.cacheTtl} s` : '-';
    const what = c.kind === 'scrape' && !c.defaultEnabled && c.offReason ? `${c.description} **Off by default:** ${c.offReason}` : c.description;
    const name = c.kind === 'scrape' && c.origin === 'addition' ? `\`${c.name}\` (*new*)` : `\`${c.name}\``;
    lines.push(`| ${name} | ${scope} | ${c.defaultEnabled ? 'on' : 'off'} | ${endpoints} | ${ttl} | ${what.replace(/\|/g, '\\|')} |`);
  }
  lines.push('', '## `/pve` families', '', '| name | type | labels | collector | help |', '|---|---|---|---|---|');
  for (const c of COLLECTORS) {
    if (c.kind !== 'scrape') continue;
    for (const f of c.families) lines.push(row(f, c.origin === 'addition' ? `${c.name} (*new*)` : c.name));
  }
  lines.push(row(COLLECTOR_SUCCESS, '*new*, every scrape'), row(COLLECTOR_DURATION, '*new*, every scrape'));
  lines.push(
    '',
    'Label sets of `pve_version_info` and `pve_cluster_info` follow the keys PVE returns (as the',
    'reference): the table lists the usual ones. `pve_cluster_info` and the `qdevice` families are absent',
    'on a standalone node and when no QDevice is configured. `pve_onboot_status` has a series only for',
    'guests whose config carries `onboot`. `pve_not_backed_up_total` is a gauge despite its name (kept',
    'from the reference; `promtool check metrics` notes it).',
    '',
    'In OpenMetrics (when Prometheus asks for it), the four `*_bytes_total` counters whose base name is',
    'taken by a deprecated gauge of the same family (`pve_network_transmit_bytes`, ...) are typed',
    '`unknown`, so both series keep their names and values.',
    '',
    '## `/metrics` families',
    '',
    '| name | type | labels | switch | help |',
    '|---|---|---|---|---|',
  );
  const switchOf = new Map<string, string>();
  for (const c of COLLECTORS) if (c.kind === 'self') for (const f of c.families) switchOf.set(f.name, `\`--collector.${c.name}\``);
  for (const f of Object.values(SELF_FAMILIES)) lines.push(row(f, switchOf.get(f.name) ?? 'always'));
  lines.push('', 'Plus the Node.js process metrics of prom-client (`process_*`, `nodejs_*`).', '');
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  writeFileSync(new URL('../docs/metrics.md', import.meta.url), renderMetricsDoc());
  process.stdout.write('docs/metrics.md written\n');
}
