// promtool on every recipe of deploy/prometheus/{nat,kubernetes,scaling}: check config (with
// --agent for the agent-mode file, which a server check rejects and vice versa), and
// check web-config on the VPS web config (its certificate paths pointed at real files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { promDir } from './helpers/prom-expressions.ts';
import { requireTool } from './helpers/tools.ts';
import { makeTestPki } from './helpers/test-pki.ts';

const HINT = 'apt-get install prometheus';
const RECIPE_DIRS = ['nat', 'kubernetes', 'scaling'];
const AGENT = new Set(['nat/home-agent.yml']);
const WEB_CONFIGS = new Set(['nat/vps-web-config.yml']);

function promtool(args: string[], cwd = promDir): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

const recipes = (): string[] =>
  RECIPE_DIRS.flatMap((d) => readdirSync(path.join(promDir, d)).filter((f) => /\.ya?ml$/.test(f)).map((f) => `${d}/${f}`)).sort();

/** Whether this promtool knows kubernetes_sd_configs (Debian's build leaves that discovery out). */
function promtoolHasKubernetesSd(): boolean {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'promtool-k8s-'));
  try {
    const f = path.join(dir, 'k.yml');
    writeFileSync(f, 'scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      - role: endpoints\n');
    return promtool(['check', 'config', f]).status === 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the recipes are all there', () => {
  assert.deepEqual(recipes(), [
    'kubernetes/prometheus.kubernetes.yml',
    'nat/home-agent.yml',
    'nat/home-federated.yml',
    'nat/vps-federate.yml',
    'nat/vps-receiver.yml',
    'nat/vps-web-config.yml',
    'scaling/prometheus.shard.yml',
  ]);
});

test('promtool check config passes on every recipe (agent mode for the agent), and finds the shipped rules', (t) => {
  if (!requireTool(t, 'promtool', HINT)) return;
  const k8s = promtoolHasKubernetesSd();
  for (const file of recipes().filter((f) => !WEB_CONFIGS.has(f))) {
    const text = readFileSync(path.join(promDir, file), 'utf8');
    const agent = AGENT.has(file);
    const r = promtool(['check', 'config', ...(agent ? ['--agent'] : []), file]);
    if (!k8s && /kubernetes_sd_configs/.test(text)) {
      // Debian's promtool: the one complaint must be the unknown discovery, nothing else; the
      // relabelling itself is run by test/recipes-kubernetes.test.ts.
      assert.notEqual(r.status, 0);
      assert.match(r.out, /field kubernetes_sd_configs not found in type config\.ScrapeConfig/, `${file}:\n${r.out}`);
      const withoutSd = YAML.parse(text) as { scrape_configs: Record<string, unknown>[]; rule_files?: string[] };
      for (const job of withoutSd.scrape_configs) {
        delete job.kubernetes_sd_configs;
        job.static_configs = [{ targets: ['192.0.2.1:9100'] }];
      }
      const dir = mkdtempSync(path.join(os.tmpdir(), 'promtool-k8s-'));
      try {
        const f = path.join(dir, 'k8s-static.yml');
        withoutSd.rule_files = [path.join(promDir, 'rules', '*.yml')];
        writeFileSync(f, YAML.stringify(withoutSd, { aliasDuplicateObjects: false }));
        const again = promtool(['check', 'config', f]);
        assert.equal(again.status, 0, `${file} without kubernetes_sd_configs:\n${again.out}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      continue;
    }
    assert.equal(r.status, 0, `${file}:\n${r.out}`);
    const cfg = YAML.parse(text) as { rule_files?: string[] };
    if (cfg.rule_files) assert.match(r.out, /SUCCESS: 2 rule files found/, `${file}: the rules glob finds nothing\n${r.out}`);
  }
});

test('promtool check web-config passes on the VPS web config with its certificate in place', (t) => {
  if (!requireTool(t, 'promtool', HINT) || !requireTool(t, 'openssl')) return;
  const pki = makeTestPki();
  for (const file of WEB_CONFIGS) {
    const cfg = YAML.parse(readFileSync(path.join(promDir, file), 'utf8')) as { tls_server_config: Record<string, string>; basic_auth_users: Record<string, string> };
    // The shipped hash is a real bcrypt hash (of the example password), not a placeholder.
    for (const hash of Object.values(cfg.basic_auth_users)) assert.match(hash, /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/);
    const cert = path.join(pki.dir, 'vps.crt');
    const key = path.join(pki.dir, 'vps.key');
    writeFileSync(cert, pki.node1.cert);
    writeFileSync(key, pki.node1.key);
    cfg.tls_server_config = { ...cfg.tls_server_config, cert_file: cert, key_file: key };
    const f = path.join(pki.dir, path.basename(file));
    writeFileSync(f, YAML.stringify(cfg));
    const r = promtool(['check', 'web-config', f]);
    assert.equal(r.status, 0, `${file}:\n${r.out}`);
  }
});
