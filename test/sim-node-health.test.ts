// The simulator's node health variants and its /cluster/metrics/export, for the model cluster and
// for generated clusters (which the benchmark scrapes).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { startSimulator } from '../sim/index.ts';
import type { SimOptions, Simulator } from '../sim/types.ts';

async function withSim<T>(opts: SimOptions, fn: (sim: Simulator) => Promise<T>): Promise<T> {
  const sim = await startSimulator(opts);
  try {
    return await fn(sim);
  } finally {
    await sim.close();
  }
}

async function api(sim: Simulator, path: string): Promise<{ status: number; reason: string; data: unknown }> {
  const { tokenName, tokenValue, user } = sim.credentials;
  const dispatcher = new Agent({ connect: { ca: readFileSync(sim.caFile), servername: 'localhost' } });
  const res = await request(`${sim.url}/api2/json${path}`, {
    headers: { authorization: `PVEAPIToken=${user}!${tokenName}=${tokenValue}` },
    dispatcher,
  });
  const text = await res.body.text();
  await dispatcher.close();
  const reason = res.statusCode === 200 ? '' : text;
  return { status: res.statusCode, reason, data: res.statusCode === 200 ? (JSON.parse(text) as { data: unknown }).data : null };
}

type Row = Record<string, unknown>;

describe('node health variants', () => {
  test('the model as it is: pve1 tank DEGRADED, /dev/sdc FAILED!, apt readable', async () => {
    await withSim({}, async (sim) => {
      assert.equal(((await api(sim, '/nodes/pve1/disks/zfs')).data as Row[])[0].health, 'DEGRADED');
      const disks = (await api(sim, '/nodes/pve1/disks/list')).data as Row[];
      assert.equal(disks.find((d) => d.devpath === '/dev/sdc')?.health, 'FAILED!');
      assert.equal((await api(sim, '/nodes/pve1/apt/update')).status, 200);
    });
  });

  test('healthy, then a degraded pool and a failed disk on pve2, and 403 on apt', async () => {
    await withSim({ nodeHealth: { healthy: true } }, async (sim) => {
      assert.equal(((await api(sim, '/nodes/pve1/disks/zfs')).data as Row[])[0].health, 'ONLINE');
      for (const d of (await api(sim, '/nodes/pve1/disks/list')).data as Row[]) assert.equal(d.health, 'PASSED');
    });
    await withSim({ nodeHealth: { healthy: true, degradedPools: ['pve2'], failedDisks: ['pve2'], aptForbidden: true } }, async (sim) => {
      assert.equal(((await api(sim, '/nodes/pve1/disks/zfs')).data as Row[])[0].health, 'ONLINE');
      assert.equal(((await api(sim, '/nodes/pve2/disks/zfs')).data as Row[])[0].health, 'DEGRADED');
      const disks = (await api(sim, '/nodes/pve2/disks/list')).data as Row[];
      assert.deepEqual(
        disks.filter((d) => d.health !== 'PASSED').map((d) => [d.devpath, d.health]),
        [['/dev/sdc', 'FAILED!']],
      );
      const apt = await api(sim, '/nodes/pve2/apt/update');
      assert.equal(apt.status, 403);
      assert.match(apt.reason, /Permission check failed \(\/nodes\/pve2, Sys\.Modify\)/);
    });
  });

  test('an unknown node in a variant is an error naming it', async () => {
    await assert.rejects(startSimulator({ nodeHealth: { degradedPools: ['pve9'] } }), /nodeHealth\.degradedPools: no node "pve9"/);
  });

  test('generated clusters: healthy by default, variants apply, export has every node', async () => {
    await withSim({ generated: { nodes: 4, guestsPerNode: 6 }, nodeHealth: { degradedPools: ['pve3'], failedDisks: ['pve4'] } }, async (sim) => {
      assert.equal(((await api(sim, '/nodes/pve1/disks/zfs')).data as Row[])[0]?.health ?? 'none', 'ONLINE');
      assert.equal(((await api(sim, '/nodes/pve3/disks/zfs')).data as Row[])[0].health, 'DEGRADED');
      const failed = ((await api(sim, '/nodes/pve4/disks/list')).data as Row[]).filter((d) => d.health === 'FAILED!');
      assert.equal(failed.length, 1);
      const exported = ((await api(sim, '/cluster/metrics/export')).data as { data: Row[] }).data;
      for (const n of ['pve1', 'pve2', 'pve3', 'pve4']) {
        const own = exported.filter((e) => e.id === `node/${n}`);
        assert.equal(own.length, 15, `${n}: the 15 node metrics`);
        const status = (await api(sim, `/nodes/${n}/status`)).data as { loadavg: string[]; swap: { total: number } };
        assert.equal(own.find((e) => e.metric === 'cpu_avg1')?.value, Number(status.loadavg[0]), 'same numbers as the node status');
        assert.equal(own.find((e) => e.metric === 'swap_total')?.value, status.swap.total);
      }
      assert.ok(exported.some((e) => typeof e.id === 'string' && e.id.startsWith('qemu/')));
      assert.ok(exported.some((e) => typeof e.id === 'string' && e.id.startsWith('storage/')));
    });
  });

  test('an offline node and its guests are left out of the export, as PVE does', async () => {
    await withSim({ offlineNodes: ['pve3'] }, async (sim) => {
      const exported = ((await api(sim, '/cluster/metrics/export')).data as { data: Row[] }).data;
      assert.ok(exported.some((e) => e.id === 'node/pve2'));
      assert.equal(exported.filter((e) => e.id === 'node/pve3' || e.id === 'qemu/104' || String(e.id).startsWith('storage/pve3/')).length, 0);
      sim.setNodeOffline('pve3', false);
      const back = ((await api(sim, '/cluster/metrics/export')).data as { data: Row[] }).data;
      assert.ok(back.some((e) => e.id === 'node/pve3'));
    });
  });
});
