// TLS to a whole PVE cluster: ca_file, server_name, fingerprint pins (leaf or cluster CA, one or
// a list), against real HTTPS servers on loopback with certificates made by openssl for the test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { parseConfigText, type ModuleConfig } from '../src/config.ts';
import { PveClient } from '../src/pve/client.ts';
import { PveError } from '../src/pve/errors.ts';
import { hasTool } from './helpers/tools.ts';
import { makeTestPki, type TestPki } from './helpers/test-pki.ts';
import { startCatcher, type Catcher } from './helpers/https-catcher.ts';

const TOKEN = 'tls-test-token-0b6f9c1e';
const skip = hasTool('openssl') ? false : 'install openssl: apt-get install openssl';

function moduleFor(port: number, settings: Record<string, unknown>): ModuleConfig {
  const yaml = YAML.stringify({
    m: { user: 'monitoring@pve', token_name: 'exporter', token_value: TOKEN, port, targets: ['127.0.0.1'], ...settings },
  });
  return parseConfigText(yaml, 'tls-test.yml').modules.get('m')!;
}

/** One GET /version through a fresh client; the error message when it fails. */
async function version(module: ModuleConfig, host = '127.0.0.1', calls = 1): Promise<string> {
  const client = new PveClient(module, { host, port: module.port }, { concurrency: 1 });
  try {
    for (let i = 0; i < calls; i++) {
      const signal = AbortSignal.timeout(10_000);
      await client.get<{ version: string }>('/version', { signal, deadline: Date.now() + 10_000 });
    }
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof PveError, String(err));
    assert.equal(err.kind, 'tls', err.message);
    assert.ok(!err.message.includes(TOKEN));
    return err.message;
  } finally {
    await client.close();
  }
}

describe('TLS to a PVE cluster', { skip }, () => {
  let pki: TestPki;
  // node1/node2 send their chain (leaf + cluster CA); the *Leaf servers send only the leaf, as
  // PVE's default pve-ssl.pem does.
  let node1: Catcher;
  let node2: Catcher;
  let node1Leaf: Catcher;
  let node2Leaf: Catcher;
  let impostor: Catcher;

  before(async () => {
    pki = makeTestPki();
    node1 = await startCatcher({ key: pki.node1.key, cert: pki.node1.cert + pki.caPem });
    node2 = await startCatcher({ key: pki.node2.key, cert: pki.node2.cert + pki.caPem });
    node1Leaf = await startCatcher({ key: pki.node1.key, cert: pki.node1.cert });
    node2Leaf = await startCatcher({ key: pki.node2.key, cert: pki.node2.cert });
    impostor = await startCatcher({ key: pki.impostor.key, cert: pki.impostor.cert + pki.caPem });
  });
  after(async () => {
    await Promise.all([node1, node2, node1Leaf, node2Leaf, impostor].map((c) => c?.close()));
  });

  test('ca_file (the cluster CA) trusts every node whose certificate names the target', async () => {
    assert.equal(await version(moduleFor(node1.port, { ca_file: pki.caFile })), 'ok');
    assert.equal(await version(moduleFor(node1Leaf.port, { ca_file: pki.caFile })), 'ok');
    // verify_ssl: <path> is ca_file, as in requests.
    assert.equal(await version(moduleFor(node1Leaf.port, { verify_ssl: pki.caFile })), 'ok');
    // Without the CA the node's certificate is not trusted.
    assert.match(await version(moduleFor(node1.port, {})), /TLS: /);
  });

  test('a node whose certificate does not name the target fails, and server_name fixes that', async () => {
    // pve2's certificate names pve2.cluster.test only, not 127.0.0.1.
    assert.match(await version(moduleFor(node2Leaf.port, { ca_file: pki.caFile })), /TLS: .*(IP: 127\.0\.0\.1 is not in the cert's list|altname)/i);
    const before = node2Leaf.handshakes.length;
    assert.equal(await version(moduleFor(node2Leaf.port, { ca_file: pki.caFile, server_name: 'pve2.cluster.test' })), 'ok');
    // The fixed name is also the SNI the node sees.
    assert.equal(node2Leaf.handshakes[before].servername, 'pve2.cluster.test');
    // A server_name the certificate does not carry is refused; the chain is still verified.
    assert.match(await version(moduleFor(node2Leaf.port, { ca_file: pki.caFile, server_name: 'pve9.cluster.test' })), /TLS: .*pve9\.cluster\.test/);
    assert.match(await version(moduleFor(node2Leaf.port, { server_name: 'pve2.cluster.test' })), /TLS: /);
  });

  test('pinning the cluster CA covers every node that sends its chain', async () => {
    const pin = { fingerprint: pki.caFingerprint };
    assert.equal(await version(moduleFor(node1.port, pin)), 'ok');
    assert.equal(await version(moduleFor(node2.port, pin)), 'ok');
    // A node that sends only its leaf shows no CA: refused, with seen and expected fingerprints.
    const msg = await version(moduleFor(node1Leaf.port, pin));
    assert.match(msg, /fingerprint .* does not match/);
    assert.ok(msg.includes(pki.node1.fingerprint), msg);
    assert.ok(msg.includes(`expected ${pki.caFingerprint}`), msg);
  });

  test('a list of leaf pins covers each listed node', async () => {
    const pins = { fingerprint: [pki.node1.fingerprint.toLowerCase(), pki.node2.fingerprint.replace(/:/g, '')] };
    assert.equal(await version(moduleFor(node1Leaf.port, pins)), 'ok');
    assert.equal(await version(moduleFor(node2Leaf.port, pins)), 'ok');
    assert.match(await version(moduleFor(node1Leaf.port, { fingerprint: [pki.node2.fingerprint] })), /does not match/);
  });

  test('the real CA sent next to a leaf it did not sign does not vouch for that leaf', async () => {
    // The impostor's leaf names the cluster CA as its issuer, and the real CA certificate (public)
    // follows it; only a signature check tells them apart.
    const msg = await version(moduleFor(impostor.port, { fingerprint: pki.caFingerprint }));
    assert.match(msg, /does not match/);
    assert.match(msg, /signature does not chain to the leaf/, 'Node linked the CA into the chain, and the signature check refused it');
    assert.equal(impostor.requests.length, 0, 'no request (and no token) went to the impostor');
  });

  test('with a pin every new connection is checked: no TLS session resumption', async () => {
    const closing = await startCatcher({ key: pki.node1.key, cert: pki.node1.cert + pki.caPem, closeEach: true });
    try {
      // Three calls on one client, each on a new connection (the server closes after each answer).
      assert.equal(await version(moduleFor(closing.port, { fingerprint: pki.caFingerprint }), '127.0.0.1', 3), 'ok');
      assert.equal(closing.handshakes.length, 3);
      assert.deepEqual(closing.handshakes.map((h) => h.resumed), [false, false, false]);
      // Without a pin, sessions are resumed (the cache is on), which is why a pin turns it off.
      const before = closing.handshakes.length;
      assert.equal(await version(moduleFor(closing.port, { ca_file: pki.caFile }), '127.0.0.1', 3), 'ok');
      assert.ok(closing.handshakes.slice(before).some((h) => h.resumed), 'sessions are resumed without a pin');
    } finally {
      await closing.close();
    }
  });

  test('verify_ssl: false talks to any certificate; server_name still sets SNI', async () => {
    const before = node2Leaf.handshakes.length;
    assert.equal(await version(moduleFor(node2Leaf.port, { verify_ssl: false, server_name: 'pve2.cluster.test' })), 'ok');
    assert.equal(node2Leaf.handshakes[before].servername, 'pve2.cluster.test');
  });
});
