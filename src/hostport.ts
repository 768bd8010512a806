// The one "host[:port]" parser of the exporter: ?target= of /pve and /pve/sd, --web.listen-address
// and the entries of a module's targets: allow-list all follow the same rules, so an address the
// allow-list understands is an address the client connects to, and nothing in between reads it
// differently.
//
// Rules: IPv6 goes in brackets when a port follows ("[fd00::1]:8006"); a bare IPv6 address has no
// port ("fd00::1"); IPv6 zone ids ("fe80::1%eth0") are refused, because a zone names an interface
// of this machine and cannot be matched against an allow-list; ports are 1..65535 (0 only where the
// caller allows it, for "pick a free port"). Host names are DNS names: labels of letters, digits,
// "-" and "_", at most 253 characters, and a last label that is not all digits (so "10.1" or
// "0x7f.1" never slip through as a name that the resolver would read as an IPv4 address).
import { isIP } from 'node:net';

export class HostPortError extends Error {
  override readonly name = 'HostPortError';
}

export type HostKind = 'name' | 'ipv4' | 'ipv6';

export interface HostPort {
  /** Host name as written, or the IP address (IPv6 without brackets). */
  readonly host: string;
  readonly kind: HostKind;
  /** Undefined when the text has no port. */
  readonly port?: number;
}

export interface HostPortRules {
  /** Accept port 0 (listen addresses: any free port). */
  readonly allowPortZero?: boolean;
  /** Accept an empty host before the port (":9221" = every address). */
  readonly allowEmptyHost?: boolean;
}

const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** True for a DNS host name (one trailing dot allowed) that cannot be mistaken for an address. */
export function isHostName(s: string): boolean {
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return false;
  // inet_aton reads "10.1", "0x7f.1" or "017.0.0.1" as addresses: such a "name" would connect to
  // an address no address rule of the allow-list ever saw.
  return !/^(?:\d+|0x[0-9a-f]*)$/i.test(labels[labels.length - 1]);
}

/** Lower case, without the trailing dot: the form names are compared in. */
export function canonicalName(name: string): string {
  return (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
}

function parsePort(raw: string, rules: HostPortRules): number {
  const min = rules.allowPortZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(raw)) throw new HostPortError(`port "${raw}" must be a number ${min}..65535`);
  const port = Number(raw);
  if (port < min || port > 65535) throw new HostPortError(`port ${raw} must be ${min}..65535`);
  return port;
}

function hostKind(host: string): HostKind | undefined {
  const ip = isIP(host);
  if (ip === 4) return 'ipv4';
  if (ip === 6) return 'ipv6';
  return isHostName(host) ? 'name' : undefined;
}

/**
 * Parses "host", "host:port", "1.2.3.4:8006", "[fd00::1]:8006", "[fd00::1]" or "fd00::1".
 * Throws HostPortError with a reason (without the input: callers add what they were reading).
 */
export function parseHostPort(raw: string, rules: HostPortRules = {}): HostPort {
  const s = raw.trim();
  if (s === '') throw new HostPortError('must not be empty');
  if (s.includes('%')) {
    throw new HostPortError('IPv6 zone ids (fe80::1%eth0) are not supported: use a routable address or a host name');
  }
  if (/[\s/?#@\\]/.test(s)) throw new HostPortError('expected a host name or IP address with an optional :port, not a URL');
  if (s.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
    if (!m) throw new HostPortError('expected [IPv6 address] or [IPv6 address]:port');
    if (isIP(m[1]) !== 6) throw new HostPortError(`"${m[1]}" in brackets is not an IPv6 address`);
    return { host: m[1], kind: 'ipv6', port: m[2] === undefined ? undefined : parsePort(m[2], rules) };
  }
  const colons = s.split(':').length - 1;
  if (colons > 1) {
    if (isIP(s) === 6) return { host: s, kind: 'ipv6' };
    throw new HostPortError('not a valid IPv6 address (an IPv6 address with a port goes in brackets: [fd00::1]:8006)');
  }
  const [host, port] = colons === 1 ? [s.slice(0, s.indexOf(':')), s.slice(s.indexOf(':') + 1)] : [s, undefined];
  if (host === '' && rules.allowEmptyHost && port !== undefined) return { host: '', kind: 'name', port: parsePort(port, rules) };
  const kind = hostKind(host);
  if (!kind) throw new HostPortError(`"${host}" is not a valid host name or IP address`);
  return { host, kind, port: port === undefined ? undefined : parsePort(port, rules) };
}

/** "host:port", with IPv6 in brackets. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
