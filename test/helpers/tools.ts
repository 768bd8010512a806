// External tools some tests need (promtool, prometheus, ansible, helm...). CI installs them all
// (.ci/run: the Debian packages of .ci/apt-packages*, and helm with `npm run tools:helm`); on a
// developer machine without one, the tests that need it are skipped with its install command, but
// under CI=true a missing tool is a failure, so CI can never pass by skipping.
// TOOLS is the one list: the README's Development section names the same tools (a test checks).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { PINNED_HELM_PATH } from '../../scripts/install-helm.ts';

export interface ToolInfo {
  /** How to get it, as the skip message and the README say. */
  install: string;
  /** Which tests use it. */
  usedBy: string;
}

export const TOOLS = {
  promtool: { install: 'apt-get install prometheus', usedBy: 'test/prom-*.test.ts, test/promtool-metrics.test.ts, test/deploy-ansible.test.ts' },
  prometheus: { install: 'apt-get install prometheus', usedBy: 'test/prom-e2e.test.ts, test/prom-expressions.test.ts, test/push-*.test.ts, test/recipes-*.test.ts' },
  'ansible-playbook': { install: 'apt-get install ansible', usedBy: 'test/deploy-ansible.test.ts' },
  'ansible-lint': { install: 'apt-get install ansible-lint', usedBy: 'test/deploy-ansible.test.ts' },
  helm: {
    install: 'npm run tools:helm (Linux x86-64), or helm 3 on PATH: brew install helm, winget install Helm.Helm, https://helm.sh/docs/intro/install/',
    usedBy: 'test/deploy-helm.test.ts, test/recipes-kubernetes.test.ts',
  },
  'systemd-analyze': { install: 'apt-get install systemd', usedBy: 'test/deploy-systemd.test.ts' },
  strace: { install: 'apt-get install strace', usedBy: 'test/deploy-container.test.ts' },
  shellcheck: { install: 'apt-get install shellcheck', usedBy: 'test/release.test.ts, test/deploy-container.test.ts' },
  openssl: { install: 'apt-get install openssl', usedBy: 'tests that make certificates' },
  chromium: { install: 'apt-get install chromium', usedBy: 'test/web-browser.test.ts' },
} as const satisfies Record<string, ToolInfo>;

export type ToolName = keyof typeof TOOLS;

export function hasTool(cmd: string): boolean {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { encoding: 'utf8' });
  return r.status === 0;
}

/** Returns true when the tool is there; otherwise skips the test (or throws under CI). The hint
 *  defaults to the tool's entry in TOOLS. */
export function requireTool(t: TestContext, cmd: string, installHint?: string): boolean {
  if (hasTool(cmd)) return true;
  return skipOrFail(t, cmd, installHint ?? (cmd in TOOLS ? TOOLS[cmd as ToolName].install : `install ${cmd}`));
}

function skipOrFail(t: TestContext, cmd: string, installHint: string): false {
  if (process.env.CI) throw new Error(`${cmd} is required in CI but missing: ${installHint}`);
  t.skip(`${cmd} not installed (${installHint})`);
  return false;
}

let helmFound: string | null | undefined;

/** A runnable helm 3: the pinned one of `npm run tools:helm`, else the one on PATH. */
export function findHelm(): string | undefined {
  if (helmFound === undefined) {
    helmFound = null;
    for (const candidate of [PINNED_HELM_PATH, 'helm']) {
      if (candidate !== 'helm' && !existsSync(candidate)) continue;
      const r = spawnSync(candidate, ['version', '--short'], { encoding: 'utf8' });
      if (r.status === 0 && /^v3\./.test(r.stdout.trim())) {
        helmFound = candidate;
        break;
      }
    }
  }
  return helmFound ?? undefined;
}

/** The helm binary, or undefined after skipping the test (throws under CI). */
export function requireHelm(t: TestContext): string | undefined {
  const helm = findHelm();
  if (helm !== undefined) return helm;
  skipOrFail(t, 'helm', TOOLS.helm.install);
  return undefined;
}
