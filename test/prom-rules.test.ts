// Static checks of what deploy/prometheus ships: every example configuration passes
// `promtool check config`, the rule files pass `promtool check rules`, the promtool unit tests
// pass and cover every alert both firing and silent, and the unit tests are able to fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { requireTool } from './helpers/tools.ts';
import {
  alertAnnotations,
  alertNames,
  alertTestCoverage,
  exampleConfigs,
  readRuleFile,
  ruleFiles,
  ruleTestFiles,
  rulesDir,
  repoRoot,
} from './helpers/prom-expressions.ts';
import { markdownAnchors } from './helpers/markdown.ts';

const HINT = 'apt-get install prometheus';

function promtool(args: string[], cwd?: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

test('deploy/prometheus ships the expected example layouts', () => {
  const names = exampleConfigs().map((f) => path.basename(f));
  for (const expected of [
    'prometheus.per-node.yml',
    'prometheus.multi-target.yml',
    'prometheus.multi-cluster.yml',
    'prometheus.service-discovery.yml',
  ]) {
    assert.ok(names.includes(expected), `${expected} missing (found ${names.join(', ')})`);
  }
});

test('promtool check config passes for every example configuration', (t) => {
  if (!requireTool(t, 'promtool', HINT)) return;
  for (const file of exampleConfigs()) {
    const r = promtool(['check', 'config', file]);
    assert.equal(r.status, 0, `${path.basename(file)}:\n${r.out}`);
    // The rule_files glob must actually pick up the shipped rules (an empty glob is valid config).
    assert.match(r.out, new RegExp(`SUCCESS: ${ruleFiles().length} rule files found`), r.out);
  }
});

interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  params?: Record<string, string[]>;
  http_sd_configs?: { url: string }[];
  relabel_configs?: { source_labels?: string[]; target_label?: string }[];
}

test('every example splits cluster-wide and per-node scrapes and scrapes the exporter itself', () => {
  for (const file of exampleConfigs()) {
    const name = path.basename(file);
    const cfg = YAML.parse(readFileSync(file, 'utf8')) as { scrape_configs: ScrapeConfig[] };
    const jobs = cfg.scrape_configs;
    const pveJobs = jobs.filter((j) => j.metrics_path === '/pve');
    const scope = (j: ScrapeConfig): string => `${j.params?.cluster?.[0]}/${j.params?.node?.[0]}`;
    assert.deepEqual(pveJobs.map(scope).sort(), ['0/1', '1/0'], `${name}: want one cluster=1&node=0 and one cluster=0&node=1 job`);
    assert.ok(
      jobs.some((j) => j.metrics_path === undefined || j.metrics_path === '/metrics'),
      `${name}: no job scrapes the exporter's own /metrics`,
    );
    for (const j of pveJobs) {
      // Every PVE job must end up with an instance label naming the PVE host.
      assert.ok(
        j.relabel_configs?.some((r) => r.target_label === 'instance'),
        `${name}: job ${j.job_name} does not set instance`,
      );
    }
  }
});

test('the service discovery examples point http_sd_configs at /pve/sd with module and target', () => {
  let found = 0;
  for (const file of exampleConfigs()) {
    const cfg = YAML.parse(readFileSync(file, 'utf8')) as { scrape_configs: ScrapeConfig[] };
    for (const j of cfg.scrape_configs) {
      for (const sd of j.http_sd_configs ?? []) {
        const u = new URL(sd.url);
        assert.equal(u.pathname, '/pve/sd', `${path.basename(file)}: ${sd.url}`);
        assert.ok(u.searchParams.get('module'), `${sd.url}: module missing`);
        assert.ok(u.searchParams.get('target'), `${sd.url}: target missing`);
        assert.equal(scopeOf(j), '0/1', `${path.basename(file)}: SD is meant for the per-node job`);
        found++;
      }
    }
  }
  assert.ok(found >= 2, `expected SD jobs in the service-discovery and multi-cluster examples, found ${found}`);
});

function scopeOf(j: ScrapeConfig): string {
  return `${j.params?.cluster?.[0]}/${j.params?.node?.[0]}`;
}

test('promtool check rules passes', (t) => {
  if (!requireTool(t, 'promtool', HINT)) return;
  const r = promtool(['check', 'rules', ...ruleFiles()]);
  assert.equal(r.status, 0, r.out);
});

test('every alert has a severity, summary, description and runbook', () => {
  const allowed = new Set(['critical', 'warning', 'info']);
  let alerts = 0;
  for (const file of ruleFiles()) {
    for (const g of readRuleFile(file).groups) {
      for (const rule of g.rules as {
        alert?: string;
        labels?: Record<string, string>;
        annotations?: Record<string, string>;
      }[]) {
        if (!rule.alert) continue;
        alerts++;
        const sev = rule.labels?.severity ?? '';
        // A templated severity must still only produce allowed values.
        const literals = sev.includes('{{') ? [...sev.matchAll(/\}\}([a-z]+)\{\{/g)].map((m) => m[1]) : [sev];
        assert.ok(literals.length > 0, `${rule.alert}: severity ${sev}`);
        for (const s of literals) assert.ok(allowed.has(s), `${rule.alert}: severity ${s}`);
        for (const a of ['summary', 'description', 'runbook', 'runbook_url']) {
          assert.ok((rule.annotations?.[a] ?? '').trim().length > 10, `${rule.alert}: annotation ${a} missing`);
        }
        // The description must say which object is affected.
        assert.match(rule.annotations?.description ?? '', /\{\{ *\$labels\.|\{\{ *\$value/, `${rule.alert}: description not templated`);
      }
    }
  }
  assert.ok(alerts >= 32, `only ${alerts} alerts`);
});

test('the requested alerts exist', () => {
  const names = new Set(alertNames());
  for (const a of [
    'PveNodeDown',
    'PveClusterNotQuorate',
    'PveGuestNotRunning',
    'PveStorageAlmostFull',
    'PveStorageFull',
    'PveGuestNotBackedUp',
    'PveReplicationFailing',
    'PveReplicationLate',
    'PveSubscriptionExpiringSoon',
    'PveSubscriptionNotActive',
    'PveHaServiceError',
    'PveQDeviceDisconnected',
    'PveExporterCollectorFailing',
    'PveScrapeFailed',
    'PveExporterDown',
    'PveStorageUnavailable',
    'PveNodeHighMemoryUsage',
    'PveNodeHighCpuUsage',
    'PveNodeRootDiskAlmostFull',
    'PveGuestLocked',
    'PveScrapeNearTimeout',
    'PveExporterConfigReloadFailed',
    'PveNodeHighIowait',
    'PveNodeHighSwapUsage',
    'PveZfsPoolDegraded',
    'PveDiskSmartFailed',
    'PveDiskWearoutHigh',
    'PveNodeCertificateExpiring',
    'PveHaQuorumLost',
    'PveCephNotHealthy',
    'PveGuestBackupTooOld',
    'PveGuestBackupFailed',
  ]) {
    assert.ok(names.has(a), `${a} missing`);
  }
});

test('promtool unit tests cover every alert both firing and not firing', () => {
  const { firing, silent } = alertTestCoverage();
  for (const a of alertNames()) {
    assert.ok(firing.has(a), `no promtool test expects ${a} to fire`);
    assert.ok(silent.has(a), `no promtool test expects ${a} to stay silent`);
  }
});

test('promtool test rules passes', (t) => {
  if (!requireTool(t, 'promtool', HINT)) return;
  const files = ruleTestFiles();
  assert.ok(files.length > 0);
  const r = promtool(['test', 'rules', ...files], path.dirname(files[0]));
  assert.equal(r.status, 0, r.out);
  assert.doesNotMatch(r.out, /FAILED/);
});

test('the promtool unit tests fail when the alerts are broken', (t) => {
  if (!requireTool(t, 'promtool', HINT)) return;
  // Copy the rules with their tests, make every alert expression return nothing, and expect
  // promtool to report a failed "fires" case for each alert by name.
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'prom-rules-'));
  try {
    cpSync(rulesDir, path.join(tmp, 'rules'), { recursive: true });
    const alertsFile = path.join(tmp, 'rules', 'pve-alerts.yml');
    const doc = YAML.parseDocument(readFileSync(alertsFile, 'utf8'));
    let changed = 0;
    for (const g of (doc.get('groups') as YAML.YAMLSeq<YAML.YAMLMap>).items) {
      for (const r of (g.get('rules') as YAML.YAMLSeq<YAML.YAMLMap>).items) {
        if (!r.get('alert')) continue;
        r.set('expr', `(${String(r.get('expr')).trim()}) and on() vector(0) == 1`);
        changed++;
      }
    }
    assert.equal(changed, alertNames().length);
    writeFileSync(alertsFile, doc.toString());
    const testFiles = ruleTestFiles().map((f) => path.join(tmp, 'rules', 'tests', path.basename(f)));
    const r = promtool(['test', 'rules', ...testFiles], path.join(tmp, 'rules', 'tests'));
    assert.notEqual(r.status, 0, 'promtool test rules passes with every alert disabled');
    for (const name of alertNames()) {
      assert.match(r.out, new RegExp(`alertname: ${name},`), `no failing test case for ${name}:\n${r.out}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

// Where the runbooks live: docs/alerting.md as GitHub renders it (heading anchors).
const RUNBOOK_BASE = 'https://github.com/pve-exporter/pve-exporter/blob/main/docs/alerting.md#';

test('every alert links its runbook: a section of docs/alerting.md that exists', () => {
  const doc = readFileSync(path.join(repoRoot, 'docs', 'alerting.md'), 'utf8');
  const anchors = markdownAnchors(doc);
  for (const [name, ann] of alertAnnotations()) {
    const url = ann.runbook_url ?? '';
    assert.ok(url.startsWith(RUNBOOK_BASE), `${name}: runbook_url ${url} does not point at docs/alerting.md`);
    const anchor = url.slice(RUNBOOK_BASE.length);
    assert.ok(anchors.has(anchor), `${name}: docs/alerting.md has no heading with anchor #${anchor}`);
  }
});

test('docs/alerting.md lists every alert in its table and gives each a section', () => {
  const doc = readFileSync(path.join(repoRoot, 'docs', 'alerting.md'), 'utf8');
  const tableRows = new Set([...doc.matchAll(/^\| \[(Pve\w+)\]\(#[\w-]+\) \|/gm)].map((m) => m[1]));
  const headings = doc.split('\n').filter((l) => l.startsWith('### ')).join('\n');
  for (const name of alertNames()) {
    assert.ok(tableRows.has(name), `${name} is not in the table of docs/alerting.md`);
    assert.match(headings, new RegExp(`\\b${name}\\b`), `${name} has no section (### heading) in docs/alerting.md`);
  }
  for (const name of tableRows) assert.ok(alertNames().includes(name), `docs/alerting.md lists ${name}, which is not a shipped alert`);
});

test("docs/alerting.md's table gives each alert's severity and `for` as the rules have them", () => {
  const doc = readFileSync(path.join(repoRoot, 'docs', 'alerting.md'), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| \[(Pve\w+)\]\(#[\w-]+\) \| ([^|]+) \| ([^|]+) \|/gm)].map((m) => [m[1], { severity: m[2].trim(), for: m[3].trim() }]));
  for (const file of ruleFiles()) {
    for (const g of readRuleFile(file).groups) {
      for (const r of g.rules as { alert?: string; for?: string; labels?: Record<string, string> }[]) {
        if (!r.alert) continue;
        const row = rows.get(r.alert);
        assert.ok(row, `${r.alert} not in the table`);
        assert.equal(row.for, r.for ?? '0s', `${r.alert}: the table says for ${row.for}, the rule ${r.for}`);
        const sev = r.labels?.severity ?? '';
        const literals = sev.includes('{{') ? [...sev.matchAll(/\}\}([a-z]+)\{\{/g)].map((m) => m[1]) : [sev];
        for (const l of literals) assert.ok(row.severity.includes(l), `${r.alert}: table severity ${row.severity}, rule has ${l}`);
      }
    }
  }
});

// The runbooks of alerts about the exporter itself must work for whichever way it is deployed:
// whenever a runbook sends the reader to the exporter's service or log, it does so for systemd,
// Quadlet, a plain container and Kubernetes alike.
const DEPLOYMENTS: [string, RegExp][] = [
  ['systemd', /journalctl -u pve-exporter|systemctl status pve-exporter/],
  ['Quadlet', /journalctl --user -u pve-exporter|systemctl --user status pve-exporter/],
  ['container', /(podman|docker) logs [^`]*pve-exporter/],
  ['Kubernetes', /kubectl .*logs/],
];

function mentionsExporterService(text: string): boolean {
  return /pve-exporter(\.service)?`|journalctl[^`]*pve-exporter|podman ps|kubectl/.test(text);
}

test('exporter runbooks give the commands for systemd, Quadlet, container and Kubernetes', () => {
  let checked = 0;
  for (const [name, ann] of alertAnnotations()) {
    if (!mentionsExporterService(ann.runbook ?? '')) continue;
    checked++;
    for (const [dep, re] of DEPLOYMENTS) assert.match(ann.runbook ?? '', re, `${name}: runbook annotation has no ${dep} command`);
  }
  const doc = readFileSync(path.join(repoRoot, 'docs', 'alerting.md'), 'utf8');
  for (const section of doc.split(/^(?=### )/m).slice(1)) {
    const title = section.split('\n', 1)[0];
    if (!mentionsExporterService(section)) continue;
    checked++;
    for (const [dep, re] of DEPLOYMENTS) assert.match(section, re, `docs/alerting.md "${title}": no ${dep} command`);
  }
  assert.ok(checked >= 6, `only ${checked} runbooks about the exporter found`);
});
