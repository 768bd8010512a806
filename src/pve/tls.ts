// How the exporter trusts a PVE node's certificate, per module:
//
//   fingerprint (one or a list)  a pin replaces chain validation. It matches any certificate of the
//                                chain the server presents, from the leaf up, as long as every link
//                                up to it is signed by the next: pinning the cluster CA
//                                (/etc/pve/pve-root-ca.pem) covers every node that sends its chain.
//   verify_ssl: true (default)   the chain must lead to ca_file (or the system store when there is
//                                none) and the certificate must name the target, or server_name
//                                when that is set (the name is also sent as SNI).
//   verify_ssl: false            no verification at all (server_name only sets SNI).
//
// Two Node details shape the pin check: with rejectUnauthorized: false, Node does not call
// checkServerIdentity when the chain is not trusted, so the pin is checked on the socket once it
// is connected; and a resumed TLS session shows no peer certificate, so session caching is off
// whenever a pin is set.
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';

export interface TlsSettings {
  readonly verifySsl: boolean;
  /** PEM text of the CA bundle (undefined: the system store). */
  readonly ca?: string;
  /** Normalised "AB:CD:..." SHA-256 pins; empty = no pin. */
  readonly fingerprints: readonly string[];
  readonly serverName?: string;
}

/** One certificate of the presented chain, leaf first. */
export interface PresentedCertificate {
  readonly subject: string;
  readonly fingerprint: string;
  /** True when the handshake (leaf) or a verified signature chain ties it to the server's key. */
  readonly vouches: boolean;
}

const MAX_CHAIN = 10;

function subjectOf(cert: DetailedPeerCertificate): string {
  const cn = cert.subject?.CN;
  return Array.isArray(cn) ? cn.join(',') : (cn ?? '(no CN)');
}

/** True when `parent` is a CA certificate whose key signed `child`. */
function signedBy(child: DetailedPeerCertificate, parent: DetailedPeerCertificate): boolean {
  try {
    const c = new X509Certificate(child.raw);
    const p = new X509Certificate(parent.raw);
    return p.ca && c.checkIssued(p) && c.verify(p.publicKey);
  } catch {
    return false;
  }
}

/**
 * The chain the server presented, leaf first. Node links the certificates by issuer name only, so
 * each link's signature is checked here: a server could send the real cluster CA next to a leaf of
 * its own, and that CA must not vouch for it.
 */
export function presentedChain(socket: TLSSocket): PresentedCertificate[] {
  const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!leaf || !leaf.raw) return [];
  const out: PresentedCertificate[] = [{ subject: subjectOf(leaf), fingerprint: leaf.fingerprint256, vouches: true }];
  let cur = leaf;
  let vouched = true;
  for (let depth = 1; depth < MAX_CHAIN; depth++) {
    const next = cur.issuerCertificate;
    if (!next || !next.raw || next === cur || next.fingerprint256 === cur.fingerprint256) break;
    vouched = vouched && signedBy(cur, next);
    out.push({ subject: subjectOf(next), fingerprint: next.fingerprint256, vouches: vouched });
    cur = next;
  }
  return out;
}

/** Why a pinned connection is refused, or undefined when a pin matches. No secrets in it. */
export function pinMismatch(chain: readonly PresentedCertificate[], pins: readonly string[]): string | undefined {
  if (chain.some((c) => c.vouches && pins.includes(c.fingerprint))) return undefined;
  const seen = chain.length === 0
    ? '(no certificate)'
    : chain.map((c, i) => `${i === 0 ? 'leaf' : 'issuer'} "${c.subject}" ${c.fingerprint}${c.vouches ? '' : ' (signature does not chain to the leaf)'}`).join('; ');
  const expected = pins.join(', ');
  return `certificate fingerprint of the server does not match the module's fingerprint${pins.length > 1 ? 's' : ''}: presented ${seen}; expected ${expected}`;
}

/** The undici connector for a module: chain/CA/name verification or the fingerprint pin. */
export function buildTlsConnector(settings: TlsSettings, timeoutMs: number): buildConnector.connector {
  const pins = settings.fingerprints;
  const pinned = pins.length > 0;
  const base = buildConnector({
    rejectUnauthorized: settings.verifySsl && !pinned,
    // Under a pin the CA bundle plays no part (config.ts warns when both are set).
    ca: pinned ? undefined : settings.ca,
    maxCachedSessions: pinned ? 0 : 100,
    timeout: timeoutMs,
  });
  const serverName = settings.serverName;
  return (options, callback) => {
    // The fixed name wins over the target's: it is the SNI and the name the certificate must carry.
    base(serverName ? { ...options, servername: serverName } : options, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      if (pinned) {
        const why = pinMismatch(presentedChain(socket as TLSSocket), pins);
        if (why) {
          socket.destroy();
          return callback(Object.assign(new Error(why), { code: 'PVE_FINGERPRINT_MISMATCH' }), null);
        }
      }
      callback(null, socket);
    });
  };
}
