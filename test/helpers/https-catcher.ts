// A small HTTPS server on loopback that answers every path like PVE ({"data": ...}) and records
// what reached it: TCP connections, TLS handshakes (SNI, resumed or not), requests and their
// Authorization headers. Used to prove where the exporter sends credentials, and what TLS it does.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface Handshake {
  readonly servername: string | false;
  readonly resumed: boolean;
}

export interface Catcher {
  readonly port: number;
  /** TCP connections accepted (before any TLS). */
  readonly connections: number;
  readonly handshakes: readonly Handshake[];
  readonly requests: readonly { readonly path: string; readonly authorization?: string }[];
  close(): Promise<void>;
}

export interface CatcherOptions {
  readonly key: string;
  /** PEM: the leaf, optionally followed by the chain to send. */
  readonly cert: string;
  /** Answer with Connection: close, so every request needs a new TLS connection. */
  readonly closeEach?: boolean;
}

export async function startCatcher(opts: CatcherOptions, host = '127.0.0.1'): Promise<Catcher> {
  let connections = 0;
  const handshakes: Handshake[] = [];
  const requests: { path: string; authorization?: string }[] = [];
  const server: Server = createServer({ key: opts.key, cert: opts.cert }, (req, res) => {
    requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
    const body = JSON.stringify({ data: { version: '8.2.4', release: '8.2', repoid: 'catcher' } });
    res.writeHead(200, { 'content-type': 'application/json', ...(opts.closeEach ? { connection: 'close' } : {}) });
    res.end(body);
  });
  server.on('connection', () => connections++);
  server.on('secureConnection', (s: TLSSocket) => {
    handshakes.push({ servername: (s as TLSSocket & { servername?: string | false }).servername ?? false, resumed: s.isSessionReused() });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    handshakes,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
