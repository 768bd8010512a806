// npm run demo: the PVE simulator and the exporter on loopback, and the curl line to try.
// Options: --scenario default|pve8|degraded|standalone, or --nodes N --guests-per-node M.
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import type { ScenarioName } from '../sim/types.ts';
import { startApp } from '../src/app.ts';
import { parseCli } from '../src/cli.ts';
import { loadConfigFile } from '../src/config.ts';
import { createLogger } from '../src/log.ts';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'default' },
    nodes: { type: 'string' },
    'guests-per-node': { type: 'string', default: '50' },
    port: { type: 'string', default: '9221' },
  },
});

const sim = await startSimulator(
  values.nodes
    ? { generated: { nodes: Number(values.nodes), guestsPerNode: Number(values['guests-per-node']) }, latencyMs: 2 }
    : { scenario: values.scenario as ScenarioName, latencyMs: 2 },
);
const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-demo-'));
const configFile = path.join(dir, 'pve.yml');
writeFileSync(
  configFile,
  `# written by npm run demo: the simulator's test credentials, certificate pinned by fingerprint\n${exporterConfig(sim)}`,
  { mode: 0o600 },
);
const log = createLogger('info');
const config = loadConfigFile(configFile);
let app;
try {
  app = await startApp(parseCli(['node', 'demo', '--config.file', configFile, '--web.listen-address', `127.0.0.1:${values.port}`]), config, log);
} catch {
  app = await startApp(parseCli(['node', 'demo', '--config.file', configFile, '--web.listen-address', '127.0.0.1:0']), config, log);
}
process.stdout.write(
  [
    '',
    `PVE simulator:  ${sim.url}  (${values.nodes ? `${values.nodes} generated nodes` : `scenario ${values.scenario}`})`,
    `Exporter:       ${app.url}  (config ${configFile})`,
    '',
    'Try:',
    `  curl '${app.url}/pve?target=127.0.0.1&module=default&cluster=1&node=1'`,
    `  curl '${app.url}/pve/sd?target=127.0.0.1:${sim.port}'`,
    `  curl '${app.url}/metrics'`,
    '',
    'Ctrl-C stops both.',
    '',
  ].join('\n'),
);
const stop = async () => {
  await app.close();
  await sim.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
