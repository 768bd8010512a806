// --web.config.file (exporter-toolkit format): strict parsing, TLS with every client_auth_type,
// basic auth, headers, reload of the TLS context; node:https clients on loopback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { loadWebSetup } from '../src/web/setup.ts';
import { BasicAuthVerifier, parseBasicAuth } from '../src/web/basic-auth.ts';
import { parseWebConfigText, WebConfigError } from '../src/web/web-config.ts';
import { simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { basic, makePki, request, writeTemp, type Pki, type RequestOptions } from './helpers/web.ts';
import { hasTool } from './helpers/tools.ts';

const NO_OPENSSL = hasTool('openssl') ? false : 'install openssl: apt-get install openssl';

function refused(text: string, re: RegExp, file = '/etc/web.yml'): void {
  assert.throws(() => parseWebConfigText(text, file), (err: unknown) => {
    assert.ok(err instanceof WebConfigError, String(err));
    assert.match(err.message, re);
    return true;
  });
}

describe('parsing: exporter-toolkit format, strictly', () => {
  test('unknown keys are refused with file, key and line', () => {
    refused('basic_auth_users: {}\ntls_config:\n  cert_file: x\n', /^web config \/etc\/web\.yml:2: key "tls_config": unknown key; known keys: tls_server_config, http_server_config, basic_auth_users/);
    refused('tls_server_config:\n  cert_file: a\n  keyfile: b\n', /web\.yml:3: key "tls_server_config\.keyfile": unknown key; known keys of tls_server_config: cert, key/);
    refused('http_server_config:\n  http3: true\n', /web\.yml:2: key "http_server_config\.http3": unknown key/);
    refused('rate_limit:\n  interval: 1s\n  burst: 3\n', /key "rate_limit": not supported/);
    refused('tls_server_config: [a]\n', /key "tls_server_config": expected a mapping/);
    refused('a: [\n', /invalid YAML/);
  });

  test('headers: only the ones exporter-toolkit allows, with its values', () => {
    const ok = parseWebConfigText(
      'http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000\n    Content-Security-Policy: ""\n',
      'w.yml',
    );
    assert.deepEqual(ok.headers, { 'X-Frame-Options': 'deny', 'X-Content-Type-Options': 'nosniff', 'Strict-Transport-Security': 'max-age=31536000' });
    refused('http_server_config:\n  headers:\n    Server: pve\n', /web\.yml:3: key "http_server_config\.headers\.Server": HTTP header "Server" can not be configured/);
    refused('http_server_config:\n  headers:\n    X-Frame-Options: allow\n', /X-Frame-Options": invalid value "allow"; one of deny, sameorigin/);
    refused('http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n', /invalid value "sniff"; one of nosniff/);
  });

  test('basic_auth_users must be bcrypt hashes; the hash is not echoed', () => {
    const hash = bcrypt.hashSync('pw', 4);
    assert.equal(parseWebConfigText(`basic_auth_users:\n  alice: ${hash}\n`, 'w.yml').users.get('alice'), hash);
    refused('basic_auth_users:\n  alice: plaintext-password\n', /web\.yml:2: key "basic_auth_users\.alice": not a bcrypt hash/);
    assert.throws(() => parseWebConfigText('basic_auth_users:\n  alice: plaintext-password\n', 'w.yml'), (e: Error) => !e.message.includes('plaintext-password'));
  });

  test('TLS: missing parts, bad values and values Node cannot honour are refused', () => {
    refused('tls_server_config:\n  key_file: k.pem\n', /missing one of cert or cert_file/);
    refused('tls_server_config:\n  cert_file: /nonexistent/c.pem\n  key_file: /nonexistent/k.pem\n', /web\.yml:2: key "tls_server_config\.cert_file": cannot read \/nonexistent\/c\.pem: file not found/);
    const inline = 'tls_server_config:\n  cert: x\n  key: y\n';
    refused(inline + '  client_auth_type: RequireCert\n', /client_auth_type": invalid value "RequireCert"; one of NoClientCert, RequestClientCert/);
    refused(inline + '  client_ca: z\n', /a client CA is configured without a client_auth_type/);
    refused(inline + '  min_version: TLS14\n', /min_version": unknown TLS version "TLS14"; one of TLS10, TLS11, TLS12, TLS13/);
    refused(inline + '  min_version: TLS13\n  max_version: TLS12\n', /min_version": is above max_version/);
    refused(inline + '  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n', /unknown or insecure cipher "TLS_RSA_WITH_RC4_128_SHA"/);
    refused(inline + '  curve_preferences: [CurveP224]\n', /unknown or unsupported curve "CurveP224"; supported: CurveP256, CurveP384, CurveP521, X25519/);
    refused(inline + '  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [a]\n', /client_allowed_sans": needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert/);
    refused('tls_server_config:\n  cert: x\n  cert_file: c.pem\n  key: y\n', /give cert or cert_file, not both/);
  });

  test('Go names map to what Node takes', () => {
    const c = parseWebConfigText(
      'tls_server_config:\n  cert: x\n  key: y\n  min_version: TLS11\n  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: false\n  client_auth_type: RequireClientCert\n',
      'w.yml',
    ).tls!;
    assert.equal(c.minVersion, 'TLSv1.1');
    assert.equal(c.maxVersion, 'TLSv1.2');
    // TLS 1.3 suites stay Node's defaults (in Go cipher_suites only restricts TLS <= 1.2).
    // TLS11 as minimum: OpenSSL 3 needs security level 0 for it.
    assert.equal(c.ciphers, 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:@SECLEVEL=0');
    assert.equal(c.ecdhCurve, 'X25519:P-256');
    assert.equal(c.honorCipherOrder, false);
    assert.equal(c.clientAuthType, 'RequireAnyClientCert');
    // An empty tls_server_config means plain HTTP, as in exporter-toolkit.
    assert.equal(parseWebConfigText('tls_server_config: {}\nbasic_auth_users:\n', 'w.yml').tls, undefined);
  });

  test('basic auth verifier: an unknown user costs a bcrypt compare too; verified pairs are cached, wrong ones are not', async () => {
    const users = new Map([['alice', bcrypt.hashSync('right', 4)]]);
    const v = new BasicAuthVerifier();
    assert.equal(await v.check(users, basic('mallory', 'x')), false);
    assert.equal(v.compares, 1, 'decoy compare for an unknown name');
    assert.equal(await v.check(users, basic('alice', 'wrong')), false);
    assert.equal(await v.check(users, basic('alice', 'wrong')), false);
    assert.equal(v.compares, 3, 'failures are not cached');
    assert.equal(await v.check(users, basic('alice', 'right')), true);
    assert.equal(await v.check(users, basic('alice', 'right')), true);
    assert.equal(v.compares, 4, 'the second success comes from the cache');
    // A changed hash (new password in a reloaded file) is a different cache entry.
    const changed = new Map([['alice', bcrypt.hashSync('new', 4)]]);
    assert.equal(await v.check(changed, basic('alice', 'right')), false);
    assert.equal(await v.check(changed, basic('alice', 'new')), true);
    assert.equal(await v.check(users, undefined), false);
  });

  test('Authorization header parsing', () => {
    assert.deepEqual(parseBasicAuth(basic('u', 'p:w')), { user: 'u', password: 'p:w' });
    assert.equal(parseBasicAuth('Bearer abc'), undefined);
    assert.equal(parseBasicAuth(undefined), undefined);
  });
});

describe('TLS files', { skip: NO_OPENSSL }, () => {
  let pki: Pki;
  before(() => {
    pki = makePki();
  });

  test('relative paths are relative to the web config file; key/cert mismatch is refused', () => {
    const dir = pki.dir;
    const file = path.join(dir, 'web-rel.yml');
    writeFileSync(file, 'tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n');
    assert.equal(loadWebSetup({ webConfigFile: file }).tls?.clientAuthType, 'NoClientCert');
    writeFileSync(file, 'tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n');
    assert.throws(() => loadWebSetup({ webConfigFile: file }), /web config .*web-rel\.yml: TLS settings refused: .*key values mismatch/);
  });

  test('--server.keyfile/--server.certfile and tls_server_config conflict clearly', () => {
    const file = writeTemp('web.yml', `tls_server_config:\n  cert_file: ${pki.serverCert}\n  key_file: ${pki.serverKey}\n`);
    assert.throws(() => loadWebSetup({ webConfigFile: file, keyFile: pki.serverKey, certFile: pki.serverCert }), /--server\.keyfile\/--server\.certfile and tls_server_config in .*web\.yml both configure TLS/);
    // The flags with a web config that only has users: fine.
    const users = writeTemp('web.yml', `basic_auth_users:\n  u: ${bcrypt.hashSync('p', 4)}\n`);
    assert.equal(loadWebSetup({ webConfigFile: users, keyFile: pki.serverKey, certFile: pki.serverCert }).tls?.source, '--server.keyfile/--server.certfile');
  });
});

describe('the exporter over HTTPS with client certificates and basic auth', { skip: NO_OPENSSL }, () => {
  let sim: Simulator;
  let pki: Pki;
  const running: RunningExporter[] = [];
  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    pki = makePki();
  });
  after(async () => {
    for (const e of running) await e.close();
    await sim.close();
  });

  async function exporterWith(web: string, extraArgs: string[] = []): Promise<{ exp: RunningExporter; file: string }> {
    const file = writeTemp('web.yml', web);
    // --config.file: a reload reads pve.yml again.
    const pveYml = writeTemp('pve.yml', simModule(sim));
    const exp = await startExporter(simModule(sim), ['--config.file', pveYml, '--web.config.file', file, ...extraArgs]);
    running.push(exp);
    return { exp, file };
  }

  const tlsBase = () => `tls_server_config:\n  cert_file: ${pki.serverCert}\n  key_file: ${pki.serverKey}\n`;
  const trusted = (): RequestOptions => ({ ca: pki.caCert });
  const withClient = (): RequestOptions => ({ ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
  const withRogue = (): RequestOptions => ({ ca: pki.caCert, cert: pki.rogueCert, key: pki.rogueKey });

  async function outcome(url: string, o: RequestOptions): Promise<number | 'refused'> {
    try {
      return (await request(url, o)).status;
    } catch {
      return 'refused';
    }
  }

  test('RequireAndVerifyClientCert: a certificate from client_ca_file gets in; none or a foreign one is refused', async () => {
    const { exp } = await exporterWith(tlsBase() + `  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ${pki.caCert}\n`);
    assert.match(exp.url, /^https:\/\//);
    const url = `${exp.url}/pve?target=127.0.0.1`;
    const ok = await request(url, withClient());
    assert.equal(ok.status, 200);
    assert.match(ok.body, /^# HELP pve_up /m);
    assert.equal(await outcome(url, trusted()), 'refused');
    assert.equal(await outcome(url, withRogue()), 'refused');
    assert.equal(await outcome(`${exp.url}/-/healthy`, trusted()), 'refused');
    const home = await request(`${exp.url}/`, withClient());
    assert.match(home.body, /Access: HTTPS \(web config [^)]+\), client certificates: RequireAndVerifyClientCert, no basic auth/);
  });

  test('the other client_auth_type values behave as in Go', async () => {
    const table: [string, string, Record<'none' | 'good' | 'rogue', number | 'refused'>][] = [
      ['NoClientCert', '', { none: 200, good: 200, rogue: 200 }],
      ['RequestClientCert', '', { none: 200, good: 200, rogue: 200 }],
      ['RequireAnyClientCert', '', { none: 'refused', good: 200, rogue: 200 }],
      ['VerifyClientCertIfGiven', `  client_ca_file: ${pki.caCert}\n`, { none: 200, good: 200, rogue: 'refused' }],
      ['RequireAnyClientCert', '  client_allowed_sans: [other.test]\n', { none: 'refused', good: 'refused', rogue: 'refused' }],
      ['RequireAndVerifyClientCert', `  client_ca_file: ${pki.caCert}\n  client_allowed_sans: [prometheus.test]\n`, { none: 'refused', good: 200, rogue: 'refused' }],
    ];
    for (const [type, extra, want] of table) {
      const { exp } = await exporterWith(tlsBase() + `  client_auth_type: ${type}\n` + extra);
      const url = `${exp.url}/-/healthy`;
      const got = { none: await outcome(url, trusted()), good: await outcome(url, withClient()), rogue: await outcome(url, withRogue()) };
      assert.deepEqual(got, want, `${type} ${extra.trim()}`);
    }
  });

  async function handshake(url: string, o: { maxVersion?: 'TLSv1' | 'TLSv1.2'; minVersion?: 'TLSv1'; ciphers?: string; ecdhCurve?: string }): Promise<string> {
    const https = await import('node:https');
    const { readFileSync } = await import('node:fs');
    return new Promise<string>((resolve) => {
      const req = https.get(url, { ca: readFileSync(pki.caCert), ciphers: 'DEFAULT@SECLEVEL=0', ...o, agent: false }, (res) => {
        res.resume();
        resolve(String((res.socket as import('node:tls').TLSSocket).getProtocol()));
      });
      req.on('error', () => resolve('refused'));
    });
  }

  test('min_version/max_version: TLS13 refuses a TLS 1.2 client; TLS10 lets a TLS 1.0 client in', async () => {
    const { exp } = await exporterWith(tlsBase() + '  min_version: TLS13\n');
    assert.equal(await handshake(`${exp.url}/-/healthy`, {}), 'TLSv1.3');
    assert.equal(await handshake(`${exp.url}/-/healthy`, { maxVersion: 'TLSv1.2' }), 'refused');
    const legacy = (await exporterWith(tlsBase() + '  min_version: TLS10\n  max_version: TLS12\n')).exp;
    assert.equal(await handshake(`${legacy.url}/-/healthy`, { minVersion: 'TLSv1', maxVersion: 'TLSv1' }), 'TLSv1');
    assert.equal(await handshake(`${legacy.url}/-/healthy`, {}), 'TLSv1.2');
  });

  test('cipher_suites and curve_preferences restrict what TLS 1.2 clients may use', async () => {
    const { exp } = await exporterWith(
      tlsBase() + '  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [CurveP384]\n',
    );
    const url = `${exp.url}/-/healthy`;
    // The client lists P-256 too: in TLS 1.2 its groups also have to admit the curve of the
    // server's (P-256 ECDSA) certificate.
    assert.equal(await handshake(url, { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', ecdhCurve: 'P-384:P-256' }), 'TLSv1.2');
    assert.equal(await handshake(url, { ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384', ecdhCurve: 'P-384:P-256' }), 'refused', 'cipher not listed');
    assert.equal(await handshake(url, { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', ecdhCurve: 'P-256' }), 'refused', 'curve not listed');
  });

  test('basic auth: 401 with WWW-Authenticate: Basic unless user and password match; headers on every answer', async () => {
    const hash = bcrypt.hashSync('s3cret', 4);
    // htpasswd writes $2y$: the same algorithm, accepted too.
    const yHash = bcrypt.hashSync('other', 4).replace(/^\$2[ab]\$/, '$2y$');
    const { exp } = await exporterWith(
      tlsBase() + `basic_auth_users:\n  prometheus: ${hash}\n  ops: ${yHash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=600\n`,
    );
    const url = `${exp.url}/pve?target=127.0.0.1`;
    for (const auth of [undefined, basic('prometheus', 'wrong'), basic('nobody', 's3cret'), basic('prometheus', ''), 'Basic !!!', 'Bearer s3cret']) {
      const r = await request(url, { ...trusted(), headers: auth ? { authorization: auth } : {} });
      assert.equal(r.status, 401, String(auth));
      assert.equal(r.headers['www-authenticate'], 'Basic');
      assert.equal(r.headers['x-frame-options'], 'deny');
      assert.equal(r.body, 'Unauthorized\n');
    }
    for (let i = 0; i < 2; i++) {
      // The second time from the cache of verified pairs.
      const ok = await request(url, { ...trusted(), headers: { authorization: basic('prometheus', 's3cret') } });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers['strict-transport-security'], 'max-age=600');
      assert.match(ok.body, /^pve_up\{/m);
    }
    assert.equal((await request(`${exp.url}/metrics`, { ...trusted(), headers: { authorization: basic('ops', 'other') } })).status, 200);
    assert.equal((await request(`${exp.url}/-/healthy`, trusted())).status, 401);
    assert.ok(!exp.logs.join('').includes('s3cret'), 'no password in the log');
  });

  test('reload re-reads the web config: new certificate via setSecureContext, new users; a TLS policy change that needs a restart is refused', async () => {
    const dir = writeTemp('x', '').replace(/x$/, '');
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    copyFileSync(pki.serverCert, cert);
    copyFileSync(pki.serverKey, key);
    const { exp, file } = await exporterWith(`tls_server_config:\n  cert_file: ${cert}\n  key_file: ${key}\n`);
    assert.equal((await request(`${exp.url}/-/healthy`, trusted())).serverCn, 'exporter.test');
    copyFileSync(pki.serverCert2, cert);
    copyFileSync(pki.serverKey2, key);
    writeFileSync(file, `tls_server_config:\n  cert_file: ${cert}\n  key_file: ${key}\nbasic_auth_users:\n  u: ${bcrypt.hashSync('p', 4)}\n`);
    assert.deepEqual(exp.app.reload('test'), { ok: true });
    const after = await request(`${exp.url}/-/healthy`, { ...trusted(), headers: { authorization: basic('u', 'p') } });
    assert.equal(after.status, 200);
    assert.equal(after.serverCn, 'exporter2.test', 'new connections get the new certificate');
    assert.equal((await request(`${exp.url}/-/healthy`, trusted())).status, 401, 'new users apply');

    writeFileSync(file, `tls_server_config:\n  cert_file: ${cert}\n  key_file: ${key}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ${pki.caCert}\n`);
    const bad = exp.app.reload('test');
    assert.equal(bad.ok, false);
    assert.match(bad.error!, /client_auth_type NoClientCert -> RequireAndVerifyClientCert .* needs a restart/);
    writeFileSync(file, 'basic_auth_users:\n');
    assert.match(exp.app.reload('test').error!, /switching between HTTP and HTTPS needs a restart/);
    // The running setup is untouched by the refused reloads.
    assert.equal((await request(`${exp.url}/-/healthy`, { ...trusted(), headers: { authorization: basic('u', 'p') } })).status, 200);
  });

  test('--server.keyfile/--server.certfile still serve HTTPS', async () => {
    const exp = await startExporter(simModule(sim), ['--server.keyfile', pki.serverKey, '--server.certfile', pki.serverCert]);
    running.push(exp);
    const r = await request(`${exp.url}/pve?target=127.0.0.1`, trusted());
    assert.equal(r.status, 200);
    assert.equal(r.serverCn, 'exporter.test');
  });
});
