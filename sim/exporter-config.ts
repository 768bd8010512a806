// How to point the exporter at a running simulator: the pve.yml module (token auth, certificate
// pinned by fingerprint). One definition for tests, the demo and the benchmark.
import YAML from 'yaml';
import type { Simulator } from './types.ts';

/** The module settings for `sim`; `extra` overrides or (with undefined) removes keys. */
export function exporterModule(sim: Simulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const m: Record<string, unknown> = {
    user: sim.credentials.user,
    token_name: sim.credentials.tokenName,
    token_value: sim.credentials.tokenValue,
    port: sim.port,
    fingerprint: sim.fingerprint,
    ...extra,
  };
  for (const k of Object.keys(m)) if (m[k] === undefined) delete m[k];
  return m;
}

/** pve.yml text with one module `name` for `sim` (concatenate several for several modules). */
export function exporterConfig(sim: Simulator, name = 'default', extra: Record<string, unknown> = {}): string {
  return YAML.stringify({ [name]: exporterModule(sim, extra) });
}
