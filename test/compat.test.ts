// The exporter against the simulator serving each scenario of reference/compat: every family,
// HELP, TYPE, label set and value must equal the reference exporter's output.
process.env.TZ = 'UTC'; // the reference ran in UTC (subscription due date is local midnight)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimulator } from '../sim/index.ts';
import type { ScenarioName, Simulator } from '../sim/types.ts';
import { compatFile } from './helpers/fixtures.ts';
import { diffExpositions, parseExposition } from './helpers/promtext.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { SCRAPE_COLLECTORS } from '../src/collectors/registry.ts';

// The compat runs keep every default collector on, the project's additions included: that shows
// they leave every reference family exactly as it was. The comparison ignores only the families
// the additions declare (and pve_exporter_*), so any other family the reference does not list,
// or a reference family that changed, still fails.
const ADDED_FAMILIES = new Set(SCRAPE_COLLECTORS.filter((c) => c.origin === 'addition').flatMap((c) => c.families.map((f) => f.name)));
const IGNORED = (name: string): boolean => name.startsWith('pve_exporter_') || ADDED_FAMILIES.has(name);

const SCENARIOS: ScenarioName[] = ['default', 'pve8', 'degraded', 'standalone'];
const QUERIES = [
  { file: 'cluster-1_node-1', query: 'cluster=1&node=1' },
  { file: 'cluster-1_node-0', query: 'cluster=1&node=0' },
  { file: 'cluster-0_node-1', query: 'cluster=0&node=1' },
];

for (const scenario of SCENARIOS) {
  describe(`compat scenario ${scenario}`, () => {
    let sim: Simulator;
    let exporter: RunningExporter;
    before(async () => {
      sim = await startSimulator({ scenario });
      exporter = await startExporter(simModule(sim));
    });
    after(async () => {
      await exporter?.close();
      await sim?.close();
    });
    for (const q of QUERIES) {
      test(`${q.file} equals the reference semantically`, async () => {
        const res = await get(`${exporter.url}/pve?target=127.0.0.1&${q.query}`);
        assert.equal(res.status, 200, res.body);
        const expected = parseExposition(compatFile(scenario, q.file));
        const actual = parseExposition(res.body);
        assert.deepEqual(diffExpositions(expected, actual, IGNORED), []);
        for (const name of ADDED_FAMILIES) assert.ok(!expected.has(name), `${name} is a reference family: its collector is not an addition`);
        // Our own per-collector health is there, and every collector succeeded.
        const success = actual.get('pve_exporter_collector_success');
        assert.ok(success && success.samples.size > 0);
        for (const [key, v] of success.samples) assert.equal(v, 1, key);
      });
    }
  });
}
