// promtool's linter on what /pve serves: nothing but the reference's own *_total gauge.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { requireTool } from './helpers/tools.ts';

let sim: Simulator;
let exp: RunningExporter;
before(async () => {
  sim = await startSimulator({ generated: { nodes: 3, guestsPerNode: 20 } });
  exp = await startExporter(simModule(sim), ['--collector.pve-api-metrics', '--collector.target-metrics']);
});
after(async () => {
  await exp.close();
  await sim.close();
});

function lint(body: string): string[] {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  return (r.stdout + r.stderr)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

for (const [name, accept] of [
  ['text format', 'text/plain;version=0.0.4'],
  ['OpenMetrics', 'application/openmetrics-text;version=1.0.0'],
] as const) {
  test(`promtool check metrics on /pve (${name}) reports only pve_not_backed_up_total`, async (t) => {
    if (!requireTool(t, 'promtool', 'apt-get install prometheus')) return;
    const res = await get(`${exp.url}/pve?target=127.0.0.1`, { accept });
    assert.equal(res.status, 200);
    const problems = lint(res.body);
    assert.ok(problems.length >= 1, 'promtool should flag the reference gauge named *_total');
    // In OpenMetrics the counters that share a base name with a deprecated gauge are gauges named
    // *_total (see src/exposition/encode.ts); promtool notes them like the reference's gauge.
    // promtool 2.x reads OpenMetrics with its text-format parser, which takes the one proper
    // counter (family pve_disk_written_bytes, sample pve_disk_written_bytes_total) for a family
    // without HELP: an artefact of the parser, not of the exposition.
    const allowed = accept.includes('openmetrics')
      ? /^((pve_not_backed_up_total|pve_(network_transmit|network_receive|disk_read)_bytes_total) non-counter metrics should not have "_total" suffix|pve_disk_written_bytes_total no help text)$/
      : /^pve_not_backed_up_total non-counter metrics should not have "_total" suffix$/;
    for (const p of problems) assert.match(p, allowed, `unexpected promtool finding: ${p}`);
  });
}

test('promtool check metrics on /metrics: only prom-client\'s nodejs_active_*_total gauges', async (t) => {
  if (!requireTool(t, 'promtool', 'apt-get install prometheus')) return;
  await get(`${exp.url}/pve?target=127.0.0.1`);
  const res = await get(`${exp.url}/metrics`);
  assert.match(res.body, /pve_scrape_api_duration_seconds_bucket/);
  for (const p of lint(res.body)) assert.match(p, /^nodejs_active_\w+_total non-counter metrics/, `unexpected promtool finding: ${p}`);
});
