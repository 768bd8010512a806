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
