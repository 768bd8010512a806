// Reads the PVE API reference data in reference/pve-api (one JSON file per endpoint, a copy kept
// in the repository, see reference/README.md) and builds the scenarios of reference/compat from
// it: which variant replaces which example is one table (SCENARIO_VARIANTS), taken from
// reference/compat/README.md.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ScenarioName } from './types.ts';
import {
  ApiError,
  isJsonObject,
  objectEntries,
  type ApiBody,
  type ClusterModel,
  type GuestRef,
  type Json,
  type JsonObject,
} from './model.ts';

/** One endpoint file: its path template and the bodies it documents. */
export interface EndpointFile {
  file: string;
  /** e.g. "/nodes/{node}/qemu/{vmid}/config" */
  template: string;
  example: ApiBody;
  /** examples_by_node / examples_by_vmid / examples_by_id, keyed by the parameter name. */
  examplesBy: { param: string; bodies: Map<string, JsonObject> } | null;
  /** example_type_vm etc. of /cluster/resources, keyed by type. */
  typeExamples: Map<string, ApiBody>;
  variants: JsonObject;
}

export type EndpointFiles = Map<string, EndpointFile>;

/** Files that describe the server as a whole rather than one GET endpoint. */
const NON_ENDPOINT_FILES = new Set(['auth.json', 'errors.json']);

/** The repository's copy of the reference data (reference/pve-api), or $PVE_API_DIR. */
export function defaultPveApiDir(): string {
  const fromEnv = process.env.PVE_API_DIR;
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  return path.join(repoRoot, 'reference', 'pve-api');
}

export function loadEndpointFiles(dir: string): EndpointFiles {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json') && !NON_ENDPOINT_FILES.has(n));
  } catch (err) {
    throw new Error(`simulator: cannot read PVE API reference data in "${dir}" (set PVE_API_DIR): ${String(err)}`);
  }
  const files: EndpointFiles = new Map();
  for (const name of names.sort()) {
    const parsed = parseEndpointFile(name, readJson(path.join(dir, name)));
    files.set(parsed.template, parsed);
  }
  if (!files.has('/cluster/status')) throw new Error(`simulator: ${dir} has no cluster__status.json`);
  return files;
}

/** The cap object of a login answer, taken from auth.json (null if the file is missing). */
export function loadLoginCapabilities(dir: string): JsonObject | null {
  try {
    const auth = readJson(path.join(dir, 'auth.json'));
    const example = isJsonObject(auth) && isJsonObject(auth.example) ? auth.example.data : undefined;
    return isJsonObject(example) && isJsonObject(example.cap) ? example.cap : null;
  } catch {
    return null;
  }
}

function readJson(file: string): Json {
  return JSON.parse(readFileSync(file, 'utf8')) as Json;
}

function parseEndpointFile(file: string, raw: Json): EndpointFile {
  if (!isJsonObject(raw) || typeof raw.path !== 'string' || !isApiBody(raw.example)) {
    throw new Error(`simulator: ${file}: expected "path" and an "example" body with "data"`);
  }
  const typeExamples = new Map<string, ApiBody>();
  let examplesBy: EndpointFile['examplesBy'] = null;
  for (const [key, value] of Object.entries(raw)) {
    const byMatch = /^examples_by_(\w+)$/.exec(key);
    if (byMatch !== null && isJsonObject(value)) {
      const bodies = new Map(Object.entries(value).filter((e): e is [string, JsonObject] => isJsonObject(e[1])));
      examplesBy = { param: byMatch[1], bodies };
    }
    const typeMatch = /^example_type_(\w+)$/.exec(key);
    if (typeMatch !== null && isApiBody(value)) typeExamples.set(typeMatch[1], value);
  }
  const variants = isJsonObject(raw.variants) ? raw.variants : {};
  return { file, template: raw.path, example: raw.example, examplesBy, typeExamples, variants };
}

export function isApiBody(value: Json | undefined): value is ApiBody {
  return isJsonObject(value) && 'data' in value;
}

// ---------------------------------------------------------------------------------------------
// Scenario variants (reference/compat/README.md)
// ---------------------------------------------------------------------------------------------

/** What a variant replaces: the whole example (and every examples_by_* body), the body of one
 *  node, or the entries with the same "id" in a list. */
type VariantTarget = { kind: 'everywhere' } | { kind: 'node'; node: string } | { kind: 'entriesById' };

interface VariantUse {
  template: string;
  variant: string;
  target: VariantTarget;
}

const SCENARIO_VARIANTS: Record<ScenarioName, VariantUse[]> = {
  default: [],
  pve8: [
    { template: '/version', variant: 'pve8', target: { kind: 'everywhere' } },
    { template: '/nodes/{node}/qemu', variant: 'pve8_pve1', target: { kind: 'node', node: 'pve1' } },
  ],
  degraded: [
    { template: '/cluster/status', variant: 'node_pve3_offline_and_no_quorum_lost', target: { kind: 'everywhere' } },
    { template: '/cluster/resources', variant: 'pve3_offline_entries', target: { kind: 'entriesById' } },
    { template: '/cluster/config/qdevice', variant: 'not_configured', target: { kind: 'everywhere' } },
    { template: '/nodes/{node}/subscription', variant: 'notfound', target: { kind: 'everywhere' } },
    { template: '/cluster/backup-info/not-backed-up', variant: 'all_covered', target: { kind: 'everywhere' } },
  ],
  standalone: [
    { template: '/cluster/status', variant: 'standalone', target: { kind: 'everywhere' } },
    { template: '/cluster/config/qdevice', variant: 'not_configured', target: { kind: 'everywhere' } },
  ],
};

export const SCENARIO_NAMES = Object.keys(SCENARIO_VARIANTS) as ScenarioName[];

function applyVariant(files: EndpointFiles, use: VariantUse): void {
  const file = files.get(use.template);
  const variant = file?.variants[use.variant];
  if (file === undefined || variant === undefined) {
    throw new Error(`simulator: variant "${use.variant}" of ${use.template} is missing in the reference data`);
  }
  switch (use.target.kind) {
    case 'everywhere': {
      if (!isApiBody(variant)) throw new Error(`simulator: variant ${use.variant} is not a body`);
      file.example = variant;
      if (file.examplesBy !== null) {
        for (const key of file.examplesBy.bodies.keys()) file.examplesBy.bodies.set(key, variant);
      }
      return;
    }
    case 'node': {
      if (!isApiBody(variant) || file.examplesBy?.param !== 'node') throw new Error(`simulator: variant ${use.variant} does not fit`);
      file.examplesBy.bodies.set(use.target.node, variant);
      return;
    }
    case 'entriesById': {
      const replacements = new Map(objectEntries(variant).map((e) => [e.id, e] as const));
      const replace = (body: ApiBody): ApiBody => ({
        ...body,
        data: objectEntries(body.data).map((e) => replacements.get(e.id) ?? e),
      });
      file.example = replace(file.example);
      for (const [type, body] of file.typeExamples) file.typeExamples.set(type, replace(body));
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario -> ClusterModel
// ---------------------------------------------------------------------------------------------

/** Builds a scenario from freshly loaded files (the variants are applied to them in place). */
export function buildScenarioModel(files: EndpointFiles, scenario: ScenarioName): ClusterModel {
  for (const use of SCENARIO_VARIANTS[scenario]) applyVariant(files, use);

  const statusEntries = objectEntries(files.get('/cluster/status')?.example.data);
  const nodeEntries = statusEntries.filter((e) => e.type === 'node' && typeof e.name === 'string');
  const nodes = nodeEntries.map((e) => e.name as string);
  const localNode = (nodeEntries.find((e) => e.local === 1)?.name as string | undefined) ?? nodes[0];
  const clusterEntry = statusEntries.find((e) => e.type === 'cluster');
  const guests = collectGuests(files, nodes);
  const model: ClusterModel = {
    clusterName: typeof clusterEntry?.name === 'string' ? clusterEntry.name : null,
    localNode,
    nodes,
    offlineInData: nodeEntries.filter((e) => e.online === 0).map((e) => e.name as string),
    guests,
    bodies: new Map(),
  };
  for (const file of files.values()) addConcreteBodies(model, file, files);
  return model;
}

/** Guests come from the examples_by_vmid of the config files, which name each guest's node. */
function collectGuests(files: EndpointFiles, nodes: string[]): Map<number, GuestRef> {
  const guests = new Map<number, GuestRef>();
  for (const type of ['qemu', 'lxc'] as const) {
    const byVmid = files.get(`/nodes/{node}/${type}/{vmid}/config`)?.examplesBy;
    if (byVmid?.param !== 'vmid') continue;
    for (const [vmid, entry] of byVmid.bodies) {
      if (typeof entry.node === 'string' && nodes.includes(entry.node)) {
        guests.set(Number(vmid), { vmid: Number(vmid), node: entry.node, type });
      }
    }
  }
  return guests;
}

function addConcreteBodies(model: ClusterModel, file: EndpointFile, files: EndpointFiles): void {
  const params = templateParams(file.template);
  const by = file.examplesBy;
  const pick = (param: string, key: string): ApiBody => {
    const entry = by?.param === param ? by.bodies.get(key) : undefined;
    return entry !== undefined ? bodyOfExample(entry) : file.example;
  };
  if (params.length === 0) {
    model.bodies.set(file.template, file.example);
  } else if (params.join() === 'node') {
    for (const node of model.nodes) model.bodies.set(fillTemplate(file.template, { node }), pick('node', node));
  } else if (params.join() === 'node,vmid') {
    const type = file.template.includes('/lxc/') ? 'lxc' : 'qemu';
    for (const guest of model.guests.values()) {
      if (guest.type !== type) continue;
      model.bodies.set(fillTemplate(file.template, { node: guest.node, vmid: String(guest.vmid) }), pick('vmid', String(guest.vmid)));
    }
  } else if (params.join() === 'node,id') {
    addJobBodies(model, file, files, pick);
  }
}

/** {id} paths (replication job status) exist for the jobs listed by the parent list call. */
function addJobBodies(model: ClusterModel, file: EndpointFile, files: EndpointFiles, pick: (param: string, key: string) => ApiBody): void {
  const parentTemplate = file.template.slice(0, file.template.indexOf('/{id}'));
  const parent = files.get(parentTemplate);
  if (parent === undefined) return;
  for (const node of model.nodes) {
    const listBody = model.bodies.get(fillTemplate(parentTemplate, { node }));
    const jobs = listBody instanceof ApiError || listBody === undefined ? [] : objectEntries(listBody.data);
    for (const job of jobs) {
      if (typeof job.id !== 'string') continue;
      const fromFile = pick('id', job.id);
      const body = fromFile === file.example ? { data: job } : fromFile;
      model.bodies.set(fillTemplate(file.template, { node, id: job.id }), body);
    }
  }
}

/** examples_by_vmid entries are {"node": ..., "data": ...}; the node is not part of the body. */
function bodyOfExample(entry: JsonObject): ApiBody {
  const { node: _node, ...body } = entry;
  return isApiBody(body) ? body : { data: null };
}

export function templateParams(template: string): string[] {
  return [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
}

export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_all, name: string) => values[name] ?? `{${name}}`);
}
