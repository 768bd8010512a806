// Runs the simulator as a process (demo, benchmarks, manual tests):
//   npx tsx sim/cli.ts --scenario default --port 8006 [--generated-nodes 8 --guests-per-node 250
//     --latency-ms 10 --config-latency-ms 15 --loopback-nodes --offline-node pve3]
// Prints one JSON line once listening: {"url","credentials","fingerprint","caFile",...}. The
// credentials are the simulator's fixed test credentials, printed so scripts can use them.
// Stays up until SIGINT or SIGTERM.
import { parseArgs } from 'node:util';
import { SIM_VARIANTS, isSimVariant } from './backup-and-agent.ts';
import { startSimulator } from './index.ts';
import type { ScenarioName, SimOptions } from './types.ts';

const USAGE = `usage: tsx sim/cli.ts [--scenario default|pve8|degraded|standalone] [--host 127.0.0.1] [--port 8006]
  [--generated-nodes N --guests-per-node M [--storages-per-node S] [--replication-jobs-per-node R] [--cluster-name NAME]]
  [--latency-ms MS] [--config-latency-ms MS] [--auth-failure-delay-ms MS] [--ticket-lifetime-sec S]
  [--offline-node NODE]... [--loopback-nodes] [--drift-counters]
  [--healthy-nodes] [--degraded-pool NODE]... [--failed-disk NODE]... [--apt-forbidden]
  [--variant ceph-health-warn|no-ceph|agent-not-running|backup-failed]...`;

function optionsFromArgs(argv: string[]): SimOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      scenario: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'generated-nodes': { type: 'string' },
      'guests-per-node': { type: 'string' },
      'storages-per-node': { type: 'string' },
      'replication-jobs-per-node': { type: 'string' },
      'cluster-name': { type: 'string' },
      'latency-ms': { type: 'string' },
      'config-latency-ms': { type: 'string' },
      'auth-failure-delay-ms': { type: 'string' },
      'ticket-lifetime-sec': { type: 'string' },
      'offline-node': { type: 'string', multiple: true },
      'loopback-nodes': { type: 'boolean' },
      'drift-counters': { type: 'boolean' },
      'healthy-nodes': { type: 'boolean' },
      'degraded-pool': { type: 'string', multiple: true },
      'failed-disk': { type: 'string', multiple: true },
      'apt-forbidden': { type: 'boolean' },
      variant: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const opts: SimOptions = {
    scenario: values.scenario as ScenarioName | undefined,
    host: values.host,
    port: numberFlag('port', values.port),
    latencyMs: numberFlag('latency-ms', values['latency-ms']),
    configLatencyMs: numberFlag('config-latency-ms', values['config-latency-ms']),
    authFailureDelayMs: numberFlag('auth-failure-delay-ms', values['auth-failure-delay-ms']),
    ticketLifetimeSec: numberFlag('ticket-lifetime-sec', values['ticket-lifetime-sec']),
    offlineNodes: values['offline-node'],
    loopbackNodes: values['loopback-nodes'],
    driftCounters: values['drift-counters'],
  };
  if (values.variant !== undefined) {
    const unknown = values.variant.filter((v) => !isSimVariant(v));
    if (unknown.length > 0) throw new Error(`--variant: unknown variant "${unknown[0]}" (one of: ${SIM_VARIANTS.join(', ')})`);
    opts.variants = values.variant.filter(isSimVariant);
  }
  if (values['healthy-nodes'] || values['degraded-pool'] || values['failed-disk'] || values['apt-forbidden']) {
    opts.nodeHealth = {
      healthy: values['healthy-nodes'],
      degradedPools: values['degraded-pool'],
      failedDisks: values['failed-disk'],
      aptForbidden: values['apt-forbidden'],
    };
  }
  const nodes = numberFlag('generated-nodes', values['generated-nodes']);
  if (nodes !== undefined) {
    opts.generated = {
      name: values['cluster-name'],
      nodes,
      guestsPerNode: numberFlag('guests-per-node', values['guests-per-node']) ?? 10,
      storagesPerNode: numberFlag('storages-per-node', values['storages-per-node']),
      replicationJobsPerNode: numberFlag('replication-jobs-per-node', values['replication-jobs-per-node']),
    };
  }
  return opts;
}

function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name}: not a number: "${value}"`);
  return n;
}

async function main(): Promise<void> {
  let opts: SimOptions;
  try {
    opts = optionsFromArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  }
  const sim = await startSimulator(opts);
  const ready = {
    url: sim.url,
    credentials: sim.credentials,
    fingerprint: sim.fingerprint,
    caFile: sim.caFile,
    nodeAddresses: Object.fromEntries(sim.nodeAddresses),
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
