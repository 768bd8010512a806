// The two recipes of deploy/prometheus/nat for a PVE site behind NAT with Prometheus on a VPS,
// each run with two real Prometheus processes on loopback: simulator (every node on its own
// loopback address) -> pve-exporter (child process) -> home Prometheus -> VPS Prometheus.
//   federation: home Prometheus (external_labels site=home) <- VPS pulls /federate, honor_labels
//   agent:      home Prometheus in agent mode -> remote write over TLS + basic auth -> VPS
// The shipped files are used as they are except for what loopback forces: addresses, intervals,
// SD refresh, and for the agent's TLS the test CA and password file. The VPS must then hold the
// PVE series with site="home" and the home jobs' labels.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import bcrypt from 'bcryptjs';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { hasTool, requireTool } from './helpers/tools.ts';
import { getFreePort, waitForHttp } from './helpers/net.ts';
import { makeTestPki } from './helpers/test-pki.ts';
import { promDir } from './helpers/prom-expressions.ts';
import { moduleFor, startChild, startExporter, waitUntil, type Child, type Exporter, type Sample } from './helpers/prom-stack.ts';

const HINT = 'apt-get install prometheus';
const haveTools = hasTool('promtool') && hasTool('prometheus');
const NAT = path.join(promDir, 'nat');
const PVE_JOBS = ['pve-cluster', 'pve-exporter', 'pve-node'];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Config = { [k: string]: Json } & {
  global: Record<string, Json>;
  scrape_configs: ({ [k: string]: Json } & { job_name: string; http_sd_configs?: { [k: string]: Json }[] })[];
  remote_write?: { [k: string]: Json }[];
};

/**
 * A shipped recipe with exact placeholder strings replaced (each must occur, none may be left),
 * 1s intervals and a 1s SD refresh. Everything else is used as shipped.
 */
function recipe(file: string, replace: Record<string, string>): Config {
  let text = readFileSync(path.join(NAT, file), 'utf8');
  for (const [from, to] of Object.entries(replace)) {
    assert.ok(text.includes(from), `${file}: placeholder ${from} not found`);
    text = text.replaceAll(from, to);
  }
  const cfg = YAML.parse(text) as Config;
  cfg.global.scrape_interval = '1s';
  cfg.global.scrape_timeout = '1s';
  if ('evaluation_interval' in cfg.global) cfg.global.evaluation_interval = '1s';
  for (const job of cfg.scrape_configs ?? []) {
    delete job.scrape_interval;
    delete job.scrape_timeout;
    for (const sd of job.http_sd_configs ?? []) sd.refresh_interval = '1s';
  }
  return cfg;
}

interface Prom extends Child {
  url: string;
}

/** A Prometheus process on a free loopback port; `args` beyond the listen address and config. */
async function startProm(dir: string, name: string, cfg: Config, args: string[], fetchInit: RequestInit & { scheme?: string } = {}): Promise<Prom> {
  const home = path.join(dir, name);
  mkdirSync(home, { recursive: true });
  const file = path.join(home, 'prometheus.yml');
  writeFileSync(file, YAML.stringify(cfg, { aliasDuplicateObjects: false }));
  const port = await getFreePort();
  const child = startChild('prometheus', [`--config.file=${file}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', ...args], home);
  const url = `${fetchInit.scheme ?? 'http'}://127.0.0.1:${port}`;
  if (fetchInit.scheme === 'https') {
    // The VPS behind TLS + basic auth: wait on the port by an authenticated query instead.
    const headers = fetchInit.headers;
    await waitUntil(`${name} ready`, async () => (await promFetch(`${url}/-/ready`, { headers })).ok, 30_000).catch(async (err: Error) => {
      await child.stop();
      throw new Error(`${err.message}\n${child.output()}`);
    });
  } else {
    await waitForHttp(`${url}/-/ready`, 30_000).catch(async (err: Error) => {
      await child.stop();
      throw new Error(`${name} did not start: ${err.message}\n${child.output()}`);
    });
  }
  return { ...child, url };
}

// fetch() has no per-request CA; the VPS test certificate is trusted through the undici
// dispatcher the test builds from the test CA.
let promFetch: (url: string, init?: RequestInit) => Promise<Response> = (url, init) => fetch(url, init);

async function instantQuery(prom: Prom, expr: string, init: RequestInit = {}): Promise<Sample[]> {
  const res = await promFetch(`${prom.url}/api/v1/query`, {
    ...init,
    method: 'POST',
    headers: { ...(init.headers as Record<string, string> | undefined), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ query: expr }),
  });
  const body = (await res.json()) as { status: string; error?: string; data: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? res.status}`);
  return body.data.result;
}

let tmp = '';
let sim: Simulator | undefined;
let exporter: Exporter | undefined;
let seed = '';
let clusterName = '';
const children: Child[] = [];

before(async () => {
  if (!haveTools) return;
  tmp = mkdtempSync(path.join(os.tmpdir(), 'recipes-nat-'));
  sim = await startSimulator({ loopbackNodes: true });
  seed = sim.nodeAddresses.get('pve1')!;
  exporter = await startExporter(tmp, { default: moduleFor(sim) });
  // The PVE cluster name as /pve/sd reports it: the recipes' static `cluster: homelab` of the
  // pve-cluster job stands for it, and must equal what the pve-node job gets from discovery.
  const sd = (await (await fetch(`${exporter.url}/pve/sd?target=${seed}`)).json()) as { labels: Record<string, string> }[];
  clusterName = sd[0]!.labels.__meta_pve_cluster!;
  assert.ok(clusterName, 'no cluster name from /pve/sd');
});

after(async () => {
  for (const c of children.reverse()) await c.stop();
  await exporter?.stop();
  await sim?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** What the home Prometheus sees directly from the exporter, for comparison with the VPS. */
function homeReplacements(): Record<string, string> {
  return { '127.0.0.1:9221': exporter!.address, 'pve1.home.arpa': seed, 'cluster: homelab': `cluster: ${clusterName}` };
}

/** The VPS has the PVE series of all three jobs, each with site="home" and the home labels. */
async function assertVpsHasHomeSeries(vps: Prom, init: RequestInit = {}): Promise<void> {
  const nodes = [...sim!.nodeAddresses.values()].sort();
  // Every per-node target of the home side arrived, with its instance (the PVE host) intact.
  const perNode = await waitUntil(
    'per-node up series of every node on the VPS',
    async () => {
      const r = await instantQuery(vps, 'up{job="pve-node",site="home"} == 1', init);
      return r.length === nodes.length ? r : undefined;
    },
    60_000,
  );
  assert.deepEqual(perNode.map((s) => s.metric.instance).sort(), nodes);
  for (const s of perNode) assert.equal(s.metric.cluster, clusterName, 'cluster label from /pve/sd');

  const jobs = await waitUntil(
    'pve_up and the exporter self-metrics on the VPS',
    async () => {
      const r = await instantQuery(vps, 'count by (job, site) ({job=~"pve-.*", site="home"})', init);
      return r.length === PVE_JOBS.length ? r : undefined;
    },
    60_000,
  );
  assert.deepEqual(jobs.map((s) => s.metric.job).sort(), PVE_JOBS);

  // The cluster-wide data: pve_up for the reference scenario's guests, once each (no duplicate
  // per node), instance = the seed node, cluster label as configured at home.
  const up = await instantQuery(vps, 'pve_up{site="home"}', init);
  assert.ok(up.length > 0, 'no pve_up on the VPS');
  const ids = up.map((s) => s.metric.id);
  assert.equal(new Set(ids).size, ids.length, `pve_up duplicated: ${ids.join(', ')}`);
  for (const s of up) {
    assert.equal(s.metric.job, 'pve-cluster');
    assert.equal(s.metric.instance, seed);
    assert.equal(s.metric.cluster, clusterName, 'cluster label as configured at home');
  }
  assert.ok(ids.some((id) => id.startsWith('qemu/')), `no guests in ${ids.join(', ')}`);
  // And nothing arrived without the site label.
  const unlabelled = await instantQuery(vps, 'count({job=~"pve-.*", site=""})', init);
  assert.deepEqual(unlabelled, []);
}

describe('federation: the VPS pulls /federate of the home Prometheus', () => {
  test('the VPS stores the PVE series with site="home", job and instance as at home', async (t) => {
    if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT)) return;
    const home = await startProm(tmp, 'home-federated', recipe('home-federated.yml', homeReplacements()), [
      `--storage.tsdb.path=${path.join(tmp, 'home-federated', 'tsdb')}`,
    ]);
    children.push(home);
    const vpsCfg = recipe('vps-federate.yml', { 'home.vpn.example.net:9090': home.url.replace('http://', '') });
    // The shipped rule glob is relative to the shipped file; point it at the same files.
    vpsCfg.rule_files = [path.join(promDir, 'rules', '*.yml')];
    const vps = await startProm(tmp, 'vps-federate', vpsCfg, [`--storage.tsdb.path=${path.join(tmp, 'vps-federate', 'tsdb')}`]);
    children.push(vps);

    await assertVpsHasHomeSeries(vps);
    // The federation scrape itself is the VPS' own job, healthy.
    const fed = await instantQuery(vps, 'up{job="federate-home"}');
    assert.deepEqual(fed.map((s) => s.value[1]), ['1']);
    // honor_labels: the federate job did not overwrite the home jobs' labels.
    assert.deepEqual(await instantQuery(vps, 'pve_up{job="federate-home"}'), []);
    // The shipped rules load on the VPS (they run there, not at home).
    const rules = (await (await fetch(`${vps.url}/api/v1/rules`)).json()) as { data: { groups: unknown[] } };
    assert.ok(rules.data.groups.length > 0, 'no rule groups loaded on the VPS');
  });
});

describe('agent mode: the home agent remote-writes to the VPS over TLS with basic auth', () => {
  test('the VPS receives the PVE series with site="home"; wrong credentials are refused', async (t) => {
    if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT) || !requireTool(t, 'openssl')) return;
    const pki = makeTestPki();
    const { Agent } = await import('undici');
    const dispatcher = new Agent({ connect: { ca: pki.caPem } });
    promFetch = (url, init) => fetch(url, { ...init, dispatcher } as RequestInit);

    // The VPS: shipped receiver config and web config, with the test certificate (SAN
    // IP:127.0.0.1) and the bcrypt hash of a test password instead of the example ones.
    const password = 'test-remote-write-password';
    const web = YAML.parse(readFileSync(path.join(NAT, 'vps-web-config.yml'), 'utf8')) as {
      tls_server_config: { cert_file: string; key_file: string };
      basic_auth_users: Record<string, string>;
    };
    assert.ok('home' in web.basic_auth_users, 'the web config has no user for the home agent');
    const vpsDir = path.join(tmp, 'vps-receiver');
    mkdirSync(vpsDir, { recursive: true });
    const certFile = path.join(vpsDir, 'vps.crt');
    const keyFile = path.join(vpsDir, 'vps.key');
    writeFileSync(certFile, pki.node1.cert);
    writeFileSync(keyFile, pki.node1.key, { mode: 0o600 });
    web.tls_server_config = { cert_file: certFile, key_file: keyFile };
    web.basic_auth_users = { home: bcrypt.hashSync(password, 4) };
    const webFile = path.join(vpsDir, 'web-config.yml');
    writeFileSync(webFile, YAML.stringify(web));
    const check = spawnSync('promtool', ['check', 'web-config', webFile], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const vpsCfg = recipe('vps-receiver.yml', {});
    vpsCfg.rule_files = [path.join(promDir, 'rules', '*.yml')];
    const auth = { headers: { authorization: `Basic ${Buffer.from(`home:${password}`).toString('base64')}` } };
    const vps = await startProm(
      tmp,
      'vps-receiver',
      vpsCfg,
      ['--web.enable-remote-write-receiver', `--web.config.file=${webFile}`, `--storage.tsdb.path=${path.join(vpsDir, 'tsdb')}`],
      { scheme: 'https', ...auth },
    );
    children.push(vps);
    // Basic auth really guards the endpoint the agent writes to.
    const anonymous = await promFetch(`${vps.url}/api/v1/write`, { method: 'POST', body: '' });
    assert.equal(anonymous.status, 401);

    const agentDir = path.join(tmp, 'home-agent');
    mkdirSync(agentDir, { recursive: true });
    const passwordFile = path.join(agentDir, 'remote-write.password');
    writeFileSync(passwordFile, password, { mode: 0o600 });
    const agentCfg = recipe('home-agent.yml', {
      ...homeReplacements(),
      'https://prometheus.vps.example.net:9090': vps.url,
      '/etc/prometheus/remote-write.password': passwordFile,
    });
    // The test CA instead of the public one a VPS certificate would chain to.
    agentCfg.remote_write![0]!.tls_config = { ca_file: pki.caFile };
    const agentCheckFile = path.join(agentDir, 'check.yml');
    writeFileSync(agentCheckFile, YAML.stringify(agentCfg));
    const agentCheck = spawnSync('promtool', ['check', 'config', '--agent', agentCheckFile], { encoding: 'utf8' });
    assert.equal(agentCheck.status, 0, agentCheck.stdout + agentCheck.stderr);
    const agent = await startProm(tmp, 'home-agent', agentCfg, ['--enable-feature=agent', `--storage.agent.path=${path.join(agentDir, 'wal')}`]);
    children.push(agent);

    await assertVpsHasHomeSeries(vps, auth);
    // The agent has no query API: the VPS is the only place the data can be read.
    const agentQuery = await fetch(`${agent.url}/api/v1/query?query=up`);
    assert.notEqual(agentQuery.status, 200);

    // A wrong password: the agent's remote write is refused (and counted as failed there).
    const wrongDir = path.join(tmp, 'home-agent-wrong');
    mkdirSync(wrongDir, { recursive: true });
    const wrongFile = path.join(wrongDir, 'remote-write.password');
    writeFileSync(wrongFile, 'not-the-password', { mode: 0o600 });
    const wrongCfg = structuredClone(agentCfg);
    (wrongCfg.remote_write![0]!.basic_auth as { password_file: string }).password_file = wrongFile;
    wrongCfg.global.external_labels = { site: 'intruder' };
    const wrong = await startProm(tmp, 'home-agent-wrong', wrongCfg, ['--enable-feature=agent', `--storage.agent.path=${path.join(wrongDir, 'wal')}`]);
    children.push(wrong);
    await waitUntil(
      'the wrong-password agent to count failed remote writes',
      async () => {
        const text = await (await fetch(`${wrong.url}/metrics`)).text();
        const m = /^prometheus_remote_storage_samples_failed_total\{[^}]*\} (\S+)$/m.exec(text);
        return m !== null && Number(m[1]) > 0;
      },
      60_000,
    );
    assert.deepEqual(await instantQuery(vps, 'count({site="intruder"})', auth), []);
  });
});
