// The push config file (--push.config.file): where to remote-write and what to collect. Strict
// like pve.yml: an unknown key, a wrong type or a missing file stops the start with the file,
// the line and the key. Secrets come from files only (password_file, bearer_token_file), so the
// config itself can be world-readable and versioned.
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { COLLECTORS } from '../collectors/registry.ts';

export class PushConfigError extends Error {
  override readonly name = 'PushConfigError';
}

export interface TlsSettings {
  readonly ca?: string;
  readonly caFile?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly serverName?: string;
  readonly insecureSkipVerify: boolean;
}

export interface RemoteWriteConfig {
  readonly url: URL;
  /** The Authorization header value; never logged. */
  readonly authorization?: string;
  readonly tls: TlsSettings;
  /** Sorted by name. */
  readonly externalLabels: readonly (readonly [string, string])[];
  /** Per-request timeout, seconds. */
  readonly timeout: number;
  /** Samples held while the receiver is unreachable; the oldest are dropped beyond this. */
  readonly capacity: number;
  readonly maxSamplesPerSend: number;
  readonly minBackoff: number;
  readonly maxBackoff: number;
}

export interface PushJob {
  readonly jobName: string;
  readonly module: string;
  readonly target: string;
  readonly cluster: boolean;
  readonly node: boolean;
  /** Collectors to run (a subset of the enabled ones); undefined = every enabled one. */
  readonly collectors?: readonly string[];
  /** Seconds between collections. */
  readonly interval: number;
  /** Deadline of one collection, seconds (at most the interval). */
  readonly timeout: number;
}

export interface PushConfig {
  readonly source: string;
  readonly remoteWrite: RemoteWriteConfig;
  readonly jobs: readonly PushJob[];
}

const TOP_KEYS = ['remote_write', 'jobs'];
const RW_KEYS = ['url', 'basic_auth', 'bearer_token_file', 'tls_config', 'external_labels', 'timeout', 'queue_config'];
const BASIC_KEYS = ['username', 'password_file'];
const TLS_KEYS = ['ca_file', 'cert_file', 'key_file', 'server_name', 'insecure_skip_verify'];
const QUEUE_KEYS = ['capacity', 'max_samples_per_send', 'min_backoff', 'max_backoff'];
const JOB_KEYS = ['job_name', 'module', 'target', 'scopes', 'collectors', 'interval', 'timeout'];
const HINTS: Record<string, string> = {
  password: 'secrets come from files: use password_file',
  bearer_token: 'secrets come from files: use bearer_token_file',
  authorization: 'use bearer_token_file',
  tls: 'use tls_config',
  name: 'use job_name',
  scrape_interval: 'use interval',
  labels: 'use external_labels under remote_write',
};

type Path = readonly (string | number)[];

class Reader {
  constructor(
    private readonly source: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  where(path: Path, keyItself = false): string {
    const line = this.line(path, keyItself);
    const shown = path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '');
    return `push config ${this.source}${line ? `:${line}` : ''}${shown ? `: ${shown}` : ''}`;
  }

  private line(path: Path, keyItself: boolean): number | undefined {
    // The key's own line for unknown keys, the value's line otherwise.
    let node: unknown = this.doc.contents;
    let at: unknown = node;
    for (const p of path) {
      if (isMap(node)) {
        const pair = node.items.find((i) => (i.key as { value?: unknown } | null)?.value === p);
        if (!pair) break;
        at = keyItself ? pair.key : (pair.value ?? pair.key);
        node = pair.value;
      } else if (isSeq(node) && typeof p === 'number') {
        node = node.items[p];
        at = node;
      } else break;
    }
    const range = (at as { range?: [number, number, number] } | null)?.range;
    return range ? this.lines.linePos(range[0]).line : undefined;
  }

  fail(path: Path, message: string, keyItself = false): never {
    throw new PushConfigError(`${this.where(path, keyItself)}: ${message}`);
  }

  mapping(value: unknown, path: Path, known: readonly string[]): Record<string, unknown> {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) this.fail(path, `must be a mapping with keys ${known.join(', ')}`);
    const m = value as Record<string, unknown>;
    for (const k of Object.keys(m)) {
      if (!known.includes(k)) {
        const hint = HINTS[k];
        this.fail([...path, k], `unknown key "${k}"${hint ? ` (${hint})` : ''}; known keys: ${known.join(', ')}`, true);
      }
    }
    return m;
  }

  string(value: unknown, path: Path): string {
    if (typeof value !== 'string' || value === '') this.fail(path, 'must be a non-empty string');
    return value;
  }

  bool(value: unknown, path: Path, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(path, 'must be true or false');
    return value;
  }

  count(value: unknown, path: Path, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) this.fail(path, `must be a whole number from ${min} to ${max}`);
    return value;
  }

  seconds(value: unknown, path: Path, fallback: number | undefined, max = 86_400): number {
    if (value === undefined) {
      if (fallback === undefined) this.fail(path, 'is required (a duration such as 30s or 1m)');
      return fallback;
    }
    const s = typeof value === 'number' ? value : typeof value === 'string' ? parseDuration(value) : undefined;
    if (s === undefined || !(s > 0) || s > max) this.fail(path, `must be a duration greater than 0 and at most ${max}s, such as 500ms, 30s, 1m or 1h30m`);
    return s;
  }

  file(value: unknown, path: Path): string {
    const file = this.string(value, path);
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.fail(path, `cannot read ${file}: ${code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (code ?? String(err))}`);
    }
  }

  /** A secret read from a file: the first line, without its newline; never shown in errors. */
  secret(value: unknown, path: Path): string {
    const text = this.file(value, path).replace(/\r?\n$/, '');
    if (text === '' || /[\r\n]/.test(text)) this.fail(path, `${String(value)} must hold the secret on one line (it is empty or has several lines)`);
    return text;
  }
}

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 };

/** Prometheus durations: "500ms", "30s", "1m30s", "1h". */
export function parseDuration(raw: string): number | undefined {
  const s = raw.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNIT_SECONDS[m[2]];
  return total;
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const PREFERRED_SCOPES = ['cluster', 'node'];

export function parsePushConfigText(text: string, source: string, modules: ReadonlySet<string>): PushConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
    throw new PushConfigError(`push config ${source}${pos ? `:${pos.line}:${pos.col}` : ''}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const r = new Reader(source, doc, lines);
  const top = r.mapping(doc.toJS(), [], TOP_KEYS);
  if (top.remote_write === undefined) r.fail([], 'remote_write is required (url of the receiver, e.g. https://prometheus.example.com/api/v1/write)');
  const rw = r.mapping(top.remote_write, ['remote_write'], RW_KEYS);

  const urlText = r.string(rw.url, ['remote_write', 'url']);
  const url = URL.canParse(urlText) ? new URL(urlText) : r.fail(['remote_write', 'url'], `"${urlText}" is not a URL`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') r.fail(['remote_write', 'url'], 'must be an http:// or https:// URL');
  if (url.username !== '' || url.password !== '') r.fail(['remote_write', 'url'], 'must not carry credentials; use basic_auth with password_file');

  let authorization: string | undefined;
  if (rw.basic_auth !== undefined && rw.bearer_token_file !== undefined) {
    r.fail(['remote_write', 'bearer_token_file'], 'basic_auth and bearer_token_file exclude each other', true);
  }
  if (rw.basic_auth !== undefined) {
    const b = r.mapping(rw.basic_auth, ['remote_write', 'basic_auth'], BASIC_KEYS);
    const user = r.string(b.username, ['remote_write', 'basic_auth', 'username']);
    if (user.includes(':')) r.fail(['remote_write', 'basic_auth', 'username'], 'must not contain ":"');
    const password = r.secret(b.password_file, ['remote_write', 'basic_auth', 'password_file']);
    authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }
  if (rw.bearer_token_file !== undefined) {
    authorization = `Bearer ${r.secret(rw.bearer_token_file, ['remote_write', 'bearer_token_file'])}`;
  }

  let tls: TlsSettings = { insecureSkipVerify: false };
  if (rw.tls_config !== undefined) {
    const p = ['remote_write', 'tls_config'];
    const t = r.mapping(rw.tls_config, p, TLS_KEYS);
    if ((t.cert_file === undefined) !== (t.key_file === undefined)) r.fail([...p, t.cert_file === undefined ? 'key_file' : 'cert_file'], 'cert_file and key_file go together', true);
    tls = {
      ca: t.ca_file === undefined ? undefined : r.file(t.ca_file, [...p, 'ca_file']),
      caFile: t.ca_file as string | undefined,
      cert: t.cert_file === undefined ? undefined : r.file(t.cert_file, [...p, 'cert_file']),
      key: t.key_file === undefined ? undefined : r.file(t.key_file, [...p, 'key_file']),
      serverName: t.server_name === undefined ? undefined : r.string(t.server_name, [...p, 'server_name']),
      insecureSkipVerify: r.bool(t.insecure_skip_verify, [...p, 'insecure_skip_verify'], false),
    };
  }

  const externalLabels: [string, string][] = [];
  if (rw.external_labels !== undefined) {
    const p = ['remote_write', 'external_labels'];
    const el = rw.external_labels;
    if (el === null || typeof el !== 'object' || Array.isArray(el)) r.fail(p, 'must be a mapping of label names to values, e.g. {location: home}');
    for (const [k, v] of Object.entries(el as Record<string, unknown>)) {
      if (!LABEL_NAME.test(k) || k.startsWith('__')) r.fail([...p, k], `"${k}" is not a valid label name (letters, digits, _; not starting with __)`, true);
      if (k === 'job' || k === 'instance') r.fail([...p, k], `"${k}" is set per job; use another name`, true);
      externalLabels.push([k, r.string(typeof v === 'number' || typeof v === 'boolean' ? String(v) : v, [...p, k])]);
    }
    externalLabels.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  const q = rw.queue_config === undefined ? {} : r.mapping(rw.queue_config, ['remote_write', 'queue_config'], QUEUE_KEYS);
  const qp = ['remote_write', 'queue_config'];
  const capacity = r.count(q.capacity, [...qp, 'capacity'], 500_000, 1, 50_000_000);
  const maxSamplesPerSend = r.count(q.max_samples_per_send, [...qp, 'max_samples_per_send'], 10_000, 1, 1_000_000);
  const minBackoff = r.seconds(q.min_backoff, [...qp, 'min_backoff'], 0.03, 600);
  const maxBackoff = r.seconds(q.max_backoff, [...qp, 'max_backoff'], 5, 3600);
  if (maxBackoff < minBackoff) r.fail([...qp, 'max_backoff'], 'must not be less than min_backoff');
  if (maxSamplesPerSend > capacity) r.fail([...qp, 'max_samples_per_send'], `must not exceed capacity (${capacity})`);

  const remoteWrite: RemoteWriteConfig = {
    url,
    authorization,
    tls,
    externalLabels,
    timeout: r.seconds(rw.timeout, ['remote_write', 'timeout'], 30, 600),
    capacity,
    maxSamplesPerSend,
    minBackoff,
    maxBackoff,
  };

  if (!Array.isArray(top.jobs) || top.jobs.length === 0) r.fail(['jobs'], 'must be a non-empty list of jobs (job_name, module, target, interval)');
  const known = new Set(COLLECTORS.filter((c) => c.kind === 'scrape').map((c) => c.name));
  const jobs: PushJob[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of (top.jobs as unknown[]).entries()) {
    const p = ['jobs', i];
    const j = r.mapping(raw, p, JOB_KEYS);
    const jobName = r.string(j.job_name, [...p, 'job_name']);
    const module = r.string(j.module ?? 'default', [...p, 'module']);
    if (!modules.has(module)) r.fail([...p, 'module'], `module "${module}" is not in pve.yml (modules: ${[...modules].join(', ')})`);
    const target = r.string(j.target, [...p, 'target']);
    if (seen.has(`${jobName}|${target}`)) r.fail(p, `job_name "${jobName}" with target "${target}" is listed twice`);
    seen.add(`${jobName}|${target}`);
    let scopes = PREFERRED_SCOPES;
    if (j.scopes !== undefined) {
      if (!Array.isArray(j.scopes) || j.scopes.length === 0 || j.scopes.some((s) => !PREFERRED_SCOPES.includes(s as string))) {
        r.fail([...p, 'scopes'], 'must be a non-empty list of cluster and/or node');
      }
      scopes = j.scopes as string[];
    }
    let collectors: string[] | undefined;
    if (j.collectors !== undefined) {
      if (!Array.isArray(j.collectors) || j.collectors.length === 0) r.fail([...p, 'collectors'], 'must be a non-empty list of collector names');
      for (const [k, c] of (j.collectors as unknown[]).entries()) {
        if (typeof c !== 'string' || !known.has(c)) r.fail([...p, 'collectors', k], `unknown collector ${JSON.stringify(c)}; known: ${[...known].join(', ')}`);
      }
      collectors = j.collectors as string[];
    }
    const interval = r.seconds(j.interval, [...p, 'interval'], 30);
    const timeout = r.seconds(j.timeout, [...p, 'timeout'], Math.min(interval, 10), 600);
    if (timeout > interval) r.fail([...p, 'timeout'], `must not exceed interval (${interval}s)`);
    jobs.push({ jobName, module, target, cluster: scopes.includes('cluster'), node: scopes.includes('node'), collectors, interval, timeout });
  }
  return { source, remoteWrite, jobs };
}

export function loadPushConfig(file: string, modules: ReadonlySet<string>): PushConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PushConfigError(`push config ${file}: cannot read: ${code === 'ENOENT' ? 'file not found' : (code ?? String(err))}`);
  }
  return parsePushConfigText(text, file, modules);
}
