// pve.yml / PVE_* environment -> validated modules. Every error names the file, the module and
// the key (with its line), so an operator can fix it without guessing.
//
// pve.yml is read as YAML 1.1, like the reference's PyYAML safe_load: yes/no/on/off are booleans,
// anchors and "<<:" merge keys work.
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, Scalar, type Document, type ScalarTag, type Tags, type YAMLMap } from 'yaml';
import * as v from 'valibot';
import { isHostName } from './hostport.ts';
import { parseTargetPolicy, TargetEntryError, type TargetPolicy } from './pve/target-policy.ts';

export interface ModuleConfig {
  readonly name: string;
  readonly user: string;
  readonly password?: string;
  readonly tokenName?: string;
  readonly tokenValue?: string;
  readonly verifySsl: boolean;
  readonly port: number;
  /** Per-request timeout towards PVE, seconds. */
  readonly timeout: number;
  /** PEM bundle of the CA that signed the PVE certificates (ca_file, or verify_ssl: <path>). */
  readonly caFile?: string;
  /** Its text, read and checked at load. */
  readonly ca?: string;
  /**
   * SHA-256 pins, normalised to "AB:CD:..."; empty = no pin. A pin matches any certificate of the
   * chain the server presents (its leaf, or the cluster CA that signed it) and replaces chain
   * validation.
   */
  readonly fingerprints: readonly string[];
  /** Name the certificate's identity is checked against (and sent as SNI) instead of the target. */
  readonly serverName?: string;
  /** targets: allow-list; undefined = any target (the reference's behaviour, with a warning). */
  readonly targets?: TargetPolicy;
  /**
   * Ask PVE for gzip-compressed answers (the default, as the reference's HTTP library does);
   * gzip: false asks for them plain. pveproxy compresses each answer anew (Compress::Zlib, level
   * 6): plain answers spare the PVE node that CPU and shorten the scrape, and cost 8.7 times the
   * bytes on the wire and the exporter more memory for large clusters (README, Performance).
   */
  readonly gzip: boolean;
}

export interface LoadedConfig {
  readonly source: string;
  readonly modules: ReadonlyMap<string, ModuleConfig>;
  readonly warnings: readonly string[];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Options of proxmoxer (which the reference passes the module to) that mean nothing here. */
const IGNORED_PROXMOXER_KEYS = new Set(['backend', 'service']);

const KNOWN_KEYS = [
  'user',
  'password',
  'token_name',
  'token_value',
  'verify_ssl',
  'port',
  'timeout',
  'ca_file',
  'fingerprint',
  'server_name',
  'targets',
  'gzip',
] as const;

/** Hints for keys operators tend to write by mistake. */
const KEY_HINTS: Record<string, string> = {
  insecure: 'use verify_ssl: false',
  host: 'the PVE host is the target query parameter (/pve?target=...), not a config key',
  verify_tls: 'use verify_ssl',
  token: 'use token_name and token_value',
  username: 'use user',
  pass: 'use password',
};

const FINGERPRINT_TYPE = 'must be a SHA-256 fingerprint or a non-empty list of them (quote each)';
const TARGETS_TYPE = 'must be a list of strings: host names, *.wildcards, addresses, CIDRs (quote entries in brackets)';

const moduleSchema = v.strictObject({
  user: v.pipe(v.string('must be a string'), v.nonEmpty('must not be empty')),
  password: v.optional(v.pipe(v.string('must be a string (quote it if it looks like a number)'), v.nonEmpty('must not be empty'))),
  token_name: v.optional(v.pipe(v.string('must be a string'), v.nonEmpty('must not be empty'))),
  token_value: v.optional(v.pipe(v.string('must be a string (quote it)'), v.nonEmpty('must not be empty'))),
  // requests (which the reference hands verify_ssl to) reads a string as the path of a CA bundle.
  verify_ssl: v.optional(
    v.union([v.boolean(), v.pipe(v.string(), v.nonEmpty())], 'must be true, false, or the path of a CA bundle (like ca_file)'),
    true,
  ),
  port: v.optional(
    v.pipe(v.number('must be a number'), v.integer('must be a whole number'), v.minValue(1, 'must be 1..65535'), v.maxValue(65535, 'must be 1..65535')),
    8006,
  ),
  timeout: v.optional(v.pipe(v.number('must be a number of seconds'), v.gtValue(0, 'must be greater than 0'), v.maxValue(600, 'must be at most 600')), 5),
  ca_file: v.optional(v.pipe(v.string('must be a path'), v.nonEmpty('must not be empty'))),
  fingerprint: v.optional(
    v.union(
      [
        v.string(),
        v.pipe(v.array(v.string(FINGERPRINT_TYPE), FINGERPRINT_TYPE), v.minLength(1, `${FINGERPRINT_TYPE}, or remove the key`)),
      ],
      FINGERPRINT_TYPE,
    ),
  ),
  server_name: v.optional(v.string('must be a host name')),
  targets: v.optional(
    v.pipe(v.array(v.string(TARGETS_TYPE), TARGETS_TYPE), v.minLength(1, 'must list at least one host (without the key, any target is allowed)')),
    // Without this key any target is allowed; an explicit empty list would refuse everything.
  ),
  gzip: v.optional(v.boolean('must be true or false'), true),
});

type RawModule = v.InferOutput<typeof moduleSchema>;

export function normaliseFingerprint(raw: string): string | undefined {
  const hex = raw.replace(/[:\s]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join(':');
}

interface Located {
  where(moduleName: string, key?: string): string;
}

function buildModule(name: string, raw: unknown, loc: Located, warnings: string[]): ModuleConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${loc.where(name)}: module must be a mapping of settings (user, token_name, ...)`);
  }
  const input: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const key of Object.keys(input)) {
    if (IGNORED_PROXMOXER_KEYS.has(key)) {
      warnings.push(`${loc.where(name, key)}: "${key}" is a proxmoxer option with no meaning here; ignored`);
      delete input[key];
    } else if (!(KNOWN_KEYS as readonly string[]).includes(key)) {
      const hint = KEY_HINTS[key];
      throw new ConfigError(
        `${loc.where(name, key)}: unknown key "${key}"${hint ? ` (${hint})` : ''}; known keys: ${KNOWN_KEYS.join(', ')}`,
      );
    }
  }
  const parsed = v.safeParse(moduleSchema, input);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const key = issue.path?.[0]?.key;
    const keyName = typeof key === 'string' ? key : undefined;
    const what = keyName === undefined && issue.kind === 'schema' && input.user === undefined ? 'user is required' : issue.message;
    throw new ConfigError(`${loc.where(name, keyName)}: ${keyName ? `${keyName} ` : ''}${what}`);
  }
  return finishModule(name, parsed.output, loc, warnings);
}

function finishModule(name: string, m: RawModule, loc: Located, warnings: string[]): ModuleConfig {
  if (m.token_name !== undefined && m.token_value === undefined) {
    throw new ConfigError(`${loc.where(name, 'token_name')}: token_value is required when token_name is set`);
  }
  if (m.token_value !== undefined && m.token_name === undefined) {
    throw new ConfigError(`${loc.where(name, 'token_value')}: token_name is required when token_value is set`);
  }
  if (m.token_name === undefined && m.password === undefined) {
    throw new ConfigError(`${loc.where(name)}: credentials missing: set password, or token_name and token_value`);
  }
  if (m.token_name !== undefined && /[!=\s]/.test(m.token_name)) {
    throw new ConfigError(`${loc.where(name, 'token_name')}: token_name is the token id only (no "!", "=" or spaces), e.g. "exporter"`);
  }
  if (!m.user.includes('@')) {
    throw new ConfigError(`${loc.where(name, 'user')}: user must include the realm, e.g. "monitoring@pve" or "root@pam"`);
  }
  const fingerprints: string[] = [];
  const pins = m.fingerprint === undefined ? [] : typeof m.fingerprint === 'string' ? [m.fingerprint] : m.fingerprint;
  for (const [i, raw] of pins.entries()) {
    const fp = normaliseFingerprint(raw);
    const which = pins.length > 1 || Array.isArray(m.fingerprint) ? `entry ${i + 1} ` : '';
    if (!fp) {
      throw new ConfigError(`${loc.where(name, 'fingerprint')}: fingerprint ${which}must be a SHA-256 fingerprint (64 hex digits, colons optional)`);
    }
    if (!fingerprints.includes(fp)) fingerprints.push(fp);
  }
  if (typeof m.verify_ssl === 'string' && m.ca_file !== undefined) {
    throw new ConfigError(`${loc.where(name, 'verify_ssl')}: verify_ssl names a CA bundle and ca_file is set too; keep one of them`);
  }
  const caFile = typeof m.verify_ssl === 'string' ? m.verify_ssl : m.ca_file;
  const caKey = typeof m.verify_ssl === 'string' ? 'verify_ssl' : 'ca_file';
  const verifySsl = m.verify_ssl !== false;
  const ca = caFile === undefined ? undefined : readCaBundle(caFile, loc.where(name, caKey), warnings);
  if (m.server_name !== undefined && !isHostName(m.server_name)) {
    throw new ConfigError(`${loc.where(name, 'server_name')}: server_name must be a DNS name as written in the certificate (e.g. pve.example.com)`);
  }
  if (caFile !== undefined && (!verifySsl || fingerprints.length > 0)) {
    const why = fingerprints.length > 0 ? 'a fingerprint pin replaces chain validation' : 'verify_ssl is false';
    warnings.push(`${loc.where(name, caKey)}: ${caFile} is not used because ${why}`);
  }
  let targets: TargetPolicy | undefined;
  if (m.targets !== undefined) {
    try {
      targets = parseTargetPolicy(m.targets);
    } catch (err) {
      if (err instanceof TargetEntryError) throw new ConfigError(`${loc.where(name, 'targets')}: targets ${err.message}`);
      throw err;
    }
  } else {
    warnings.push(
      `${loc.where(name)}: no "targets:" allow-list, so the module's credentials are sent to any host a caller names ` +
        'in ?target= (anyone who can reach the exporter can make it hand them to a host of theirs); ' +
        'list the PVE nodes the module may reach, e.g. targets: ["pve1.example.com", "*.pve.example.com", "10.0.0.0/24"] ' +
        '(PVE_TARGETS=pve1.example.com,10.0.0.0/24 in the environment)',
    );
  }
  return {
    name,
    user: m.user,
    password: m.password,
    tokenName: m.token_name,
    tokenValue: m.token_value,
    verifySsl,
    port: m.port,
    timeout: m.timeout,
    caFile,
    ca,
    fingerprints,
    serverName: m.server_name,
    targets,
    gzip: m.gzip,
  };
}

/**
 * Reads a CA bundle and parses every PEM block as an X.509 certificate, so a wrong file (a key, a
 * truncated copy, a DER file) fails at start instead of at the first scrape.
 */
function readCaBundle(file: string, where: string, warnings: string[]): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${where}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g)];
  const begins = text.split('-----BEGIN ').length - 1;
  if (blocks.length === 0) throw new ConfigError(`${where}: ${file} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
  if (begins !== blocks.length) throw new ConfigError(`${where}: ${file} has a PEM block without its END line (truncated copy?)`);
  for (const [i, b] of blocks.entries()) {
    if (b[1] !== 'CERTIFICATE' || b[3] !== 'CERTIFICATE') {
      throw new ConfigError(`${where}: ${file} block ${i + 1} is a ${b[1]}, not a CERTIFICATE; the file must hold CA certificates only`);
    }
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(b[0]);
    } catch (err) {
      throw new ConfigError(`${where}: ${file} block ${i + 1} is not a valid certificate: ${(err as Error).message}`);
    }
    if (!cert.ca) {
      // The usual slip: a node's pve-ssl.pem copied instead of the cluster's pve-root-ca.pem.
      warnings.push(
        `${where}: ${file} block ${i + 1} (${cert.subject.replace(/\n/g, ', ')}) is not a CA certificate and verifies nothing; ` +
          'for a PVE cluster use a copy of /etc/pve/pve-root-ca.pem, not a node\'s pve-ssl.pem',
      );
    }
  }
  return text;
}

// PyYAML's YAML 1.1 booleans: yes/no, true/false, on/off in lower, Title or UPPER case. The yaml
// package's 1.1 schema also reads y/n as booleans; PyYAML keeps those as strings, and so do we.
const PYYAML_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const PYYAML_FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;

function boolTag(value: boolean, test: RegExp): ScalarTag {
  return {
    identify: (x: unknown) => x === value,
    default: true,
    tag: 'tag:yaml.org,2002:bool',
    test,
    resolve: () => new Scalar(value),
    stringify: () => String(value),
  };
}

function pyyamlBooleans(tags: Tags): Tags {
  return [...tags.filter((t) => typeof t === 'string' || t.tag !== 'tag:yaml.org,2002:bool'), boolTag(true, PYYAML_TRUE), boolTag(false, PYYAML_FALSE)];
}

function keyLine(doc: Document, lines: LineCounter, moduleName: string, key?: string): number | undefined {
  const root = doc.contents;
  if (!isMap(root)) return undefined;
  const modPair = root.items.find((p) => isScalar(p.key) && String(p.key.value) === moduleName);
  if (!modPair) return undefined;
  let node: unknown = modPair.key;
  if (key !== undefined && isMap(modPair.value)) {
    const pair = (modPair.value as YAMLMap).items.find((p) => isScalar(p.key) && String(p.key.value) === key);
    if (pair) node = pair.key;
  }
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? lines.linePos(range[0]).line : undefined;
}

/** Parses pve.yml text. `source` is the file name used in messages. */
export function parseConfigText(text: string, source: string): LoadedConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    version: '1.1',
    merge: true,
    customTags: pyyamlBooleans,
    lineCounter: lines,
    uniqueKeys: true,
    prettyErrors: false,
  });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
    throw new ConfigError(`config ${source}${pos ? `:${pos.line}:${pos.col}` : ''}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) {
    throw new ConfigError(`config ${source}: file is empty; expected modules such as "default: {user: ..., token_name: ..., token_value: ...}"`);
  }
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(`config ${source}: expected a mapping of module names to settings, got ${Array.isArray(data) ? 'a list' : typeof data}`);
  }
  const loc: Located = {
    where(moduleName, key) {
      const line = keyLine(doc, lines, moduleName, key);
      return `config ${source}${line ? `:${line}` : ''}: module "${moduleName}"${key ? `, key "${key}"` : ''}`;
    },
  };
  const warnings: string[] = [];
  const modules = new Map<string, ModuleConfig>();
  for (const [name, raw] of Object.entries(data as Record<string, unknown>)) {
    modules.set(name, buildModule(name, raw, loc, warnings));
  }
  if (modules.size === 0) {
    throw new ConfigError(`config ${source}: no modules defined`);
  }
  return { source, modules, warnings };
}

export function loadConfigFile(path: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String(err);
    throw new ConfigError(`config ${path}: cannot read: ${why}`);
  }
  const cfg = parseConfigText(text, path);
  const warning = worldReadableWarning(path, cfg);
  return warning ? { ...cfg, warnings: [...cfg.warnings, warning] } : cfg;
}

/** A pve.yml with a password or token that every local user can read deserves a word at start. */
function worldReadableWarning(path: string, cfg: LoadedConfig): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    return undefined;
  }
  if ((mode & 0o004) === 0) return undefined;
  const holders = [...cfg.modules.values()]
    .filter((m) => m.password !== undefined || m.tokenValue !== undefined)
    .map((m) => `"${m.name}" (${m.password !== undefined ? 'password' : 'token_value'})`);
  if (holders.length === 0) return undefined;
  return (
    `config ${path}: readable by every user of this machine (mode ${(mode & 0o777).toString(8).padStart(4, '0')}) and holds secrets ` +
    `of module ${holders.join(', ')}; run chmod 600 ${path} (owned by the user the exporter runs as)`
  );
}

function envBool(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  const s = value.toLowerCase();
  if (['false', '0', 'no', 'off'].includes(s)) return false;
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  throw new ConfigError(`environment ${name}: expected true/false or 1/0, got "${value}"`);
}

/** "a, b,,c" -> ["a", "b", "c"]. */
function envList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Config from PVE_* variables, used instead of the file when PVE_USER is set (like the reference). */
export function loadConfigFromEnv(env: NodeJS.ProcessEnv): LoadedConfig {
  const name = env.PVE_MODULE || 'default';
  const raw: Record<string, unknown> = { user: env.PVE_USER };
  if (env.PVE_PASSWORD) raw.password = env.PVE_PASSWORD;
  if (env.PVE_TOKEN_NAME) raw.token_name = env.PVE_TOKEN_NAME;
  if (env.PVE_TOKEN_VALUE) raw.token_value = env.PVE_TOKEN_VALUE;
  raw.verify_ssl = envBool('PVE_VERIFY_SSL', env.PVE_VERIFY_SSL, true);
  if (env.PVE_CA_FILE) raw.ca_file = env.PVE_CA_FILE;
  if (env.PVE_FINGERPRINT) raw.fingerprint = envList(env.PVE_FINGERPRINT);
  if (env.PVE_SERVER_NAME) raw.server_name = env.PVE_SERVER_NAME;
  if (env.PVE_TARGETS) raw.targets = envList(env.PVE_TARGETS);
  raw.gzip = envBool('PVE_GZIP', env.PVE_GZIP, true);
  const loc: Located = {
    where(moduleName, key) {
      const envName = key ? `PVE_${key.toUpperCase()}` : 'PVE_*';
      return `environment (module "${moduleName}", ${envName})`;
    },
  };
  const warnings: string[] = [];
  const mod = buildModule(name, raw, loc, warnings);
  return { source: 'environment', modules: new Map([[name, mod]]), warnings };
}

export function loadConfig(path: string, env: NodeJS.ProcessEnv): LoadedConfig {
  return env.PVE_USER ? loadConfigFromEnv(env) : loadConfigFile(path);
}
