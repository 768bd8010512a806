// The Helm chart deploy/helm/pve-exporter, linted and rendered by a real helm 3 binary (the pinned
// one of `npm run tools:helm`, or helm on PATH; see test/helpers/tools.ts), with the rendered
// objects checked field by field. Without helm these tests skip with the install hint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfigText } from '../src/config.ts';
import { findHelm, requireHelm } from './helpers/tools.ts';
import { ConfigMap, Endpoints, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { EndpointSlice } from 'kubernetes-models/discovery.k8s.io/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Probe, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHART = path.join(ROOT, 'deploy/helm/pve-exporter');
const NS = 'monitoring';
const RELEASE = 'pve';

const scratch = mkdtempSync(path.join(tmpdir(), 'pve-exporter-helm-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

const HELM = findHelm();

function helm(args: string[]): SpawnSyncReturns<string> {
  // Keep helm's cache/config/data out of $HOME.
  const env = {
    ...process.env,
    HELM_CACHE_HOME: path.join(scratch, 'cache'),
    HELM_CONFIG_HOME: path.join(scratch, 'config'),
    HELM_DATA_HOME: path.join(scratch, 'data'),
  };
  const r = spawnSync(HELM!, args, { encoding: 'utf8', env, timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
};

let valuesCount = 0;
function valuesFile(values: unknown): string {
  const f = path.join(scratch, `values-${++valuesCount}.json`);
  writeFileSync(f, JSON.stringify(values));
  return f;
}

/** helm template with value files (paths relative to the chart, or objects). */
function template(values: (string | object)[], extra: string[] = []): { r: SpawnSyncReturns<string>; objects: K8sObject[] } {
  const args = ['template', RELEASE, CHART, '--namespace', NS, ...extra];
  for (const v of values) args.push('-f', typeof v === 'string' ? path.join(CHART, v) : valuesFile(v));
  const r = helm(args);
  const objects: K8sObject[] = [];
  if (r.status === 0) {
    for (const doc of parseAllDocuments(r.stdout)) {
      assert.equal(doc.errors.length, 0, `invalid YAML from helm template: ${doc.errors.join('; ')}`);
      const o = doc.toJS() as K8sObject | null;
      if (o) objects.push(o);
    }
  }
  return { r, objects };
}

function render(...values: (string | object)[]): K8sObject[] {
  const { r, objects } = template(values);
  assert.equal(r.status, 0, r.stderr);
  // Properties every object must have.
  for (const o of objects) {
    assert.ok(o.apiVersion && o.kind && o.metadata?.name, `incomplete object ${JSON.stringify(o).slice(0, 200)}`);
    assert.equal(o.metadata.namespace, NS, `${o.kind}/${o.metadata.name} namespace`);
    assert.ok(o.metadata.name.length <= 63, `${o.kind}/${o.metadata.name} name longer than 63`);
    assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${o.kind} name`);
    assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm', `${o.kind} labels`);
  }
  return objects;
}

function only(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(found.length, 1, `expected one ${kind}${name ? `/${name}` : ''}, got ${found.map((o) => o.metadata.name).join(', ') || 'none'}`);
  return found[0]!;
}

const kinds = (objects: K8sObject[]): string[] => objects.map((o) => o.kind).sort();

function expectFailure(values: (string | object)[], message: RegExp): void {
  const { r } = template(values);
  assert.notEqual(r.status, 0, `helm template should fail for ${JSON.stringify(values)}`);
  assert.match(r.stderr, message);
}

const chartValues = (): Record<string, any> => parseYaml(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Record<string, any>;
const ciValues = (name: string): Record<string, any> => parseYaml(readFileSync(path.join(CHART, 'ci', name), 'utf8')) as Record<string, any>;

test('helm lint --strict passes for every ci/ value set and for the defaults', (t) => {
  if (!requireHelm(t)) return;
  const sets = readdirSync(path.join(CHART, 'ci')).filter((f) => f.endsWith('.yaml'));
  assert.ok(sets.length >= 4, `ci value sets: ${sets.join(', ')}`);
  for (const set of [undefined, ...sets]) {
    const r = helm(['lint', '--strict', CHART, ...(set ? ['-f', path.join(CHART, 'ci', set)] : [])]);
    assert.equal(r.status, 0, `${set ?? 'defaults'}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    assert.doesNotMatch(r.stdout, /\[(WARNING|ERROR)\]/, `${set}: ${r.stdout}`);
  }
});

test('helm lint rejects values that break the schema', (t) => {
  if (!requireHelm(t)) return;
  const r = helm(['lint', '--strict', CHART, '-f', valuesFile({ ...ciValues('default-values.yaml'), replicas: 2 })]);
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /Additional property replicas is not allowed/);
});

test('defaults alone: rendering stops with a message saying what to set', (t) => {
  if (!requireHelm(t)) return;
  expectFailure([], /no PVE credentials: set `config` \(the pve\.yml modules\) or `existingSecret`/);
});

test('defaults + one module: Deployment, Service and Secret with the hardening in place', (t) => {
  if (!requireHelm(t)) return;
  const objects = render('ci/default-values.yaml');
  assert.deepEqual(kinds(objects), ['Deployment', 'Secret', 'Service']);
  const fullname = `${RELEASE}-pve-exporter`;

  // Secret: pve.yml is the config from values, and the exporter's parser accepts it.
  const secret = only(objects, 'Secret', fullname);
  assert.equal(secret.type, 'Opaque');
  assert.deepEqual(Object.keys(secret.data), ['pve.yml']);
  const pveYml = Buffer.from(secret.data['pve.yml'], 'base64').toString('utf8');
  assert.deepEqual(parseYaml(pveYml), ciValues('default-values.yaml').config);
  const loaded = parseConfigText(pveYml, 'secret/pve.yml');
  assert.deepEqual([...loaded.modules.keys()], ['default']);
  assert.equal(loaded.modules.get('default')!.tokenValue, ciValues('default-values.yaml').config.default.token_value);
  assert.equal(loaded.modules.get('default')!.verifySsl, false);

  const deploy = only(objects, 'Deployment', fullname);
  const pod = deploy.spec.template.spec;
  assert.equal(deploy.spec.replicas, 1);
  assert.deepEqual(deploy.spec.selector.matchLabels, {
    'app.kubernetes.io/name': 'pve-exporter',
    'app.kubernetes.io/instance': RELEASE,
  });
  assert.equal(pod.automountServiceAccountToken, false);
  assert.deepEqual(pod.securityContext, {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    fsGroup: 65532,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  assert.equal(c.image, `ghcr.io/pve-exporter/pve-exporter:${parseYaml(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')).appVersion}`);
  assert.deepEqual(c.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
  });
  assert.deepEqual(c.args, ['--config.file=/etc/prometheus/pve.yml']);
  assert.deepEqual(c.ports, [{ name: 'http', containerPort: 9221, protocol: 'TCP' }]);
  assert.equal(c.livenessProbe.httpGet.path, '/-/healthy');
  assert.equal(c.livenessProbe.httpGet.port, 'http');
  assert.equal(c.readinessProbe.httpGet.path, '/-/ready');
  assert.equal(c.readinessProbe.httpGet.port, 'http');
  assert.deepEqual(c.resources, chartValues().resources);
  assert.ok(c.resources.limits.memory, 'memory limit');
  assert.deepEqual(c.volumeMounts, [{ name: 'config', mountPath: '/etc/prometheus', readOnly: true }]);
  assert.deepEqual(pod.volumes, [
    { name: 'config', secret: { secretName: fullname, defaultMode: 0o440, items: [{ key: 'pve.yml', path: 'pve.yml' }] } },
  ]);

  // The checksum annotation is the SHA-256 of the pve.yml in the Secret.
  const checksum = deploy.spec.template.metadata.annotations['checksum/config'];
  assert.equal(checksum, createHash('sha256').update(pveYml).digest('hex'));

  const svc = only(objects, 'Service', fullname);
  assert.equal(svc.spec.type, 'ClusterIP');
  assert.deepEqual(svc.spec.selector, deploy.spec.selector.matchLabels);
  assert.deepEqual(svc.spec.ports, [{ name: 'http', port: 9221, targetPort: 'http', protocol: 'TCP' }]);
});

test('the config checksum follows the config, so a token change rolls the pods', (t) => {
  if (!requireHelm(t)) return;
  const base = ciValues('default-values.yaml');
  const a = only(render(base), 'Deployment').spec.template.metadata.annotations['checksum/config'];
  const changed = structuredClone(base);
  changed.config.default.token_value = '99999999-2222-3333-4444-555555555555';
  const b = only(render(changed), 'Deployment').spec.template.metadata.annotations['checksum/config'];
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, b);
});

test('existingSecret: no Secret rendered, the pod mounts the named one by its key', (t) => {
  if (!requireHelm(t)) return;
  const objects = render('ci/existing-secret-values.yaml');
  assert.deepEqual(kinds(objects), ['Deployment', 'Service']);
  const deploy = only(objects, 'Deployment');
  assert.deepEqual(deploy.spec.template.spec.volumes[0].secret, {
    secretName: 'pve-exporter-credentials',
    defaultMode: 0o440,
    items: [{ key: 'config.yml', path: 'pve.yml' }],
  });
  assert.equal(deploy.spec.template.metadata.annotations, undefined, 'no checksum without a chart-managed Secret');
  expectFailure(['ci/existing-secret-values.yaml', 'ci/default-values.yaml'], /set either `config` or `existingSecret`, not both/);
});

test('ServiceMonitor and Probe objects: prober is the exporter Service, module and cluster/node params per target', (t) => {
  if (!requireHelm(t)) return;
  const values = ciValues('monitoring-values.yaml');
  const objects = render('ci/monitoring-values.yaml');
  assert.deepEqual(kinds(objects), ['Deployment', 'NetworkPolicy', 'Probe', 'Probe', 'Probe', 'Secret', 'Service', 'ServiceMonitor']);
  const svc = only(objects, 'Service');

  const sm = only(objects, 'ServiceMonitor');
  assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(sm.metadata.labels!.release, 'kube-prometheus-stack');
  // The selector matches the exporter Service's labels.
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>)) {
    assert.equal(svc.metadata.labels![k], v, `ServiceMonitor selector ${k}`);
  }
  assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NS] });
  assert.deepEqual(sm.spec.endpoints, [{ port: 'http', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }]);
  // job="pve-exporter", as the alert rules in deploy/prometheus expect, via the Service label.
  assert.equal(svc.metadata.labels![sm.spec.jobLabel], 'pve-exporter');

  // collectors: {config: false} becomes the exporter flag.
  assert.deepEqual(only(objects, 'Deployment').spec.template.spec.containers[0].args, [
    '--config.file=/etc/prometheus/pve.yml',
    '--no-collector.config',
  ]);

  const probes = objects.filter((o) => o.kind === 'Probe');
  const expected = values.probes.targets as {
    name: string;
    jobName?: string;
    module: string;
    hosts: string[];
    cluster?: boolean;
    node?: boolean;
    labels?: Record<string, string>;
  }[];
  assert.deepEqual(expected.map((e) => e.jobName), ['pve-cluster', 'pve-node', undefined]);
  assert.equal(probes.length, expected.length);
  for (const target of expected) {
    const p = only(objects, 'Probe', `${RELEASE}-pve-exporter-${target.name}`);
    assert.equal(p.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(p.metadata.labels!.release, 'kube-prometheus-stack');
    assert.equal(p.spec.jobName, target.jobName ?? 'pve');
    assert.deepEqual(p.spec.prober, { url: `${svc.metadata.name}.${NS}.svc:9221`, scheme: 'http', path: '/pve' });
    assert.equal(p.spec.module, target.module);
    assert.ok(Object.keys(values.config).includes(p.spec.module), 'module exists in pve.yml');
    assert.deepEqual(p.spec.targets.staticConfig.static, target.hosts);
    assert.deepEqual(p.spec.targets.staticConfig.labels, target.labels);
    const params = Object.fromEntries(
      (p.spec.targets.staticConfig.relabelingConfigs as { targetLabel: string; replacement: string }[]).map((r) => [r.targetLabel, r.replacement]),
    );
    assert.deepEqual(params, {
      __param_cluster: target.cluster === false ? '0' : '1',
      __param_node: target.node === false ? '0' : '1',
    });
    assert.equal(p.spec.interval, '60s');
    assert.equal(p.spec.scrapeTimeout, '30s');
  }

  const np = only(objects, 'NetworkPolicy');
  assert.deepEqual(np.spec.podSelector.matchLabels, only(objects, 'Deployment').spec.selector.matchLabels);
  assert.deepEqual(np.spec.ingress, [{ ports: [{ port: 'http', protocol: 'TCP' }], from: values.networkPolicy.from }]);

  expectFailure([{ ...ciValues('default-values.yaml'), probes: { enabled: true } }], /probes\.enabled is true but probes\.targets is empty/);
  expectFailure(
    [{ ...ciValues('default-values.yaml'), probes: { enabled: true, targets: [{ name: 'x', module: 'default', hosts: [] }] } }],
    /probes\.targets\.0\.hosts: Array must have at least 1 items/,
  );
});

test('hypervisors: headless Service, Endpoints with DNS host names, node_exporter ServiceMonitor', (t) => {
  if (!requireHelm(t)) return;
  const values = ciValues('hypervisors-values.yaml');
  const objects = render('ci/hypervisors-values.yaml');
  assert.deepEqual(kinds(objects), ['Deployment', 'Endpoints', 'Secret', 'Service', 'Service', 'ServiceMonitor']);
  const name = `${RELEASE}-pve-exporter-hypervisors`;
  const headless = only(objects, 'Service', name);
  assert.equal(headless.spec.clusterIP, 'None');
  assert.equal(headless.spec.selector, undefined, 'a selector would make Kubernetes manage the addresses');
  assert.deepEqual(headless.spec.ports, [{ name: 'node-exporter', port: 9100, targetPort: 9100, protocol: 'TCP' }]);

  const ep = only(objects, 'Endpoints', name);
  assert.equal(ep.subsets.length, 1);
  assert.deepEqual(
    ep.subsets[0].addresses,
    values.hypervisors.nodes.map((n: { name: string; ip: string }) => ({ ip: n.ip, hostname: n.name })),
  );
  assert.deepEqual(ep.subsets[0].ports, [{ name: 'node-exporter', port: 9100, protocol: 'TCP' }]);

  const sm = only(objects, 'ServiceMonitor', name);
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>)) {
    assert.equal(headless.metadata.labels![k], v, `hypervisor ServiceMonitor selector ${k}`);
  }
  // ...and it does not select the exporter's own Service.
  const exporterSvc = only(objects, 'Service', `${RELEASE}-pve-exporter`);
  assert.ok(
    Object.entries(sm.spec.selector.matchLabels as Record<string, string>).some(([k, v]) => exporterSvc.metadata.labels![k] !== v),
    'hypervisor ServiceMonitor would also select the exporter Service',
  );
  assert.equal(sm.spec.endpoints[0].port, 'node-exporter');
  assert.equal(headless.metadata.labels![sm.spec.jobLabel], 'node', 'node_exporter series get job="node"');
  assert.ok(
    sm.spec.endpoints[0].relabelings.some(
      (r: { sourceLabels: string[]; targetLabel: string }) =>
        r.sourceLabels[0] === '__meta_kubernetes_endpoint_hostname' && r.targetLabel === 'instance',
    ),
  );

  // The EndpointSlice variant.
  const sliceObjects = render('ci/hypervisors-values.yaml', { hypervisors: { endpointsKind: 'EndpointSlice' } });
  assert.equal(sliceObjects.filter((o) => o.kind === 'Endpoints').length, 0);
  const slice = only(sliceObjects, 'EndpointSlice');
  assert.equal(slice.apiVersion, 'discovery.k8s.io/v1');
  assert.equal(slice.metadata.labels!['kubernetes.io/service-name'], name);
  assert.notEqual(slice.metadata.labels!['endpointslice.kubernetes.io/managed-by'], 'endpointslice-controller.k8s.io');
  assert.equal(slice.addressType, 'IPv4');
  assert.deepEqual(
    slice.endpoints.map((e: { addresses: string[]; hostname: string }) => [e.hostname, e.addresses]),
    values.hypervisors.nodes.map((n: { name: string; ip: string }) => [n.name, [n.ip]]),
  );
  const v6 = render('ci/hypervisors-values.yaml', {
    hypervisors: { endpointsKind: 'EndpointSlice', nodes: [{ name: 'pve1', ip: '2001:db8::11' }] },
  });
  assert.equal(only(v6, 'EndpointSlice').addressType, 'IPv6');
  expectFailure(
    ['ci/hypervisors-values.yaml', { hypervisors: { endpointsKind: 'EndpointSlice', nodes: [{ name: 'a', ip: '192.0.2.1' }, { name: 'b', ip: '2001:db8::1' }] } }],
    /an EndpointSlice holds one address family/,
  );
  expectFailure(['ci/hypervisors-values.yaml', { hypervisors: { nodes: [{ name: 'pve1', ip: '300.1.1.1' }] } }], /hypervisors\.nodes\.0\.ip/);
  expectFailure(['ci/hypervisors-values.yaml', { hypervisors: { nodes: [{ name: 'PVE_1', ip: '192.0.2.1' }] } }], /hypervisors\.nodes\.0\.name/);
});

test('the schema rejects modules the exporter would reject', (t) => {
  if (!requireHelm(t)) return;
  const module = ciValues('default-values.yaml').config.default;
  const cases: [object, RegExp][] = [
    [{ config: { a: { user: 'monitoring@pve', token_name: 'exporter' } } }, /config\.a: token_value is required/],
    [{ config: { a: { ...module, password: 'x' } } }, /config\.a: Must validate one and only one schema/],
    [{ config: { a: { ...module, verify_tls: false } } }, /config\.a: Additional property verify_tls is not allowed/],
    [{ config: { a: { ...module, user: 'monitoring' } } }, /config\.a\.user: Does not match pattern/],
    [{ config: { a: { ...module, port: 70000 } } }, /config\.a\.port: Must be less than or equal to 65535/],
    [{ ...ciValues('default-values.yaml'), extraArgs: ['no-dashes'] }, /extraArgs\.0: Does not match pattern/],
  ];
  for (const [values, message] of cases) expectFailure([values], message);
});

test('long release names still give valid, distinct object names', (t) => {
  if (!requireHelm(t)) return;
  const long = helm(['template', 'a-very-long-release-name-for-a-production-cluster-xyz', CHART, '-n', NS,
    '-f', path.join(CHART, 'ci/monitoring-values.yaml'), '-f', path.join(CHART, 'ci/hypervisors-values.yaml')]);
  assert.equal(long.status, 0, long.stderr);
  const names = new Set<string>();
  for (const doc of parseAllDocuments(long.stdout)) {
    const o = doc.toJS() as K8sObject | null;
    if (!o) continue;
    assert.ok(o.metadata.name.length <= 63, `${o.kind}/${o.metadata.name}`);
    assert.doesNotMatch(o.metadata.name, /-$/);
    names.add(`${o.kind}/${o.metadata.name}`);
  }
  assert.ok(names.size >= 10, [...names].join(', '));
});

test('the chart README documents every top-level value', () => {
  const readme = readFileSync(path.join(CHART, 'README.md'), 'utf8');
  const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')) as { properties: Record<string, unknown> };
  for (const key of Object.keys(chartValues())) {
    assert.ok(key in schema.properties, `values.schema.json lacks ${key}`);
    assert.ok(readme.includes(`\`${key}`), `README.md does not document ${key}`);
  }
  assert.ok(existsSync(path.join(CHART, 'templates/NOTES.txt')));
  assert.match(readme, /npm run tools:helm/);
});

/** pve.yml from the chart-managed Secret of a render. */
function renderedPveYml(objects: K8sObject[]): Record<string, Record<string, unknown>> {
  const secret = only(objects, 'Secret');
  return parseYaml(Buffer.from(secret.data['pve.yml'], 'base64').toString('utf8')) as Record<string, Record<string, unknown>>;
}

test('ca from a Secret: mounted read-only and set as ca_file (verify_ssl true) of modules that verify', (t) => {
  if (!requireHelm(t)) return;
  const values = ciValues('tls-values.yaml');
  const objects = render('ci/tls-values.yaml');
  const pod = only(objects, 'Deployment').spec.template.spec;
  assert.deepEqual(pod.volumes[1], {
    name: 'ca',
    secret: { secretName: 'pve-root-ca', defaultMode: 0o444, items: [{ key: 'pve-root-ca.pem', path: 'ca.pem' }] },
  });
  assert.deepEqual(pod.containers[0].volumeMounts[1], { name: 'ca', mountPath: '/etc/pve-exporter/ca', readOnly: true });
  const pveYml = renderedPveYml(objects);
  // Verifying modules get the CA; the one that pins with verify_ssl: false is left as written.
  assert.equal(pveYml['cluster-ca']!.ca_file, '/etc/pve-exporter/ca/ca.pem');
  assert.equal(pveYml['cluster-ca']!.verify_ssl, true);
  assert.equal(pveYml['cluster-ca']!.server_name, 'pve.example.com');
  assert.equal(pveYml['own-list']!.ca_file, '/etc/pve-exporter/ca/ca.pem');
  assert.equal(pveYml.pinned!.ca_file, undefined);
  assert.equal(pveYml.pinned!.verify_ssl, false);
  assert.deepEqual(pveYml.pinned!.fingerprint, values.config.pinned.fingerprint);
  // A pinning module gets no CA either (the pin replaces chain validation), even with verify_ssl on.
  const pinnedOn = renderedPveYml(render('ci/tls-values.yaml', { config: { pinned: { verify_ssl: true } } }));
  assert.equal(pinnedOn.pinned!.ca_file, undefined);

  // The exporter loads that pve.yml as the pod sees it: the CA volume at /etc/pve-exporter/ca.
  const caDir = mkdtempSync(path.join(scratch, 'ca-'));
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', path.join(caDir, 'ca.key'), '-out', path.join(caDir, 'ca.pem'), '-subj', '/CN=PVE Cluster Manager CA', '-days', '2'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  const text = Buffer.from(only(objects, 'Secret').data['pve.yml'], 'base64').toString('utf8').replaceAll('/etc/pve-exporter/ca/', `${caDir}/`);
  const loaded = parseConfigText(text, 'secret/pve.yml');
  const clusterCa = loaded.modules.get('cluster-ca')!;
  assert.equal(clusterCa.caFile, path.join(caDir, 'ca.pem'));
  assert.equal(clusterCa.verifySsl, true);
  assert.equal(clusterCa.serverName, 'pve.example.com');
  assert.equal(clusterCa.targets?.allows(`pve1.${RELEASE}-pve-exporter-hypervisors.${NS}.svc`, 8006), true);
  assert.equal(clusterCa.targets?.allows('catcher.example.org', 8006), false);
  assert.equal(loaded.modules.get('pinned')!.fingerprints.length, 2);
  assert.equal(loaded.modules.get('own-list')!.targets?.allows('pve9.example.com', 8443), true);
  assert.equal(loaded.modules.get('own-list')!.targets?.allows('pve9.example.com', 8006), false);
  assert.deepEqual(loaded.warnings, [], 'every module has an allow-list and a usable CA or pin');

  // A module's own ca_file is kept.
  const own = render('ci/tls-values.yaml', { config: { 'cluster-ca': { ca_file: '/etc/prometheus/other.pem' } } });
  assert.equal(renderedPveYml(own)['cluster-ca']!.ca_file, '/etc/prometheus/other.pem');
});

test('ca from a ConfigMap, and not both', (t) => {
  if (!requireHelm(t)) return;
  const verifying = { ...ciValues('default-values.yaml').config.default };
  delete verifying.verify_ssl;
  const objects = render({ config: { default: verifying }, ca: { configMapName: 'pve-root-ca' } });
  const pod = only(objects, 'Deployment').spec.template.spec;
  assert.deepEqual(pod.volumes[1], {
    name: 'ca',
    configMap: { name: 'pve-root-ca', defaultMode: 0o444, items: [{ key: 'ca.pem', path: 'ca.pem' }] },
  });
  assert.equal(renderedPveYml(objects).default!.ca_file, '/etc/pve-exporter/ca/ca.pem');
  assert.equal(renderedPveYml(objects).default!.verify_ssl, true);
  // A module with verify_ssl: false keeps it and gets no ca_file.
  const off = renderedPveYml(render('ci/default-values.yaml', { ca: { configMapName: 'pve-root-ca' } }));
  assert.equal(off.default!.ca_file, undefined);
  assert.equal(off.default!.verify_ssl, false);
  expectFailure(['ci/default-values.yaml', { ca: { configMapName: 'a', secretName: 'b' } }], /set ca\.secretName or ca\.configMapName, not both/);
  // Without a CA nothing is mounted.
  const plain = only(render('ci/default-values.yaml'), 'Deployment').spec.template.spec;
  assert.equal(plain.volumes.length, 1);
  assert.equal(plain.containers[0].volumeMounts.length, 1);
});

test('targets allow-list: own list kept, else allowedTargets, else the hypervisors and the probe hosts', (t) => {
  if (!requireHelm(t)) return;
  const values = ciValues('tls-values.yaml');
  const hyp = `${RELEASE}-pve-exporter-hypervisors`;
  const fromHypervisors = [`pve1.${hyp}.${NS}.svc`, '192.0.2.11', `pve2.${hyp}.${NS}.svc`, '192.0.2.12'];
  const pveYml = renderedPveYml(render('ci/tls-values.yaml'));
  assert.deepEqual(pveYml['own-list']!.targets, values.config['own-list'].targets);
  assert.deepEqual(pveYml['cluster-ca']!.targets, fromHypervisors);
  assert.deepEqual(pveYml.pinned!.targets, fromHypervisors);

  // allowedTargets replaces the derived list.
  const explicit = renderedPveYml(render('ci/tls-values.yaml', { allowedTargets: ['10.0.0.0/24'] }));
  assert.deepEqual(explicit.pinned!.targets, ['10.0.0.0/24']);
  assert.deepEqual(explicit['own-list']!.targets, values.config['own-list'].targets);

  // Probe hosts count for the module they scrape, and only for it.
  const monitoring = renderedPveYml(render('ci/monitoring-values.yaml'));
  assert.deepEqual(monitoring['cluster-a']!.targets, ['pve-a1.example.com', 'pve-a2.example.com', 'pve-a3.example.com']);
  assert.deepEqual(monitoring['cluster-b']!.targets, ['pve-b1.example.com']);

  // Nothing to derive from: no targets key, the module stays open (the exporter warns).
  assert.equal(renderedPveYml(render('ci/default-values.yaml')).default!.targets, undefined);
});

test('the schema accepts fingerprint lists, server_name, gzip and targets, and rejects malformed ones', (t) => {
  if (!requireHelm(t)) return;
  const module = ciValues('default-values.yaml').config.default;
  const fp = ciValues('tls-values.yaml').config.pinned.fingerprint[0];
  render({ config: { a: { ...module, fingerprint: fp } } });
  render({ config: { a: { ...module, fingerprint: [fp, fp.replaceAll(':', '')] } } });
  render({ config: { a: { ...module, gzip: false } } });
  const cases: [object, RegExp][] = [
    [{ config: { a: { ...module, fingerprint: [] } } }, /config\.a\.fingerprint/],
    [{ config: { a: { ...module, fingerprint: 'AA:BB' } } }, /config\.a\.fingerprint/],
    [{ config: { a: { ...module, server_name: '' } } }, /config\.a\.server_name/],
    [{ config: { a: { ...module, gzip: 'yes' } } }, /config\.a\.gzip: Invalid type/],
    [{ config: { a: { ...module, targets: 'pve1.example.com' } } }, /config\.a\.targets: Invalid type/],
    [{ config: { a: module }, allowedTargets: ['two words'] }, /allowedTargets\.0: Does not match pattern/],
    [{ config: { a: module }, ca: { secretName: 'x', key: '' } }, /ca\.key/],
  ];
  for (const [values, message] of cases) expectFailure([values], message);
});

/**
 * NOTES.txt as helm renders it after an install. `helm template` skips NOTES.txt, so a copy of
 * the chart feeds the file through `tpl` inside a ConfigMap, with the chart's own helpers.
 */
function renderNotes(values: object): string {
  const copy = path.join(scratch, `chart-notes-${++valuesCount}`);
  cpSync(CHART, copy, { recursive: true });
  cpSync(path.join(copy, 'templates/NOTES.txt'), path.join(copy, 'notes-under-test.txt'));
  writeFileSync(
    path.join(copy, 'templates/notes-under-test.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\ndata:\n  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}\n',
  );
  const r = helm(['template', RELEASE, copy, '--namespace', NS, '-f', valuesFile(values), '--show-only', 'templates/notes-under-test.yaml']);
  assert.equal(r.status, 0, r.stderr);
  return (parseYaml(r.stdout) as { data: { notes: string } }).data.notes;
}

test('NOTES warn about modules without an allow-list, and only about those', (t) => {
  if (!requireHelm(t)) return;
  const open = renderNotes(ciValues('default-values.yaml'));
  assert.match(open, /WARNING: module\(s\) default have no targets allow-list/);
  const closed = renderNotes(ciValues('tls-values.yaml'));
  assert.doesNotMatch(closed, /WARNING/);
  const mixed = renderNotes({ config: { ...ciValues('default-values.yaml').config, b: { ...ciValues('default-values.yaml').config.default, targets: ['pve1'] } } });
  assert.match(mixed, /WARNING: module\(s\) default have no/);
});

// ---- Kubernetes schemas: every rendered object validated against the API's OpenAPI schemas ----
// kubernetes-models ships the Kubernetes (and, in @kubernetes-models/prometheus-operator, the
// Prometheus Operator CRD) schemas with an ajv validator, offline.

const MODELS: Record<string, { validate(o: K8sObject): void }> = {
  'v1/ConfigMap': { validate: (o) => new ConfigMap(o as never).validate() },
  'v1/Endpoints': { validate: (o) => new Endpoints(o as never).validate() },
  'v1/Secret': { validate: (o) => new Secret(o as never).validate() },
  'v1/Service': { validate: (o) => new Service(o as never).validate() },
  'apps/v1/Deployment': { validate: (o) => new Deployment(o as never).validate() },
  'discovery.k8s.io/v1/EndpointSlice': { validate: (o) => new EndpointSlice(o as never).validate() },
  'networking.k8s.io/v1/NetworkPolicy': { validate: (o) => new NetworkPolicy(o as never).validate() },
  'monitoring.coreos.com/v1/ServiceMonitor': { validate: (o) => new ServiceMonitor(o as never).validate() },
  'monitoring.coreos.com/v1/Probe': { validate: (o) => new Probe(o as never).validate() },
};

function validateObjects(objects: K8sObject[], what: string): void {
  for (const o of objects) {
    const model = MODELS[`${o.apiVersion}/${o.kind}`];
    assert.ok(model, `${what}: no schema for ${o.apiVersion} ${o.kind}`);
    try {
      model.validate(o);
    } catch (err) {
      assert.fail(`${what}: ${o.kind}/${o.metadata.name} does not match the Kubernetes schema: ${String(err)}`);
    }
  }
}

const EXAMPLES = path.join(CHART, 'examples');

test('every rendered object of every ci/ and examples/ value set matches its Kubernetes schema', (t) => {
  if (!requireHelm(t)) return;
  const sets: (string | object)[][] = readdirSync(path.join(CHART, 'ci')).filter((f) => f.endsWith('.yaml')).map((f) => [`ci/${f}`]);
  sets.push(['ci/hypervisors-values.yaml', { hypervisors: { endpointsKind: 'EndpointSlice' } }]);
  sets.push(['ci/monitoring-values.yaml', 'ci/hypervisors-values.yaml', 'ci/tls-values.yaml', 'ci/extras-values.yaml']);
  for (const env of ['prod', 'staging']) sets.push([path.join(EXAMPLES, 'values-common.yaml'), path.join(EXAMPLES, `values-${env}.yaml`)]);
  const seen = new Set<string>();
  for (const set of sets) {
    const objects = render(...set.map((v) => (typeof v === 'string' && v.startsWith('/') ? path.relative(CHART, v) : v)));
    validateObjects(objects, JSON.stringify(set));
    for (const o of objects) seen.add(o.kind);
  }
  // All the chart's kinds were among them.
  assert.deepEqual([...seen].sort(), ['ConfigMap', 'Deployment', 'EndpointSlice', 'Endpoints', 'NetworkPolicy', 'Probe', 'Secret', 'Service', 'ServiceMonitor']);
});

test('the schema check catches what helm and the values schema let through', (t) => {
  if (!requireHelm(t)) return;
  // A VolumeMount without mountPath and an env entry without name render fine...
  const objects = render('ci/default-values.yaml', { extraVolumeMounts: [{ name: 'x' }], env: [{ value: 'no name' }] });
  const deploy = only(objects, 'Deployment');
  assert.throws(() => MODELS['apps/v1/Deployment']!.validate(deploy), /mountPath/);
  assert.throws(() => validateObjects(objects, 'broken'), /Deployment\/pve-pve-exporter does not match the Kubernetes schema/);
});

test('env, envFrom, extra volumes and mounts reach the pod next to the chart\'s own', (t) => {
  if (!requireHelm(t)) return;
  const values = ciValues('extras-values.yaml');
  const pod = only(render('ci/extras-values.yaml'), 'Deployment').spec.template.spec;
  const c = pod.containers[0];
  assert.deepEqual(c.env, values.env);
  assert.deepEqual(c.envFrom, values.envFrom);
  assert.deepEqual(c.volumeMounts, [{ name: 'config', mountPath: '/etc/prometheus', readOnly: true }, ...values.extraVolumeMounts]);
  assert.deepEqual(pod.volumes.slice(1), values.extraVolumes);
  assert.equal(pod.volumes[0].name, 'config');
  assert.ok(c.args.includes('--web.config.file=/etc/pve-exporter/web/web-config.yml'));
  // With the CA as well: the chart's mounts first, the extra ones after.
  const both = only(render('ci/extras-values.yaml', { ca: { secretName: 'pve-root-ca' } }), 'Deployment').spec.template.spec;
  assert.deepEqual(both.volumes.map((v: { name: string }) => v.name), ['config', 'ca', 'web-config']);
  assert.deepEqual(both.containers[0].volumeMounts.map((v: { name: string }) => v.name), ['config', 'ca', 'web-config']);
  // Off by default.
  const plain = only(render('ci/default-values.yaml'), 'Deployment').spec.template.spec.containers[0];
  assert.equal(plain.envFrom, undefined);
});

test('grafanaDashboard: a ConfigMap with the sidecar label holding deploy/grafana/pve-exporter.json, also in the packaged chart', (t) => {
  if (!requireHelm(t)) return;
  const source = readFileSync(path.join(ROOT, 'deploy/grafana/pve-exporter.json'), 'utf8');
  // One source of truth: the chart's file is that file (a symlink; helm reads through it).
  assert.equal(readFileSync(path.join(CHART, 'dashboards/pve-exporter.json'), 'utf8'), source);
  const cm = only(render('ci/extras-values.yaml').filter((o) => o.kind === 'ConfigMap'), 'ConfigMap');
  assert.equal(cm.metadata.name, `${RELEASE}-pve-exporter-dashboard`);
  assert.equal(cm.metadata.labels!.grafana_dashboard, '1');
  assert.equal(cm.metadata.annotations!.grafana_folder, 'Proxmox');
  assert.deepEqual(Object.keys(cm.data), ['pve-exporter.json']);
  assert.equal(cm.data['pve-exporter.json'], source);
  assert.ok(JSON.parse(cm.data['pve-exporter.json']).panels.length > 0);
  // The sidecar provisions files as they are: no import-time ${DS_...} inputs may be left open.
  assert.deepEqual(JSON.parse(source).__inputs ?? [], []);
  // The namespace value moves it (e.g. to Grafana's), the default is the release's.
  const inRelease = render('ci/default-values.yaml', { grafanaDashboard: { enabled: true } }).filter((o) => o.kind === 'ConfigMap');
  assert.equal(inRelease.length, 1);
  assert.equal(inRelease[0]!.metadata.namespace, NS);
  assert.equal(render('ci/default-values.yaml').filter((o) => o.kind === 'ConfigMap').length, 0);
  const moved = template(['ci/extras-values.yaml', { grafanaDashboard: { namespace: 'grafana' } }]);
  assert.equal(moved.r.status, 0, moved.r.stderr);
  assert.equal(moved.objects.find((o) => o.kind === 'ConfigMap')!.metadata.namespace, 'grafana');

  // helm package stores the file's content, not a dangling link.
  const out = path.join(scratch, 'package');
  const pkg = helm(['package', CHART, '-d', out]);
  assert.equal(pkg.status, 0, pkg.stderr);
  const tgz = readdirSync(out).find((f) => f.endsWith('.tgz'))!;
  const unpack = spawnSync('tar', ['-xzf', path.join(out, tgz), '-C', out], { encoding: 'utf8' });
  assert.equal(unpack.status, 0, unpack.stderr);
  assert.equal(readFileSync(path.join(out, 'pve-exporter/dashboards/pve-exporter.json'), 'utf8'), source);
  assert.equal(existsSync(path.join(out, 'pve-exporter/examples')), false, 'examples/ is not part of the package');
});

test('the chart README carries install, upgrade and uninstall, per-environment values and the NetworkPolicy advice', () => {
  const readme = readFileSync(path.join(CHART, 'README.md'), 'utf8');
  for (const needle of [
    'helm upgrade --install pve-exporter deploy/helm/pve-exporter -n monitoring -f examples/values-common.yaml -f examples/values-prod.yaml',
    'helm uninstall pve-exporter -n monitoring',
    'values-staging.yaml',
    "Prometheus' namespace",
  ]) assert.ok(readme.includes(needle), `README lacks: ${needle}`);
});

test('NOTES: a NetworkPolicy without peers gets the advice to deploy next to Prometheus', (t) => {
  if (!requireHelm(t)) return;
  const open = renderNotes({ ...ciValues('default-values.yaml'), networkPolicy: { enabled: true } });
  assert.match(open, /networkPolicy\.enabled without networkPolicy\.from admits any peer on port 9221/);
  assert.match(open, /deploy\s+the chart in Prometheus' namespace/);
  const limited = renderNotes({ ...ciValues('default-values.yaml'), networkPolicy: { enabled: true, from: [{ podSelector: { matchLabels: { app: 'prometheus' } } }] } });
  assert.doesNotMatch(limited, /admits any peer/);
});
