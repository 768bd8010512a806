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
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';

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

/**
 * Closes a connection that failed or was cut before it was handed over. A TLS socket destroyed
 * in its handshake leaves the TCP connection open (and marks the TCP socket destroyed with it),
 * so then the TCP connection is reset first (resetAndDestroy), or destroyed while it still
 * connects. Once the handshake is done, destroying the TLS socket closes both; resetting the TCP
 * socket under it then would crash the process (the TLS layer still uses its handle).
 */
function closeConnection(socket: TLSSocket, tcp: net.Socket, handshakeDone: boolean): void {
  if (!handshakeDone && !tcp.destroyed) {
    if (tcp.connecting) tcp.destroy();
    else tcp.resetAndDestroy();
  }
  socket.destroy();
}

/** Request option naming the request a connection is opened for (PveAgent.cut). */
export const CONNECTION_FOR = Symbol('pve-exporter.connectionFor');

export interface PveAgentOptions {
  /** A TLS session not established within this long fails the request (the module timeout), ms. */
  readonly connectTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long, ms. */
  readonly idleMs: number;
}

type ConnectCallback = (err: Error | null, socket?: Duplex) => void;

/**
 * The HTTPS agent of one PVE client: keep-alive connections, verification by chain, CA and name
 * or by fingerprint pin, and a connect timeout. A connection is handed to its request only once
 * its handshake is done and, under a pin, the pin matched: no byte of the request (it carries the
 * token or the ticket) is written to a server that was not verified. It sets no bound of its own
 * on connections (maxSockets is unlimited): the client's request slots are the bound, so the agent
 * never queues a request, and never opens a connection for a request that was given up while
 * queued. A connection still in its handshake when its request is given up is cut at once
 * (`cut`): a target that accepts and never answers must not hold it until the connect timeout.
 */
export class PveAgent extends https.Agent {
  private readonly pins: readonly string[];
  /** Connections in their handshake, by the request they are opened for. */
  private readonly handshaking = new Map<unknown, (err: Error) => void>();

  constructor(
    settings: TlsSettings,
    private readonly timing: PveAgentOptions,
  ) {
    const pinned = settings.fingerprints.length > 0;
    super({
      keepAlive: true,
      maxSockets: Infinity,
      timeout: timing.idleMs,
      rejectUnauthorized: settings.verifySsl && !pinned,
      // Under a pin the CA bundle plays no part (config.ts warns when both are set).
      ca: pinned ? undefined : settings.ca,
      maxCachedSessions: pinned ? 0 : 100,
      // A fixed name wins over the target's: it is the SNI and the name the certificate must carry.
      servername: settings.serverName,
    });
    this.pins = settings.fingerprints;
  }

  /** Opens the TLS connection and hands it over once verified (see the class comment). */
  override createConnection(options: https.RequestOptions & { [CONNECTION_FOR]?: unknown }, callback: ConnectCallback): undefined {
    const owner = options[CONNECTION_FOR];
    // The TCP connection is opened here and handed to TLS, so that it can be closed for sure: a
    // TLS socket destroyed in its handshake leaves the TCP connection under it open (Node 20).
    const tcp = net.connect({ host: options.host ?? undefined, port: Number(options.port) || 443, localAddress: options.localAddress });
    tcp.on('error', () => undefined); // reported through the TLS socket
    const socket = (https.Agent.prototype as unknown as { createConnection(o: object): TLSSocket }).createConnection.call(this, { ...options, socket: tcp });
    const timer = setTimeout(() => {
      fail(Object.assign(new Error(`connect timeout: no connection within the module timeout of ${this.timing.connectTimeoutMs / 1000}s`), { code: 'PVE_CONNECT_TIMEOUT' }));
    }, this.timing.connectTimeoutMs);
    let settled = false;
    let handshakeDone = false;
    const settle = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (owner !== undefined && this.handshaking.get(owner) === fail) this.handshaking.delete(owner);
      socket.off('error', fail);
      socket.off('secureConnect', verified);
      if (err) {
        closeConnection(socket, tcp, handshakeDone);
        callback(err);
      } else {
        callback(null, socket);
      }
    };
    const fail = (err: Error) => settle(err);
    const verified = () => {
      handshakeDone = true;
      const why = this.pins.length > 0 ? pinMismatch(presentedChain(socket), this.pins) : undefined;
      settle(why ? Object.assign(new Error(why), { code: 'PVE_FINGERPRINT_MISMATCH' }) : null);
    };
    if (owner !== undefined) this.handshaking.set(owner, fail);
    socket.once('error', fail);
    socket.once('secureConnect', verified);
    return undefined;
  }

  /** Cuts the connection being opened for `owner`, if it is still in its handshake. */
  cut(owner: unknown): void {
    this.handshaking.get(owner)?.(Object.assign(new Error('connection cut in its handshake: the request was given up'), { code: 'PVE_CONNECT_ABANDONED' }));
  }

  /** Closes every connection, in use, idle or in its handshake. */
  override destroy(): void {
    for (const owner of [...this.handshaking.keys()]) this.cut(owner);
    super.destroy();
  }
}
