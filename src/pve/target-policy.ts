// A module's targets: allow-list. A caller names the target in ?target=; the module's credentials
// go to that host. The allow-list says which hosts may receive them, and it is checked on the text
// of the target, before any DNS lookup or connection:
//
//   - names ("pve1", "pve1.example.com", case-insensitive, trailing dot ignored) match names only;
//   - a wildcard "*.pve.example.com" matches exactly one more label ("pve1.pve.example.com", not
//     "a.b.pve.example.com" and not "pve.example.com"), as a TLS wildcard certificate does;
//   - addresses ("10.0.0.1", "fd00::1") and CIDRs ("10.0.0.0/24", "fd00::/64") match addresses only;
//   - each entry may carry a port: "pve1:8006", "*.pve.example.com:8006", "10.0.0.1:8006",
//     "[fd00::1]:8006", "10.0.0.0/24:8006", "[fd00::/64]:8006". Without a port, any port of that
//     host is allowed.
//
// A name is never resolved to check it against an address rule: the exporter would look the
// name up once to check and again to connect, and the answers may differ (a TOCTOU hole that DNS
// rebinding walks through). So "pve1" must be listed as a name even when 10.0.0.0/24 is listed.
import { BlockList, isIP } from 'node:net';
import { canonicalName, formatHostPort, HostPortError, isHostName, parseHostPort } from '../hostport.ts';

export interface TargetPolicy {
  /** `host` as parsed from ?target= (IPv6 without brackets). */
  allows(host: string, port: number): boolean;
  /** The entries as written in pve.yml, for messages and the landing page. */
  readonly entries: readonly string[];
}

/** A target outside the module's allow-list; the message is the reason (no secrets in it). */
export class TargetRefused extends Error {
  override readonly name = 'TargetRefused';
  constructor(
    readonly module: string,
    readonly target: string,
    message: string,
  ) {
    super(message);
  }
}

/** An entry of targets: that cannot be read; `index` counts from 1. */
export class TargetEntryError extends Error {
  override readonly name = 'TargetEntryError';
  constructor(
    readonly index: number,
    readonly entry: string,
    reason: string,
  ) {
    super(`entry ${index} "${entry}": ${reason}`);
  }
}

type Rule =
  | { readonly kind: 'name'; readonly name: string; readonly port?: number }
  | { readonly kind: 'wildcard'; readonly suffix: string; readonly port?: number }
  | { readonly kind: 'address'; readonly list: BlockList; readonly port?: number };

function parseCidr(network: string, prefixText: string, port: number | undefined): Rule {
  const ip = isIP(network);
  if (ip === 0) throw new HostPortError(`"${network}" is not an IP address`);
  const family = ip === 4 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) throw new HostPortError(`prefix length must be 0..${max}`);
  const prefix = Number(prefixText);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  // Host bits set ("10.0.0.1/24") usually means a typo in the prefix: say so instead of guessing.
  if (!networkAddressOf(network, prefix, family)) {
    throw new HostPortError(`${network}/${prefix} has host bits set; write the network address`);
  }
  const list = new BlockList();
  list.addSubnet(network, prefix, type);
  return { kind: 'address', list, port };
}

/** True when `address` is the first address of its /prefix (no host bits set). */
function networkAddressOf(address: string, prefix: number, family: 4 | 6): boolean {
  const bytes = family === 4 ? address.split('.').map(Number) : ipv6Bytes(address);
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    if ((bytes[bit >> 3] >> (7 - (bit & 7))) & 1) return false;
  }
  return true;
}

function ipv6Bytes(address: string): number[] {
  let text = address;
  // An embedded IPv4 tail ("::ffff:10.0.0.1") becomes two hex groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

function parseEntry(entry: string): Rule {
  const s = entry.trim();
  if (s.includes('://')) throw new HostPortError('expected a host name, address or CIDR with an optional :port, not a URL');
  // CIDR: "10.0.0.0/24", "10.0.0.0/24:8006", "fd00::/64", "[fd00::/64]:8006".
  const bracketCidr = /^\[([^\]/]+)\/([^\]]*)\](?::(.*))?$/.exec(s);
  if (bracketCidr) {
    const port = bracketCidr[3] === undefined ? undefined : parseHostPort(`x:${bracketCidr[3]}`).port;
    if (isIP(bracketCidr[1]) !== 6) throw new HostPortError(`"${bracketCidr[1]}" in brackets is not an IPv6 address`);
    return parseCidr(bracketCidr[1], bracketCidr[2], port);
  }
  if (s.includes('/')) {
    const slash = s.indexOf('/');
    const network = s.slice(0, slash);
    const rest = s.slice(slash + 1);
    if (isIP(network) === 6) {
      if (rest.includes(':')) throw new HostPortError('an IPv6 CIDR with a port goes in brackets: [fd00::/64]:8006');
      return parseCidr(network, rest, undefined);
    }
    const [prefix, portText] = rest.includes(':') ? [rest.slice(0, rest.indexOf(':')), rest.slice(rest.indexOf(':') + 1)] : [rest, undefined];
    return parseCidr(network, prefix, portText === undefined ? undefined : parseHostPort(`x:${portText}`).port);
  }
  // Wildcard: "*." followed by a name of at least two labels (a bare "*" or "*.com" would be no
  // allow-list at all).
  if (s.startsWith('*.')) {
    const hp = parseHostPort(s.slice(2));
    if (hp.kind !== 'name') throw new HostPortError('a wildcard applies to host names, not addresses');
    const suffix = canonicalName(hp.host);
    if (!suffix.includes('.')) throw new HostPortError('a wildcard needs at least two labels after "*." (e.g. *.pve.example.com)');
    return { kind: 'wildcard', suffix, port: hp.port };
  }
  if (s.includes('*')) throw new HostPortError('"*" is only allowed as the whole first label ("*.pve.example.com")');
  const hp = parseHostPort(s);
  if (hp.kind === 'name') return { kind: 'name', name: canonicalName(hp.host), port: hp.port };
  const list = new BlockList();
  list.addAddress(hp.host, hp.kind);
  return { kind: 'address', list, port: hp.port };
}

class AllowList implements TargetPolicy {
  constructor(
    readonly entries: readonly string[],
    private readonly rules: readonly Rule[],
  ) {}

  allows(host: string, port: number): boolean {
    const family = isIP(host);
    if (family !== 0) {
      const type = family === 4 ? 'ipv4' : 'ipv6';
      return this.rules.some((r) => r.kind === 'address' && (r.port === undefined || r.port === port) && r.list.check(host, type));
    }
    if (!isHostName(host)) return false;
    const name = canonicalName(host);
    return this.rules.some((r) => {
      if (r.port !== undefined && r.port !== port) return false;
      if (r.kind === 'name') return r.name === name;
      if (r.kind === 'wildcard') {
        const dot = name.indexOf('.');
        return dot > 0 && name.slice(dot + 1) === r.suffix;
      }
      return false;
    });
  }
}

/** Builds the allow-list from the entries of `targets:`; throws TargetEntryError for a bad entry. */
export function parseTargetPolicy(entries: readonly string[]): TargetPolicy {
  const rules = entries.map((entry, i) => {
    try {
      return parseEntry(entry);
    } catch (err) {
      if (err instanceof HostPortError) throw new TargetEntryError(i + 1, entry, err.message);
      throw err;
    }
  });
  return new AllowList([...entries], rules);
}

/** Throws TargetRefused when `module` has an allow-list that does not contain the target. */
export function checkTargetAllowed(module: { readonly name: string; readonly targets?: TargetPolicy }, host: string, port: number): void {
  const policy = module.targets;
  if (!policy || policy.allows(host, port)) return;
  const shown = formatHostPort(host, port);
  const listed = policy.entries.length > 10 ? `${policy.entries.slice(0, 10).join(', ')}, ...` : policy.entries.join(', ');
  throw new TargetRefused(
    module.name,
    shown,
    `target ${shown} is not in the targets allow-list of module "${module.name}" (${listed}); ` +
      'no connection was made. Add it to the module\'s "targets:" in pve.yml if the exporter may send the module\'s credentials there',
  );
}
