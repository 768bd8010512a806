// The deployment guides: their links lead somewhere, the container run line is the reference
// image's with only the image name changed, and every artifact names the same image and paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { buildCommand } from '../src/cli.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (p: string): string => readFileSync(path.join(ROOT, p), 'utf8');
const IMAGE = 'ghcr.io/pve-exporter/pve-exporter:latest';
const REFERENCE_RUN =
  'docker run --name prometheus-pve-exporter -d -p 127.0.0.1:9221:9221 -v /path/to/pve.yml:/etc/prometheus/pve.yml prompve/prometheus-pve-exporter';

const GUIDES = [
  'docs/deploy.md',
  'docs/deploy-quadlet.md',
  'docs/deploy-bare-metal.md',
  'docs/release.md',
  'deploy/ansible/roles/pve_exporter/README.md',
  'deploy/helm/pve-exporter/README.md',
];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    if (inFence) continue;
    const m = /^#{1,6}\s+(.+)$/.exec(line);
    if (!m) continue;
    out.add(
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return out;
}

test('every relative link in the deployment guides resolves, anchors included', () => {
  for (const guide of GUIDES) {
    const text = read(guide);
    const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
    assert.ok(links.length > 0, `${guide} has no links`);
    for (const link of links) {
      if (/^[a-z]+:/.test(link)) continue; // https:, mailto:
      const [file, anchor] = link.split('#') as [string, string | undefined];
      const target = file === '' ? path.join(ROOT, guide) : path.resolve(path.dirname(path.join(ROOT, guide)), file);
      assert.ok(existsSync(target), `${guide}: broken link ${link}`);
      if (anchor !== undefined && target.endsWith('.md')) {
        assert.ok(anchors(readFileSync(target, 'utf8')).has(anchor), `${guide}: no heading for #${anchor} in ${file || guide}`);
      }
    }
  }
});

test('docs/deploy.md links every way of deploying', () => {
  const index = read('docs/deploy.md');
  for (const target of [
    'deploy-quadlet.md',
    'deploy-bare-metal.md',
    '../deploy/ansible/roles/pve_exporter/README.md',
    '../deploy/helm/pve-exporter/README.md',
    '../deploy/quadlet/pve-exporter.container',
    '../deploy/systemd/pve-exporter.service',
  ]) {
    assert.ok(index.includes(`](${target})`), `docs/deploy.md does not link ${target}`);
  }
});

test('the container run line is the reference one with only the image name changed', () => {
  const index = read('docs/deploy.md');
  const line = index.split('\n').find((l) => l.startsWith('docker run --name prometheus-pve-exporter'));
  assert.ok(line, 'run line missing from docs/deploy.md');
  assert.equal(line.replace(IMAGE, 'prompve/prometheus-pve-exporter'), REFERENCE_RUN);
  // The mount target is the exporter's default config path, so no flag is needed.
  const configOption = buildCommand().options.find((o) => o.long === '--config.file');
  assert.equal(configOption?.defaultValue, '/etc/prometheus/pve.yml');
  assert.ok(line.includes(`:${configOption.defaultValue as string} `));
});

test('image name and config path agree across Containerfile, Quadlet, Ansible and Helm', () => {
  assert.match(read('deploy/quadlet/pve-exporter.container'), new RegExp(`^Image=${IMAGE.replace(/[.]/g, '\\.')}$`, 'm'));
  const defaults = parseYaml(read('deploy/ansible/roles/pve_exporter/defaults/main.yml')) as Record<string, unknown>;
  assert.equal(defaults.pve_exporter_container_image, IMAGE);
  const values = parseYaml(read('deploy/helm/pve-exporter/values.yaml')) as { image: { repository: string } };
  assert.equal(`${values.image.repository}:latest`, IMAGE);
  assert.match(read('deploy/container/Containerfile'), /CMD \["--config\.file=\/etc\/prometheus\/pve\.yml"\]/);
  assert.match(read('deploy/systemd/pve-exporter.service'), /--config\.file=\/etc\/prometheus\/pve\.yml$/m);
  assert.match(read('deploy/helm/pve-exporter/templates/_helpers.tpl'), /--config\.file=\/etc\/prometheus\/pve\.yml/);
});

test('the token instructions create a privilege-separated PVEAuditor token for user and token', () => {
  const guide = read('docs/deploy-quadlet.md');
  assert.match(guide, /^pveum user add monitoring@pve\b/m);
  assert.match(guide, /^pveum user token add monitoring@pve exporter --privsep 1\b/m);
  // With privsep the effective rights are the intersection: both need the role.
  assert.match(guide, /^pveum acl modify \/ --roles PVEAuditor --users monitoring@pve$/m);
  assert.match(guide, /^pveum acl modify \/ --roles PVEAuditor --tokens 'monitoring@pve!exporter'$/m);
});

test('the Quadlet guide covers every step the issue asks for', () => {
  const guide = read('docs/deploy-quadlet.md');
  for (const needle of [
    'useradd --system',
    '--add-subuids',
    '--add-subgids',
    'loginctl enable-linger monitoring',
    'install -m 0600',
    '.config/containers/systemd/',
    'systemctl --user daemon-reload',
    'systemctl --user start pve-exporter.service',
    'enable --now podman-auto-update.timer',
    'journalctl',
    'systemctl --user status',
    'podman auto-update',
    'tar -C /home/monitoring',
    'userdel',
    'pveum user token remove',
  ]) {
    assert.ok(guide.includes(needle), `docs/deploy-quadlet.md lacks "${needle}"`);
  }
});
