// Docs that promise something are checked: the generated metrics reference is current, the README
// starts with the newcomer's commands, every flag is documented, and `npm run demo` works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { renderMetricsDoc } from '../scripts/gen-metrics-doc.ts';
import { buildCommand } from '../src/cli.ts';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

test('docs/metrics.md is generated from the registry and up to date', () => {
  assert.equal(read('docs/metrics.md'), renderMetricsDoc(), 'run `npm run docs:metrics` and commit the result');
});

test('README starts with npm ci / npm test and npm run demo', () => {
  const head = read('README.md').split('\n').slice(0, 8).join('\n');
  assert.match(head, /npm ci && npm test/);
  assert.match(head, /npm run demo/);
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  for (const s of ['test', 'demo', 'start', 'bench', 'docs:metrics']) assert.ok(pkg.scripts[s], `script ${s}`);
});

test('every non-collector flag is in the README flag table', () => {
  const readme = read('README.md');
  for (const opt of buildCommand().options) {
    const long = opt.long!;
    if (long.includes('collector.') || long === '--help') continue;
    assert.ok(readme.includes(`\`${long}\``), `${long} not documented in README.md`);
  }
});

test('npm run demo prints a curl line that returns metrics', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('../scripts/demo.ts', import.meta.url).pathname, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no curl line in time:\n${out}`)), 30_000);
      child.stdout!.on('data', (d) => {
        out += d;
        const m = /curl '([^']*cluster=1&node=1)'/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once('exit', (code) => reject(new Error(`demo exited with ${code}:\n${out}`)));
    });
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^pve_up\{id="cluster\/pvec"\} 1$/m);
  } finally {
    child.kill('SIGTERM');
  }
});
