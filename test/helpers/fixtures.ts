// Reads the reference data kept in the repository (reference/, a copy of the shared reference
// refreshed by `npm run refresh:reference`): the PVE API examples of reference/pve-api and the
// reference exporter's outputs of reference/compat.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** reference/ at the repository root; $PVE_REFERENCE_DIR points the tests at another copy. */
export const REFERENCE_DIR = process.env.PVE_REFERENCE_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../reference');

interface EndpointFile {
  example: { data: unknown };
  variants?: Record<string, { data: unknown } | unknown>;
  examples_by_node?: Record<string, { data: unknown }>;
  examples_by_vmid?: Record<string, { data: unknown }>;
  examples_by_id?: Record<string, { data: unknown }>;
}

export function endpointFile(name: string): EndpointFile {
  return JSON.parse(readFileSync(path.join(REFERENCE_DIR, 'pve-api', `${name}.json`), 'utf8')) as EndpointFile;
}

export function example<T>(name: string): T {
  return endpointFile(name).example.data as T;
}

export function variant<T>(name: string, v: string): T {
  const entry = endpointFile(name).variants?.[v];
  if (entry === undefined) throw new Error(`no variant ${v} in ${name}`);
  return (entry as { data?: unknown }).data !== undefined ? ((entry as { data: unknown }).data as T) : (entry as T);
}

export function byNode<T>(name: string, node: string): T {
  const e = endpointFile(name).examples_by_node?.[node];
  if (!e) throw new Error(`no example for node ${node} in ${name}`);
  return e.data as T;
}

/** One reference output: reference/compat/<scenario>/<query>.prom. */
export function compatFile(scenario: string, query: string): string {
  return readFileSync(path.join(REFERENCE_DIR, 'compat', scenario, `${query}.prom`), 'utf8');
}
