// Tests of the PVE API simulator (sim/), always over real HTTPS on 127.0.0.x, compared with the
// reference data in reference/pve-api (read here independently of the simulator's own loader).
// Run: node --import tsx --test test/sim.test.ts
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { Authenticator, SIM_CREDENTIALS } from '../sim/auth.ts';
import { startSimulator } from '../sim/index.ts';
import type { SimOptions, Simulator } from '../sim/types.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const REF_DIR = process.env.PVE_API_DIR ?? path.join(REPO_ROOT, 'reference', 'pve-api');

type Entry = Record<string, unknown>;

interface RefFile {
  path: string;
  example: { data: unknown; [extra: string]: unknown };
  variants?: Record<string, unknown>;
  [key: string]: unknown;
}

function ref(file: string): RefFile {
  return JSON.parse(readFileSync(path.join(REF_DIR, file), 'utf8')) as RefFile;
}

function refBy(file: string, param: 'node' | 'vmid' | 'id'): Record<string, Entry> {
  return (ref(file)[`examples_by_${param}`] ?? {}) as Record<string, Entry>;
}

function variant(file: string, name: string): unknown {
  return ref(file).variants?.[name];
}

// ---------------------------------------------------------------------------------------------
// HTTPS helpers
// ---------------------------------------------------------------------------------------------

interface Reply {
  status: number;
  reason: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
  text: string;
  fingerprint: string | undefined;
}

interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  agent?: https.Agent | false;
  /** 127.0.0.x address to connect to (default 127.0.0.1). */
  host?: string;
  /** Give up (destroy the request) after this long. */
  timeoutMs?: number;
  /** Use the path as it is instead of prefixing /api2/json. */
  rawPath?: boolean;
}

const caCache = new Map<string, Buffer>();
function caOf(sim: Simulator): Buffer {
  const cached = caCache.get(sim.caFile) ?? readFileSync(sim.caFile);
  caCache.set(sim.caFile, cached);
  return cached;
}

function call(sim: Simulator, apiPath: string, opts: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: opts.host ?? '127.0.0.1',
        port: sim.port,
        path: opts.rawPath === true ? apiPath : `/api2/json${apiPath}`,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        ca: caOf(sim),
        agent: opts.agent ?? false,
        timeout: opts.timeoutMs,
      },
      (res) => {
        // Read now: a keep-alive agent takes the socket back once the body has ended.
        const fingerprint = (res.socket as TLSSocket | null)?.getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            reason: res.statusMessage ?? '',
            headers: res.headers,
            raw,
            text: raw.toString('utf8'),
            fingerprint,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function tokenAuth(sim: Simulator, separator = '='): Record<string, string> {
  const c = sim.credentials;
  return { Authorization: `PVEAPIToken=${c.user}!${c.tokenName}${separator}${c.tokenValue}` };
}

async function getJson(sim: Simulator, apiPath: string, opts: CallOptions = {}): Promise<{ data: unknown; [extra: string]: unknown }> {
  const reply = await call(sim, apiPath, { ...opts, headers: { ...tokenAuth(sim), ...opts.headers } });
  assert.equal(reply.status, 200, `${apiPath}: ${reply.status} ${reply.reason}`);
  return JSON.parse(reply.text) as { data: unknown };
}

async function getData(sim: Simulator, apiPath: string, opts: CallOptions = {}): Promise<unknown> {
  return (await getJson(sim, apiPath, opts)).data;
}

async function getEntries(sim: Simulator, apiPath: string, opts: CallOptions = {}): Promise<Entry[]> {
  const data = await getData(sim, apiPath, opts);
  assert.ok(Array.isArray(data), `${apiPath} should answer a list`);
  return data as Entry[];
}

async function login(sim: Simulator, password = sim.credentials.password): Promise<{ ticket: string; csrf: string; data: Entry; reply: Reply }> {
  const body = new URLSearchParams({ username: sim.credentials.user, password }).toString();
  const reply = await call(sim, '/access/ticket', {
    method: 'POST',
    body,
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(reply.status, 200, `login: ${reply.status} ${reply.reason}`);
  const data = (JSON.parse(reply.text) as { data: Entry }).data;
  return { ticket: String(data.ticket), csrf: String(data.CSRFPreventionToken), data, reply };
}

function elapsedSince(start: number): number {
  return performance.now() - start;
}

/** Starts a simulator for a describe block and closes it afterwards. */
function useSimulator(opts: SimOptions = {}): () => Simulator {
  let sim: Simulator | undefined;
  before(async () => {
    sim = await startSimulator(opts);
  });
  after(async () => {
    await sim?.close();
  });
  return () => {
    assert.ok(sim !== undefined, 'simulator not started');
    return sim;
  };
}

function byId(entries: Entry[]): Map<unknown, Entry> {
  return new Map(entries.map((e) => [e.id, e]));
}

// ---------------------------------------------------------------------------------------------
// Transport: TLS, loopback only, gzip, keep-alive
// ---------------------------------------------------------------------------------------------

describe('transport', () => {
  const sim = useSimulator();

  test('serves HTTPS verified by the test CA, with the advertised fingerprint', async () => {
    const s = sim();
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(path.isAbsolute(s.caFile) && existsSync(s.caFile));
    assert.match(s.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const reply = await call(s, '/version', { headers: tokenAuth(s) });
    assert.equal(reply.status, 200);
    assert.equal(reply.fingerprint, s.fingerprint);
    assert.equal(reply.headers['content-type'], 'application/json;charset=UTF-8');
    assert.equal(reply.headers.server, 'pve-api-daemon/3.0');
    assert.deepEqual(JSON.parse(reply.text), ref('version.json').example);
  });

  test('refuses to listen on anything but loopback', async () => {
    await assert.rejects(startSimulator({ host: '0.0.0.0' }), /not a loopback address/);
    await assert.rejects(startSimulator({ host: '10.0.0.11' }), /not a loopback address/);
    await assert.rejects(startSimulator({ host: 'pve.example.com' }), /not a loopback address/);
  });

  test('gzips bodies over 1024 bytes only when the client accepts gzip', async () => {
    const s = sim();
    const plain = await call(s, '/cluster/resources', { headers: tokenAuth(s) });
    const zipped = await call(s, '/cluster/resources', { headers: { ...tokenAuth(s), 'Accept-Encoding': 'gzip, deflate' } });
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    assert.ok(zipped.raw.length < plain.raw.length);
    assert.equal(gunzipSync(zipped.raw).toString('utf8'), plain.text);
    assert.deepEqual(JSON.parse(plain.text), ref('cluster__resources.json').example);
    const small = await call(s, '/version', { headers: { ...tokenAuth(s), 'Accept-Encoding': 'gzip' } });
    assert.equal(small.headers['content-encoding'], undefined, 'bodies <= 1024 bytes stay plain');
    assert.ok(small.raw.length <= 1024);
  });

  test('keeps connections alive and counts accepted TCP connections', async () => {
    const s = sim();
    s.resetStats();
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const p of ['/version', '/cluster/status', '/nodes/pve1/qemu', '/version']) {
        const reply = await call(s, p, { agent, headers: tokenAuth(s) });
        assert.equal(reply.status, 200);
        assert.equal(reply.headers.connection, 'keep-alive');
      }
      assert.equal(s.stats().connections, 1);
      await call(s, '/version', { headers: tokenAuth(s) }); // agent:false -> a second connection
      assert.equal(s.stats().connections, 2);
    } finally {
      agent.destroy();
    }
  });

  test('answers outside /api2/json with 501 no such uri', async () => {
    const reply = await call(sim(), '/api2/yaml/version', { rawPath: true, headers: tokenAuth(sim()) });
    assert.equal(reply.status, 501);
    assert.equal(reply.reason, 'no such uri');
  });
});

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

describe('authentication', () => {
  const AUTH_DELAY = 150;
  const sim = useSimulator({ authFailureDelayMs: AUTH_DELAY });

  test('exposes the fixed test credentials', () => {
    const c = sim().credentials;
    assert.equal(c.user, 'monitoring@pve');
    assert.equal(c.password, 's3cret-pw');
    assert.equal(c.tokenName, 'exporter');
    assert.match(c.tokenValue, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  test('no credentials: delayed 401 No ticket with an empty body', async () => {
    const start = performance.now();
    const reply = await call(sim(), '/version');
    assert.ok(elapsedSince(start) >= AUTH_DELAY - 5, '401 answers are delayed');
    assert.equal(reply.status, 401);
    assert.equal(reply.reason, 'No ticket');
    assert.equal(reply.text, '');
    assert.equal(reply.headers['content-type'], undefined);
  });

  test('API token with "=" or a space before the secret', async () => {
    for (const separator of ['=', ' ']) {
      const reply = await call(sim(), '/cluster/status', { headers: tokenAuth(sim(), separator) });
      assert.equal(reply.status, 200, `separator ${JSON.stringify(separator)}`);
    }
  });

  test('bad token name or secret: 401 with PVE reason phrases', async () => {
    const c = sim().credentials;
    const unknown = await call(sim(), '/version', { headers: { Authorization: `PVEAPIToken=${c.user}!nope=${c.tokenValue}` } });
    assert.equal(unknown.status, 401);
    assert.equal(unknown.reason, "no such token 'nope' for user 'monitoring@pve'");
    const otherUser = await call(sim(), '/version', { headers: { Authorization: `PVEAPIToken=root@pam!exporter=${c.tokenValue}` } });
    assert.equal(otherUser.reason, "no such token 'exporter' for user 'root@pam'");
    const wrongValue = `PVEAPIToken=${c.user}!${c.tokenName}=00000000-0000-0000-0000-000000000000`;
    const wrongSecret = await call(sim(), '/version', { headers: { Authorization: wrongValue } });
    assert.equal(wrongSecret.status, 401);
    assert.equal(wrongSecret.reason, 'invalid token value!');
    assert.equal(wrongSecret.text, '');
  });

  test('login (form) returns a PVE-shaped ticket usable as cookie, raw or URI-escaped', async () => {
    const s = sim();
    s.resetStats();
    const { ticket, csrf, data } = await login(s);
    assert.match(ticket, /^PVE:monitoring@pve:[0-9A-F]{8}::[A-Za-z0-9+/]+={0,2}$/);
    const issued = parseInt(ticket.split(':')[2], 16);
    assert.ok(Math.abs(issued - Date.now() / 1000) < 5, 'ticket time is now');
    assert.match(csrf, /^[0-9A-F]{8}:[A-Za-z0-9+/]+$/);
    assert.equal(data.username, 'monitoring@pve');
    assert.equal(data.clustername, 'pvec');
    for (const cookie of [ticket, encodeURIComponent(ticket)]) {
      const reply = await call(s, '/cluster/status', { headers: { Cookie: `other=1; PVEAuthCookie=${cookie}` } });
      assert.equal(reply.status, 200);
    }
    const viaHeader = await call(s, '/version', { headers: { Authorization: `PVEAuthCookie=${ticket}` } });
    assert.equal(viaHeader.status, 200);
    assert.equal(s.stats().logins, 1);
  });

  test('login with a JSON body and with user + realm', async () => {
    const s = sim();
    const json = await call(s, '/access/ticket', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: s.credentials.user, password: s.credentials.password }),
    });
    assert.equal(json.status, 200);
    const realm = await call(s, '/access/ticket', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `username=monitoring&realm=pve&password=${encodeURIComponent(s.credentials.password)}`,
    });
    assert.equal(realm.status, 200);
    assert.equal((JSON.parse(realm.text) as { data: Entry }).data.username, 'monitoring@pve');
  });

  test('wrong password: delayed 401 authentication failure with a JSON body', async () => {
    const start = performance.now();
    const reply = await call(sim(), '/access/ticket', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'username=monitoring%40pve&password=wrong',
    });
    assert.ok(elapsedSince(start) >= AUTH_DELAY - 5);
    assert.equal(reply.status, 401);
    assert.equal(reply.reason, 'authentication failure');
    assert.equal(reply.text, '{"data":null,"message":"authentication failure\\n"}');
    assert.equal(reply.headers['content-type'], 'application/json;charset=UTF-8');
  });

  test('login without a password: 400 Parameter verification failed', async () => {
    const reply = await call(sim(), '/access/ticket', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'username=monitoring%40pve',
    });
    assert.equal(reply.status, 400);
    assert.deepEqual(JSON.parse(reply.text), {
      data: null,
      errors: { password: 'property is missing and it is not optional' },
      message: 'Parameter verification failed.\n',
    });
  });

  test('a valid ticket renews itself as password; a forged one is refused', async () => {
    const s = sim();
    const first = await login(s);
    const renewed = await login(s, first.ticket);
    assert.match(renewed.ticket, /^PVE:monitoring@pve:/);
    const sig = first.ticket.slice(first.ticket.lastIndexOf(':') + 1);
    const forged = first.ticket.replace(sig, sig.startsWith('A') ? `B${sig.slice(1)}` : `A${sig.slice(1)}`);
    const reply = await call(s, '/version', { headers: { Cookie: `PVEAuthCookie=${forged}` } });
    assert.equal(reply.status, 401);
    assert.equal(reply.reason, 'permission denied - invalid PVE ticket');
    const otherUser = first.ticket.replace('monitoring@pve', 'root@pam');
    assert.equal((await call(s, '/version', { headers: { Cookie: `PVEAuthCookie=${otherUser}` } })).status, 401);
  });

  test('writes with a ticket need the CSRF token; GET and API tokens do not', async () => {
    const s = sim();
    const { ticket, csrf } = await login(s);
    const cookie = { Cookie: `PVEAuthCookie=${encodeURIComponent(ticket)}` };
    const get = await call(s, '/nodes/pve1/apt/update', { headers: cookie });
    assert.equal(get.status, 200);
    const noCsrf = await call(s, '/nodes/pve1/apt/update', { method: 'POST', headers: cookie });
    assert.equal(noCsrf.status, 401);
    assert.equal(noCsrf.reason, 'Permission denied - invalid csrf token');
    const wrongCsrf = await call(s, '/nodes/pve1/apt/update', { method: 'POST', headers: { ...cookie, CSRFPreventionToken: `${csrf}x` } });
    assert.equal(wrongCsrf.status, 401);
    const withCsrf = await call(s, '/nodes/pve1/apt/update', { method: 'POST', headers: { ...cookie, CSRFPreventionToken: csrf } });
    assert.equal(withCsrf.status, 501);
    assert.equal(withCsrf.reason, "Method 'POST /nodes/pve1/apt/update' not implemented");
    const withToken = await call(s, '/nodes/pve1/apt/update', { method: 'POST', headers: tokenAuth(s) });
    assert.equal(withToken.status, 501);
  });

  test('expireTickets(): issued tickets and CSRF tokens stop working at once, the password still logs in', async () => {
    const s = sim();
    const { ticket, csrf } = await login(s);
    const cookie = { Cookie: `PVEAuthCookie=${encodeURIComponent(ticket)}` };
    assert.equal((await call(s, '/version', { headers: cookie })).status, 200);
    s.expireTickets();
    const refused = await call(s, '/version', { headers: cookie });
    assert.equal(refused.status, 401);
    assert.equal(refused.reason, 'permission denied - invalid PVE ticket');
    const write = await call(s, '/nodes/pve1/apt/update', { method: 'POST', headers: { ...cookie, CSRFPreventionToken: csrf } });
    assert.equal(write.status, 401);
    const renew = await call(s, '/access/ticket', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: s.credentials.user, password: ticket }).toString(),
    });
    assert.equal(renew.status, 401, 'an expired ticket cannot renew itself');
    const fresh = await login(s);
    assert.equal((await call(s, '/version', { headers: { Cookie: `PVEAuthCookie=${encodeURIComponent(fresh.ticket)}` } })).status, 200);
  });

  test('tickets live ticketLifetimeSec from their whole-second stamp, and up to 5 min of clock skew', () => {
    // The clock is passed in, so no test waits for a ticket to age.
    const auth = new Authenticator(SIM_CREDENTIALS, 60);
    const user = SIM_CREDENTIALS.user;
    const ticket = auth.issueTicket(user, 1_000_000);
    assert.match(ticket, /^PVE:monitoring@pve:000F4240::/, 'stamp: issue time in hex seconds, as PVE');
    assert.equal(auth.verifyTicket(ticket, 1_000_000), user);
    assert.equal(auth.verifyTicket(ticket, 1_000_059), user);
    assert.equal(auth.verifyTicket(ticket, 1_000_060), null, 'expired after 60 s');
    assert.equal(auth.verifyTicket(ticket, 1_000_000 - 299), user, 'our clock behind by < 5 min');
    assert.equal(auth.verifyTicket(ticket, 1_000_000 - 300), null);
    assert.equal(auth.checkLogin(user, ticket, 1_000_059), true, 'a valid ticket renews itself');
    assert.equal(auth.checkLogin(user, ticket, 1_000_060), false, 'an expired ticket cannot renew itself');
    const csrf = auth.issueCsrfToken(user, 1_000_000);
    assert.equal(auth.verifyCsrfToken(user, csrf, 1_000_059), true);
    assert.equal(auth.verifyCsrfToken(user, csrf, 1_000_060), false);
  });

  test('ticketLifetimeSec reaches the server: an expired ticket gets 401 invalid PVE ticket', async () => {
    const s = await startSimulator({ ticketLifetimeSec: 0 });
    try {
      const { ticket } = await login(s);
      const reply = await call(s, '/version', { headers: { Cookie: `PVEAuthCookie=${ticket}` } });
      assert.equal(reply.status, 401);
      assert.equal(reply.reason, 'permission denied - invalid PVE ticket');
    } finally {
      await s.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

describe('errors like PVE', () => {
  const sim = useSimulator();

  async function expectError(apiPath: string, status: number, text: string, errors?: Record<string, string>): Promise<void> {
    const reply = await call(sim(), apiPath, { headers: tokenAuth(sim()) });
    assert.equal(reply.status, status, apiPath);
    assert.equal(reply.reason, text.replace(/\n$/, ''));
    assert.equal(reply.headers.connection, 'close');
    const body: Entry = { data: null };
    if (errors !== undefined) body.errors = errors;
    body.message = text;
    assert.deepEqual(JSON.parse(reply.text), body);
  }

  test('unknown path: 501 Method ... not implemented', async () => {
    await expectError('/cluster/foo', 501, "Method 'GET /cluster/foo' not implemented");
    await expectError('/nodes/pve1/qemu/100/foo', 501, "Method 'GET /nodes/pve1/qemu/100/foo' not implemented");
  });

  test('unknown guest, job or node: 500 with the PVE text', async () => {
    await expectError('/nodes/pve1/qemu/999/config', 500, "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n");
    await expectError('/nodes/pve2/qemu/100/config', 500, "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist\n");
    await expectError('/nodes/pve1/lxc/100/status/current', 500, "Configuration file 'nodes/pve1/lxc/100.conf' does not exist\n");
    await expectError('/nodes/pve1/replication/300-0/status', 500, "no such replication job '300-0'\n");
    await expectError('/nodes/pve2/replication/200-0/status', 500, "no such replication job '200-0'\n");
    await expectError('/nodes/pve9/status', 500, "hostname lookup 'pve9' failed - failed to get address info for: pve9: Name or service not known\n");
  });

  test('/cluster/resources?type= accepts vm|storage|node|sdn only', async () => {
    await expectError('/cluster/resources?type=pool', 400, 'Parameter verification failed.\n', {
      type: "value 'pool' does not have a value in the enumeration 'vm, storage, node, sdn'",
    });
    const resources = ref('cluster__resources.json');
    for (const type of ['vm', 'storage', 'node'] as const) {
      assert.deepEqual(await getJson(sim(), `/cluster/resources?type=${type}`), resources[`example_type_${type}`], type);
    }
    assert.deepEqual(await getData(sim(), '/cluster/resources?type=sdn'), [], 'PVE 9.1 reports network entries, no sdn');
  });

  test('guest agent: answers for running VMs with an agent, 500 otherwise', async () => {
    const fsinfo = ref('nodes__{node}__qemu__{vmid}__agent__get-fsinfo.json').example;
    assert.deepEqual(await getJson(sim(), '/nodes/pve1/qemu/100/agent/get-fsinfo'), fsinfo);
    await expectError('/nodes/pve2/qemu/102/agent/get-fsinfo', 500, 'VM 102 is not running\n');
    sim().setGuestStatus(102, 'running');
    try {
      await expectError('/nodes/pve2/qemu/102/agent/get-fsinfo', 500, 'No QEMU guest agent configured\n');
    } finally {
      sim().setGuestStatus(102, 'stopped');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Scenarios from reference/
// ---------------------------------------------------------------------------------------------

describe('scenario default', () => {
  const sim = useSimulator({ scenario: 'default' });

  test('serves every endpoint file exactly as its examples (by node, vmid, id)', async () => {
    const files = ['version.json', 'cluster__status.json', 'cluster__resources.json', 'cluster__tasks.json', 'cluster__backup.json',
      'cluster__backup-info__not-backed-up.json', 'cluster__config__qdevice.json', 'cluster__ha__status__current.json',
      'cluster__ha__status__manager_status.json', 'cluster__ceph__status.json', 'nodes__{node}__apt__update.json',
      'nodes__{node}__certificates__info.json', 'nodes__{node}__disks__list.json', 'nodes__{node}__disks__zfs.json',
      'nodes__{node}__lxc.json', 'nodes__{node}__lxc__{vmid}__config.json', 'nodes__{node}__lxc__{vmid}__status__current.json',
      'nodes__{node}__qemu.json', 'nodes__{node}__qemu__{vmid}__agent__get-fsinfo.json', 'nodes__{node}__qemu__{vmid}__config.json',
      'nodes__{node}__qemu__{vmid}__status__current.json', 'nodes__{node}__replication.json',
      'nodes__{node}__replication__{id}__status.json', 'nodes__{node}__status.json', 'nodes__{node}__storage.json',
      'nodes__{node}__subscription.json', 'nodes__{node}__tasks.json'];
    let compared = 0;
    for (const file of files) {
      const f = ref(file);
      const byNode = refBy(file, 'node');
      const byVmid = refBy(file, 'vmid');
      const byId = refBy(file, 'id');
      if (!f.path.includes('{')) {
        assert.deepEqual(await getJson(sim(), f.path), f.example, f.path);
        compared++;
      } else if (f.path.includes('{vmid}') && Object.keys(byVmid).length > 0) {
        for (const [vmid, { node, ...body }] of Object.entries(byVmid)) {
          const p = f.path.replace('{node}', String(node)).replace('{vmid}', vmid);
          assert.deepEqual(await getJson(sim(), p), body, p);
          compared++;
        }
      } else if (f.path.includes('{vmid}')) {
        assert.deepEqual(await getJson(sim(), f.path.replace('{node}', 'pve1').replace('{vmid}', '100')), f.example, f.path);
        compared++;
      } else if (f.path.includes('{id}')) {
        for (const [id, body] of Object.entries(byId)) {
          const p = f.path.replace('{node}', 'pve1').replace('{id}', id);
          assert.deepEqual(await getJson(sim(), p), body, p);
          compared++;
        }
      } else {
        for (const node of ['pve1', 'pve2', 'pve3']) {
          const p = f.path.replace('{node}', node);
          assert.deepEqual(await getJson(sim(), p), byNode[node] ?? f.example, p);
          compared++;
        }
      }
    }
    // 10 cluster-wide + 11 per-node x 3 nodes + 19 per-guest + 2 per-job bodies.
    assert.equal(compared, 64);
  });

  test('the answering node is pve1, also in the login answer', async () => {
    const status = await getEntries(sim(), '/cluster/status');
    assert.deepEqual(status.filter((e) => e.local === 1).map((e) => e.name), ['pve1']);
    assert.equal((await login(sim())).data.clustername, 'pvec');
  });
});

describe('scenario pve8', () => {
  const sim = useSimulator({ scenario: 'pve8' });

  test('version and the pve1 qemu list come from the pve8 variants, the rest from the examples', async () => {
    assert.deepEqual(await getJson(sim(), '/version'), variant('version.json', 'pve8'));
    assert.deepEqual(await getJson(sim(), '/nodes/pve1/qemu'), variant('nodes__{node}__qemu.json', 'pve8_pve1'));
    assert.deepEqual(await getJson(sim(), '/nodes/pve2/qemu'), refBy('nodes__{node}__qemu.json', 'node').pve2);
    assert.deepEqual(await getJson(sim(), '/cluster/status'), ref('cluster__status.json').example);
  });
});

describe('scenario degraded', () => {
  const sim = useSimulator({ scenario: 'degraded' });

  test('status, resources, qdevice, subscription and backup info come from the variants', async () => {
    assert.deepEqual(await getJson(sim(), '/cluster/status'), variant('cluster__status.json', 'node_pve3_offline_and_no_quorum_lost'));
    const resources = byId(await getEntries(sim(), '/cluster/resources'));
    for (const entry of variant('cluster__resources.json', 'pve3_offline_entries') as Entry[]) {
      assert.deepEqual(resources.get(entry.id), entry, String(entry.id));
    }
    const plain = byId(ref('cluster__resources.json').example.data as Entry[]);
    assert.deepEqual(resources.get('qemu/105'), plain.get('qemu/105'), 'entries without a replacement stay');
    assert.equal(resources.size, plain.size);
    const vmOnly = await getEntries(sim(), '/cluster/resources?type=vm');
    assert.deepEqual(vmOnly.find((e) => e.id === 'qemu/104'), { id: 'qemu/104', vmid: 104, node: 'pve3', type: 'qemu', status: 'unknown' });
    assert.deepEqual(await getData(sim(), '/cluster/config/qdevice'), {});
    assert.deepEqual(await getJson(sim(), '/nodes/pve1/subscription'), variant('nodes__{node}__subscription.json', 'notfound'));
    assert.deepEqual(await getData(sim(), '/cluster/backup-info/not-backed-up'), []);
  });

  test('the offline pve3 refuses proxied calls with 595', async () => {
    const reply = await call(sim(), '/nodes/pve3/status', { headers: tokenAuth(sim()) });
    assert.equal(reply.status, 595);
    assert.equal(reply.reason, 'Connection refused');
    assert.equal(reply.text, '');
    assert.equal((await call(sim(), '/nodes/pve2/status', { headers: tokenAuth(sim()) })).status, 200);
  });
});

describe('scenario standalone', () => {
  const sim = useSimulator({ scenario: 'standalone' });

  test('one node without a cluster entry; no qdevice; other nodes unknown', async () => {
    assert.deepEqual(await getJson(sim(), '/cluster/status'), variant('cluster__status.json', 'standalone'));
    assert.deepEqual(await getData(sim(), '/cluster/config/qdevice'), {});
    const reply = await call(sim(), '/nodes/pve2/status', { headers: tokenAuth(sim()) });
    assert.equal(reply.status, 500);
    assert.match(reply.reason, /^hostname lookup 'pve2' failed/);
    assert.equal((await login(sim())).data.clustername, undefined);
  });
});

test('PVE_API_DIR overrides where the reference data is read from', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-api-'));
  const saved = process.env.PVE_API_DIR;
  try {
    cpSync(REF_DIR, dir, { recursive: true });
    const version = ref('version.json');
    version.example = { data: { release: '9.9', repoid: '0123456789abcdef', version: '9.9.9' } };
    writeFileSync(path.join(dir, 'version.json'), JSON.stringify(version));
    process.env.PVE_API_DIR = dir;
    const s = await startSimulator();
    try {
      assert.deepEqual(await getData(s, '/version'), version.example.data);
    } finally {
      await s.close();
    }
    process.env.PVE_API_DIR = path.join(dir, 'missing');
    await assert.rejects(startSimulator(), /PVE_API_DIR/);
  } finally {
    if (saved === undefined) delete process.env.PVE_API_DIR;
    else process.env.PVE_API_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Generated clusters
// ---------------------------------------------------------------------------------------------

describe('generated cluster 8 x 250', () => {
  const spec = { nodes: 8, guestsPerNode: 250 };
  const sim = useSimulator({ generated: spec });

  test('resources: nodes, half qemu half lxc from vmid 100, stopped, templates, tags, HA, locks, storages, pools', async (t) => {
    const start = performance.now();
    const all = await getEntries(sim(), '/cluster/resources');
    const guests = all.filter((e) => e.type === 'qemu' || e.type === 'lxc');
    assert.equal(guests.length, 2000);
    assert.equal(guests.filter((e) => e.type === 'qemu').length, 1000);
    assert.deepEqual(guests.map((e) => e.vmid as number).sort((a, b) => a - b), Array.from({ length: 2000 }, (_, i) => 100 + i));
    assert.deepEqual(all.filter((e) => e.type === 'node').map((e) => e.node), ['pve1', 'pve2', 'pve3', 'pve4', 'pve5', 'pve6', 'pve7', 'pve8']);
    const stopped = guests.filter((e) => e.status === 'stopped');
    assert.ok(stopped.length > 0 && stopped.length < 1000, `${stopped.length} stopped`);
    assert.ok(stopped.every((e) => e.cpu === 0 && e.mem === 0 && e.uptime === 0));
    assert.ok(guests.some((e) => e.template === 1));
    assert.ok(guests.some((e) => typeof e.tags === 'string'));
    assert.ok(guests.some((e) => e.hastate === 'started'));
    assert.ok(guests.some((e) => typeof e.lock === 'string'));
    const storages = all.filter((e) => e.type === 'storage');
    assert.equal(storages.length, 8 * 3, 'local + 2 others per node');
    assert.equal(storages.filter((e) => e.storage === 'local' && e.plugintype === 'dir').length, 8);
    const shared = storages.filter((e) => e.shared === 1);
    assert.equal(new Set(shared.map((e) => e.storage)).size, 1, 'exactly one shared storage');
    assert.equal(shared.length, 8);
    const pools = all.filter((e) => e.type === 'pool');
    assert.ok(pools.length > 0);
    for (const pool of pools) {
      const members = guests.filter((g) => g.pool === pool.pool && g.status === 'running');
      assert.equal(pool.mem, members.reduce((s, g) => s + (g.mem as number), 0), `pool ${String(pool.pool)} mem`);
    }
    // Speed is a benchmark matter (bench/); only report it here.
    const warm = performance.now();
    await getEntries(sim(), '/cluster/resources');
    t.diagnostic(`8x250 /cluster/resources: first ${(warm - start).toFixed(1)} ms, cached ${elapsedSince(warm).toFixed(1)} ms`);
  });

  test('cluster status, node lists and status/current agree with the resources', async () => {
    const status = await getEntries(sim(), '/cluster/status');
    assert.deepEqual(status[0], { type: 'cluster', id: 'cluster', name: 'gen', nodes: 8, version: 3, quorate: 1 });
    assert.equal(status.filter((e) => e.type === 'node').length, 8);
    assert.deepEqual(status.filter((e) => e.local === 1).map((e) => e.name), ['pve1']);
    const resources = await getEntries(sim(), '/cluster/resources');
    const nodeRes = byId(resources);
    for (const node of ['pve1', 'pve5']) {
      for (const type of ['qemu', 'lxc'] as const) {
        const list = await getEntries(sim(), `/nodes/${node}/${type}`);
        const expected = resources.filter((e) => e.type === type && e.node === node);
        assert.deepEqual(list.map((e) => e.vmid).sort(), expected.map((e) => e.vmid).sort(), `${node} ${type}`);
        for (const entry of list) {
          const r = nodeRes.get(`${type}/${String(entry.vmid)}`);
          assert.equal(entry.status, r?.status);
          assert.equal(entry.maxmem, r?.maxmem);
          assert.equal(entry.uptime, r?.uptime);
        }
        const sample = list[3];
        const current = (await getData(sim(), `/nodes/${node}/${type}/${String(sample.vmid)}/status/current`)) as Entry;
        assert.equal(current.status, sample.status);
        assert.equal(current.name, sample.name);
      }
      const nodeStatus = (await getData(sim(), `/nodes/${node}/status`)) as { memory: Entry; rootfs: Entry; uptime: number };
      const r = nodeRes.get(`node/${node}`);
      assert.equal(nodeStatus.memory.total, r?.maxmem);
      assert.equal(nodeStatus.memory.used, r?.mem);
      assert.equal(nodeStatus.rootfs.total, r?.maxdisk);
      assert.equal(nodeStatus.uptime, r?.uptime);
      const storage = await getEntries(sim(), `/nodes/${node}/storage`);
      for (const s of storage) {
        const rs = nodeRes.get(`storage/${node}/${String(s.storage)}`);
        assert.equal(s.total, rs?.maxdisk);
        assert.equal(s.used, rs?.disk);
      }
      const sub = (await getData(sim(), `/nodes/${node}/subscription`)) as Entry;
      const level = status.find((e) => e.name === node)?.level;
      assert.equal(sub.status, level === '' ? 'notfound' : 'active');
    }
  });

  test('replication jobs, their status, backup coverage and HA agree', async () => {
    const resources = await getEntries(sim(), '/cluster/resources');
    const guests = resources.filter((e) => e.type === 'qemu' || e.type === 'lxc');
    for (const node of ['pve1', 'pve8']) {
      const jobs = await getEntries(sim(), `/nodes/${node}/replication`);
      assert.equal(jobs.length, 1, 'one job per node by default');
      for (const job of jobs) {
        assert.equal(job.source, node);
        assert.notEqual(job.target, node);
        assert.equal(guests.find((g) => g.vmid === job.guest)?.node, node, 'the guest lives on the source');
        assert.deepEqual(await getData(sim(), `/nodes/${node}/replication/${String(job.id)}/status`), job);
      }
    }
    const [backup] = await getEntries(sim(), '/cluster/backup');
    const excluded = new Set(String(backup.exclude).split(',').map(Number));
    const notBackedUp = await getEntries(sim(), '/cluster/backup-info/not-backed-up');
    assert.deepEqual(new Set(notBackedUp.map((e) => e.vmid)), excluded);
    for (const e of notBackedUp) assert.equal(guests.find((g) => g.vmid === e.vmid)?.name, e.name);
    const ha = await getEntries(sim(), '/cluster/ha/status/current');
    const services = ha.filter((e) => e.type === 'service').map((e) => e.sid);
    assert.deepEqual(services.sort(), guests.filter((g) => g.hastate !== undefined).map((g) => `vm:${String(g.vmid)}`).sort());
  });

  test('is deterministic: the same spec gives the same bodies', async () => {
    const other = await startSimulator({ generated: spec });
    try {
      const a = await call(sim(), '/cluster/resources', { headers: tokenAuth(sim()) });
      const b = await call(other, '/cluster/resources', { headers: tokenAuth(other) });
      assert.ok(a.raw.equals(b.raw));
      const cfgA = await call(sim(), '/nodes/pve4/qemu/850/config', { headers: tokenAuth(sim()) });
      const cfgB = await call(other, '/nodes/pve4/qemu/850/config', { headers: tokenAuth(other) });
      assert.equal(cfgA.text, cfgB.text);
    } finally {
      await other.close();
    }
  });
});

describe('generated cluster 3 x 20', () => {
  const sim = useSimulator({ generated: { name: 'lab', nodes: 3, guestsPerNode: 20, storagesPerNode: 3, replicationJobsPerNode: 2 } });

  test('guest configs: onboot on about half, keys consistent with the resources', async () => {
    const guests = (await getEntries(sim(), '/cluster/resources?type=vm'));
    assert.equal(guests.length, 60);
    let onboot = 0;
    for (const g of guests) {
      const config = (await getData(sim(), `/nodes/${String(g.node)}/${String(g.type)}/${String(g.vmid)}/config`)) as Entry;
      if (config.onboot === 1) onboot++;
      assert.match(String(config.digest), /^[0-9a-f]{40}$/);
      assert.equal(config.tags, g.tags);
      assert.equal(config.lock, g.lock);
      assert.equal(config.template, g.template === 1 ? 1 : undefined);
      if (g.type === 'qemu') assert.equal(config.memory, String((g.maxmem as number) / 1024 ** 2));
      else assert.equal(config.memory, (g.maxmem as number) / 1024 ** 2);
    }
    assert.ok(onboot >= 20 && onboot <= 40, `${onboot} of 60 with onboot=1`);
    assert.equal((await getEntries(sim(), '/nodes/pve2/replication')).length, 2);
    assert.equal((await getEntries(sim(), '/cluster/resources?type=storage')).length, 3 * 4);
    assert.equal(((await getEntries(sim(), '/cluster/status'))[0]).name, 'lab');
  });
});

test('a generated single node is standalone', async () => {
  const s = await startSimulator({ generated: { nodes: 1, guestsPerNode: 4 } });
  try {
    const status = await getEntries(s, '/cluster/status');
    assert.equal(status.length, 1);
    assert.equal(status[0].nodeid, 0);
    assert.deepEqual(await getEntries(s, '/nodes/pve1/replication'), []);
  } finally {
    await s.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------------------------

describe('latency', () => {
  const sim = useSimulator({ latencyMs: 100, configLatencyMs: 400 });

  test('latencyMs on every call, configLatencyMs on guest configs, without blocking', async () => {
    let start = performance.now();
    await getData(sim(), '/version');
    const plain = elapsedSince(start);
    assert.ok(plain >= 95, `plain call took ${plain} ms`);
    assert.ok(plain < 400, `plain call took ${plain} ms`);
    start = performance.now();
    await getData(sim(), '/nodes/pve1/qemu/100/config');
    assert.ok(elapsedSince(start) >= 395);
    start = performance.now();
    await Promise.all(Array.from({ length: 6 }, () => getData(sim(), '/cluster/status')));
    // One after the other they would need >= 600 ms.
    assert.ok(elapsedSince(start) < 550, 'concurrent calls wait in parallel (timers, not busy waits)');
  });
});

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

describe('faults', () => {
  const sim = useSimulator();

  test('status + reason, JSON body for API errors, empty body for 595', async () => {
    const s = sim();
    s.addFault({ path: '/cluster/status', status: 500, reason: 'cluster not ready - no quorum?' });
    s.addFault({ path: /^\/nodes\/pve2\//, status: 595 });
    try {
      const err = await call(s, '/cluster/status', { headers: tokenAuth(s) });
      assert.equal(err.status, 500);
      assert.equal(err.reason, 'cluster not ready - no quorum?');
      assert.deepEqual(JSON.parse(err.text), { data: null, message: 'cluster not ready - no quorum?\n' });
      const down = await call(s, '/nodes/pve2/status', { headers: tokenAuth(s) });
      assert.equal(down.status, 595);
      assert.equal(down.reason, 'Connection refused');
      assert.equal(down.text, '');
      assert.equal((await call(s, '/nodes/pve1/status', { headers: tokenAuth(s) })).status, 200);
    } finally {
      s.clearFaults();
    }
    assert.equal((await call(s, '/cluster/status', { headers: tokenAuth(s) })).status, 200, 'clearFaults removes them');
  });

  test('times: applies n times, then disappears', async () => {
    const s = sim();
    s.addFault({ path: '/version', status: 401, reason: 'Authentication failed!', times: 2 });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await call(s, '/version', { headers: tokenAuth(s) })).status);
    assert.deepEqual(statuses, [401, 401, 200]);
  });

  test('extra delay, then the normal answer', async () => {
    const s = sim();
    s.addFault({ path: '/version', delayMs: 250, times: 1 });
    const start = performance.now();
    const reply = await call(s, '/version', { headers: tokenAuth(s) });
    assert.ok(elapsedSince(start) >= 245);
    assert.equal(reply.status, 200);
    assert.deepEqual(JSON.parse(reply.text), ref('version.json').example);
  });

  test('garbage: 200 with a body that is not JSON', async () => {
    const s = sim();
    s.addFault({ path: '/cluster/resources', garbage: true, times: 1 });
    const reply = await call(s, '/cluster/resources', { headers: tokenAuth(s) });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'application/json;charset=UTF-8');
    assert.throws(() => JSON.parse(reply.text) as unknown);
  });

  test('hang: never answers; the client gives up', async () => {
    const s = sim();
    s.addFault({ path: '/cluster/status', hang: true, times: 1 });
    const start = performance.now();
    await assert.rejects(call(s, '/cluster/status', { headers: tokenAuth(s), timeoutMs: 300 }), /client timeout/);
    assert.ok(elapsedSince(start) >= 295);
    assert.equal((await call(s, '/cluster/status', { headers: tokenAuth(s) })).status, 200);
  });
});

// ---------------------------------------------------------------------------------------------
// Offline nodes and guest state
// ---------------------------------------------------------------------------------------------

describe('offline nodes', () => {
  const sim = useSimulator();

  test('setNodeOffline: 595 for proxied calls, offline in status and resources, and back', async () => {
    const s = sim();
    const before = await getJson(s, '/cluster/resources');
    s.setNodeOffline('pve2', true);
    const down = await call(s, '/nodes/pve2/qemu', { headers: tokenAuth(s) });
    assert.equal(down.status, 595);
    assert.equal(down.reason, 'Connection refused');
    assert.equal(down.text, '');
    assert.equal((await call(s, '/nodes/pve1/qemu', { headers: tokenAuth(s) })).status, 200);

    const status = await getEntries(s, '/cluster/status');
    assert.equal(status.find((e) => e.name === 'pve2')?.online, 0);
    assert.equal(status.find((e) => e.type === 'cluster')?.quorate, 1, '2 of 3 votes keep quorum');

    const res = byId(await getEntries(s, '/cluster/resources'));
    assert.deepEqual(res.get('node/pve2'), {
      id: 'node/pve2', node: 'pve2', type: 'node', status: 'offline', level: 'c',
      maxcpu: 32, maxmem: 135045603328, maxdisk: 100861726720, 'cgroup-mode': 2, hastate: 'unknown',
    });
    for (const id of ['qemu/102', 'qemu/103', 'lxc/201']) {
      const [type, vmid] = id.split('/');
      assert.deepEqual(res.get(id), { id, vmid: Number(vmid), node: 'pve2', type, status: 'unknown' });
    }
    for (const storage of ['local', 'local-lvm', 'tank']) {
      const entry = res.get(`storage/pve2/${storage}`);
      assert.equal(entry?.status, 'unknown', storage);
      assert.equal(entry?.disk, undefined);
      assert.equal(entry?.maxdisk, undefined);
    }
    assert.equal(res.get('storage/pve2/cephpool')?.status, 'available', 'shared storages stay available');
    assert.equal(res.get('qemu/100')?.status, 'running');

    s.setNodeOffline('pve2', false);
    assert.deepEqual(await getJson(s, '/cluster/resources'), before);
    assert.equal((await call(s, '/nodes/pve2/qemu', { headers: tokenAuth(s) })).status, 200);
  });

  test('offlineNodes option; losing the majority loses quorum; unknown nodes are refused', async () => {
    const s = await startSimulator({ offlineNodes: ['pve3'] });
    try {
      assert.equal((await call(s, '/nodes/pve3/status', { headers: tokenAuth(s) })).status, 595);
      s.setNodeOffline('pve2', true);
      const status = await getEntries(s, '/cluster/status');
      assert.equal(status.find((e) => e.type === 'cluster')?.quorate, 0);
      assert.throws(() => s.setNodeOffline('pve9', true), /no node "pve9"/);
    } finally {
      await s.close();
    }
    await assert.rejects(startSimulator({ offlineNodes: ['pve9'] }), /no node "pve9"/);
  });
});

describe('storage state', () => {
  const sim = useSimulator();

  test('setStorageAvailable: unknown without usage on the given nodes (default: all), and back', async () => {
    const s = sim();
    const before = await getJson(s, '/cluster/resources');
    s.setStorageAvailable('cephpool', false);
    s.setStorageAvailable('tank', false, ['pve1']);
    const res = byId(await getEntries(s, '/cluster/resources'));
    for (const id of ['storage/pve1/cephpool', 'storage/pve2/cephpool', 'storage/pve3/cephpool', 'storage/pve1/tank']) {
      assert.equal(res.get(id)?.status, 'unknown', id);
      assert.equal(res.get(id)?.disk, undefined, id);
      assert.equal(res.get(id)?.shared, id.includes('ceph') ? 1 : 0, `${id} keeps its other fields`);
    }
    assert.equal(res.get('storage/pve2/tank')?.status, 'available');
    assert.throws(() => s.setStorageAvailable('tank', false, ['pve9']), /no node "pve9"/);
    s.setStorageAvailable('cephpool', true);
    s.setStorageAvailable('tank', true, ['pve1']);
    assert.deepEqual(await getJson(s, '/cluster/resources'), before);
  });
});

describe('guest state', () => {
  const sim = useSimulator();

  test('setGuestStatus stops and starts a guest everywhere it shows', async () => {
    const s = sim();
    const original = await getJson(s, '/cluster/resources');
    s.setGuestStatus(100, 'stopped');
    const res = byId(await getEntries(s, '/cluster/resources'));
    const vm = res.get('qemu/100');
    assert.equal(vm?.status, 'stopped');
    for (const key of ['cpu', 'mem', 'memhost', 'uptime', 'netin', 'netout', 'diskread', 'diskwrite']) assert.equal(vm?.[key], 0, key);
    assert.equal(vm?.maxmem, 8589934592);
    assert.equal(res.get('/pool/production')?.mem, 31205621760 - 3221225472, 'pool sums only running members');
    const list = (await getEntries(s, '/nodes/pve1/qemu')).find((e) => e.vmid === 100);
    assert.equal(list?.status, 'stopped');
    assert.equal(list?.pid, undefined);
    assert.equal(list?.pressurecpusome, undefined);
    const current = (await getData(s, '/nodes/pve1/qemu/100/status/current')) as Entry;
    assert.equal(current.qmpstatus, 'stopped');
    assert.equal(current.blockstat, undefined);
    assert.equal(current.uptime, 0);

    s.setGuestStatus(202, 'running');
    const ct = byId(await getEntries(s, '/cluster/resources')).get('lxc/202');
    assert.equal(ct?.status, 'running');
    assert.ok((ct?.uptime as number) > 0 && (ct?.mem as number) > 0 && (ct?.disk as number) > 0);
    const ctList = (await getEntries(s, '/nodes/pve3/lxc')).find((e) => e.vmid === 202);
    assert.equal(ctList?.status, 'running');
    assert.equal(typeof ctList?.pid, 'number');
    assert.equal(((await getData(s, '/nodes/pve3/lxc/202/status/current')) as Entry).status, 'running');

    s.setGuestStatus(100, 'running');
    s.setGuestStatus(202, 'stopped');
    assert.deepEqual(await getJson(s, '/cluster/resources'), original, 'back to the stored state, byte for byte');
    assert.throws(() => s.setGuestStatus(999, 'running'), /no guest 999/);
  });
});

// ---------------------------------------------------------------------------------------------
// Loopback nodes
// ---------------------------------------------------------------------------------------------

describe('loopback nodes', () => {
  const sim = useSimulator({ generated: { nodes: 3, guestsPerNode: 6 }, loopbackNodes: true });

  test('each node has its own 127.0.0.x address, reported in /cluster/status', async () => {
    const s = sim();
    assert.deepEqual([...s.nodeAddresses], [['pve1', '127.0.0.11'], ['pve2', '127.0.0.12'], ['pve3', '127.0.0.13']]);
    assert.equal(s.url, `https://127.0.0.1:${s.port}`);
    const status = await getEntries(s, '/cluster/status');
    assert.deepEqual(status.filter((e) => e.type === 'node').map((e) => [e.name, e.ip, e.local]), [
      ['pve1', '127.0.0.11', 1], ['pve2', '127.0.0.12', 0], ['pve3', '127.0.0.13', 0],
    ]);
  });

  test('a request is answered as the node whose address it arrived on (CA-verified)', async () => {
    const s = sim();
    const status = await getEntries(s, '/cluster/status', { host: '127.0.0.12' });
    assert.deepEqual(status.filter((e) => e.local === 1).map((e) => e.name), ['pve2']);
    const ha = await getEntries(s, '/cluster/ha/status/current', { host: '127.0.0.13' });
    assert.equal(ha.find((e) => e.type === 'quorum')?.node, 'pve3');
    s.setNodeOffline('pve3', true);
    try {
      assert.equal((await call(s, '/nodes/pve3/status', { headers: tokenAuth(s) })).status, 595);
      assert.equal((await call(s, '/nodes/pve3/status', { host: '127.0.0.13', headers: tokenAuth(s) })).status, 200, 'a node answers for itself');
    } finally {
      s.setNodeOffline('pve3', false);
    }
  });

  test('works for scenarios too', async () => {
    const s = await startSimulator({ scenario: 'default', loopbackNodes: true });
    try {
      const status = await getEntries(s, '/cluster/status', { host: '127.0.0.13' });
      assert.deepEqual(status.filter((e) => e.type === 'node').map((e) => [e.name, e.ip, e.local]), [
        ['pve1', '127.0.0.11', 0], ['pve2', '127.0.0.12', 0], ['pve3', '127.0.0.13', 1],
      ]);
    } finally {
      await s.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Stats and close
// ---------------------------------------------------------------------------------------------

test('stats count calls per path without the query string, and reset', async () => {
  const s = await startSimulator();
  try {
    await getData(s, '/cluster/resources?type=vm');
    await getData(s, '/cluster/resources');
    await getData(s, '/version');
    await call(s, '/cluster/foo', { headers: tokenAuth(s) });
    const stats = s.stats();
    assert.equal(stats.calls.get('/cluster/resources'), 2);
    assert.equal(stats.calls.get('/version'), 1);
    assert.equal(stats.calls.get('/cluster/foo'), 1);
    assert.equal(stats.total, 4);
    assert.equal(stats.logins, 0);
    s.resetStats();
    assert.deepEqual(s.stats(), { calls: new Map(), total: 0, logins: 0, connections: 0 });
  } finally {
    await s.close();
  }
});

test('close() ends keep-alive and hanging connections and stops listening', async () => {
  const s = await startSimulator();
  const agent = new https.Agent({ keepAlive: true });
  s.addFault({ path: '/cluster/status', hang: true });
  await getData(s, '/version', { agent });
  const hanging = call(s, '/cluster/status', { headers: tokenAuth(s) });
  const hangingOutcome = hanging.then(() => 'answered', () => 'failed');
  await new Promise((r) => setTimeout(r, 50));
  const start = performance.now();
  await s.close();
  assert.ok(elapsedSince(start) < 1000, 'close does not wait for clients');
  assert.equal(await hangingOutcome, 'failed');
  await assert.rejects(call(s, '/version', { headers: tokenAuth(s) }), /ECONNREFUSED/);
  agent.destroy();
});

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

describe('driftCounters', () => {
  const sim = useSimulator({ generated: { nodes: 2, guestsPerNode: 10 }, driftCounters: true });

  // Regression: the first drifted answer was cached and served for ever, so the "drifting"
  // benchmark measured a cluster whose counters never moved.
  test('every answer of /cluster/resources and the guest lists moves counters on; stopped guests stay', async () => {
    for (const apiPath of ['/cluster/resources', '/nodes/pve1/qemu', '/nodes/pve1/lxc']) {
      const first = await getEntries(sim(), apiPath);
      const second = await getEntries(sim(), apiPath);
      const third = await getEntries(sim(), apiPath);
      const running = (list: Entry[]) => list.filter((e) => e.status === 'running' && typeof e.netin === 'number');
      assert.ok(running(first).length > 0, `${apiPath}: running guests`);
      for (const [i, e] of running(first).entries()) {
        const [b, c] = [running(second)[i], running(third)[i]];
        assert.equal(b.vmid, e.vmid);
        for (const key of ['netin', 'netout', 'diskread', 'diskwrite', 'uptime'] as const) {
          if (typeof e[key] !== 'number') continue;
          assert.ok((e[key] as number) < (b[key] as number) && (b[key] as number) < (c[key] as number), `${apiPath} ${String(e.vmid)} ${key}`);
        }
        assert.ok((b.mem as number) <= (b.maxmem as number), `${apiPath} ${String(e.vmid)} mem within maxmem`);
      }
      const stopped = (list: Entry[]) => list.filter((e) => e.status === 'stopped');
      assert.deepEqual(stopped(second), stopped(first), `${apiPath}: stopped guests do not move`);
    }
  });
});

describe('without driftCounters', () => {
  const sim = useSimulator({ generated: { nodes: 2, guestsPerNode: 10 } });

  test('answers stay the same', async () => {
    assert.deepEqual(await getEntries(sim(), '/cluster/resources'), await getEntries(sim(), '/cluster/resources'));
  });
});

test('cli prints one JSON line once listening and stops on SIGTERM', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'sim/cli.ts', '--scenario', 'degraded', '--port', '0', '--latency-ms', '1', '--drift-counters'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
      });
      child.once('exit', (code) => reject(new Error(`cli exited early with ${String(code)}`)));
    });
    const ready = JSON.parse(line) as { url: string; credentials: Simulator['credentials']; fingerprint: string; caFile: string };
    assert.match(ready.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(ready.credentials.user, 'monitoring@pve');
    assert.match(ready.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.ok(existsSync(ready.caFile));
    const port = Number(new URL(ready.url).port);
    const remote = { port, caFile: ready.caFile, credentials: ready.credentials } as Simulator;
    assert.deepEqual(await getData(remote, '/cluster/config/qdevice'), {}, 'degraded scenario');
    const netin = async () => (await getEntries(remote, '/cluster/resources')).filter((e) => e.status === 'running' && typeof e.netin === 'number').map((e) => e.netin as number);
    const [a, b] = [await netin(), await netin()];
    assert.ok(a.length > 0 && a.every((v, i) => v < b[i]), '--drift-counters: counters grow between answers');
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
});
