// The exporter's HTTPS side: a tls_server_config (or --server.keyfile/--server.certfile) as Node
// secure-context options, and the client-certificate policy. Node's server can only request a
// certificate or not (fixed when the server is created); the five Go policies are enforced here
// on each connection once the handshake is done, which is also what Node's own
// rejectUnauthorized does for a server.
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { Logger } from '../log.ts';
import { WebConfigError, type ClientAuthType, type TlsServerConfig } from './web-config.ts';

export interface TlsSetup {
  readonly context: SecureContextOptions;
  readonly clientAuthType: ClientAuthType;
  readonly clientAllowedSans?: readonly string[];
  /** Where it came from, for messages: the web config file or the flags. */
  readonly source: string;
}

export function tlsFromWebConfig(c: TlsServerConfig, source: string): TlsSetup {
  const context: SecureContextOptions = {
    cert: c.cert,
    key: c.key,
    minVersion: c.minVersion,
    maxVersion: c.maxVersion,
    honorCipherOrder: c.honorCipherOrder,
    ...(c.clientCa !== undefined ? { ca: c.clientCa } : {}),
    ...(c.ciphers !== undefined ? { ciphers: c.ciphers } : {}),
    ...(c.ecdhCurve !== undefined ? { ecdhCurve: c.ecdhCurve } : {}),
  };
  return checked({ context, clientAuthType: c.clientAuthType, clientAllowedSans: c.clientAllowedSans, source: `web config ${source}` });
}

export function tlsFromFlags(key: string, cert: string): TlsSetup {
  return checked({ context: { key, cert }, clientAuthType: 'NoClientCert', source: '--server.keyfile/--server.certfile' });
}

/** Builds the context once, so a bad certificate, key or cipher list fails at load, not per connection. */
function checked(setup: TlsSetup): TlsSetup {
  try {
    createSecureContext(setup.context);
  } catch (err) {
    throw new WebConfigError(`${setup.source}: TLS settings refused: ${err instanceof Error ? err.message : String(err)}`);
  }
  return setup;
}

/** Whether the server has to ask clients for a certificate (fixed for the server's lifetime). */
export function requestsClientCert(setup: TlsSetup): boolean {
  return setup.clientAuthType !== 'NoClientCert';
}

/** Options for https.createServer: verification is decided by {@link ClientCertPolicy}. */
export function serverOptions(setup: TlsSetup): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  return { ...setup.context, requestCert: requestsClientCert(setup), rejectUnauthorized: false };
}

/** Why a connection is refused, or undefined when it may go on. */
export function refusal(setup: TlsSetup, socket: TLSSocket): string | undefined {
  if (setup.clientAuthType === 'NoClientCert' || setup.clientAuthType === 'RequestClientCert') return undefined;
  const peer = socket.getPeerCertificate();
  const presented = peer !== null && Object.keys(peer).length > 0;
  const verified = socket.authorized;
  switch (setup.clientAuthType) {
    case 'RequireAnyClientCert':
      if (!presented) return 'no client certificate';
      break;
    case 'VerifyClientCertIfGiven':
      if (presented && !verified) return `client certificate not verified: ${String(socket.authorizationError)}`;
      break;
    case 'RequireAndVerifyClientCert':
      if (!presented) return 'no client certificate';
      if (!verified) return `client certificate not verified: ${String(socket.authorizationError)}`;
      break;
  }
  if (setup.clientAllowedSans) {
    // "DNS:a, IP Address:127.0.0.1, email:x, URI:y" -> values, compared exactly (as Go does).
    const sans = (peer.subjectaltname ?? '').split(', ').map((s) => s.slice(s.indexOf(':') + 1));
    if (!sans.some((s) => setup.clientAllowedSans!.includes(s))) return 'client certificate has none of client_allowed_sans';
  }
  return undefined;
}

/**
 * Holds the current TLS setup of a running HTTPS server: checks each new connection against it
 * and swaps it on reload (server.setSecureContext: new connections get the new certificate,
 * established ones keep theirs).
 */
export class ClientCertPolicy {
  constructor(
    private setup: TlsSetup,
    private readonly server: HttpsServer,
    log: Logger,
  ) {
    // Before the HTTP layer sees the socket: a refused client never gets to send a request.
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      const why = refusal(this.setup, socket);
      if (why === undefined) return;
      log.debug({ remote: socket.remoteAddress, reason: why }, 'TLS client refused');
      socket.destroy();
    });
  }

  get current(): TlsSetup {
    return this.setup;
  }

  /** Throws when the change cannot be made to a running server. */
  swap(next: TlsSetup): void {
    if (requestsClientCert(next) !== requestsClientCert(this.setup)) {
      throw new WebConfigError(
        `${next.source}: client_auth_type ${this.setup.clientAuthType} -> ${next.clientAuthType} changes whether clients are asked for a certificate, which needs a restart`,
      );
    }
    this.server.setSecureContext(next.context);
    this.setup = next;
  }
}
