// npm run demo: the PVE simulator and the exporter on loopback, and the URLs to try. Every node
// of the simulated cluster listens on a loopback address of its own (pve1 = 127.0.0.11, ...), so
// the targets /pve/sd hands out can be scraped like real nodes. The module's pve.yml goes to a
// temporary folder that is removed when the demo ends (Ctrl-C, SIGTERM or a failed start).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { exporterConfig } from '../sim/exporter-config.ts';
import { SIM_VARIANTS, isSimVariant } from '../sim/backup-and-agent.ts';
import { MAX_LOOPBACK_NODES } from '../sim/generated.ts';
import { startSimulator } from '../sim/index.ts';
import { SCENARIO_NAMES } from '../sim/pve-data.ts';
import type { ScenarioName, SimOptions, Simulator } from '../sim/types.ts';
import { startApp, type App } from '../src/app.ts';
import { parseCli } from '../src/cli.ts';
import { loadConfigFile } from '../src/config.ts';
import { createLogger } from '../src/log.ts';

const DEFAULT_PORT = 9221;
/** The module name the landing page's example links use (its first module). */
const MODULE = 'default';

const USAGE = `usage: npm run demo [-- OPTIONS]

Starts the Proxmox VE API simulator and the exporter on loopback and prints the URLs to try.

  --scenario NAME        a reference scenario: ${SCENARIO_NAMES.join(', ')} (default: default)
  --nodes N              a generated cluster of N nodes (1..${MAX_LOOPBACK_NODES}) instead of a scenario
  --guests-per-node M    guests on each generated node (default: 50)
  --variant NAME         a data variant, repeatable: ${SIM_VARIANTS.join(', ')}
  --port PORT            the exporter's port on 127.0.0.1 (default: ${DEFAULT_PORT}, or a free one if
                         that is taken; 0: any free port)
  -h, --help             show this text

Ctrl-C (or SIGTERM) stops both and removes the temporary pve.yml.
`;

interface DemoOptions {
  sim: SimOptions;
  /** undefined: the default port, or any free one when it is taken. */
  port: number | undefined;
  what: string;
}

class UsageError extends Error {}

function integerFlag(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name}: expected a whole number ${min}..${max}, got "${value}"`);
  }
  return n;
}

function parseDemoArgs(argv: string[]): DemoOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        scenario: { type: 'string' },
        nodes: { type: 'string' },
        'guests-per-node': { type: 'string' },
        port: { type: 'string' },
        variant: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) return 'help';
  const port = values.port === undefined ? undefined : integerFlag('port', values.port, 0, 65535);
  const variants = (values.variant ?? []).map((v) => {
    if (!isSimVariant(v)) throw new UsageError(`--variant: unknown variant "${v}" (one of: ${SIM_VARIANTS.join(', ')})`);
    return v;
  });
  const withVariants = variants.length > 0 ? ` with ${variants.join(', ')}` : '';
  if (values.nodes !== undefined) {
    if (values.scenario !== undefined) throw new UsageError('--scenario and --nodes exclude each other');
    const nodes = integerFlag('nodes', values.nodes, 1, MAX_LOOPBACK_NODES);
    const guestsPerNode = integerFlag('guests-per-node', values['guests-per-node'] ?? '50', 0, 10_000);
    return {
      sim: { generated: { nodes, guestsPerNode }, latencyMs: 2, loopbackNodes: true, variants },
      port,
      what: `${nodes} generated nodes, ${guestsPerNode} guests each${withVariants}`,
    };
  }
  if (values['guests-per-node'] !== undefined) throw new UsageError('--guests-per-node needs --nodes');
  const scenario = values.scenario ?? 'default';
  if (!(SCENARIO_NAMES as readonly string[]).includes(scenario)) {
    throw new UsageError(`--scenario: unknown scenario "${scenario}" (one of: ${SCENARIO_NAMES.join(', ')})`);
  }
  return { sim: { scenario: scenario as ScenarioName, latencyMs: 2, loopbackNodes: true, variants }, port, what: `scenario ${scenario}${withVariants}` };
}

/** The exporter on `port`; when the default port is taken, on any free one instead. */
async function startExporter(configFile: string, port: number | undefined): Promise<App> {
  const config = loadConfigFile(configFile);
  const log = createLogger('info');
  const start = (p: number): Promise<App> =>
    // guest-filesystem is off by default (agent privileges on PVE 7/8); the simulator's agents answer, so the demo shows it.
    startApp(parseCli(['node', 'demo', '--config.file', configFile, '--web.listen-address', `127.0.0.1:${p}`, '--collector.guest-filesystem']), config, log);
  if (port !== undefined) return start(port);
  try {
    return await start(DEFAULT_PORT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    return start(0);
  }
}

function banner(sim: Simulator, app: App, what: string, configFile: string): string {
  const nodes = [...sim.nodeAddresses].map(([node, address]) => `${node} ${address}`).join(', ');
  // A node other than the one answering for localhost, when there is one: a target SD lists.
  const entries = [...sim.nodeAddresses];
  const [sdNode, sdAddress] = entries[1] ?? entries[0] ?? [sim.host, sim.host];
  return [
    '',
    `PVE simulator:  ${sim.url}  (${what}; nodes on ${nodes}, port ${sim.port})`,
    `Exporter:       ${app.url}  (config ${configFile}, removed on exit)`,
    '',
    'Try:',
    `  open ${app.url}/  (landing page; its links work against this demo)`,
    `  curl '${app.url}/pve?target=localhost&module=${MODULE}&cluster=1&node=1'`,
    `  curl '${app.url}/pve/sd?target=localhost&module=${MODULE}'  (one target per node)`,
    `  curl '${app.url}/pve?target=${sdAddress}&module=${MODULE}&cluster=0&node=1'  (node ${sdNode}, as SD lists it)`,
    `  curl '${app.url}/metrics'`,
    '',
    'Ctrl-C stops both.',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  let opts: DemoOptions | 'help';
  try {
    opts = parseDemoArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`demo: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return;
  }

  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-demo-'));
  // 'exit' runs on every way out that goes through process.exit, including the signal handlers.
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  let sim: Simulator | undefined;
  let app: App | undefined;
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) process.exit(code); // a second Ctrl-C: leave now (the folder still goes)
    stopping = true;
    void Promise.allSettled([app?.close(), sim?.close()]).then(() => process.exit(code));
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  try {
    sim = await startSimulator(opts.sim);
    const configFile = path.join(dir, 'pve.yml');
    writeFileSync(
      configFile,
      `# written by npm run demo: the simulator's test credentials, certificate pinned by fingerprint\n${exporterConfig(sim, MODULE)}`,
      { mode: 0o600 },
    );
    app = await startExporter(configFile, opts.port);
    process.stdout.write(banner(sim, app, opts.what, configFile));
  } catch (err) {
    process.stderr.write(`demo: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    stop(1);
  }
}

await main();
