// Every shipped launcher runs the exporter as one Node process: no `npm start` in front of it
// (npm stays alive as a second Node process of about 55 MB), and with the semi-space flag the
// exporter's memory figures are measured with (bench/scrape.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

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
