// Each scrape fetches what its scopes need and nothing more (counted by the simulator).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';

describe('API calls per scope', () => {
  let sim: Simulator;
  let exporter: RunningExporter;
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    exporter = await startExporter(simModule(sim));
  });
  after(async () => {
    await exporter?.close();
    await sim?.close();
  });

  async function callsOf(query: string): Promise<Map<string, number>> {
    sim.resetStats();
    const res = await get(`${exporter.url}/pve?target=127.0.0.1&${query}`);
    assert.equal(res.status, 200, res.body);
    assert.doesNotMatch(res.body, /pve_exporter_collector_success\{collector="[^"]+"\} 0/);
    return sim.stats().calls;
  }

  test('node scope only: the node\'s own guest lists, not the whole cluster\'s resources', async () => {
    const calls = await callsOf('cluster=0&node=1');
    assert.equal(calls.get('/cluster/resources'), undefined, 'no /cluster/resources');
    assert.equal(calls.get('/nodes/pve1/qemu'), 1);
    assert.equal(calls.get('/nodes/pve1/lxc'), 1);
    for (const path of calls.keys()) assert.doesNotMatch(path, /^\/nodes\/pve[23]\//, `${path}: only the answering node is read`);
  });

  test('both scopes: the guest list comes from /cluster/resources, read once', async () => {
    const calls = await callsOf('cluster=1&node=1');
    assert.equal(calls.get('/cluster/resources'), 1);
    assert.equal(calls.get('/nodes/pve1/qemu'), undefined);
    assert.equal(calls.get('/nodes/pve1/lxc'), undefined);
  });

  test('cluster scope only: no per-node call', async () => {
    const calls = await callsOf('cluster=1&node=0');
    for (const path of calls.keys()) assert.doesNotMatch(path, /^\/nodes\//, path);
  });
});
