// External tools some tests need (promtool, prometheus, ansible...). CI installs them (.ci/run);
// on a developer machine without them those tests are skipped with the install hint, but under
// CI=true a missing tool is a failure, so CI can never pass by skipping.
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export function hasTool(cmd: string): boolean {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0;
}

/** Returns true when the tool is there; otherwise skips the test (or throws under CI). */
export function requireTool(t: TestContext, cmd: string, installHint: string): boolean {
  if (hasTool(cmd)) return true;
  if (process.env.CI) throw new Error(`${cmd} is required in CI but missing: ${installHint}`);
  t.skip(`${cmd} not installed (${installHint})`);
  return false;
}
