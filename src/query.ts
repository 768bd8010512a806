// Validation of /pve and /pve/sd query parameters: a bad parameter is a 400 with the reason,
// never a guess.
import { HostPortError, parseHostPort } from './hostport.ts';
import type { Target } from './pve/client.ts';

export class QueryError extends Error {
  override readonly name = 'QueryError';
}

/** "pve1", "pve1:8006", "10.0.0.1", "[fd00::1]:8006" or "fd00::1" (rules: src/hostport.ts). */
export function parseTarget(raw: string, defaultPort: number): Target & { explicitPort: boolean } {
  try {
    const hp = parseHostPort(raw);
    return { host: hp.host, port: hp.port ?? defaultPort, explicitPort: hp.port !== undefined };
  } catch (err) {
    if (err instanceof HostPortError) throw new QueryError(raw.trim() === '' ? 'target must not be empty' : `target "${raw}": ${err.message}`);
    throw err;
  }
}

/** The reference turns a scope off with "0", "false" or an empty value. */
export function parseSwitch(name: string, raw: string | undefined): boolean {
  if (raw === undefined) return true;
  const s = raw.toLowerCase();
  if (s === '' || s === '0' || s === 'false' || s === 'no' || s === 'off') return false;
  if (s === '1' || s === 'true' || s === 'yes' || s === 'on') return true;
  throw new QueryError(`${name} must be 1/0 or true/false, got "${raw}"`);
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
