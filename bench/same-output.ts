// Do two builds write the same bytes? Runs dist A and dist B (each `node <dist>/main.js`) against
// the same simulator (a generated cluster and every scenario), scrapes each scope combination in
// text and OpenMetrics three times (a cold and two warm scrapes) and compares the bodies byte for
// byte, without pve_exporter_collector_duration_seconds (a time). Prints JSON; exit 1 on a difference.
// Usage: tsx bench/same-output.ts /tmp/dist-main dist
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator, type SimOptions } from '../sim/index.ts';
import { getFreePort, waitForHttp } from '../test/helpers/net.ts';

const [distA, distB] = process.argv.slice(2);
if (!distA || !distB) throw new Error('usage: tsx bench/same-output.ts <distA> <distB>');

const SIMS: Array<[string, SimOptions]> = [
  ['generated 3x40', { generated: { nodes: 3, guestsPerNode: 40 } }],
  ['default', { scenario: 'default' }],
  ['pve8', { scenario: 'pve8' }],
  ['degraded', { scenario: 'degraded' }],
  ['standalone', { scenario: 'standalone' }],
];
const QUERIES = ['cluster=1&node=1', 'cluster=1&node=0', 'cluster=0&node=1'];
const FORMATS: Array<[string, Record<string, string>]> = [
  ['text', {}],
  ['openmetrics', { accept: 'application/openmetrics-text; version=1.0.0' }],
];

async function exporter(dist: string, configFile: string) {
  const port = await getFreePort();
  const child = spawn(process.execPath, [path.join(dist, 'main.js'), '--config.file', configFile, '--web.listen-address', `127.0.0.1:${port}`, '--log.level', 'error'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, TZ: 'UTC' },
  });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/-/healthy`);
  return { base, stop: () => child.kill('SIGTERM') };
}

const strip = (body: string) => body.replace(/^pve_exporter_collector_duration_seconds\{.*\n/gm, '');
const differences: string[] = [];
let compared = 0;
for (const [name, opts] of SIMS) {
  const sim = await startSimulator(opts);
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-same-'));
  const configFile = path.join(dir, 'pve.yml');
  writeFileSync(configFile, exporterConfig(sim, 'default', { targets: ['127.0.0.1'] }), { mode: 0o600 });
  const a = await exporter(distA, configFile);
  const b = await exporter(distB, configFile);
  try {
    for (let round = 0; round < 3; round++) {
      for (const q of QUERIES) {
        for (const [format, headers] of FORMATS) {
          const [ra, rb] = [await fetch(`${a.base}/pve?target=127.0.0.1&${q}`, { headers }), await fetch(`${b.base}/pve?target=127.0.0.1&${q}`, { headers })];
          const [ta, tb] = [strip(await ra.text()), strip(await rb.text())];
          compared++;
          if (ra.status !== rb.status || ta !== tb || ra.headers.get('content-type') !== rb.headers.get('content-type')) {
            const at = [...ta].findIndex((c, i) => c !== tb[i]);
            differences.push(`${name} ${q} ${format} round ${round}: status ${ra.status}/${rb.status}, first difference at ${at}: ${JSON.stringify(ta.slice(Math.max(0, at - 80), at + 80))} vs ${JSON.stringify(tb.slice(Math.max(0, at - 80), at + 80))}`);
          }
        }
      }
    }
  } finally {
    a.stop();
    b.stop();
    await sim.close();
  }
}
process.stdout.write(JSON.stringify({ compared, differences }, null, 2) + '\n');
process.exitCode = differences.length > 0 ? 1 : 0;
