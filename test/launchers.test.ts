// Every shipped launcher runs the exporter as one Node process: no `npm start` in front of it
// (npm stays alive as a second Node process of about 55 MB), and with the semi-space flag the
// exporter's memory figures are measured with (bench/scrape.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HEAP_GROWING_PERCENT, tuneHeapGrowth } from '../src/heap-tuning.ts';

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
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-heap-'));
  const config = path.join(dir, 'pve.yml');
  writeFileSync(config, 'default:\n  user: monitoring@pve\n  token_name: exporter\n  token_value: not-used\n  verify_ssl: false\n  targets: [127.0.0.1]\n', { mode: 0o600 });
  // --gc-global: every collection is a full one, which computes a new limit; a 1 MB young
  // generation makes the requests below fill it many times over.
  const child = spawn(
    process.execPath,
    [...nodeFlags, '--trace-gc-verbose', '--gc-global', '--max-semi-space-size=1', '--import', 'tsx', fileURLToPath(new URL('../src/main.ts', import.meta.url)), '--config.file', config, '--web.listen-address', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const end = Date.now() + 60_000;
    while (!err.includes('pve-exporter listening')) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`exporter did not start:\n${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Collections after start-up, from serving requests.
    const url = /"address":"(http:[^"]+)"/.exec(err)![1];
    const before = out.length;
    for (let i = 0; i < 200 && !/\[HeapController\] Limit/.test(out.slice(before)); i++) await (await fetch(`${url}/metrics`)).text();
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
  const limits = [...out.matchAll(/\[HeapController\] Limit: .*\(([\d.]+)\)/g)].map((m) => m[1]);
  return limits.at(-1);
}

test('heap growth: the exporter sets a factor of 2 itself; a --heap-growing-percent given to node wins', async () => {
  assert.equal(await lastHeapFactor([]), '2.0');
  assert.equal(await lastHeapFactor(['--heap-growing-percent=50']), '1.5');
  assert.equal(tuneHeapGrowth(['--heap_growing_percent=0']), undefined, 'the operator asked for V8\'s own choice');
  assert.equal(tuneHeapGrowth(['--max-semi-space-size=4']), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
});
