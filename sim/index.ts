// The PVE API simulator: HTTPS on loopback only, answering /api2/json/... like pveproxy does
// (status line with the error text, {"data": ...} bodies, gzip above 1 KiB, tickets and API
// tokens, 595 for unreachable nodes), with latency and fault injection for tests, the demo and
// the benchmarks. The contract is sim/types.ts.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { isIPv4, type Socket } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { PveApi, notImplemented, type SerializedBody } from './api.ts';
import { TASK_LOG_TEMPLATE, addTaskLogs, applyVariants } from './backup-and-agent.ts';
import { Authenticator, SIM_CREDENTIALS } from './auth.ts';
import { buildGeneratedModel, MAX_LOOPBACK_NODES } from './generated.ts';
import { applyNodeHealth, generatedMetricsExport } from './node-health.ts';
import { ApiError, isJsonObject, type ClusterModel, type GuestStatus, type Json, type JsonObject, type LiveState } from './model.ts';
import { buildScenarioModel, defaultPveApiDir, loadEndpointFiles, loadLoginCapabilities, SCENARIO_NAMES } from './pve-data.ts';
import type { FaultRule, ScenarioName, SimOptions, SimStats, Simulator } from './types.ts';

export type * from './types.ts';

const API_PREFIX = '/api2/json';
const TLS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tls');
/** pve-http-server compresses bodies larger than this when the client accepts gzip. */
const GZIP_THRESHOLD = 1024;
/** pve-http-server refuses larger POST bodies. */
const MAX_POST_BYTES = 64 * 1024;
/** Status codes whose answers PVE sends without a body (auth layer, proxy errors). */
const EMPTY_BODY_STATUSES = new Set([401, 595, 596, 597, 599]);
/** AnyEvent::HTTP's pseudo status codes that pveproxy passes through. */
const DEFAULT_REASONS: Record<number, string> = {
  595: 'Connection refused',
  596: 'Connection timed out',
  597: 'Connection reset by peer',
  599: 'Internal error',
};

export async function startSimulator(opts: SimOptions = {}): Promise<Simulator> {
  const settings = validateOptions(opts);
  const dataDir = defaultPveApiDir();
  const files = loadEndpointFiles(dataDir);
  const templates = [...files.keys(), TASK_LOG_TEMPLATE];
  const model = opts.generated !== undefined ? buildGeneratedModel(opts.generated, files) : buildScenarioModel(files, settings.scenario);
  applyVariants(model, opts.variants ?? []);
  addTaskLogs(model);
  if (opts.generated !== undefined) model.bodies.set('/cluster/metrics/export', generatedMetricsExport(model));
  applyNodeHealth(model, opts.nodeHealth);
  if (opts.loopbackNodes === true && model.nodes.length > MAX_LOOPBACK_NODES) {
    throw new Error(`simulator: loopbackNodes supports at most ${MAX_LOOPBACK_NODES} nodes (certificate SANs 127.0.0.10..74)`);
  }
  const state = initialState(model, opts);
  if (state.nodeAddresses.size > 0 && [...state.nodeAddresses.values()].includes(settings.host)) {
    throw new Error(`simulator: host ${settings.host} collides with a per-node loopback address`);
  }
  const tls = loadTlsMaterial();
  const sim = new SimulatorServer(settings, model, state, new PveApi(model, state, templates, { driftCounters: opts.driftCounters === true }), loadLoginCapabilities(dataDir));
  await sim.listen(tls);
  return sim.publicApi(tls);
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

interface Settings {
  scenario: ScenarioName;
  host: string;
  port: number;
  latencyMs: number;
  configLatencyMs: number;
  ticketLifetimeSec: number;
  authFailureDelayMs: number;
}

function validateOptions(opts: SimOptions): Settings {
  const scenario = opts.scenario ?? 'default';
  if (!SCENARIO_NAMES.includes(scenario)) throw new Error(`simulator: unknown scenario "${String(scenario)}" (${SCENARIO_NAMES.join(', ')})`);
  const latencyMs = nonNegative('latencyMs', opts.latencyMs ?? 0);
  return {
    scenario,
    host: loopbackHost(opts.host ?? '127.0.0.1'),
    port: portNumber(opts.port ?? 0),
    latencyMs,
    configLatencyMs: nonNegative('configLatencyMs', opts.configLatencyMs ?? latencyMs),
    ticketLifetimeSec: nonNegative('ticketLifetimeSec', opts.ticketLifetimeSec ?? 7200),
    authFailureDelayMs: nonNegative('authFailureDelayMs', opts.authFailureDelayMs ?? 0),
  };
}

/** The simulator must never be reachable from the network: 127.0.0.0/8 and ::1 only. */
function loopbackHost(host: string): string {
  if (host === 'localhost') return '127.0.0.1';
  if ((isIPv4(host) && host.startsWith('127.')) || host === '::1') return host;
  throw new Error(`simulator: host "${host}" is not a loopback address (allowed: 127.0.0.0/8, ::1, localhost)`);
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new Error(`simulator: ${name} must be a number >= 0, got ${value}`);
  return value;
}

function portNumber(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`simulator: port must be 0..65535, got ${port}`);
  return port;
}

function initialState(model: ClusterModel, opts: SimOptions): LiveState {
  const offline = new Set<string>();
  for (const node of opts.offlineNodes ?? []) {
    if (!model.nodes.includes(node)) throw new Error(`simulator: offlineNodes: no node "${node}" in this cluster`);
    offline.add(node);
  }
  return {
    guestStatus: new Map(),
    offline,
    unreachable: new Set([...model.offlineInData, ...offline]),
    nodeAddresses: opts.loopbackNodes === true ? loopbackAddresses(model.nodes) : new Map(),
    storageUnavailable: new Map(),
  };
}

/** pve1 -> 127.0.0.11, pve2 -> 127.0.0.12, ... (nodes in natural name order). */
function loopbackAddresses(nodes: string[]): Map<string, string> {
  const sorted = [...nodes].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  return new Map(sorted.map((node, i) => [node, `127.0.0.${11 + i}`]));
}

interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  caFile: string;
  fingerprint: string;
}

function loadTlsMaterial(): TlsMaterial {
  const cert = readFileSync(path.join(TLS_DIR, 'server.pem'));
  return {
    key: readFileSync(path.join(TLS_DIR, 'server-key.pem')),
    cert,
    caFile: path.join(TLS_DIR, 'ca.pem'),
    // Same format as the PVE GUI and pvenode cert info: uppercase hex pairs joined by colons.
    fingerprint: new X509Certificate(cert).fingerprint256,
  };
}

// ---------------------------------------------------------------------------------------------
// Stats and faults
// ---------------------------------------------------------------------------------------------

class StatsCounter {
  private calls = new Map<string, number>();
  private total = 0;
  private logins = 0;
  private connections = 0;

  countCall(apiPath: string): void {
    this.calls.set(apiPath, (this.calls.get(apiPath) ?? 0) + 1);
    this.total++;
  }

  countLogin(): void {
    this.logins++;
  }

  countConnection(): void {
    this.connections++;
  }

  snapshot(): SimStats {
    return { calls: new Map(this.calls), total: this.total, logins: this.logins, connections: this.connections };
  }

  reset(): void {
    this.calls = new Map();
    this.total = 0;
    this.logins = 0;
    this.connections = 0;
  }
}

class FaultList {
  private rules: Array<FaultRule & { remaining: number }> = [];

  add(rule: FaultRule): void {
    const path = rule.path instanceof RegExp ? new RegExp(rule.path.source, rule.path.flags.replace(/[gy]/g, '')) : rule.path;
    this.rules.push({ ...rule, path, remaining: rule.times ?? Infinity });
  }

  clear(): void {
    this.rules = [];
  }

  /** The first rule matching this path; a rule with `times` disappears once used up. */
  take(apiPath: string): FaultRule | undefined {
    const index = this.rules.findIndex((r) => (typeof r.path === 'string' ? r.path === apiPath : r.path.test(apiPath)));
    if (index < 0) return undefined;
    const rule = this.rules[index];
    rule.remaining--;
    if (rule.remaining <= 0) this.rules.splice(index, 1);
    return rule;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP server
// ---------------------------------------------------------------------------------------------

class SimulatorServer {
  private readonly auth: Authenticator;
  private readonly stats = new StatsCounter();
  private readonly faults = new FaultList();
  private readonly sockets = new Set<Socket>();
  private readonly shutdown = new AbortController();
  private readonly nodeByAddress = new Map<string, string>();
  private servers: Server[] = [];
  private port = 0;

  constructor(
    private readonly settings: Settings,
    private readonly model: ClusterModel,
    private readonly state: LiveState,
    private readonly api: PveApi,
    private readonly loginCapabilities: JsonObject | null,
  ) {
    this.auth = new Authenticator(SIM_CREDENTIALS, settings.ticketLifetimeSec);
    for (const [node, address] of state.nodeAddresses) this.nodeByAddress.set(address, node);
  }

  /** Binds the main address, then every node address on the same port (retrying with another
   *  ephemeral port if one of them is taken). */
  async listen(tls: TlsMaterial): Promise<void> {
    const extra = [...this.state.nodeAddresses.values()];
    const attempts = this.settings.port === 0 && extra.length > 0 ? 10 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        this.servers = [];
        this.port = await this.listenOne(tls, this.settings.host, this.settings.port);
        for (const address of extra) await this.listenOne(tls, address, this.port);
        return;
      } catch (err) {
        await this.closeServers();
        if (attempt >= attempts || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  private listenOne(tls: TlsMaterial, host: string, port: number): Promise<number> {
    const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => void this.handle(req, res));
    server.on('connection', (socket: Socket) => this.trackSocket(socket));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  private trackSocket(socket: Socket): void {
    this.stats.countConnection();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  publicApi(tls: TlsMaterial): Simulator {
    const host = this.settings.host;
    return {
      host,
      port: this.port,
      url: `https://${host.includes(':') ? `[${host}]` : host}:${this.port}`,
      nodeAddresses: new Map(this.state.nodeAddresses),
      credentials: { ...SIM_CREDENTIALS },
      caFile: tls.caFile,
      fingerprint: tls.fingerprint,
      stats: () => this.stats.snapshot(),
      resetStats: () => this.stats.reset(),
      expireTickets: () => this.auth.expireIssuedTickets(),
      addFault: (rule) => this.faults.add(rule),
      clearFaults: () => this.faults.clear(),
      setGuestStatus: (vmid, status) => this.setGuestStatus(vmid, status),
      setNodeOffline: (node, offline) => this.setNodeOffline(node, offline),
      setStorageAvailable: (storage, available, nodes) => this.setStorageAvailable(storage, available, nodes),
      close: () => this.close(),
    };
  }

  private setGuestStatus(vmid: number, status: GuestStatus): void {
    const guest = this.model.guests.get(vmid);
    if (guest === undefined) throw new Error(`simulator: no guest ${vmid}`);
    if (status !== 'running' && status !== 'stopped') throw new Error(`simulator: status must be running or stopped, got ${String(status)}`);
    // Going back to the stored state drops the override, so stored bodies are served unchanged.
    const stored = this.model.bodies.get(`/nodes/${guest.node}/${guest.type}/${vmid}/status/current`);
    const storedStatus = stored instanceof ApiError || stored === undefined || !isJsonObject(stored.data) ? undefined : stored.data.status;
    if (storedStatus === status) this.state.guestStatus.delete(vmid);
    else this.state.guestStatus.set(vmid, status);
    this.api.invalidate();
  }

  private setNodeOffline(node: string, offline: boolean): void {
    if (!this.model.nodes.includes(node)) throw new Error(`simulator: no node "${node}" in this cluster`);
    if (offline) {
      this.state.offline.add(node);
      this.state.unreachable.add(node);
    } else {
      // A node the stored data shows offline (degraded scenario) becomes reachable; its stored
      // /cluster entries stay as the data has them.
      this.state.offline.delete(node);
      this.state.unreachable.delete(node);
    }
    this.api.invalidate();
  }

  private setStorageAvailable(storage: string, available: boolean, nodes: string[] = this.model.nodes): void {
    for (const node of nodes) {
      if (!this.model.nodes.includes(node)) throw new Error(`simulator: no node "${node}" in this cluster`);
    }
    const down = this.state.storageUnavailable.get(storage) ?? new Set<string>();
    for (const node of nodes) {
      if (available) down.delete(node);
      else down.add(node);
    }
    if (down.size > 0) this.state.storageUnavailable.set(storage, down);
    else this.state.storageUnavailable.delete(storage);
    this.api.invalidate();
  }

  private async close(): Promise<void> {
    this.shutdown.abort();
    const closing = this.closeServers();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closing;
  }

  private async closeServers(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  }

  /** The node a request is answered as: the one whose loopback address it arrived on. */
  private answeringNode(req: IncomingMessage): string {
    const local = req.socket.localAddress?.replace(/^::ffff:/, '');
    return (local !== undefined ? this.nodeByAddress.get(local) : undefined) ?? this.model.localNode;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.process(req, res);
    } catch (err) {
      if (this.shutdown.signal.aborted || res.headersSent) {
        res.destroy();
        return;
      }
      sendError(res, new ApiError(500, `simulator error: ${err instanceof Error ? err.message : String(err)}\n`));
    }
  }

  private async process(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://simulator.invalid');
    const method = req.method ?? 'GET';
    if (url.pathname !== API_PREFIX && !url.pathname.startsWith(`${API_PREFIX}/`)) {
      return sendError(res, new ApiError(501, 'no such uri', { emptyBody: true }));
    }
    const apiPath = url.pathname.slice(API_PREFIX.length) || '/';
    // Counted on arrival, so calls that hang or fail show up too.
    this.stats.countCall(apiPath);
    await this.pause(this.latencyFor(apiPath));

    // Faults come before authentication, so any answer (even to a login) can be simulated.
    const fault = this.faults.take(apiPath);
    if (fault !== undefined) {
      if (fault.hang === true) return; // the socket stays open until the client or close() ends it
      await this.pause(fault.delayMs ?? 0);
      if (fault.garbage === true) return sendGarbage(res);
      if (fault.status !== undefined) return sendError(res, faultError(fault.status, fault.reason));
    }

    if (apiPath === '/access/ticket') return this.handleTicket(req, res, method, url.searchParams);

    const auth = this.auth.authenticate(req.headers);
    if (!auth.ok) return this.rejectUnauthenticated(res, auth.reason);
    // A cookie is sent by browsers automatically; writes must prove they read the login answer.
    if (method !== 'GET' && auth.via === 'ticket' && !this.auth.verifyCsrfToken(auth.user, auth.csrfToken)) {
      return this.rejectUnauthenticated(res, 'Permission denied - invalid csrf token');
    }
    if (method !== 'GET') return sendError(res, notImplemented(method, apiPath));
    const answer = this.api.answerGet(apiPath, url.searchParams, this.answeringNode(req));
    if (answer instanceof ApiError) return sendError(res, answer);
    return sendBody(req, res, answer);
  }

  private latencyFor(apiPath: string): number {
    return /^\/nodes\/[^/]+\/(qemu|lxc)\/[^/]+\/config$/.test(apiPath) ? this.settings.configLatencyMs : this.settings.latencyMs;
  }

  /** Waits on a timer (never blocks the event loop); close() cuts every wait short. */
  private async pause(ms: number): Promise<void> {
    if (ms > 0) await delay(ms, undefined, { signal: this.shutdown.signal });
  }

  private async rejectUnauthenticated(res: ServerResponse, reason: string): Promise<void> {
    await this.pause(this.settings.authFailureDelayMs);
    sendError(res, new ApiError(401, reason, { emptyBody: true }));
  }

  // POST /access/ticket: log in with the password, or renew with a still-valid ticket.
  private async handleTicket(req: IncomingMessage, res: ServerResponse, method: string, query: URLSearchParams): Promise<void> {
    if (method === 'GET') return sendBody(req, res, serializeSmall({ data: null }));
    if (method !== 'POST') return sendError(res, notImplemented(method, '/access/ticket'));
    this.stats.countLogin();
    const params = await readLoginParams(req, query);
    if (params === null) {
      const errors = { password: 'unable to parse the request body' };
      return sendError(res, new ApiError(400, 'Parameter verification failed.\n', { errors }));
    }
    const missing = (['username', 'password'] as const).filter((k) => params.get(k) === null);
    if (missing.length > 0) {
      const errors = Object.fromEntries(missing.map((k) => [k, 'property is missing and it is not optional']));
      return sendError(res, new ApiError(400, 'Parameter verification failed.\n', { errors }));
    }
    const username = params.get('username') ?? '';
    const realm = params.get('realm');
    const user = username.includes('@') || realm === null ? username : `${username}@${realm}`;
    if (!this.auth.checkLogin(user, params.get('password') ?? '')) {
      await this.pause(this.settings.authFailureDelayMs);
      return sendError(res, new ApiError(401, 'authentication failure\n'));
    }
    const data: JsonObject = {
      username: user,
      ticket: this.auth.issueTicket(user),
      CSRFPreventionToken: this.auth.issueCsrfToken(user),
    };
    if (this.model.clusterName !== null) data.clustername = this.model.clusterName;
    if (this.loginCapabilities !== null) data.cap = this.loginCapabilities;
    return sendBody(req, res, serializeSmall({ data }));
  }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/** Headers pve-http-server puts on every API answer. */
function commonHeaders(): OutgoingHttpHeaders {
  const now = new Date().toUTCString();
  return { Date: now, Expires: now, 'Cache-Control': 'max-age=0', Pragma: 'no-cache', Server: 'pve-api-daemon/3.0' };
}

async function sendBody(req: IncomingMessage, res: ServerResponse, body: SerializedBody): Promise<void> {
  const acceptsGzip = /\bgzip\b/i.test(String(req.headers['accept-encoding'] ?? ''));
  const compress = acceptsGzip && body.json.length > GZIP_THRESHOLD;
  const payload = compress ? await body.gzipped() : body.json;
  if (res.destroyed) return;
  const headers: OutgoingHttpHeaders = {
    ...commonHeaders(),
    'Content-Type': 'application/json;charset=UTF-8',
    'Content-Length': payload.length,
  };
  if (compress) headers['Content-Encoding'] = 'gzip';
  res.writeHead(200, 'OK', headers);
  res.end(payload);
}

/** The error text goes into the reason phrase; PVE closes the connection after errors. */
function sendError(res: ServerResponse, err: ApiError): void {
  if (res.destroyed || res.headersSent) return;
  const headers: OutgoingHttpHeaders = { ...commonHeaders(), Connection: 'close' };
  const reason = reasonPhrase(err.message, err.status);
  if (err.details.emptyBody === true) {
    // PVE sends no Content-Length and closes; an explicit 0 says the same without chunking.
    res.writeHead(err.status, reason, { ...headers, 'Content-Length': 0 });
    res.end();
    return;
  }
  const body: JsonObject = { data: null };
  if (err.details.errors !== undefined) body.errors = err.details.errors;
  body.message = err.message;
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(err.status, reason, { ...headers, 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': payload.length });
  res.end(payload);
}

/** First line of the message; characters a status line cannot carry are replaced. */
function reasonPhrase(message: string, status: number): string {
  const firstLine = message.split('\n')[0].replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
  return firstLine !== '' ? firstLine : (DEFAULT_REASONS[status] ?? 'Error');
}

function faultError(status: number, reason: string | undefined): ApiError {
  const text = reason ?? DEFAULT_REASONS[status] ?? `injected fault ${status}`;
  const emptyBody = EMPTY_BODY_STATUSES.has(status);
  return new ApiError(status, emptyBody ? text : `${text}\n`, { emptyBody });
}

/** A 200 whose body is cut off in the middle of the JSON, as from a broken proxy. */
function sendGarbage(res: ServerResponse): void {
  const payload = Buffer.from('{"data":[{"id":"qemu/100","vmid":\u0000<html>502 Bad Gateway</html>');
  res.writeHead(200, 'OK', { ...commonHeaders(), 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': payload.length });
  res.end(payload);
}

function serializeSmall(body: { data: Json }): SerializedBody {
  const json = Buffer.from(JSON.stringify(body));
  return { json, gzipped: () => Promise.resolve(json) };
}

/** Login parameters from a form-urlencoded or JSON body, plus the query string. */
async function readLoginParams(req: IncomingMessage, query: URLSearchParams): Promise<URLSearchParams | null> {
  const raw = await readBody(req);
  if (raw === null) return null;
  const params = new URLSearchParams(query);
  const contentType = String(req.headers['content-type'] ?? '');
  if (/^application\/json\b/i.test(contentType)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.length > 0 ? raw : '{}');
    } catch {
      return null;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
    for (const [key, value] of Object.entries(parsed)) {
      if (typeof value === 'string' || typeof value === 'number') params.set(key, String(value));
    }
    return params;
  }
  for (const [key, value] of new URLSearchParams(raw)) params.set(key, value);
  return params;
}

async function readBody(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_POST_BYTES) return null;
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}
