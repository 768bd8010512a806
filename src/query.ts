// Validation of /pve and /pve/sd query parameters: a bad parameter is a 400 with the reason,
// never a guess.
import { isIP } from 'node:net';
import type { Target } from './pve/client.ts';

export class QueryError extends Error {
  override readonly name = 'QueryError';
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

function parsePort(raw: string, whole: string): number {
  if (!/^\d{1,5}$/.test(raw)) throw new QueryError(`target "${whole}": port must be a number`);
  const port = Number(raw);
  if (port < 1 || port > 65535) throw new QueryError(`target "${whole}": port must be 1..65535`);
  return port;
}

/** "pve1", "pve1:8006", "10.0.0.1", "[fd00::1]:8006" or "fd00::1". */
export function parseTarget(raw: string, defaultPort: number): Target & { explicitPort: boolean } {
  const s = raw.trim();
  if (s === '') throw new QueryError('target must not be empty');
  if (/[\s/?#@]/.test(s)) throw new QueryError(`target "${raw}": a host name or address with an optional :port, not a URL`);
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (bracketed) {
    const host = bracketed[1];
    if (isIP(host) !== 6) throw new QueryError(`target "${raw}": not an IPv6 address in brackets`);
    const explicit = bracketed[2] !== undefined;
    return { host, port: explicit ? parsePort(bracketed[2], raw) : defaultPort, explicitPort: explicit };
  }
  if (isIP(s) === 6) return { host: s, port: defaultPort, explicitPort: false };
  const colon = s.lastIndexOf(':');
  const host = colon >= 0 ? s.slice(0, colon) : s;
  const explicit = colon >= 0;
  if (!(isIP(host) === 4 || HOSTNAME.test(host))) throw new QueryError(`target "${raw}": not a valid host name or IP address`);
  return { host, port: explicit ? parsePort(s.slice(colon + 1), raw) : defaultPort, explicitPort: explicit };
}

/**
 * As the reference (prometheus-pve-exporter 3.10, `value.lower() not in ['false', '0', '']`):
 * only "false" (any case), "0" and an empty value switch a scope off; every other value,
 * "no" and "off" included, leaves it on. Stricter parsing would silently change what an
 * existing scrape config collects.
 */
export function parseSwitch(raw: string | undefined): boolean {
  if (raw === undefined) return true;
  const s = raw.toLowerCase();
  return !(s === 'false' || s === '0' || s === '');
}

/** Reads parameters, rejecting unknown and repeated ones. */
export function readParams(search: URLSearchParams, allowed: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of search) {
    if (!allowed.includes(k)) throw new QueryError(`unknown parameter "${k}"; allowed: ${allowed.join(', ')}`);
    if (out.has(k)) throw new QueryError(`parameter "${k}" given more than once`);
    out.set(k, v);
  }
  return out;
}

/** X-Prometheus-Scrape-Timeout-Seconds -> seconds, ignoring junk. */
export function parseScrapeTimeout(header: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}
