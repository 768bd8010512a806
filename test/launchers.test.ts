// Every shipped launcher runs the exporter as one Node process: no `npm start` in front of it
// (npm stays alive as a second Node process of about 55 MB), and with the semi-space flag the
// exporter's memory figures are measured with (bench/scrape.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { HEAP_GROWING_PERCENT, tuneHeapGrowth } from '../src/heap-tuning.ts';
import { spawnExporter } from './helpers/exporter-process.ts';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

test('systemd unit: ExecStart is node itself with --max-semi-space-size=4', () => {
  const exec = /^ExecStart=(.*)$/m.exec(read('deploy/systemd/pve-exporter.service'))?.[1] ?? '';
  assert.match(exec, /^\S*\/node --max-semi-space-size=4 \S+\.(mjs|js)\b/, exec);
});

test('container image: ENTRYPOINT is node itself with --max-semi-space-size=4', () => {
  const entry = /^ENTRYPOINT (.*)$/m.exec(read('deploy/container/Containerfile'))?.[1] ?? '';
  const argv = JSON.parse(entry) as string[];
  assert.match(argv[0], /\/node$/, entry);
  assert.equal(argv[1], '--max-semi-space-size=4');
});

test('Quadlet unit, Ansible template and Helm chart keep the image entrypoint (no npm, no command override)', () => {
  for (const file of [
    'deploy/quadlet/pve-exporter.container',
    'deploy/ansible/roles/pve_exporter/templates/pve-exporter.container.j2',
    'deploy/helm/pve-exporter/templates/deployment.yaml',
  ]) {
    const text = read(file);
    assert.doesNotMatch(text, /\bnpm\b/, `${file} mentions npm`);
    assert.doesNotMatch(text, /^(\s*command:|Entrypoint=)/m, `${file} overrides the entrypoint`);
  }
});

test('package.json: npm start runs the same command (for development)', () => {
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, 'node --max-semi-space-size=4 dist/main.js');
});

// src/heap-tuning.ts: the exporter sets V8's heap growing factor to 2 itself, unless node was
// given one. V8's verbose GC trace prints the factor with each new old-generation limit.
async function lastHeapFactor(nodeFlags: string[]): Promise<string | undefined> {
  // --gc-global: every collection is a full one, which computes a new limit; a 1 MB young
  // generation makes the requests below fill it many times over.
  const exp = await spawnExporter({
    config: 'default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: not-used\n  verify_ssl: false\n  targets: [127.0.0.1]\n',
    nodeArgs: [...nodeFlags, '--trace-gc-verbose', '--gc-global', '--max-semi-space-size=1'],
  });
  try {
    // Collections after start-up, from serving requests.
    const before = exp.stdout().length;
    for (let i = 0; i < 200 && !/\[HeapController\] Limit/.test(exp.stdout().slice(before)); i++) await (await fetch(`${exp.url}/metrics`)).text();
  } finally {
    await exp.stop();
  }
  const limits = [...exp.stdout().matchAll(/\[HeapController\] Limit: .*\(([\d.]+)\)/g)].map((m) => m[1]);
  return limits.at(-1);
}

test('heap growth: the exporter sets a factor of 2 itself; a --heap-growing-percent given to node wins', async () => {
  assert.equal(await lastHeapFactor([]), '2.0');
  assert.equal(await lastHeapFactor(['--heap-growing-percent=50']), '1.5');
  assert.equal(tuneHeapGrowth(['--heap_growing_percent=0']), undefined, 'the operator asked for V8\'s own choice');
  assert.equal(tuneHeapGrowth(['--max-semi-space-size=4']), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
});
