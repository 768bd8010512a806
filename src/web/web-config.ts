// --web.config.file: the exporter-toolkit web configuration (the file node_exporter,
// blackbox_exporter and Prometheus read), parsed strictly: an unknown key, a value Node cannot
// honour or a broken certificate is refused with the file, the key and its line, so an operator
// can reuse the file they have and learns at start (or on --config.check) what does not carry over.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_CIPHERS } from 'node:tls';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode, type Pair, type YAMLMap } from 'yaml';

export class WebConfigError extends Error {
  override readonly name = 'WebConfigError';
}

/** Go's tls.ClientAuthType names, as exporter-toolkit spells them. */
export type ClientAuthType = 'NoClientCert' | 'RequestClientCert' | 'RequireAnyClientCert' | 'VerifyClientCertIfGiven' | 'RequireAndVerifyClientCert';

export interface TlsServerConfig {
  /** PEM text of the certificate chain (read from cert_file or given inline as cert). */
  readonly cert: string;
  readonly key: string;
  /** PEM text of the CAs client certificates are verified against. */
  readonly clientCa?: string;
  readonly clientAuthType: ClientAuthType;
  readonly clientAllowedSans?: readonly string[];
  /** Node names: TLSv1 .. TLSv1.3. */
  readonly minVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher string, or undefined for Node's defaults. */
  readonly ciphers?: string;
  /** OpenSSL group list (ecdhCurve), or undefined for Node's defaults. */
  readonly ecdhCurve?: string;
  readonly honorCipherOrder: boolean;
}

export interface WebConfig {
  readonly source: string;
  readonly tls?: TlsServerConfig;
  /** user name -> bcrypt hash. Empty: no basic authentication. */
  readonly users: ReadonlyMap<string, string>;
  /** Added to every answer. */
  readonly headers: Readonly<Record<string, string>>;
  /** Notes to log at (re)load. */
  readonly warnings: string[];
}

const TOP_KEYS = ['tls_server_config', 'http_server_config', 'basic_auth_users', 'rate_limit'] as const;
const TLS_KEYS = [
  'cert',
  'key',
  'client_ca',
  'cert_file',
  'key_file',
  'client_auth_type',
  'client_ca_file',
  'client_allowed_sans',
  'min_version',
  'max_version',
  'cipher_suites',
  'prefer_server_cipher_suites',
  'curve_preferences',
] as const;
const HTTP_KEYS = ['http2', 'headers'] as const;

/** exporter-toolkit's list: only these headers, and for two of them only these values. */
const ALLOWED_HEADERS: Record<string, readonly string[] | null> = {
  'Strict-Transport-Security': null,
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-XSS-Protection': null,
  'Content-Security-Policy': null,
};

const CLIENT_AUTH: Record<string, ClientAuthType> = {
  '': 'NoClientCert',
  NoClientCert: 'NoClientCert',
  RequestClientCert: 'RequestClientCert',
  RequireAnyClientCert: 'RequireAnyClientCert',
  // exporter-toolkit keeps this older spelling for compatibility.
  RequireClientCert: 'RequireAnyClientCert',
  VerifyClientCertIfGiven: 'VerifyClientCertIfGiven',
  RequireAndVerifyClientCert: 'RequireAndVerifyClientCert',
};

const TLS_VERSIONS = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' } as const;
const VERSION_ORDER = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/**
 * Go's secure TLS 1.0-1.2 suites (tls.CipherSuites()) -> OpenSSL names. Go's insecure list
 * (RC4, 3DES, CBC-SHA256, RSA key exchange) is refused by exporter-toolkit as well.
 */
const TLS12_CIPHERS: Record<string, string> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
};
/** TLS 1.3 suites: Go lists them but, as there, cipher_suites does not restrict TLS 1.3. */
const TLS13_CIPHERS = new Set(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']);
const TLS13_DEFAULT = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

const CURVES: Record<string, string> = { CurveP256: 'P-256', CurveP384: 'P-384', CurveP521: 'P-521', X25519: 'X25519' };

const BCRYPT_HASH = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/;

class Located {
  constructor(
    private readonly source: string,
    private readonly lines: LineCounter,
  ) {}

  error(node: YamlNode | Pair | null | undefined, key: string, why: string): WebConfigError {
    const range = (node && 'range' in node ? node.range : node && 'key' in node ? (node.key as YamlNode | null)?.range : undefined) ?? undefined;
    const line = range ? `:${this.lines.linePos(range[0]).line}` : '';
    return new WebConfigError(`web config ${this.source}${line}: ${key ? `key "${key}": ` : ''}${why}`);
  }
}

type Entry = { key: string; value: YamlNode | null; pair: Pair };

function entries(at: Located, node: YamlNode | null, where: string, known: readonly string[] | null): Map<string, Entry> {
  const out = new Map<string, Entry>();
  if (node === null || (isScalar(node) && node.value === null)) return out;
  if (!isMap(node)) throw at.error(node, where, 'expected a mapping');
  for (const pair of (node as YAMLMap).items) {
    const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const full = where ? `${where}.${k}` : k;
    if (known && !known.includes(k)) throw at.error(pair, full, `unknown key; known keys${where ? ` of ${where}` : ''}: ${known.join(', ')}`);
    out.set(k, { key: full, value: (pair.value as YamlNode | null) ?? null, pair });
  }
  return out;
}

function str(at: Located, e: Entry | undefined): string | undefined {
  if (!e || e.value === null) return undefined;
  if (!isScalar(e.value) || (typeof e.value.value !== 'string' && typeof e.value.value !== 'number')) throw at.error(e.pair, e.key, 'expected a string');
  return String(e.value.value);
}

function bool(at: Located, e: Entry | undefined, fallback: boolean): boolean {
  if (!e || e.value === null) return fallback;
  if (!isScalar(e.value) || typeof e.value.value !== 'boolean') throw at.error(e.pair, e.key, 'expected true or false');
  return e.value.value;
}

function strList(at: Located, e: Entry | undefined): string[] | undefined {
  if (!e || e.value === null) return undefined;
  if (!isSeq(e.value)) throw at.error(e.pair, e.key, 'expected a list of strings');
  return e.value.items.map((item) => {
    if (!isScalar(item) || typeof item.value !== 'string') throw at.error(item as YamlNode, e.key, 'expected a list of strings');
    return item.value;
  });
}

function readFile(at: Located, e: Entry, file: string, dir: string): string {
  const full = path.resolve(dir, file);
  try {
    return readFileSync(full, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw at.error(e.pair, e.key, `cannot read ${full}: ${code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : String(code ?? err)}`);
  }
}

/** Either the inline PEM (`inline`) or the file (`file`), not both. */
function pem(at: Located, m: Map<string, Entry>, inline: string, file: string, dir: string): string | undefined {
  const text = str(at, m.get(inline));
  const name = str(at, m.get(file));
  if (text !== undefined && name !== undefined) throw at.error(m.get(inline)!.pair, m.get(inline)!.key, `give ${inline} or ${file}, not both`);
  if (name !== undefined && name !== '') return readFile(at, m.get(file)!, name, dir);
  return text === '' ? undefined : text;
}

function parseTls(at: Located, e: Entry | undefined, dir: string, warnings: string[]): TlsServerConfig | undefined {
  const m = entries(at, e?.value ?? null, 'tls_server_config', TLS_KEYS);
  const enabled = ['cert', 'key', 'cert_file', 'key_file', 'client_ca', 'client_ca_file', 'client_auth_type'].some((k) => (str(at, m.get(k)) ?? '') !== '');
  if (!enabled) {
    if (m.size > 0) warnings.push(`web config: tls_server_config has no certificate, key or client_auth_type: serving plain HTTP`);
    return undefined;
  }
  const given = (k: string) => (str(at, m.get(k)) ?? '') !== '';
  if (!given('cert') && !given('cert_file')) throw at.error(e?.pair, 'tls_server_config', 'missing one of cert or cert_file');
  if (!given('key') && !given('key_file')) throw at.error(e?.pair, 'tls_server_config', 'missing one of key or key_file');
  const cert = pem(at, m, 'cert', 'cert_file', dir)!;
  const key = pem(at, m, 'key', 'key_file', dir)!;
  const clientCa = pem(at, m, 'client_ca', 'client_ca_file', dir);

  const authEntry = m.get('client_auth_type');
  const authName = str(at, authEntry) ?? '';
  const clientAuthType = CLIENT_AUTH[authName];
  if (!clientAuthType) throw at.error(authEntry?.pair, 'tls_server_config.client_auth_type', `invalid value "${authName}"; one of ${Object.keys(CLIENT_AUTH).filter(Boolean).join(', ')}`);
  if (clientCa !== undefined && clientAuthType === 'NoClientCert') {
    const caEntry = m.get('client_ca_file') ?? m.get('client_ca');
    throw at.error(caEntry?.pair, caEntry?.key ?? 'tls_server_config', 'a client CA is configured without a client_auth_type that asks for client certificates (use RequireAndVerifyClientCert)');
  }
  const sansEntry = m.get('client_allowed_sans');
  const clientAllowedSans = strList(at, sansEntry);
  if (clientAllowedSans && clientAuthType !== 'RequireAnyClientCert' && clientAuthType !== 'RequireAndVerifyClientCert') {
    throw at.error(sansEntry!.pair, sansEntry!.key, 'needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert');
  }

  const version = (k: 'min_version' | 'max_version', fallback: keyof typeof TLS_VERSIONS) => {
    const v = str(at, m.get(k)) ?? fallback;
    if (!(v in TLS_VERSIONS)) throw at.error(m.get(k)?.pair, `tls_server_config.${k}`, `unknown TLS version "${v}"; one of ${Object.keys(TLS_VERSIONS).join(', ')}`);
    return TLS_VERSIONS[v as keyof typeof TLS_VERSIONS];
  };
  const minVersion = version('min_version', 'TLS12');
  const maxVersion = version('max_version', 'TLS13');
  if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) {
    throw at.error(m.get('min_version')?.pair, 'tls_server_config.min_version', `is above max_version`);
  }

  let ciphers: string | undefined;
  const cipherEntry = m.get('cipher_suites');
  const suites = strList(at, cipherEntry);
  if (suites && suites.length > 0) {
    const openssl: string[] = [];
    for (const s of suites) {
      if (TLS13_CIPHERS.has(s)) continue;
      const name = TLS12_CIPHERS[s];
      if (!name) throw at.error(cipherEntry!.pair, cipherEntry!.key, `unknown or insecure cipher "${s}"; supported: ${[...Object.keys(TLS12_CIPHERS), ...TLS13_CIPHERS].join(', ')}`);
      openssl.push(name);
    }
    // Node's cipher string also selects the TLS 1.3 suites; keep its defaults for those, since in
    // Go (and so in exporter-toolkit) cipher_suites only applies up to TLS 1.2.
    ciphers = [TLS13_DEFAULT, ...openssl].join(':');
    if (openssl.length === 0 && minVersion !== 'TLSv1.3') {
      warnings.push(`web config: cipher_suites lists only TLS 1.3 suites, which (as in Go) do not restrict anything`);
      ciphers = undefined;
    }
  }

  if (minVersion === 'TLSv1' || minVersion === 'TLSv1.1') {
    // OpenSSL 3 refuses TLS < 1.2 at its default security level; an operator asking for TLS10/11
    // (legacy scrapers) gets it, with a note.
    ciphers = `${ciphers ?? DEFAULT_CIPHERS}:@SECLEVEL=0`;
    warnings.push(`web config: min_version ${minVersion === 'TLSv1' ? 'TLS10' : 'TLS11'} lowers OpenSSL's security level to 0 so that old TLS versions can connect`);
  }

  let ecdhCurve: string | undefined;
  const curveEntry = m.get('curve_preferences');
  const curves = strList(at, curveEntry);
  if (curves && curves.length > 0) {
    ecdhCurve = curves
      .map((c) => {
        const name = CURVES[c];
        if (!name) throw at.error(curveEntry!.pair, curveEntry!.key, `unknown or unsupported curve "${c}"; supported: ${Object.keys(CURVES).join(', ')}`);
        return name;
      })
      .join(':');
  }

  return {
    cert,
    key,
    clientCa,
    clientAuthType,
    clientAllowedSans,
    minVersion,
    maxVersion,
    ciphers,
    ecdhCurve,
    honorCipherOrder: bool(at, m.get('prefer_server_cipher_suites'), true),
  };
}

function parseHttp(at: Located, e: Entry | undefined, warnings: string[]): Record<string, string> {
  const m = entries(at, e?.value ?? null, 'http_server_config', HTTP_KEYS);
  if (bool(at, m.get('http2'), false)) {
    // Not an error: true is exporter-toolkit's default and clients fall back to HTTP/1.1 via ALPN.
    warnings.push('web config: http_server_config.http2 is true, but pve-exporter serves HTTP/1.1 only');
  }
  const headers: Record<string, string> = {};
  for (const [name, h] of entries(at, m.get('headers')?.value ?? null, 'http_server_config.headers', null)) {
    if (!(name in ALLOWED_HEADERS)) {
      throw at.error(h.pair, h.key, `HTTP header "${name}" can not be configured; allowed: ${Object.keys(ALLOWED_HEADERS).join(', ')}`);
    }
    const value = str(at, h) ?? '';
    const allowed = ALLOWED_HEADERS[name];
    if (allowed && value !== '' && !allowed.includes(value)) throw at.error(h.pair, h.key, `invalid value "${value}"; one of ${allowed.join(', ')}`);
    if (/[\r\n]/.test(value)) throw at.error(h.pair, h.key, 'a header value must be one line');
    if (value !== '') headers[name] = value;
  }
  return headers;
}

function parseUsers(at: Located, e: Entry | undefined): Map<string, string> {
  const users = new Map<string, string>();
  for (const [name, u] of entries(at, e?.value ?? null, 'basic_auth_users', null)) {
    const hash = str(at, u) ?? '';
    // The hash is not quoted in the message: it is a secret's derivative.
    if (!BCRYPT_HASH.test(hash)) throw at.error(u.pair, u.key, 'not a bcrypt hash ($2y$10$... as `htpasswd -nBC 10 "" | tr -d \':\\n\'` prints)');
    if (name.includes(':')) throw at.error(u.pair, u.key, 'a user name cannot contain ":"');
    users.set(name, hash);
  }
  return users;
}

/** Parses the text of a web config file; `file` names it in messages and anchors relative paths. */
export function parseWebConfigText(text: string, file: string): WebConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const pos = err.linePos?.[0];
    throw new WebConfigError(`web config ${file}${pos ? `:${pos.line}:${pos.col}` : ''}: invalid YAML: ${err.message.split('\n')[0]}`);
  }
  const at = new Located(file, lines);
  const top = entries(at, (doc.contents as YamlNode | null) ?? null, '', TOP_KEYS);
  const rate = top.get('rate_limit');
  if (rate && rate.value !== null) throw at.error(rate.pair, 'rate_limit', 'not supported by pve-exporter; limit request rates in a reverse proxy');
  const warnings: string[] = [];
  const dir = path.dirname(path.resolve(file));
  return {
    source: file,
    tls: parseTls(at, top.get('tls_server_config'), dir, warnings),
    users: parseUsers(at, top.get('basic_auth_users')),
    headers: parseHttp(at, top.get('http_server_config'), warnings),
    warnings,
  };
}

export function loadWebConfig(file: string): WebConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WebConfigError(`web config ${file}: cannot read: ${code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : String(code ?? err)}`);
  }
  return parseWebConfigText(text, file);
}
