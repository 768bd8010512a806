// deploy/prometheus/scaling/prometheus.shard.yml: clusters sharded across Prometheus servers by
// hashmod on the `cluster` label, everything remote-written to a long-term store. Run for real:
// three Prometheus shards (the shipped file, only SHARD, addresses and intervals changed) scrape
// six "clusters" (six modules of one exporter, all backed by the simulator) and write to a fourth
// Prometheus standing in for the long-term store (--web.enable-remote-write-receiver). Every
// cluster must be scraped by exactly one shard, with its cluster-wide and per-node targets on the
// same one, and the store must hold all clusters.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { hasTool, requireTool } from './helpers/tools.ts';
import { getFreePort, waitForHttp } from './helpers/net.ts';
import { promDir } from './helpers/prom-expressions.ts';
import { activeTargets, moduleFor, query, startChild, startExporter, waitUntil, type Child, type Exporter, type Target } from './helpers/prom-stack.ts';

const HINT = 'apt-get install prometheus';
const haveTools = hasTool('promtool') && hasTool('prometheus');
const SHIPPED = path.join(promDir, 'scaling', 'prometheus.shard.yml');
const SHARDS = 3;
const CLUSTERS = ['c01', 'c02', 'c03', 'c04', 'c05', 'c06'];

interface Prom extends Child {
  url: string;
}

async function startProm(dir: string, configText: string, args: string[]): Promise<Prom> {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'prometheus.yml');
  writeFileSync(file, configText);
  const check = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  const port = await getFreePort();
  const child = startChild('prometheus', [`--config.file=${file}`, `--storage.tsdb.path=${path.join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', ...args], dir);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/-/ready`, 30_000).catch(async (err: Error) => {
    await child.stop();
    throw new Error(`${err.message}\n${child.output()}`);
  });
  return { ...child, url };
}

/** The shipped file for shard `n`: exact replacements that must each occur, short intervals. */
function shardConfig(n: number, exporterAddress: string, storeUrl: string): string {
  let text = readFileSync(SHIPPED, 'utf8');
  const replace: [string, string][] = [
    ["shard: '0'  # SHARD: 0, 1 or 2", `shard: '${n}'`],
    ["regex: '0'  # SHARD: the same number as external_labels.shard", `regex: '${n}'`],
    ['modulus: 3', `modulus: ${SHARDS}`],
    ['pve-exporter.example.com:9221', exporterAddress],
    ['[pve-exporter-1.example.com:9221, pve-exporter-2.example.com:9221]', `[${exporterAddress}]`],
    ['http://victoriametrics.example.com:8428/api/v1/write', `${storeUrl}/api/v1/write`],
  ];
  for (const [from, to] of replace) {
    assert.ok(text.includes(from), `prometheus.shard.yml: ${from} not found`);
    text = text.replaceAll(from, to);
  }
  const cfg = YAML.parse(text) as { global: Record<string, unknown>; rule_files: string[]; scrape_configs: Record<string, unknown>[] };
  Object.assign(cfg.global, { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' });
  cfg.rule_files = [path.join(promDir, 'rules', '*.yml')];
  for (const job of cfg.scrape_configs) {
    delete job.scrape_timeout;
    for (const sd of (job.file_sd_configs as { refresh_interval?: string }[] | undefined) ?? []) sd.refresh_interval = '1s';
  }
  return YAML.stringify(cfg, { aliasDuplicateObjects: false });
}

let tmp = '';
let sim: Simulator | undefined;
let exporter: Exporter | undefined;
let store: Prom | undefined;
const shards: Prom[] = [];
const shardTargets: Target[][] = [];

before(async () => {
  if (!haveTools) return;
  tmp = mkdtempSync(path.join(os.tmpdir(), 'recipes-scaling-'));
  sim = await startSimulator({ loopbackNodes: true });
  const nodeAddrs = [...sim.nodeAddresses.values()].sort();
  // One module per cluster, as layout (c) has it; here all backed by the one simulator.
  exporter = await startExporter(tmp, Object.fromEntries(CLUSTERS.map((c) => [c, moduleFor(sim!)])));
  store = await startProm(path.join(tmp, 'store'), 'global: {scrape_interval: 1s}\nscrape_configs: []\n', ['--web.enable-remote-write-receiver']);
  for (let n = 0; n < SHARDS; n++) {
    const dir = path.join(tmp, `shard-${n}`);
    mkdirSync(path.join(dir, 'targets'), { recursive: true });
    // The shipped file's target files list example hosts; the same format with loopback ones.
    const shippedClusters = JSON.parse(readFileSync(path.join(promDir, 'scaling', 'targets', 'clusters.json'), 'utf8')) as { targets: string[]; labels: Record<string, string> }[];
    assert.deepEqual(Object.keys(shippedClusters[0]!.labels).sort(), ['cluster', 'pve_module']);
    writeFileSync(path.join(dir, 'targets', 'clusters.json'), JSON.stringify(CLUSTERS.map((c) => ({ targets: [nodeAddrs[0]], labels: { cluster: c, pve_module: c } }))));
    writeFileSync(path.join(dir, 'targets', 'nodes.json'), JSON.stringify(CLUSTERS.map((c) => ({ targets: nodeAddrs, labels: { cluster: c, pve_module: c } }))));
    shards.push(await startProm(dir, shardConfig(n, exporter.address, store.url), []));
  }
  for (const s of shards) {
    shardTargets.push(
      await waitUntil('shard targets scraped', async () => {
        const ts = (await activeTargets(s.url)).filter((x) => x.scrapePool !== 'pve-exporter');
        return ts.length > 0 && ts.every((x) => x.health === 'up') ? ts : undefined;
      }, 60_000).catch(() => [] as Target[]),
    );
  }
});

after(async () => {
  for (const s of shards) await s.stop();
  await store?.stop();
  await exporter?.stop();
  await sim?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('hashmod on `cluster`: every cluster on exactly one shard, its cluster-wide and per-node targets together', (t) => {
  if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT)) return;
  const owner = new Map<string, number>();
  const nodes = sim!.nodeAddresses.size;
  shardTargets.forEach((targets, n) => {
    const clusters = new Set(targets.map((x) => x.labels.cluster!));
    for (const c of clusters) {
      assert.equal(owner.get(c), undefined, `cluster ${c} on shards ${owner.get(c)} and ${n}`);
      owner.set(c, n);
      assert.equal(targets.filter((x) => x.labels.cluster === c && x.scrapePool === 'pve-cluster').length, 1, `${c}: pve-cluster targets on shard ${n}`);
      assert.equal(targets.filter((x) => x.labels.cluster === c && x.scrapePool === 'pve-node').length, nodes, `${c}: pve-node targets on shard ${n}`);
    }
    // The module follows the cluster; the helper label is gone.
    for (const x of targets) {
      assert.equal(new URL(x.scrapeUrl).searchParams.get('module'), x.labels.cluster);
      assert.equal(x.labels.pve_module, undefined);
    }
  });
  assert.deepEqual([...owner.keys()].sort(), CLUSTERS);
  assert.ok(new Set(owner.values()).size > 1, 'all clusters hashed onto one shard');
});

test('the long-term store receives every cluster by remote write, each from one shard', async (t) => {
  if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT)) return;
  const perCluster = await waitUntil(
    'pve_up of every cluster in the store',
    async () => {
      const r = await query(store!.url, 'count by (cluster, shard) (pve_up)');
      return r.length === CLUSTERS.length ? r : undefined;
    },
    60_000,
  );
  assert.deepEqual(perCluster.map((s) => s.metric.cluster).sort(), CLUSTERS);
  // Same shard in the store as in the shard's own targets.
  for (const s of perCluster) {
    const n = Number(s.metric.shard);
    assert.ok(shardTargets[n]!.some((x) => x.labels.cluster === s.metric.cluster), `${s.metric.cluster} stored as shard ${n}`);
  }
  // The exporter's own metrics arrive from every shard (each scrapes it).
  const self = await waitUntil('exporter self-metrics from every shard', async () => {
    const r = await query(store!.url, 'count by (shard) (up{job="pve-exporter"})');
    return r.length === SHARDS ? r : undefined;
  }, 60_000);
  assert.equal(self.length, SHARDS);
});
