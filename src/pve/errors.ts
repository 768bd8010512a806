// What can go wrong talking to PVE, classified so the scrape can decide between "the target is
// unusable" (HTTP 500 to Prometheus) and "one collector failed" (200 with success=0).

export type PveErrorKind =
  | 'connect' // DNS, refused, reset, connect timeout
  | 'tls' // certificate not trusted, fingerprint mismatch, handshake failure
  | 'auth' // 401, or login refused
  | 'http' // any other non-2xx answer from PVE (403, 500, 501, 595...)
  | 'timeout' // the module timeout for one request ran out
  | 'deadline' // the scrape deadline ran out
  | 'parse' // the answer was not the JSON PVE sends
  | 'size'; // the answer (raw or decompressed) was larger than --pve.max-response-size

export class PveError extends Error {
  override readonly name = 'PveError';
  constructor(
    readonly kind: PveErrorKind,
    /** API path (no query string, no credentials). */
    readonly path: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }

  /** Failures that say nothing works with this target: no reason to go on with other calls. */
  get targetLevel(): boolean {
    return this.kind === 'connect' || this.kind === 'tls' || this.kind === 'auth';
  }
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
  'PVE_FINGERPRINT_MISMATCH',
]);

const TLS_HINT = 'set verify_ssl: false, or ca_file / fingerprint in the module to trust the PVE certificate';

/** Turns a transport error into a PveError with a message an operator can act on. */
export function classifyTransportError(err: unknown, path: string): PveError {
  if (err instanceof PveError) return err;
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.code ?? e.cause?.code ?? '';
  const msg = e.message ?? String(err);
  // Set by src/pve/tls.ts PveAgent; the message says it all (and must not be taken for TLS's).
  if (code === 'PVE_CONNECT_TIMEOUT' || code === 'PVE_CONNECT_ABANDONED') return new PveError('connect', path, msg);
  if (TLS_CODES.has(code) || /certificate|SSL|TLS/i.test(msg)) {
    const hint = code === 'PVE_FINGERPRINT_MISMATCH' ? '' : ` (${TLS_HINT})`;
    return new PveError('tls', path, `TLS: ${msg}${hint}`);
  }
  return new PveError('connect', path, code ? `${code}: ${msg}` : msg);
}
