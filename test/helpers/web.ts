// Helpers for the web-layer tests: the exporter as a real process, a throwaway PKI made with
// openssl, and a node:https client that reports what happened (status or connection error).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getFreePort } from './net.ts';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export interface ExporterProcess {
  child: ChildProcess;
  /** host:port */
  address: string;
  port: number;
  stderr(): string;
  /** Resolves when stderr has a line matching `re` (bounded). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Starts src/main.ts on a free loopback port and waits for its "listening" log line (log level info or lower). */
export async function spawnExporter(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ExporterProcess> {
  const port = await getFreePort();
  const address = `127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--web.listen-address', address, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  let err = '';
  const waiters = new Set<() => void>();
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitForLog = (re: RegExp, timeoutMs = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (re.test(err)) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no log line matching ${re} within ${timeoutMs} ms; stderr:\n${err}`));
      }, timeoutMs);
      waiters.add(check);
      void exited.then(() => {
        if (waiters.has(check)) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`exporter exited before logging ${re}; stderr:\n${err}`));
        }
      });
      check();
    });
  const proc: ExporterProcess = {
    child,
    address,
    port,
    stderr: () => err,
    waitForLog,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      running.delete(child);
    },
  };
  try {
    await waitForLog(/pve-exporter listening/);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return proc;
}

export interface Pki {
  dir: string;
  caCert: string;
  /** Server certificate for 127.0.0.1 and exporter.test, signed by the CA. */
  serverCert: string;
  serverKey: string;
  /** Client certificate signed by the CA (SAN DNS:prometheus.test). */
  clientCert: string;
  clientKey: string;
  /** A client certificate from nobody's CA. */
  rogueCert: string;
  rogueKey: string;
  /** A second server certificate (other CN), to see a reload swap the served certificate. */
  serverCert2: string;
  serverKey2: string;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA, server and client certificates in a fresh temporary directory (EC P-256, 1 day). */
export function makePki(): Pki {
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-pki-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=pve-exporter test CA']);
  const leaf = (name: string, cn: string, san: string, ext: string, ca = true) => {
    writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${ext}\n`);
    if (ca) {
      openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
      openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
    } else {
      openssl(dir, ['req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`]);
    }
  };
  leaf('server', 'exporter.test', 'DNS:exporter.test,IP:127.0.0.1', 'serverAuth');
  leaf('server2', 'exporter2.test', 'DNS:exporter.test,IP:127.0.0.1', 'serverAuth');
  leaf('client', 'prometheus', 'DNS:prometheus.test', 'clientAuth');
  leaf('rogue', 'rogue', 'DNS:prometheus.test', 'clientAuth', false);
  const p = (f: string) => path.join(dir, f);
  return {
    dir,
    caCert: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    rogueCert: p('rogue.pem'),
    rogueKey: p('rogue.key'),
    serverCert2: p('server2.pem'),
    serverKey2: p('server2.key'),
  };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** CN of the certificate the server showed (HTTPS only). */
  serverCn?: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** Files (paths) for an HTTPS request. */
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
}

/** One request on a fresh connection; rejects with the connection/TLS error if there is no answer. */
export function request(url: string, o: RequestOptions = {}): Promise<Answer> {
  const u = new URL(url);
  const read = (f?: string) => (f ? readFileSync(f) : undefined);
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      const tlsSocket = res.socket as import('node:tls').TLSSocket;
      const serverCn = typeof tlsSocket.getPeerCertificate === 'function' ? String(tlsSocket.getPeerCertificate().subject?.CN) : undefined;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), serverCn }));
      res.on('error', reject);
    };
    const common = { method: o.method ?? 'GET', headers: o.headers, agent: false as const, timeout: 20_000 };
    const req =
      u.protocol === 'https:'
        ? https.request(url, { ...common, ca: read(o.ca), cert: read(o.cert), key: read(o.key), servername: o.servername, rejectUnauthorized: true }, onResponse)
        : http.request(url, common, onResponse);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export function writeTemp(name: string, content: string, dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-web-'))): string {
  const file = path.join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}
