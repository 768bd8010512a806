// The README's quick start, run as an operator would copy it: the Prometheus configuration block
// of "Quick start" is taken from README.md exactly as written, only its addresses swapped for the
// simulator's loopback node addresses and the exporter's port, and loaded by a real Prometheus
// with the shipped rules, against the real exporter and a simulated three-node cluster with known
// problems. The exporter runs with the quick start's pve.yml (step 2) with only what loopback
// needs swapped in (the simulator's credentials, CA file and port, loopback addresses for the node
// names of its `targets` allow-list). Each problem must fire exactly one alert, and nothing else
// may fire.
//
// The same is checked for the reference exporter's usual layout (cluster=1&node=1 on every node,
// so every cluster-wide series is stored three times): the rules aggregate alerts about PVE
// objects by the object, so that layout must not multiply them either.
//
// Test-only changes, none in the README block: global scrape/evaluation intervals of 1 s, and the
// shipped rules copied with `for: 0s` so alerts fire on the first evaluation (`for` delays an
// alert, it does not change how many there are).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { hasTool, requireTool } from './helpers/tools.ts';
import { codeBlocks, markdownSection } from './helpers/markdown.ts';
import { alertNames, repoRoot } from './helpers/prom-expressions.ts';
import {
  alerts,
  ruleFilesWithFor,
  startExporter,
  startPrometheus,
  waitUntil,
  type Alert,
  type Exporter,
  type Prometheus,
} from './helpers/prom-stack.ts';

const HINT = 'apt-get install prometheus';
const haveTools = hasTool('promtool') && hasTool('prometheus');

/** The one YAML block of the README's quick start that configures Prometheus. */
function quickStartPrometheusBlock(): string {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const blocks = codeBlocks(markdownSection(readme, 'Quick start')).filter((b) => b.lang === 'yaml' && /^scrape_configs:/m.test(b.text));
  assert.equal(blocks.length, 1, 'the quick start must have exactly one YAML block with scrape_configs');
  return blocks[0].text;
}

/** The quick start's pve.yml module (step 2), as written. */
function quickStartModule(): Record<string, unknown> {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const blocks = codeBlocks(markdownSection(readme, 'Quick start')).filter((b) => b.lang === 'yaml' && /^default:/m.test(b.text));
  assert.equal(blocks.length, 1, 'the quick start must have one pve.yml block');
  return (YAML.parse(blocks[0].text) as { default: Record<string, unknown> }).default;
}

/**
 * The quick start's module with what cannot be the same on loopback swapped in: the simulator's
 * credentials, its CA file and port, and the node names in `targets` (the allow-list) for their
 * loopback addresses. Every other key stays as the README has it.
 */
function quickStartModuleFor(sim: Simulator, map: Record<string, string>): Record<string, unknown> {
  const m = { ...quickStartModule() };
  for (const k of ['user', 'token_name', 'token_value', 'ca_file']) assert.ok(k in m, `the quick start's pve.yml has no ${k}`);
  m.user = sim.credentials.user;
  m.token_name = sim.credentials.tokenName;
  m.token_value = sim.credentials.tokenValue;
  m.ca_file = sim.caFile;
  m.port = sim.port;
  if (Array.isArray(m.targets)) m.targets = m.targets.map((t) => (typeof t === 'string' && t in map ? map[t] : t));
  return m;
}

/** Node names of the quick start (pve1.example.com, ...) -> the simulator's node addresses. */
function addressMap(sim: Simulator, exporterAddress: string): Record<string, string> {
  const map: Record<string, string> = { 'exporter.example.com:9221': exporterAddress };
  for (const [node, address] of sim.nodeAddresses) map[`${node}.example.com`] = address;
  return map;
}

/** Swaps whole host names (or host:port) and nothing else; every name must occur. */
function substituteAddresses(text: string, map: Record<string, string>, required: string[]): string {
  for (const k of required) assert.ok(text.includes(k), `the quick start no longer mentions ${k}`);
  const keys = Object.keys(map).sort((a, b) => b.length - a.length);
  const pattern = new RegExp(`(?<![\\w.-])(${keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?![\\w.-]|:\\d)`, 'g');
  const out = text.replace(pattern, (m) => map[m]);
  assert.doesNotMatch(out, /example\.com/, `an address of the quick start was not replaced:\n${out}`);
  return out;
}

/** The reference exporter's README layout: cluster=1&node=1 on every node. */
function legacyConfig(sim: Simulator, exporterAddress: string): string {
  return YAML.stringify({
    rule_files: ['rules/pve-*.yml'],
    scrape_configs: [
      {
        job_name: 'pve',
        metrics_path: '/pve',
        params: { module: ['default'], cluster: ['1'], node: ['1'] },
        static_configs: [{ targets: [...sim.nodeAddresses.values()] }],
        relabel_configs: [
          { source_labels: ['__address__'], target_label: '__param_target' },
          { source_labels: ['__param_target'], target_label: 'instance' },
          { target_label: '__address__', replacement: exporterAddress },
        ],
      },
      { job_name: 'pve-exporter', static_configs: [{ targets: [exporterAddress] }] },
    ],
  });
}

const TEST_GLOBAL = 'global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n';

/** A Prometheus directory: prometheus.yml and, as the quick start says, rules/ next to it. */
function preparePromDir(dir: string, scrapeConfig: string): string {
  assert.doesNotMatch(scrapeConfig, /^global:/m, 'the block sets global: the test would have to change it');
  mkdirSync(path.join(dir, 'rules'), { recursive: true });
  ruleFilesWithFor(path.join(dir, 'rules'), Object.fromEntries(alertNames().map((a) => [a, '0s'])));
  const config = TEST_GLOBAL + scrapeConfig;
  writeFileSync(path.join(dir, 'prometheus.yml'), config);
  return config;
}

/** One problem of the simulated cluster and the labels that identify its alert. */
interface Problem {
  alertname: string;
  labels: Record<string, string>;
}

function describeProblem(p: Problem): string {
  return `${p.alertname}{${Object.entries(p.labels).map(([k, v]) => `${k}="${v}"`).join(', ')}}`;
}

function matches(a: Alert, p: Problem): boolean {
  return a.labels.alertname === p.alertname && Object.entries(p.labels).every(([k, v]) => a.labels[k] === v);
}

/**
 * Alerts that compare the model cluster's fixed dates with the current time (a subscription due
 * date, a replication job's last sync): whether they fire depends on the day the test runs, so
 * they are not required, but where they fire it must be once per object.
 */
const DEPENDS_ON_TODAY = new Map<string, string[]>([
  ['PveSubscriptionExpiringSoon', ['id']],
  ['PveReplicationLate', ['id']],
  // The model's vzdump runs and certificates carry fixed dates too; identity labels in brackets.
  ['PveGuestBackupTooOld', ['id']],
  ['PveNodeCertificateExpiring', ['node', 'filename']],
]);

interface Count {
  perProblem: Map<string, number>;
  unexpected: string[];
}

function countAlerts(firing: Alert[], problems: Problem[]): Count {
  const perProblem = new Map(problems.map((p) => [describeProblem(p), 0]));
  const unexpected: string[] = [];
  for (const a of firing) {
    const hit = problems.filter((p) => matches(a, p));
    const identity = DEPENDS_ON_TODAY.get(a.labels.alertname);
    if (hit.length === 0 && identity !== undefined) {
      const key = describeProblem({ alertname: a.labels.alertname, labels: Object.fromEntries(identity.map((l) => [l, a.labels[l]])) });
      perProblem.set(key, (perProblem.get(key) ?? 0) + 1);
      continue;
    }
    if (hit.length === 0) unexpected.push(JSON.stringify(a.labels));
    for (const p of hit) perProblem.set(describeProblem(p), perProblem.get(describeProblem(p))! + 1);
  }
  return { perProblem, unexpected };
}

interface RuleGroupsBody {
  data: { groups: { name: string; lastEvaluation: string }[] };
}
interface TargetsBody {
  data: { activeTargets: { scrapePool: string; lastScrape: string }[] };
}

async function promJson<T>(url: string): Promise<T> {
  return (await (await fetch(url)).json()) as T;
}

/** Waits until every target has been scraped after `since`; returns the latest of those scrapes. */
async function scrapedSince(promUrl: string, since: number): Promise<number> {
  return waitUntil(
    'every target scraped again',
    async () => {
      const targets = (await promJson<TargetsBody>(`${promUrl}/api/v1/targets?state=active`)).data.activeTargets;
      const times = targets.map((t) => Date.parse(t.lastScrape));
      return targets.length > 0 && times.every((t) => t > since) ? Math.max(...times) : 0;
    },
    30_000,
  );
}

/** Waits until every rule group has been evaluated after `since`. */
async function evaluatedSince(promUrl: string, since: number): Promise<void> {
  await waitUntil(
    'every rule group evaluated again',
    async () => (await promJson<RuleGroupsBody>(`${promUrl}/api/v1/rules`)).data.groups.every((g) => Date.parse(g.lastEvaluation) > since),
    30_000,
  );
}

/**
 * Waits until every expected problem alerts, then until Prometheus has scraped every target and
 * evaluated every rule group once more (so a duplicate from a later scrape would show), and
 * returns the firing alerts counted per problem.
 */
async function firingOncePerProblem(prom: Prometheus, problems: Problem[], what: string): Promise<Count> {
  const firing = async (): Promise<Alert[]> => (await alerts(prom.url)).filter((a) => a.state === 'firing');
  let missing: string[] = [];
  await waitUntil(
    `${what}: every problem alerting`,
    async () => {
      const c = countAlerts(await firing(), problems);
      missing = [...c.perProblem].filter(([, n]) => n === 0).map(([k]) => k);
      return missing.length === 0;
    },
    45_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; not alerting: ${missing.join(', ')}\n--- prometheus ---\n${prom.output().slice(-2000)}`);
  });
  // Two rounds of evaluation after a full round of scrapes: the recording rules a rule reads
  // (another group) are then up to date as well.
  const scraped = await scrapedSince(prom.url, Date.now());
  await evaluatedSince(prom.url, scraped);
  await evaluatedSince(prom.url, Date.now());
  return countAlerts(await firing(), problems);
}

function assertOnePerProblem(c: Count, what: string): void {
  const wrong = [...c.perProblem].filter(([, n]) => n !== 1).map(([k, n]) => `${k}: ${n} alerts`);
  assert.deepEqual(wrong, [], `${what}: not one alert per problem`);
  assert.deepEqual(c.unexpected, [], `${what}: alerts for no known problem`);
}

test("the quick start's pve.yml verifies TLS in a way that works for every node of a cluster", () => {
  const module = quickStartModule();
  // One pinned fingerprint matches one node's certificate; the other nodes would fail.
  assert.ok(typeof module.fingerprint !== 'string', 'the quick start pins a single fingerprint, which fails on every other node of a cluster');
  assert.ok(module.ca_file !== undefined || Array.isArray(module.fingerprint) || module.verify_ssl !== undefined, 'the quick start says nothing about TLS');
});

test('the quick start has one cluster-scope job, one node-scope job and the exporter job', () => {
  const cfg = YAML.parse(quickStartPrometheusBlock()) as {
    rule_files: string[];
    scrape_configs: { job_name: string; metrics_path?: string; params?: Record<string, string[]>; static_configs: { targets: string[] }[] }[];
  };
  const scope = (j: (typeof cfg.scrape_configs)[number]): string => `${j.params?.cluster?.[0]}/${j.params?.node?.[0]}`;
  const pve = cfg.scrape_configs.filter((j) => j.metrics_path === '/pve');
  assert.deepEqual(pve.map(scope).sort(), ['0/1', '1/0'], 'want cluster=1&node=0 and cluster=0&node=1');
  const clusterJob = pve.find((j) => scope(j) === '1/0')!;
  assert.equal(clusterJob.static_configs.flatMap((s) => s.targets).length, 1, 'cluster scope is scraped from ONE node');
  assert.ok(pve.find((j) => scope(j) === '0/1')!.static_configs.flatMap((s) => s.targets).length >= 3, 'node scope from every node');
  const self = cfg.scrape_configs.filter((j) => j.metrics_path === undefined || j.metrics_path === '/metrics');
  assert.deepEqual(self.map((j) => j.job_name), ['pve-exporter'], 'the exporter job must be called pve-exporter (PveExporterDown)');
  assert.ok(cfg.rule_files.some((f) => f.startsWith('rules/')), 'rule_files points at the copied rules');
});

describe('the README quick start against a three-node cluster with known problems', () => {
  let tmp = '';
  let sim: Simulator | undefined;
  let exporter: Exporter | undefined;
  let quick: Prometheus | undefined;
  let legacy: Prometheus | undefined;
  let quickConfig = '';

  before(async () => {
    if (!haveTools) return;
    tmp = mkdtempSync(path.join(os.tmpdir(), 'prom-quickstart-'));
    sim = await startSimulator({ loopbackNodes: true });
    // The known problems, besides what the model cluster already has (four guests no backup job
    // covers, a guest locked by a backup, pve3 without subscription, a failing replication job):
    sim.setGuestStatus(100, 'stopped'); // onboot=1, stopped
    sim.setStorageAvailable('cephpool', false); // the shared Ceph pool, on every node
    sim.addFault({ path: '/nodes/pve2/subscription', status: 403, reason: 'Permission check failed (/nodes/pve2, Sys.Audit)' });
    // The exporter's address is only known once it listens: the node names are all pve.yml needs.
    exporter = await startExporter(tmp, { default: quickStartModuleFor(sim, addressMap(sim, '')) });
    const map = addressMap(sim, exporter.address);
    const quickDir = path.join(tmp, 'quick');
    const legacyDir = path.join(tmp, 'legacy');
    quickConfig = preparePromDir(quickDir, substituteAddresses(quickStartPrometheusBlock(), map, Object.keys(map)));
    preparePromDir(legacyDir, legacyConfig(sim, exporter.address));
    [quick, legacy] = await Promise.all([
      startPrometheus(quickDir, readFileSync(path.join(quickDir, 'prometheus.yml'), 'utf8')),
      startPrometheus(legacyDir, readFileSync(path.join(legacyDir, 'prometheus.yml'), 'utf8')),
    ]);
  });

  after(async () => {
    await Promise.all([quick?.stop(), legacy?.stop()]);
    await exporter?.stop();
    await sim?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('promtool accepts the quick start configuration with the rules next to it', (t) => {
    if (!requireTool(t, 'promtool', HINT)) return;
    const r = spawnSync('promtool', ['check', 'config', path.join(tmp, 'quick', 'prometheus.yml')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}\n${quickConfig}`);
    assert.match(r.stdout, /SUCCESS: 2 rule files found/);
  });

  const problems: Problem[] = [
    ...['qemu/102', 'qemu/103', 'qemu/105', 'lxc/202'].map((id) => ({ alertname: 'PveGuestNotBackedUp', labels: { id } })),
    { alertname: 'PveGuestNotRunning', labels: { id: 'qemu/100' } },
    { alertname: 'PveGuestLocked', labels: { id: 'qemu/101', state: 'backup' } },
    { alertname: 'PveStorageUnavailable', labels: { storage: 'cephpool' } },
    { alertname: 'PveSubscriptionNotActive', labels: { id: 'node/pve3' } },
    { alertname: 'PveReplicationFailing', labels: { id: '200-1' } },
    { alertname: 'PveExporterCollectorFailing', labels: { collector: 'subscription' } },
    // Issue 9's collectors on the model cluster: pve1's zpool tank is DEGRADED, every node's
    // stored disk list has /dev/sdc FAILED, and the last vzdump run of 104 failed for it.
    { alertname: 'PveZfsPoolDegraded', labels: { node: 'pve1', pool: 'tank' } },
    ...['pve1', 'pve2', 'pve3'].map((node) => ({ alertname: 'PveDiskSmartFailed', labels: { node, devpath: '/dev/sdc' } })),
    { alertname: 'PveGuestBackupFailed', labels: { id: 'qemu/104' } },
  ];

  test('each problem fires exactly one alert, in the quick start layout and in the cluster=1&node=1 layout', async (t) => {
    if (!requireTool(t, 'prometheus', HINT)) return;
    const [q, l] = await Promise.all([firingOncePerProblem(quick!, problems, 'quick start'), firingOncePerProblem(legacy!, problems, 'cluster=1&node=1 everywhere')]);
    assertOnePerProblem(q, 'quick start');
    assertOnePerProblem(l, 'cluster=1&node=1 everywhere');
    // The shared pool is reported by all three nodes; the alert says so instead of repeating.
    const ceph = (await alerts(quick!.url)).find((a) => a.labels.alertname === 'PveStorageUnavailable');
    assert.equal(ceph?.value !== undefined && Number(ceph.value), 3);
    assert.equal(ceph?.labels.node, undefined);
  });

  test('a node going offline is one more alert, and its storages and guests are not', async (t) => {
    if (!requireTool(t, 'prometheus', HINT)) return;
    sim!.setNodeOffline('pve3', true);
    // qemu/104 lives on pve3: its failed backup is PveNodeDown's now, like its other troubles.
    const more = [...problems.filter((p) => p.alertname !== 'PveGuestBackupFailed'), { alertname: 'PveNodeDown', labels: { pve_node: 'pve3' } }];
    const [q, l] = await Promise.all([firingOncePerProblem(quick!, more, 'quick start, pve3 offline'), firingOncePerProblem(legacy!, more, 'cluster=1&node=1, pve3 offline')]);
    assertOnePerProblem(q, 'quick start, pve3 offline');
    assertOnePerProblem(l, 'cluster=1&node=1, pve3 offline');
  });

  test('the exporter stopping is one alert: PveExporterDown, and PveScrapeFailed holds back', async (t) => {
    if (!requireTool(t, 'prometheus', HINT)) return;
    await exporter!.stop();
    const down: Problem[] = [{ alertname: 'PveExporterDown', labels: { job: 'pve-exporter' } }];
    const [q, l] = await Promise.all([firingOncePerProblem(quick!, down, 'quick start, exporter down'), firingOncePerProblem(legacy!, down, 'cluster=1&node=1, exporter down')]);
    assertOnePerProblem(q, 'quick start, exporter down');
    assertOnePerProblem(l, 'cluster=1&node=1, exporter down');
  });
});
