// The release path: LICENSE, the GitHub Actions workflows (linted with actionlint, then the facts
// a release depends on), the steps of the release workflow that can run here run for real, and
// the npm package that `npm publish` would upload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { requireTool } from './helpers/tools.ts';
import { formatProblems, lintWorkflows, workflowFiles } from './helpers/workflow-lint.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORKFLOWS = path.join(ROOT, '.github/workflows');
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  license: string;
  bin: Record<string, string>;
  repository?: { url?: string };
};

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string | number | boolean>;
  env?: Record<string, string>;
}
interface Job {
  needs?: string | string[];
  permissions?: Record<string, string>;
  env?: Record<string, string>;
  outputs?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

const readWorkflow = (name: string): Workflow => parseYaml(readFileSync(path.join(WORKFLOWS, name), 'utf8')) as Workflow;
const ci = readWorkflow('ci.yml');
const release = readWorkflow('release.yml');

const needsOf = (job: Job): string[] => (job.needs === undefined ? [] : Array.isArray(job.needs) ? job.needs : [job.needs]);
const runs = (job: Job): string => job.steps.map((s) => s.run ?? '').join('\n');
function stepUsing(job: Job, action: string, index = 0): Step {
  const found = job.steps.filter((s) => s.uses?.split('@')[0] === action);
  assert.ok(found.length > index, `no step uses ${action} (#${index + 1})`);
  return found[index]!;
}
function stepWithId(job: Job, id: string): Step {
  const step = job.steps.find((s) => s.id === id);
  assert.ok(step, `no step with id ${id}`);
  return step;
}
/** Jobs that `job` waits for, directly or through other jobs. */
function allNeeds(wf: Workflow, job: string): Set<string> {
  const seen = new Set<string>();
  const visit = (name: string): void => {
    for (const n of needsOf(wf.jobs[name]!)) if (!seen.has(n)) (seen.add(n), visit(n));
  };
  visit(job);
  return seen;
}

// ---------------------------------------------------------------------------------------------
// LICENSE
// ---------------------------------------------------------------------------------------------

test('LICENSE is the Apache License 2.0, as package.json and the image label say', () => {
  const license = readFileSync(path.join(ROOT, 'LICENSE'), 'utf8');
  assert.equal(PKG.license, 'Apache-2.0');
  assert.match(license, /^\s*Apache License\n\s*Version 2\.0, January 2004\n/);
  assert.match(license, /TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION/);
  assert.match(license, /END OF TERMS AND CONDITIONS/);
  // Debian ships the license text as published; where it is installed, ours must be that text.
  const debian = '/usr/share/common-licenses/Apache-2.0';
  if (existsSync(debian)) assert.equal(license, readFileSync(debian, 'utf8'), `LICENSE differs from ${debian}`);
  assert.match(readFileSync(path.join(ROOT, 'deploy/container/Containerfile'), 'utf8'), new RegExp(`org\\.opencontainers\\.image\\.licenses="${PKG.license}"`));
  const meta = stepUsing(release.jobs.image!, 'docker/metadata-action');
  assert.match(String(meta.with?.labels), new RegExp(`org\\.opencontainers\\.image\\.licenses=${PKG.license}$`, 'm'));
});

// ---------------------------------------------------------------------------------------------
// Workflow lint
// ---------------------------------------------------------------------------------------------

test('actionlint finds nothing wrong in .github/workflows', async () => {
  const files = workflowFiles(WORKFLOWS);
  assert.deepEqual(files.map((f) => path.basename(f)), ['ci.yml', 'release.yml']);
  const problems = await lintWorkflows(files);
  assert.deepEqual(problems, [], formatProblems(problems));
});

test('actionlint catches broken copies of the release workflow (each mistake at its line)', async () => {
  const original = readFileSync(path.join(WORKFLOWS, 'release.yml'), 'utf8');
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-workflows-'));
  try {
    const mistakes: Array<{ name: string; from: string; to: string; expect: RegExp }> = [
      { name: 'misspelt action input', from: '          platforms: linux/amd64,linux/arm64\n', to: '          platfroms: linux/amd64,linux/arm64\n', expect: /input "platfroms" is not defined/ },
      { name: 'needs an unknown job', from: 'needs: [test, image, npm]', to: 'needs: [test, imgae, npm]', expect: /imgae/ },
      { name: 'unknown output of a needed job', from: '${{ needs.test.outputs.version }}', to: '${{ needs.test.outputs.versoin }}', expect: /versoin/ },
      { name: 'unknown permission scope', from: '      packages: write\n', to: '      package: write\n', expect: /package/ },
      { name: 'YAML syntax error', from: "    tags: ['v", to: "    tags: [['v", expect: /yaml|syntax|could not parse|expect/i },
    ];
    for (const m of mistakes) {
      const at = original.indexOf(m.from);
      assert.ok(at >= 0, `${m.name}: "${m.from.trim()}" not found in release.yml`);
      const broken = original.slice(0, at) + m.to + original.slice(at + m.from.length);
      const line = original.slice(0, at).split('\n').length + (m.from.startsWith('\n') ? 1 : 0);
      const file = path.join(dir, `${m.name.replace(/\W+/g, '-')}.yml`);
      writeFileSync(file, broken);
      const problems = await lintWorkflows([file]);
      assert.ok(problems.length > 0, `${m.name}: actionlint found nothing`);
      assert.ok(
        problems.some((p) => m.expect.test(p.message) && Math.abs(p.line - line) <= 1),
        `${m.name}: expected ${m.expect} near line ${line}, got:\n${formatProblems(problems)}`,
      );
    }
    // And the unchanged copy is clean, so the problems above come from the mistakes.
    const clean = path.join(dir, 'release.yml');
    copyFileSync(path.join(WORKFLOWS, 'release.yml'), clean);
    assert.deepEqual(await lintWorkflows([clean]), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every action is an official one (actions/*, docker/*) pinned to a major version', () => {
  for (const [file, wf] of [['ci.yml', ci], ['release.yml', release]] as const) {
    for (const [name, job] of Object.entries(wf.jobs)) {
      for (const step of job.steps.filter((s) => s.uses)) {
        assert.match(step.uses!, /^(actions|docker)\/[a-z-]+@v\d+$/, `${file} job ${name}: ${step.uses}`);
      }
    }
  }
});

test('shell scripts of the workflows pass shellcheck (bash, as GitHub runs them)', (t) => {
  if (!requireTool(t, 'shellcheck', 'apt-get install shellcheck')) return;
  for (const [file, wf] of [['ci.yml', ci], ['release.yml', release]] as const) {
    for (const [name, job] of Object.entries(wf.jobs)) {
      for (const step of job.steps.filter((s) => s.run)) {
        // Expressions are replaced by GitHub before the shell sees the script.
        const script = `#!/usr/bin/env bash\nset -e\n${step.run!.replace(/\$\{\{[^}]*\}\}/g, 'GHA_EXPRESSION')}`;
        const r = spawnSync('shellcheck', ['-s', 'bash', '-'], { input: script, encoding: 'utf8' });
        assert.equal(r.status, 0, `${file} job ${name}, step "${step.name ?? step.run!.split('\n')[0]}":\n${r.stdout}${r.stderr}`);
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------
// CI workflow
// ---------------------------------------------------------------------------------------------

test('CI workflow: .ci/run (Debian packages of .ci/apt-packages*, npm ci, npm test) on pushes to main and pull requests', () => {
  assert.ok('pull_request' in ci.on && 'push' in ci.on);
  assert.deepEqual(ci.permissions, { contents: 'read' });
  const job = ci.jobs.test!;
  stepUsing(job, 'actions/checkout');
  stepUsing(job, 'actions/setup-node');
  assert.match(runs(job), /^bash \.ci\/run$/m);
  const ciRun = readFileSync(path.join(ROOT, '.ci/run'), 'utf8');
  for (const what of [/\.ci\/apt-packages\*/, /npm ci\b/, /npm test\b/]) assert.match(ciRun, what);
});

// ---------------------------------------------------------------------------------------------
// Release workflow
// ---------------------------------------------------------------------------------------------

test('release workflow: on version tags; tests first; write access only in jobs that wait for the tests', () => {
  const push = release.on.push as { tags: string[]; branches?: unknown };
  assert.deepEqual(push.tags, ['v[0-9]+.[0-9]+.[0-9]+*']);
  assert.equal(push.branches, undefined);
  assert.deepEqual(release.permissions, {}, 'no permissions by default; each job asks for its own');
  assert.match(runs(release.jobs.test!), /^bash \.ci\/run$/m);
  assert.deepEqual(release.jobs.test!.permissions, { contents: 'read' });
  const granted = new Map<string, Set<string>>();
  for (const [name, job] of Object.entries(release.jobs)) {
    const writes = Object.entries(job.permissions ?? {}).filter(([, v]) => v === 'write');
    if (writes.length > 0) assert.ok(allNeeds(release, name).has('test'), `job ${name} has write permissions but does not wait for the tests`);
    for (const [scope] of writes) granted.set(scope, (granted.get(scope) ?? new Set()).add(name));
  }
  assert.ok(granted.get('packages')?.has('image'), 'packages: write for the image push');
  assert.ok(granted.get('contents')?.has('release'), 'contents: write for the GitHub release');
  assert.ok(granted.get('id-token')?.has('npm'), 'id-token: write for npm provenance');
  assert.ok(granted.get('id-token')?.has('image'), 'id-token: write for the image attestation');
  assert.deepEqual([...granted.get('contents')!], ['release'], 'only the release job writes contents');
});

test('release workflow: linux/amd64 + linux/arm64 image from the Containerfile, pushed to GHCR as <version> and latest with OCI labels', () => {
  const job = release.jobs.image!;
  assert.deepEqual(needsOf(job), ['test']);
  stepUsing(job, 'docker/setup-qemu-action');
  stepUsing(job, 'docker/setup-buildx-action');
  const login = stepUsing(job, 'docker/login-action');
  assert.equal(login.with?.registry, 'ghcr.io');
  assert.equal(login.with?.password, '${{ secrets.GITHUB_TOKEN }}');

  // The image name: ghcr.io/<owner>/pve-exporter, lower-cased by the test job's version step.
  assert.equal(job.env?.IMAGE, '${{ needs.test.outputs.image }}');
  assert.match(stepWithId(release.jobs.test!, 'version').run!, /image=ghcr\.io\/\$\{OWNER,,\}\/pve-exporter/);
  assert.equal(stepWithId(release.jobs.test!, 'version').env?.OWNER, '${{ github.repository_owner }}');

  const meta = stepWithId(job, 'meta');
  assert.equal(meta.uses?.split('@')[0], 'docker/metadata-action');
  assert.equal(meta.with?.images, '${{ env.IMAGE }}');
  const tags = String(meta.with?.tags).trim().split('\n');
  assert.deepEqual(tags, ['type=semver,pattern={{version}}', "type=raw,value=latest,enable=${{ needs.test.outputs.prerelease == 'false' }}"]);
  const labels = String(meta.with?.labels).trim().split('\n').map((l) => l.split('=')[0]);
  for (const key of ['title', 'description', 'licenses', 'documentation']) assert.ok(labels.includes(`org.opencontainers.image.${key}`), key);

  const push = stepWithId(job, 'push');
  assert.equal(push.uses?.split('@')[0], 'docker/build-push-action');
  assert.equal(push.with?.platforms, 'linux/amd64,linux/arm64');
  assert.equal(push.with?.push, true);
  assert.equal(push.with?.context, '.');
  assert.equal(push.with?.tags, '${{ steps.meta.outputs.tags }}');
  assert.equal(push.with?.labels, '${{ steps.meta.outputs.labels }}');
  assert.equal(push.with?.provenance, 'mode=max');
  assert.equal(push.with?.sbom, true);
  // Every build of the workflow uses the Containerfile and passes exactly the ARGs it declares.
  const containerfile = readFileSync(path.join(ROOT, 'deploy/container/Containerfile'), 'utf8');
  const stageArgs = [...containerfile.split(/^FROM .*$/m).at(-1)!.matchAll(/^ARG (\w+)=/gm)].map((m) => m[1]).sort();
  assert.deepEqual(stageArgs, ['CREATED', 'REVISION', 'VERSION']);
  const builds = job.steps.filter((s) => s.uses?.startsWith('docker/build-push-action@'));
  assert.equal(builds.length, 2, 'a smoke-test build and the multi-arch push');
  for (const b of builds) {
    assert.equal(b.with?.file, 'deploy/container/Containerfile');
    assert.ok(existsSync(path.join(ROOT, String(b.with?.file))));
    const args = String(b.with?.['build-args']).trim().split('\n').map((l) => l.split('=')[0]!);
    for (const a of args) assert.ok(stageArgs.includes(a), `build-arg ${a} is not an ARG of the runtime stage`);
    assert.ok(args.includes('VERSION') && args.includes('REVISION'));
  }
  // The smoke test runs before the push and checks what the ENTRYPOINT starts.
  const smoke = job.steps.findIndex((s) => s.run?.includes('docker run --rm pve-exporter:smoke --version'));
  assert.ok(smoke > 0 && smoke < job.steps.indexOf(push), 'smoke test before the push');
  assert.equal(stepUsing(job, 'actions/attest-build-provenance').with?.['subject-digest'], '${{ steps.push.outputs.digest }}');
});

test('release workflow: npm publish --provenance --access public with the NPM_TOKEN secret', () => {
  const job = release.jobs.npm!;
  assert.deepEqual(needsOf(job), ['test']);
  assert.equal(job.permissions?.['id-token'], 'write');
  const publish = job.steps.find((s) => s.run?.includes('npm publish'));
  assert.ok(publish);
  assert.match(publish.run!, /^\s*npm publish --provenance --access public\b/m);
  assert.equal(publish.env?.NODE_AUTH_TOKEN, '${{ secrets.NPM_TOKEN }}');
  assert.match(PKG.repository?.url ?? '', /^git\+https:\/\/github\.com\/[\w.-]+\/[\w.-]+\.git$/, 'npm provenance needs package.json repository.url');
});

test('release workflow: the single-file bundle and its checksum are attached to the GitHub release', () => {
  const job = release.jobs.release!;
  assert.ok(allNeeds(release, 'release').has('image') && allNeeds(release, 'release').has('npm'), 'the release is created last');
  assert.equal(job.permissions?.contents, 'write');
  const script = runs(job);
  assert.match(script, /^\s*npm run bundle$/m);
  // `npm run bundle` writes dist/pve-exporter.mjs unless told otherwise.
  assert.match(readFileSync(path.join(ROOT, 'scripts/bundle.mjs'), 'utf8'), /default: resolve\(root, 'dist\/pve-exporter\.mjs'\)/);
  assert.match(script, /gh release create "\$TAG" dist\/pve-exporter\.mjs dist\/pve-exporter\.mjs\.sha256/);
  assert.equal(stepUsing(job, 'actions/attest-build-provenance').with?.['subject-path'], 'dist/pve-exporter.mjs');
});

/** Runs the test job's version step with bash, as the runner would. */
function runVersionStep(env: Record<string, string>): { status: number | null; out: string; outputs: Map<string, string> } {
  const step = stepWithId(release.jobs.test!, 'version');
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-release-step-'));
  try {
    const outputFile = path.join(dir, 'output');
    writeFileSync(outputFile, '');
    const r = spawnSync('bash', ['-e', '-c', step.run!], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, GITHUB_OUTPUT: outputFile, ...env },
    });
    const outputs = new Map(
      readFileSync(outputFile, 'utf8').split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]),
    );
    return { status: r.status, out: `${r.stdout}${r.stderr}`, outputs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('release workflow: the version step accepts only the tag of package.json\'s version and this repository', () => {
  const repo = /github\.com\/([\w.-]+\/[\w.-]+?)(\.git)?$/.exec(PKG.repository?.url ?? '')![1]!;
  const owner = repo.split('/')[0]!;
  const ok = runVersionStep({ TAG: `v${PKG.version}`, REPOSITORY: repo, OWNER: owner.toUpperCase() });
  assert.equal(ok.status, 0, ok.out);
  assert.equal(ok.outputs.get('version'), PKG.version);
  assert.equal(ok.outputs.get('prerelease'), PKG.version.includes('-') ? 'true' : 'false');
  assert.equal(ok.outputs.get('image'), `ghcr.io/${owner.toLowerCase()}/pve-exporter`, 'GHCR names are lower case');

  const wrongTag = runVersionStep({ TAG: `v${PKG.version}.1`, REPOSITORY: repo, OWNER: owner });
  assert.notEqual(wrongTag.status, 0);
  assert.match(wrongTag.out, new RegExp(`::error::tag v${PKG.version.replace(/\./g, '\\.')}\\.1 does not match package.json version`));

  const fork = runVersionStep({ TAG: `v${PKG.version}`, REPOSITORY: 'someone/pve-exporter-fork', OWNER: 'someone' });
  assert.notEqual(fork.status, 0);
  assert.match(fork.out, /::error::package\.json repository\.url .* not github\.com\/someone\/pve-exporter-fork/);
});

test('npm package: what `npm publish` uploads has LICENSE, README and the bin, and no sources or tests', { timeout: 60_000 }, () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const [pack] = JSON.parse(r.stdout) as Array<{ name: string; files: Array<{ path: string }> }>;
  const files = pack!.files.map((f) => f.path);
  assert.equal(pack!.name, PKG.name);
  for (const f of ['LICENSE', 'README.md', 'package.json']) assert.ok(files.includes(f), `${f} missing from the package`);
  for (const bin of Object.values(PKG.bin)) {
    // dist/ is built by `prepare` (npm ci, npm publish); without it there is nothing to check.
    if (existsSync(path.join(ROOT, bin))) assert.ok(files.includes(bin), `bin ${bin} missing from the package`);
  }
  for (const f of files) assert.doesNotMatch(f, /^(src|test|sim|bench|deploy|\.github|\.ci)\//, `${f} would be published`);
});

test('docs/release.md matches the workflow: the tag, the secret, the pre-release rules', () => {
  const doc = readFileSync(path.join(ROOT, 'docs/release.md'), 'utf8');
  assert.match(doc, /Secret `NPM_TOKEN`/);
  assert.ok(runs(release.jobs.npm!).includes('tag=next'), 'pre-releases go to the next dist-tag');
  assert.match(doc, /npm under the `next` dist-tag/);
  for (const arch of ['linux/amd64', 'linux/arm64']) assert.ok(doc.includes(arch), arch);
  assert.match(doc, /^git tag v\d+\.\d+\.\d+$/m);
  assert.match(doc, /npm run lint:workflows/);
  const lint = spawnSync('npm', ['run', '--silent', 'lint:workflows'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(lint.status, 0, `${lint.stdout}${lint.stderr}`);
});
