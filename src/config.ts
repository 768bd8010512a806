// pve.yml / PVE_* environment -> validated modules. Every error names the file, the module and
// the key (with its line), so an operator can fix it without guessing.
import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, type Document, type YAMLMap } from 'yaml';
import * as v from 'valibot';

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
  /** PEM bundle of the CA that signed the PVE certificates. */
  readonly caFile?: string;
  readonly ca?: string;
  /** SHA-256 of the PVE node certificate, normalised to "AB:CD:...". */
  readonly fingerprint?: string;
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

const moduleSchema = v.strictObject({
  user: v.pipe(v.string('must be a string'), v.nonEmpty('must not be empty')),
  password: v.optional(v.pipe(v.string('must be a string (quote it if it looks like a number)'), v.nonEmpty('must not be empty'))),
  token_name: v.optional(v.pipe(v.string('must be a string'), v.nonEmpty('must not be empty'))),
  token_value: v.optional(v.pipe(v.string('must be a string (quote it)'), v.nonEmpty('must not be empty'))),
  verify_ssl: v.optional(v.boolean('must be true or false'), true),
  port: v.optional(
    v.pipe(v.number('must be a number'), v.integer('must be a whole number'), v.minValue(1, 'must be 1..65535'), v.maxValue(65535, 'must be 1..65535')),
    8006,
  ),
  timeout: v.optional(v.pipe(v.number('must be a number of seconds'), v.gtValue(0, 'must be greater than 0'), v.maxValue(600, 'must be at most 600')), 5),
  ca_file: v.optional(v.pipe(v.string('must be a path'), v.nonEmpty('must not be empty'))),
  fingerprint: v.optional(v.string('must be a string')),
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
  return finishModule(name, parsed.output, loc);
}

function finishModule(name: string, m: RawModule, loc: Located): ModuleConfig {
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
  let fingerprint: string | undefined;
  if (m.fingerprint !== undefined) {
    fingerprint = normaliseFingerprint(m.fingerprint);
    if (!fingerprint) {
      throw new ConfigError(`${loc.where(name, 'fingerprint')}: fingerprint must be a SHA-256 fingerprint (64 hex digits, colons optional)`);
    }
  }
  let ca: string | undefined;
  if (m.ca_file !== undefined) {
    try {
      ca = readFileSync(m.ca_file, 'utf8');
    } catch (err) {
      throw new ConfigError(`${loc.where(name, 'ca_file')}: cannot read ${m.ca_file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) {
      throw new ConfigError(`${loc.where(name, 'ca_file')}: ${m.ca_file} holds no PEM certificate`);
    }
  }
  return {
    name,
    user: m.user,
    password: m.password,
    tokenName: m.token_name,
    tokenValue: m.token_value,
    verifySsl: m.verify_ssl,
    port: m.port,
    timeout: m.timeout,
    caFile: m.ca_file,
    ca,
    fingerprint,
  };
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
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0];
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
  return parseConfigText(text, path);
}

function envBool(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  const s = value.toLowerCase();
  if (['false', '0', 'no', 'off'].includes(s)) return false;
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  throw new ConfigError(`environment ${name}: expected true/false or 1/0, got "${value}"`);
}

/** Config from PVE_* variables, used instead of the file when PVE_USER is set (like the reference). */
export function loadConfigFromEnv(env: NodeJS.ProcessEnv): LoadedConfig {
  const name = env.PVE_MODULE || 'default';
  const raw: Record<string, unknown> = { user: env.PVE_USER };
  if (env.PVE_PASSWORD) raw.password = env.PVE_PASSWORD;
  if (env.PVE_TOKEN_NAME) raw.token_name = env.PVE_TOKEN_NAME;
  if (env.PVE_TOKEN_VALUE) raw.token_value = env.PVE_TOKEN_VALUE;
  raw.verify_ssl = envBool('PVE_VERIFY_SSL', env.PVE_VERIFY_SSL, true);
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
