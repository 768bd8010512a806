// A throwaway PKI made with openssl for the TLS tests: a cluster CA (like /etc/pve/pve-root-ca.pem)
// signing two node certificates with different SANs (like each node's pve-ssl.pem), and an
// impostor: a leaf signed by a look-alike CA with the real CA's name, to be sent next to the real
// CA certificate.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';

export interface Leaf {
  readonly key: string;
  readonly cert: string;
  readonly fingerprint: string;
}

export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly caPem: string;
  readonly caFingerprint: string;
  /** SANs: DNS:pve1.cluster.test, IP:127.0.0.1. */
  readonly node1: Leaf;
  /** SANs: DNS:pve2.cluster.test only (its loopback address is not in the certificate). */
  readonly node2: Leaf;
  /** Self-made leaf whose issuer name is the cluster CA's, signed by another key. */
  readonly impostor: Leaf;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

const CA_SUBJECT = '/CN=Proxmox Virtual Environment/OU=test-cluster/O=PVE Cluster Manager CA';

function leaf(dir: string, name: string, san: string, caName: string, withAkid: boolean): Leaf {
  writeFileSync(
    path.join(dir, `${name}.ext`),
    `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n` +
      (withAkid ? 'authorityKeyIdentifier=keyid\n' : 'authorityKeyIdentifier=none\nsubjectKeyIdentifier=none\n'),
  );
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}-key.pem`]);
  openssl(dir, ['req', '-new', '-key', `${name}-key.pem`, '-subj', `/CN=${name}.cluster.test/OU=test-cluster`, '-out', `${name}.csr`]);
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}-key.pem`, '-CAcreateserial',
    '-days', '3', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.pem`,
  ]);
  const cert = readFileSync(path.join(dir, `${name}.pem`), 'utf8');
  return { key: readFileSync(path.join(dir, `${name}-key.pem`), 'utf8'), cert, fingerprint: new X509Certificate(cert).fingerprint256 };
}

function ca(dir: string, name: string): void {
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}-key.pem`]);
  openssl(dir, [
    'req', '-x509', '-new', '-key', `${name}-key.pem`, '-subj', CA_SUBJECT, '-days', '3', '-sha256',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', `${name}.pem`,
  ]);
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-pki-'));
  ca(dir, 'ca');
  ca(dir, 'lookalike-ca');
  const caPem = readFileSync(path.join(dir, 'ca.pem'), 'utf8');
  return {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    caPem,
    caFingerprint: new X509Certificate(caPem).fingerprint256,
    node1: leaf(dir, 'pve1', 'DNS:pve1.cluster.test,IP:127.0.0.1', 'ca', true),
    node2: leaf(dir, 'pve2', 'DNS:pve2.cluster.test', 'ca', true),
    // No authority key id, so Node links it to the real CA by name alone.
    impostor: leaf(dir, 'impostor', 'DNS:pve1.cluster.test,IP:127.0.0.1', 'lookalike-ca', false),
  };
}
