// Every shipped launcher runs the exporter as one Node process: no `npm start` in front of it
// (npm stays alive as a second Node process of about 55 MB), with the semi-space flag and the
// malloc setting that the exporter's memory figures are measured with (bench/harness.ts
// EXPORTER_NODE_ARGS and EXPORTER_ENV, used by bench/scrape.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EXPORTER_ENV, EXPORTER_NODE_ARGS } from '../bench/harness.ts';
import { HEAP_GROWING_PERCENT, tuneHeapGrowth } from '../src/heap-tuning.ts';
import { spawnExporter } from './helpers/exporter-process.ts';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

const ENV_ASSIGNMENTS = Object.entries(EXPORTER_ENV).map(([k, v]) => `${k}=${v}`);

test('what the launchers are held to: the flag and the malloc setting the bench measures', () => {
  assert.deepEqual(EXPORTER_NODE_ARGS, ['--max-semi-space-size=4']);
  assert.deepEqual(ENV_ASSIGNMENTS, ['MALLOC_MMAP_THRESHOLD_=131072']);
});

test('systemd unit: ExecStart is node itself with the flag; Environment= sets the malloc setting', () => {
  const unit = read('deploy/systemd/pve-exporter.service');
  const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? '';
  assert.match(exec, new RegExp(`^\\S*/node ${EXPORTER_NODE_ARGS.join(' ')} \\S+\\.(mjs|js)\\b`), exec);
  const env = [...unit.matchAll(/^Environment=(.*)$/gm)].map((m) => m[1]);
  for (const a of ENV_ASSIGNMENTS) assert.ok(env.includes(a), `Environment=${a} missing: ${JSON.stringify(env)}`);
});

test('container image: ENTRYPOINT is node itself with the flag; ENV sets the malloc setting', () => {
  const file = read('deploy/container/Containerfile');
  const entry = /^ENTRYPOINT (.*)$/m.exec(file)?.[1] ?? '';
  const argv = JSON.parse(entry) as string[];
  assert.match(argv[0], /\/node$/, entry);
  assert.deepEqual(argv.slice(1, 1 + EXPORTER_NODE_ARGS.length), EXPORTER_NODE_ARGS);
  const env = [...file.matchAll(/^ENV (.*)$/gm)].flatMap((m) => m[1].split(/\s+/));
  for (const a of ENV_ASSIGNMENTS) assert.ok(env.includes(a), `ENV ${a} missing: ${JSON.stringify(env)}`);
});

test('src/main.ts shebang (the bundle keeps it): env -S sets the malloc setting, then node with the flag', () => {
  const shebang = read('src/main.ts').split('\n', 1)[0];
  assert.equal(shebang, `#!/usr/bin/env -S ${ENV_ASSIGNMENTS.join(' ')} node ${EXPORTER_NODE_ARGS.join(' ')}`);
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
  assert.equal(pkg.scripts.start, `${ENV_ASSIGNMENTS.join(' ')} node ${EXPORTER_NODE_ARGS.join(' ')} dist/main.js`);
});

// src/heap-tuning.ts: the exporter sets V8's heap growing factor to 1.75 itself, unless node was
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

test('heap growth: the exporter sets a factor of 1.75 itself; a --heap-growing-percent given to node wins', async () => {
  // V8 prints the factor with one decimal.
  assert.equal(await lastHeapFactor([]), '1.8');
  assert.equal(await lastHeapFactor(['--heap-growing-percent=50']), '1.5');
  assert.equal(tuneHeapGrowth(['--heap_growing_percent=0']), undefined, 'the operator asked for V8\'s own choice');
  assert.equal(tuneHeapGrowth(['--max-semi-space-size=4']), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
});
