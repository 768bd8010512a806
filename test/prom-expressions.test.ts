// Every PromQL expression that ships (all dashboard panel targets and variable queries, all
// alerting and recording rules) is evaluated against a real Prometheus that scrapes the real
// exporter serving two simulated clusters through the shipped multi-cluster example
// (deploy/prometheus/prometheus.multi-cluster.yml: one module per cluster, per-node targets from
// /pve/sd). No expression may fail to parse, and each must return data in at least one of a few
// simulator states: healthy, in trouble (guest stopped, two nodes offline so quorum is lost, a
// collector failing, a storage unavailable), PVE refusing the token, a broken pve.yml reloaded,
// and the exporter gone. The few expressions that no simulator state can make non-empty are
// listed in EMPTY_BY_DESIGN with the reason, and there their underlying query (the same expression
// without its alert threshold) must return data.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { hasTool, requireTool } from './helpers/tools.ts';
import {
  dashboardExpressions,
  ruleExpressions,
  ruleFiles,
  substituteVariables,
  type DashboardVars,
  type Expression,
} from './helpers/prom-expressions.ts';
import {
  PromQueryError,
  moduleFor,
  query,
  renderExampleConfig,
  startExporter,
  startPrometheus,
  waitUntil,
  type Exporter,
  type Prometheus,
  type Sample,
} from './helpers/prom-stack.ts';

const HINT = 'apt-get install prometheus';
const haveTools = hasTool('promtool') && hasTool('prometheus');

/**
 * Expressions that stay empty in every state the simulator can produce. `strip` is the alert
 * threshold (or thresholds) removed (verbatim, each exactly once) from the shipped expression to
 * get the underlying query, which must return data: that checks the selectors, joins and labels
 * the alert relies on.
 */
interface EmptyByDesign {
  why: string;
  strip: string | string[];
}
const EMPTY_BY_DESIGN: Record<string, EmptyByDesign> = {
  'alert/PveQDeviceDisconnected': {
    why: 'the QDevice state comes from the stored API example ("Connected"); the simulator cannot disconnect it',
    strip: ' == 0',
  },
  'alert/PveHaServiceError': {
    why: 'no HA resource of the model clusters is in state "error", and the simulator cannot put one there',
    strip: ' == 1',
  },
  'alert/PveStorageAlmostFull': {
    why: 'the fullest storage of the model clusters is about 30% full; the simulator cannot fill storage',
    strip: ' > 0.85',
  },
  'alert/PveStorageFull': {
    why: 'as for PveStorageAlmostFull',
    strip: ' > 0.95',
  },
  'alert/PveNodeHighMemoryUsage': {
    why: 'the busiest node of the model clusters uses about 43% of its memory; the simulator cannot change it',
    strip: ' > 0.9',
  },
  'alert/PveNodeHighCpuUsage': {
    why: 'the busiest node of the model clusters is at about 8% CPU; the simulator cannot change it',
    strip: ' > 0.9',
  },
  'alert/PveNodeRootDiskAlmostFull': {
    why: 'root filesystems are 10-20% full, and `local` lives on each of them, so the storage alerts would speak for them anyway',
    strip: [' > 0.9', '\n  unless on (cluster, id) cluster_id:pve_node_root_storage:group'],
  },
  'alert/PveNodeHighIowait': {
    why: 'the nodes of the simulated clusters report well under 1% iowait; the simulator cannot load their disks',
    strip: ' > 0.1',
  },
  'alert/PveNodeHighSwapUsage': {
    why: 'the simulated nodes use at most a few MiB of 8 GiB swap',
    strip: ' > 0.5',
  },
  'alert/PveDiskWearoutHigh': {
    why: 'the SSDs of the stored disk list have 97-99% of their life left; no variant wears them out',
    strip: ' < 0.1',
  },
  'alert/PveHaQuorumLost': {
    why: 'the HA status comes from the stored example (quorate); when the simulator takes quorum away it does so for corosync, which PveClusterNotQuorate reports instead',
    strip: [' == 0', '\nunless on (cluster)\n  max by (cluster) (pve_cluster_info{quorate!="1"})'],
  },
  'alert/PveScrapeNearTimeout': {
    why: 'scrapes of the simulator take milliseconds; without the extra-scrape-metrics flag the rule assumes a 10 s timeout',
    strip: ' > 0.8',
  },
};

let tmp = '';
let prod: Simulator | undefined;
let lab: Simulator | undefined;
let exporter: Exporter | undefined;
let prom: Prometheus | undefined;
let prodInstance = '';
let labInstance = '';

before(async () => {
  if (!haveTools) return;
  tmp = mkdtempSync(path.join(os.tmpdir(), 'prom-expr-'));
  // Two clusters on the same loopback node addresses (127.0.0.11, ...) but different ports, so
  // targets carry a port (as the example's lab cluster does) and stay distinct.
  prod = await startSimulator({ loopbackNodes: true });
  // The lab cluster carries the problems of issue 9's collectors that the model cluster (pvec)
  // lacks: Ceph in HEALTH_WARN (three nodes, so it has Ceph), a VM whose guest agent does not
  // answer, a failed vzdump run, a DEGRADED zpool and a FAILED disk, and a 403 on apt.
  lab = await startSimulator({
    loopbackNodes: true,
    generated: { name: 'lab', nodes: 3, guestsPerNode: 4 },
    variants: ['ceph-health-warn', 'agent-not-running', 'backup-failed'],
    nodeHealth: { degradedPools: ['pve2'], failedDisks: ['pve1'], aptForbidden: true },
  });
  // Every collector on, the ones off by default included, so their panels and alerts are checked.
  exporter = await startExporter(tmp, { prod: moduleFor(prod), lab: moduleFor(lab) }, ['--collector.guest-filesystem', '--collector.updates']);
  labInstance = `${lab.nodeAddresses.get('pve1')}:${lab.port}`;
  prodInstance = `${prod.nodeAddresses.get('pve1')}:${prod.port}`;
  const config = renderExampleConfig('prometheus.multi-cluster.yml', {
    replace: {
      'pve-exporter.example.com:9221': exporter.address,
      'pve1.prod.example.com': prodInstance,
      'pve1.lab.example.com:8006': `${lab.nodeAddresses.get('pve1')}:${lab.port}`,
    },
    // The example calls the production cluster "prod"; the default scenario's cluster is "pvec".
    clusterNames: { prod: 'pvec' },
    ruleFiles: ruleFiles(),
    scrapeInterval: '1s',
    evaluationInterval: '1s',
    sdRefresh: '2s',
  });
  prom = await startPrometheus(tmp, config);
});

after(async () => {
  await prom?.stop();
  await exporter?.stop();
  await prod?.close();
  await lab?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Grafana's built-in intervals: with a 1 s scrape interval, 10 s holds enough samples for rate().
const BASE_VARS = { rateInterval: '10s', interval: '2s', range: '1m' };

function allSelection(): DashboardVars {
  return { ...BASE_VARS, vars: { instance: prodInstance, node: '.*', guest: '.*', datasource: 'prometheus' } };
}

// The lab cluster selected: panels of problems only the lab cluster has (Ceph health checks, a
// silent guest agent) return data there.
function labSelection(): DashboardVars {
  return { ...BASE_VARS, vars: { instance: labInstance, node: '.*', guest: '.*', datasource: 'prometheus' } };
}

// A narrower selection as Grafana renders a multi-value variable inside =~ (values joined as a
// regex alternation): two nodes, and one guest on each of them.
function narrowSelection(): DashboardVars {
  return { ...BASE_VARS, vars: { instance: prodInstance, node: '(pve1|pve3)', guest: '(web01|old-app)', datasource: 'prometheus' } };
}

function concreteExpr(e: Expression, vars: DashboardVars): string {
  return e.kind === 'panel' || e.kind === 'variable' ? substituteVariables(e.raw, vars) : e.raw;
}

function hasData(e: Expression, samples: Sample[]): boolean {
  if (e.kind === 'variable') return samples.some((s) => (s.metric[e.label!] ?? '') !== '');
  return samples.length > 0;
}

interface Stage {
  name: string;
  enter(): Promise<void> | void;
  /** Expressions that must all return data before the stage is evaluated. */
  ready: string[];
}



const stages: Stage[] = [
  {
    name: 'healthy',
    enter: () => {},
    ready: [
      'count(up{job="pve-node"} == 1) == 6',
      'count(up == 1) == 9',
      'pve_ceph_health_status{cluster="lab", status="HEALTH_WARN"} == 1',
      'pve_guest_agent_up{cluster="lab"} == 0',
      'pve_backup_last_failed{cluster="lab"} == 1',
      'pve_exporter_collector_success{cluster="lab", collector="updates"} == 0',
      'pve:storage_usage:ratio',
      'cluster_id:pve_guest_info:group{cluster="lab"}',
      'count_over_time(pve_network_receive_bytes_total{id="qemu/100", cluster="pvec"}[10s]) >= 3',
      'count_over_time(process_cpu_seconds_total{job="pve-exporter"}[10s]) >= 3',
    ],
  },
  {
    name: 'trouble',
    enter: () => {
      prod!.setGuestStatus(100, 'stopped');
      prod!.setNodeOffline('pve2', true);
      prod!.setNodeOffline('pve3', true);
      prod!.addFault({ path: '/nodes/pve1/subscription', status: 403, reason: 'Permission check failed (/nodes/pve1, Sys.Audit)' });
      prod!.setStorageAvailable('tank', false, ['pve1']);
    },
    ready: [
      'pve_up{cluster="pvec", id="qemu/100"} == 0',
      'pve_up{cluster="pvec", id="storage/pve1/tank"} == 0',
      'pve_cluster_info{cluster="pvec", quorate="0"}',
      'pve_exporter_collector_success{cluster="pvec", collector="subscription", pve_node="pve1"} == 0',
    ],
  },
  {
    name: 'PVE refuses the token',
    enter: () => {
      prod!.clearFaults();
      prod!.addFault({ path: /^\//, status: 401, reason: 'authentication failure' });
    },
    ready: ['up{job="pve-cluster", cluster="pvec"} == 0', 'count_over_time(pve_request_errors_total[10s]) >= 3'],
  },
  {
    // A broken pve.yml, reloaded with SIGHUP: the exporter keeps the old configuration and
    // reports the failure on /metrics.
    name: 'config reload fails',
    enter: () => {
      writeFileSync(path.join(tmp, 'pve.yml'), 'prod: [this is not a module\n');
      exporter!.proc.kill('SIGHUP');
    },
    ready: ['pve_exporter_config_last_reload_successful == 0'],
  },
  {
    name: 'exporter stopped',
    enter: () => exporter!.stop(),
    ready: ['up{job="pve-exporter"} == 0'],
  },
];

test('every shipped PromQL expression parses and returns data when the simulator has it', async (t) => {
  if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'prometheus', HINT)) return;
  const exprs = [...dashboardExpressions(), ...ruleExpressions()];
  assert.ok(exprs.length > 60, `only ${exprs.length} expressions found`);
  for (const key of Object.keys(EMPTY_BY_DESIGN)) {
    assert.ok(exprs.some((e) => e.key === key), `EMPTY_BY_DESIGN lists ${key}, which does not exist`);
  }

  // The underlying queries of EMPTY_BY_DESIGN, evaluated in the healthy stage.
  const probes = Object.entries(EMPTY_BY_DESIGN).map(([key, { why, strip }]) => {
    const e = exprs.find((x) => x.key === key)!;
    let expr = e.raw;
    for (const s of Array.isArray(strip) ? strip : [strip]) {
      const parts = expr.split(s);
      assert.equal(parts.length, 2, `${key}: "${s}" must occur exactly once in ${e.raw}`);
      expr = parts.join('');
    }
    return { key, why, expr };
  });
  const probeResults = new Map<string, Sample[]>();

  const parseErrors: string[] = [];
  const withData = new Map<string, string[]>(); // key -> stages in which it returned data
  const byStage = new Map<string, Map<string, Sample[]>>();
  const evaluate = async (e: Expression, vars: DashboardVars): Promise<Sample[] | undefined> => {
    try {
      return await query(prom!.url, concreteExpr(e, vars));
    } catch (err) {
      if (err instanceof PromQueryError) {
        parseErrors.push(`${e.key}: ${err.message}`);
        return undefined;
      }
      throw err;
    }
  };

  for (const stage of stages) {
    await stage.enter();
    const withLogs = (err: Error): never => {
      throw new Error(`${err.message}\n--- exporter ---\n${exporter!.output().slice(-2000)}\n--- prometheus ---\n${prom!.output().slice(-2000)}`);
    };
    for (const r of stage.ready) {
      await waitUntil(`[${stage.name}] ${r}`, async () => (await query(prom!.url, r)).length > 0, 30_000).catch(withLogs);
    }
    // Let the rules see the new state for a few evaluation rounds.
    await sleep(2500);
    const results = new Map<string, Sample[]>();
    for (const e of exprs) {
      const samples = await evaluate(e, allSelection());
      if (samples === undefined) continue;
      results.set(e.key, samples);
      if (hasData(e, samples)) withData.set(e.key, [...(withData.get(e.key) ?? []), stage.name]);
      else if (e.kind === 'panel' || e.kind === 'variable') {
        const lab = await evaluate(e, labSelection());
        if (lab !== undefined && hasData(e, lab)) withData.set(e.key, [...(withData.get(e.key) ?? []), `${stage.name} (lab selected)`]);
      }
    }
    byStage.set(stage.name, results);

    if (stage.name === 'healthy') {
      for (const p of probes) {
        try {
          probeResults.set(p.key, await query(prom!.url, p.expr));
        } catch (err) {
          parseErrors.push(`${p.key} (underlying query): ${(err as Error).message}`);
        }
      }
      // The dashboard's node and guest filters must narrow, not break, the panels.
      for (const e of exprs.filter((x) => x.kind === 'panel' || x.kind === 'variable')) {
        if (!hasData(e, results.get(e.key) ?? [])) continue;
        if (!e.raw.includes('$node') && !e.raw.includes('$guest')) continue;
        const narrow = await evaluate(e, narrowSelection());
        if (narrow !== undefined) assert.ok(hasData(e, narrow), `${e.key} returns nothing for node=(pve1|pve3), guest=(web01|old-app):\n  ${concreteExpr(e, narrowSelection())}`);
      }
    }
  }

  const stageCounts = stages.map((st) => `${st.name}: ${[...withData.values()].filter((v) => v.includes(st.name)).length}`);
  t.diagnostic(`${exprs.length} expressions; with data per state: ${stageCounts.join(', ')}`);

  assert.deepEqual(parseErrors, [], `expressions Prometheus rejects:\n${parseErrors.join('\n')}`);

  const missing = exprs.filter((e) => !withData.has(e.key) && !(e.key in EMPTY_BY_DESIGN));
  assert.deepEqual(
    missing.map((e) => e.key),
    [],
    `empty in every simulator state:\n${missing.map((e) => `${e.key}\n  ${concreteExpr(e, allSelection())}`).join('\n')}`,
  );

  // The exceptions must stay exceptional: empty everywhere, and their underlying query has data.
  for (const p of probes) {
    assert.equal(withData.get(p.key), undefined, `${p.key} returned data (${withData.get(p.key)}); remove it from EMPTY_BY_DESIGN`);
    assert.ok((probeResults.get(p.key) ?? []).length > 0, `${p.key} (${p.why}): underlying query returned nothing:\n  ${p.expr}`);
  }

  // The alerts say the right things about the model clusters.
  const healthy = byStage.get('healthy')!;
  const ids = (key: string, r = healthy): string[] => (r.get(key) ?? []).filter((s) => s.metric.cluster === 'pvec').map((s) => s.metric.id).sort();
  for (const quiet of [
    'alert/PveNodeDown',
    'alert/PveClusterNotQuorate',
    'alert/PveGuestNotRunning',
    'alert/PveScrapeFailed',
    'alert/PveExporterDown',
  ]) {
    assert.deepEqual(healthy.get(quiet), [], `${quiet} must not fire in the healthy state`);
  }
  // The one failing collector: updates in lab, whose apt endpoint answers 403 (aptForbidden).
  assert.deepEqual(
    [...new Set((healthy.get('alert/PveExporterCollectorFailing') ?? []).map((s) => `${s.metric.cluster} ${s.metric.collector}`))],
    ['lab updates'],
  );
  assert.deepEqual(ids('alert/PveGuestNotBackedUp'), ['lxc/202', 'qemu/102', 'qemu/103', 'qemu/105']);
  assert.deepEqual(ids('alert/PveReplicationFailing'), ['200-1']);
  assert.deepEqual(
    (healthy.get('alert/PveSubscriptionNotActive') ?? []).filter((s) => s.metric.cluster === 'pvec').map((s) => `${s.metric.id} ${s.metric.status}`),
    ['node/pve3 notfound'],
  );
  assert.deepEqual(
    (healthy.get('alert/PveGuestLocked') ?? []).filter((s) => s.metric.cluster === 'pvec').map((s) => `${s.metric.id} ${s.metric.state} ${s.metric.name}`),
    ['qemu/101 backup db01'],
  );
  assert.deepEqual(healthy.get('alert/PveStorageUnavailable'), [], 'PveStorageUnavailable must not fire in the healthy state');
  // Both `local` storages of each prod node sit on its root filesystem (same size).
  assert.deepEqual(
    (healthy.get('record/cluster_id:pve_node_root_storage:group') ?? []).filter((s) => s.metric.cluster === 'pvec').map((s) => `${s.metric.id} ${s.metric.storage}`).sort(),
    ['node/pve1 local', 'node/pve2 local', 'node/pve3 local'],
  );
  const names = (healthy.get('alert/PveGuestNotBackedUp') ?? []).filter((s) => s.metric.cluster === 'pvec').map((s) => s.metric.name).sort();
  assert.deepEqual(names, ['build-ct', 'debian12-tmpl', 'old-app', 'win-test'], 'guest names joined into the alert');

  // Both clusters have nodes called pve1 and pve2 with active subscriptions; the dashboard's
  // per-node panels must only count the selected cluster's (pvec: pve1 and pve2 active, pve3 not).
  assert.deepEqual(healthy.get('dashboard/Active subscriptions/A')?.map((s) => s.value[1]), ['2']);
  assert.deepEqual(healthy.get('dashboard/Active subscriptions/B')?.map((s) => s.value[1]), ['3']);
  assert.deepEqual(
    (healthy.get('dashboard/Days until subscription due/A') ?? []).map((s) => `${s.metric.cluster} ${s.metric.name}`).sort(),
    ['pvec pve1', 'pvec pve2'],
  );
  assert.deepEqual(
    [...new Set((healthy.get('dashboard/Failed syncs/A') ?? []).map((s) => s.metric.cluster))],
    ['pvec'],
    'replication panels only show the selected cluster',
  );

  const trouble = byStage.get('trouble')!;
  assert.deepEqual(
    (trouble.get('alert/PveNodeDown') ?? []).filter((s) => s.metric.cluster === 'pvec').map((s) => s.metric.pve_node).sort(),
    ['pve2', 'pve3'],
  );
  assert.deepEqual(ids('alert/PveClusterNotQuorate', trouble), ['cluster/pvec']);
  // Only 100 (stopped on pve1, which is online). The onboot guests of the offline nodes (201 on
  // pve2, 104 on pve3) are in an unknown state and left to PveNodeDown, although their nodes'
  // own APIs still answer in the simulator, as a partitioned node's would.
  const notRunning = (trouble.get('alert/PveGuestNotRunning') ?? []).filter((s) => s.metric.cluster === 'pvec');
  assert.deepEqual(
    notRunning.map((s) => `${s.metric.id} ${s.metric.name} ${s.metric.node}`),
    ['qemu/100 web01 pve1'],
  );
  // tank on pve1 is down; the local storages of the offline pve2 and pve3 are PveNodeDown's.
  assert.deepEqual(
    (trouble.get('alert/PveStorageUnavailable') ?? []).map((s) => `${s.metric.cluster} ${s.metric.node} ${s.metric.storage}`),
    ['pvec pve1 tank'],
  );
  // A broken pve.yml reloaded: one alert, for the one exporter; none before.
  assert.deepEqual(healthy.get('alert/PveExporterConfigReloadFailed'), []);
  assert.deepEqual(
    (byStage.get('config reload fails')!.get('alert/PveExporterConfigReloadFailed') ?? []).map((s) => s.metric.job),
    ['pve-exporter'],
  );
  // Issue 9's alerts, one per problem: the model cluster's DEGRADED zpool, FAILED disk and failed
  // vzdump of 104; the lab cluster's variants; Ceph healthy in pvec, HEALTH_WARN in lab.
  const labelsOf = (key: string, fields: string[], r = healthy): string[] =>
    (r.get(key) ?? []).map((s) => [s.metric.cluster, ...fields.map((f) => s.metric[f])].join(' ')).sort();
  assert.deepEqual(labelsOf('alert/PveZfsPoolDegraded', ['node', 'pool', 'state']).filter((l) => l.startsWith('pvec ')), ['pvec pve1 tank DEGRADED']);
  assert.ok(labelsOf('alert/PveZfsPoolDegraded', ['node']).some((l) => l.startsWith('lab pve2')), 'lab: degraded pool of pve2');
  // Every node of the model serves the stored disk list, whose /dev/sdc is FAILED: one alert each.
  assert.deepEqual(labelsOf('alert/PveDiskSmartFailed', ['node', 'devpath']).filter((l) => l.startsWith('pvec ')), ['pvec pve1 /dev/sdc', 'pvec pve2 /dev/sdc', 'pvec pve3 /dev/sdc']);
  assert.ok(labelsOf('alert/PveDiskSmartFailed', ['node']).includes('lab pve1'), 'lab: failed disk of pve1');
  assert.deepEqual(labelsOf('alert/PveCephNotHealthy', ['status']), ['lab HEALTH_WARN']);
  assert.deepEqual(labelsOf('alert/PveGuestBackupFailed', ['id']).filter((l) => l.startsWith('pvec ')), ['pvec qemu/104']);
  assert.equal(labelsOf('alert/PveGuestBackupFailed', ['id']).filter((l) => l.startsWith('lab ')).length, 1, 'lab: one failed vzdump');
  // The silent agent of the lab cluster shows in its panel, and nowhere in pvec's.
  assert.deepEqual(healthy.get('dashboard/Guest agents not answering/A'), []);

  // The other cluster is not affected by the trouble in pvec.
  assert.deepEqual((trouble.get('alert/PveNodeDown') ?? []).filter((s) => s.metric.cluster === 'lab'), []);
});
