// deploy/prometheus/kubernetes/prometheus.kubernetes.yml: the scrape config for a hand-written
// Prometheus on Kubernetes, checked against what the Helm chart really renders.
//
// Debian's Prometheus and promtool are built without the Kubernetes service discovery (the
// kubernetes_sd_configs key is unknown to them), and no cluster is at hand. So the test feeds the
// recipe's relabelling, unchanged, with the targets `role: endpoints` discovery would produce for
// the chart's rendered Services and Endpoints (the __meta_kubernetes_* labels of Prometheus'
// documentation, built here from the objects), through file_sd_configs, to a real Prometheus; and
// checks what comes out: the scrape URLs /pve?target=<node DNS name> for the hypervisors, /metrics
// of the exporter, node_exporter on every hypervisor. The exporter's own job is scraped for real.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { findHelm, hasTool, requireHelm, requireTool } from './helpers/tools.ts';
import { promDir } from './helpers/prom-expressions.ts';
import { activeTargets, startExporter, startPrometheus, waitUntil, type Exporter, type Prometheus, type Target } from './helpers/prom-stack.ts';

const RECIPE = path.join(promDir, 'kubernetes', 'prometheus.kubernetes.yml');
const CHART = path.resolve(promDir, '..', 'helm', 'pve-exporter');
const RELEASE = 'pve-exporter';
const NS = 'monitoring';
// Loopback addresses for the hypervisors, so that the node_exporter scrapes stay on this machine.
const NODES = [
  { name: 'pve1', ip: '127.0.0.11' },
  { name: 'pve2', ip: '127.0.0.12' },
  { name: 'pve3', ip: '127.0.0.13' },
];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface K8sObject {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: { ports?: { name: string; port: number; protocol?: string }[] };
  subsets?: { addresses: { ip: string; hostname?: string; targetRef?: { kind: string; name: string } }[]; ports: { name: string; port: number; protocol?: string }[] }[];
  data?: Record<string, string>;
}
interface ScrapeConfig {
  job_name: string;
  kubernetes_sd_configs?: { role: string; namespaces?: { names: string[] } }[];
  [k: string]: Json | undefined;
}

const scratch = mkdtempSync(path.join(os.tmpdir(), 'recipes-k8s-'));
let exporter: Exporter | undefined;
let prom: Prometheus | undefined;
after(async () => {
  await prom?.stop();
  await exporter?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function helm(args: string[]): string {
  const env = { ...process.env, HELM_CACHE_HOME: path.join(scratch, 'hc'), HELM_CONFIG_HOME: path.join(scratch, 'hf'), HELM_DATA_HOME: path.join(scratch, 'hd') };
  const r = spawnSync(findHelm()!, args, { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

const VALUES = {
  config: { default: { user: 'monitoring@pve', token_name: 'exporter', token_value: 'cccccccc-0000-0000-0000-000000000003' } },
  hypervisors: { enabled: true, nodes: NODES },
};

function renderChart(extra: object = {}): K8sObject[] {
  const values = path.join(scratch, `values-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(values, JSON.stringify({ ...VALUES, ...extra }));
  return parseAllDocuments(helm(['template', RELEASE, CHART, '-n', NS, '-f', values]))
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** NOTES.txt as an install prints it (helm template skips NOTES; a chart copy renders it via tpl). */
function renderNotes(extra: object = {}): string {
  const copy = path.join(scratch, `chart-${Math.random().toString(36).slice(2)}`);
  cpSync(CHART, copy, { recursive: true });
  cpSync(path.join(copy, 'templates/NOTES.txt'), path.join(copy, 'notes.txt'));
  writeFileSync(path.join(copy, 'templates/notes.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n');
  const values = path.join(copy, 'test-values.json');
  writeFileSync(values, JSON.stringify({ ...VALUES, ...extra }));
  const out = helm(['template', RELEASE, copy, '-n', NS, '-f', values, '--show-only', 'templates/notes.yaml']);
  return (parseYaml(out) as { data: { notes: string } }).data.notes;
}

const recipeJobs = (): ScrapeConfig[] => (parseYaml(readFileSync(RECIPE, 'utf8')) as { scrape_configs: ScrapeConfig[] }).scrape_configs;

test('the chart NOTES print the recipe\'s scrape configs (with this release\'s names) when serviceMonitor is off', (t) => {
  if (!requireHelm(t)) return;
  const notes = renderNotes();
  const yamlPart = notes.split(/\n\n(?=- job_name:)/)[1]?.split(/\n\n/)[0];
  assert.ok(yamlPart, `no scrape configs in NOTES:\n${notes}`);
  assert.deepEqual(parseYaml(yamlPart), recipeJobs());
  assert.match(notes, /get\/list\/watch on services, endpoints and pods in monitoring/);
  // With the Operator's ServiceMonitor, nothing of that is printed.
  assert.doesNotMatch(renderNotes({ serviceMonitor: { enabled: true } }), /job_name/);
  // Another release name changes the kept Service names.
  const other = renderNotes({ fullnameOverride: 'pvx' });
  assert.match(other, /regex: pvx-hypervisors;node-exporter/);
  assert.match(other, /replacement: pvx\.monitoring\.svc:9221/);
  // Without hypervisors only the exporter's own job.
  const bare = parseYaml(renderNotes({ hypervisors: { enabled: false } }).split(/\n\n(?=- job_name:)/)[1]!.split(/\n\n/)[0]!) as ScrapeConfig[];
  assert.deepEqual(bare.map((j) => j.job_name), ['pve-exporter']);
});

/**
 * The targets `role: endpoints` yields for one Endpoints object and its Service: one per address
 * and port, labelled as Prometheus' kubernetes_sd documentation lists for that role.
 */
function endpointsTargets(ep: K8sObject, svc: K8sObject): { targets: string[]; labels: Record<string, string> }[] {
  const groups: { targets: string[]; labels: Record<string, string> }[] = [];
  const svcLabels: Record<string, string> = {};
  for (const [k, v] of Object.entries(svc.metadata.labels ?? {})) {
    const name = k.replace(/[^a-zA-Z0-9_]/g, '_');
    svcLabels[`__meta_kubernetes_service_label_${name}`] = v;
    svcLabels[`__meta_kubernetes_service_labelpresent_${name}`] = 'true';
  }
  for (const subset of ep.subsets ?? []) {
    for (const addr of subset.addresses) {
      for (const port of subset.ports) {
        const labels: Record<string, string> = {
          __meta_kubernetes_namespace: ep.metadata.namespace!,
          __meta_kubernetes_endpoints_name: ep.metadata.name,
          __meta_kubernetes_service_name: svc.metadata.name,
          __meta_kubernetes_endpoint_port_name: port.name,
          __meta_kubernetes_endpoint_port_protocol: port.protocol ?? 'TCP',
          __meta_kubernetes_endpoint_ready: 'true',
          ...svcLabels,
        };
        if (addr.hostname) labels.__meta_kubernetes_endpoint_hostname = addr.hostname;
        if (addr.targetRef) {
          labels.__meta_kubernetes_endpoint_address_target_kind = addr.targetRef.kind;
          labels.__meta_kubernetes_endpoint_address_target_name = addr.targetRef.name;
          if (addr.targetRef.kind === 'Pod') labels.__meta_kubernetes_pod_name = addr.targetRef.name;
        }
        groups.push({ targets: [`${addr.ip}:${port.port}`], labels });
      }
    }
  }
  return groups;
}

const haveTools = hasTool('prometheus') && hasTool('promtool') && findHelm() !== undefined;
let targets: Target[] = [];

before(async () => {
  if (!haveTools) return;
  const objects = renderChart();
  const svc = (name: string): K8sObject => {
    const s = objects.find((o) => o.kind === 'Service' && o.metadata.name === name);
    assert.ok(s, `chart renders no Service ${name}`);
    return s;
  };
  // The exporter: a real process on loopback standing for the pod behind the exporter Service.
  // Its module allows only 127.0.0.1, so the scrapes naming cluster DNS names are refused with
  // 403 before any lookup (nothing leaves loopback).
  exporter = await startExporter(scratch, { default: { ...VALUES.config.default, targets: ['127.0.0.1'] } });
  const [exporterIp, exporterPort] = exporter.address.split(':');
  const exporterSvc = svc(RELEASE);
  const exporterEndpoints: K8sObject = {
    kind: 'Endpoints',
    metadata: { name: RELEASE, namespace: NS },
    // What the endpoints controller makes of the Service's selector and the pod's port `http`.
    subsets: [{ addresses: [{ ip: exporterIp!, targetRef: { kind: 'Pod', name: 'pve-exporter-6d4cf9-abcde' } }], ports: [{ name: 'http', port: Number(exporterPort), protocol: 'TCP' }] }],
  };
  const hypEndpoints = objects.find((o) => o.kind === 'Endpoints');
  assert.ok(hypEndpoints, 'chart renders no hypervisor Endpoints');
  const groups = [...endpointsTargets(exporterEndpoints, exporterSvc), ...endpointsTargets(hypEndpoints, svc(`${RELEASE}-hypervisors`))];
  const sdFile = path.join(scratch, 'endpoints.json');
  writeFileSync(sdFile, JSON.stringify(groups));

  // The recipe with kubernetes_sd_configs swapped for that file, everything else as shipped
  // except the exporter Service's cluster DNS name (not resolvable here) and the intervals.
  const cfg = parseYaml(readFileSync(RECIPE, 'utf8').replaceAll(`${RELEASE}.${NS}.svc:9221`, exporter.address)) as {
    global: Record<string, string>;
    rule_files?: string[];
    scrape_configs: ScrapeConfig[];
  };
  cfg.global.scrape_interval = '1s';
  cfg.global.scrape_timeout = '1s';
  delete cfg.rule_files;
  for (const job of cfg.scrape_configs) {
    assert.deepEqual(job.kubernetes_sd_configs, [{ role: 'endpoints', namespaces: { names: [NS] } }], `${job.job_name}: discovery`);
    delete job.kubernetes_sd_configs;
    delete job.scrape_timeout;
    job.file_sd_configs = [{ files: [sdFile], refresh_interval: '1s' }];
  }
  const dir = path.join(scratch, 'prom');
  mkdirSync(dir);
  const text = stringify(cfg);
  const cfgFile = path.join(dir, 'check.yml');
  writeFileSync(cfgFile, text);
  const check = spawnSync('promtool', ['check', 'config', cfgFile], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  prom = await startPrometheus(dir, text);
  targets = await waitUntil(
    'the exporter scraped and all targets listed',
    async () => {
      const ts = await activeTargets(prom!.url);
      const self = ts.find((x) => x.scrapePool === 'pve-exporter');
      return ts.length === 1 + NODES.length + 1 + NODES.length && self?.health === 'up' ? ts : undefined;
    },
    60_000,
  );
});

const pool = (name: string): Target[] => targets.filter((x) => x.scrapePool === name).sort((a, b) => a.labels.instance!.localeCompare(b.labels.instance!));

test('pve-cluster: one hypervisor, asked by its cluster DNS name through the exporter Service', (t) => {
  if (!requireTool(t, 'prometheus') || !requireTool(t, 'promtool') || !requireHelm(t)) return;
  const cluster = pool('pve-cluster');
  assert.equal(cluster.length, 1);
  const url = new URL(cluster[0]!.scrapeUrl);
  assert.equal(url.host, exporter!.address);
  assert.equal(url.pathname, '/pve');
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    cluster: '1',
    module: 'default',
    node: '0',
    target: `pve1.${RELEASE}-hypervisors.${NS}.svc`,
  });
  assert.equal(cluster[0]!.labels.instance, 'pve1');
  assert.equal(cluster[0]!.labels.cluster, 'pvec');
  assert.equal(cluster[0]!.labels.job, 'pve-cluster');
});

test('pve-node: every hypervisor, per-node parameters, instance = node name; the exporter refuses names off its allow-list', async (t) => {
  if (!requireTool(t, 'prometheus') || !requireTool(t, 'promtool') || !requireHelm(t)) return;
  const nodes = pool('pve-node');
  assert.deepEqual(nodes.map((x) => x.labels.instance), NODES.map((n) => n.name));
  for (const [i, x] of nodes.entries()) {
    const url = new URL(x.scrapeUrl);
    assert.equal(url.host, exporter!.address);
    assert.equal(url.searchParams.get('target'), `${NODES[i]!.name}.${RELEASE}-hypervisors.${NS}.svc`);
    assert.equal(url.searchParams.get('cluster'), '0');
    assert.equal(url.searchParams.get('node'), '1');
    assert.equal(x.labels.pve_node, NODES[i]!.name);
  }
  // The chart's default allow-list holds these names; this test's exporter allows only
  // 127.0.0.1, and answers 403 without resolving them.
  const refused = await waitUntil(
    'a refused pve-node scrape',
    async () => (await activeTargets(prom!.url)).find((x) => x.scrapePool === 'pve-node' && /403/.test(x.lastError)),
    30_000,
  );
  assert.match(refused.lastError, /403/);
});

test('pve-exporter: the exporter pods behind its Service, scraped at /metrics; node: node_exporter on every hypervisor', (t) => {
  if (!requireTool(t, 'prometheus') || !requireTool(t, 'promtool') || !requireHelm(t)) return;
  const self = pool('pve-exporter');
  assert.equal(self.length, 1);
  assert.equal(self[0]!.scrapeUrl, `http://${exporter!.address}/metrics`);
  assert.equal(self[0]!.health, 'up');
  assert.equal(self[0]!.labels.pod, 'pve-exporter-6d4cf9-abcde');
  const node = pool('node');
  assert.deepEqual(node.map((x) => [x.labels.instance, x.scrapeUrl]), NODES.map((n) => [n.name, `http://${n.ip}:9100/metrics`]));
  for (const x of node) assert.equal(x.labels.cluster, 'pvec');
});
