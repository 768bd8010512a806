// Content negotiation for /pve (and every other answer's compression) with q-values, using the
// maintained `negotiator` package rather than substring tests: OpenMetrics only when the scraper
// prefers it, gzip only when it is acceptable (`gzip;q=0` means "never").
import type { IncomingHttpHeaders } from 'node:http';
import Negotiator from 'negotiator';
import type { Format } from '../exposition/encode.ts';

const TEXT = 'text/plain; version=0.0.4';
const OPENMETRICS = 'application/openmetrics-text; version=1.0.0';
// Text first: on a tie (`*/*`, no Accept header) the format every scraper reads wins.
const OFFERED_TYPES = [TEXT, OPENMETRICS];
// gzip first: on a tie ("gzip, identity", "*") the smaller answer wins.
const OFFERED_ENCODINGS = ['gzip', 'identity'];

/**
 * The exposition format the scraper prefers. A scraper that accepts neither (e.g. only
 * `text/plain;version=1.0.0` or `application/json`) still gets text 0.0.4, as client_golang
 * does: an answer it can probably parse beats a 406 it certainly cannot.
 */
export function negotiateFormat(headers: IncomingHttpHeaders): Format {
  const best = new Negotiator({ headers }).mediaType(OFFERED_TYPES);
  return best === OPENMETRICS ? 'openmetrics' : 'text';
}

/** True when gzip is acceptable and preferred over identity (`gzip;q=0` or no header: false). */
export function negotiateGzip(headers: IncomingHttpHeaders): boolean {
  return new Negotiator({ headers }).encoding(OFFERED_ENCODINGS) === 'gzip';
}
