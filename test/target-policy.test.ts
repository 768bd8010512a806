// targets: allow-list. Unit rules of the matcher, then the exporter end to end: a target outside
// the list gets 403 before any connection (a loopback HTTPS catcher sees nothing), and without a
// list the module's token goes wherever ?target= says (the risk the startup warning names).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { parseConfigText } from '../src/config.ts';
import { checkTargetAllowed, parseTargetPolicy, TargetEntryError, TargetRefused } from '../src/pve/target-policy.ts';
import { get, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { startCatcher, type Catcher } from './helpers/https-catcher.ts';

describe('allow-list rules', () => {
  const policy = parseTargetPolicy([
    'pve1',
    'PVE2.Example.com.',
    '*.pve.example.com',
    'pve3.example.com:8443',
    '10.0.0.7',
    '192.168.10.0/24',
    '172.16.0.0/16:8006',
    'fd00::1',
    '[fd00::2]:8006',
    'fd10::/64',
    '[fd20::/48]:8443',
  ]);

  test('names: case-insensitive, trailing dot ignored, any port unless the entry has one', () => {
    assert.ok(policy.allows('pve1', 8006));
    assert.ok(policy.allows('PVE1.', 22));
    assert.ok(policy.allows('pve2.example.com', 8006));
    assert.ok(policy.allows('pve3.example.com', 8443));
    assert.ok(!policy.allows('pve3.example.com', 8006));
    assert.ok(!policy.allows('pve10', 8006));
    assert.ok(!policy.allows('pve1.evil.example', 8006));
  });

  test('a wildcard matches exactly one label', () => {
    assert.ok(policy.allows('node1.pve.example.com', 8006));
    assert.ok(policy.allows('NODE1.pve.example.com.', 8006));
    assert.ok(!policy.allows('pve.example.com', 8006));
    assert.ok(!policy.allows('a.b.pve.example.com', 8006));
    assert.ok(!policy.allows('node1.pve.example.com.evil.test', 8006));
  });

  test('addresses and CIDRs match addresses only, in any spelling', () => {
    assert.ok(policy.allows('10.0.0.7', 8006));
    assert.ok(!policy.allows('10.0.0.8', 8006));
    assert.ok(policy.allows('192.168.10.200', 1));
    assert.ok(!policy.allows('192.168.11.1', 8006));
    assert.ok(policy.allows('172.16.5.5', 8006));
    assert.ok(!policy.allows('172.16.5.5', 8007));
    assert.ok(policy.allows('fd00:0:0::0001', 8006));
    assert.ok(policy.allows('fd00::2', 8006));
    assert.ok(!policy.allows('fd00::2', 8443));
    assert.ok(policy.allows('fd10::abcd', 8006));
    assert.ok(!policy.allows('fd11::1', 8006));
    assert.ok(policy.allows('fd20:0:0:1::1', 8443));
    assert.ok(!policy.allows('fd20:0:0:1::1', 8006));
    // The IPv4-mapped form of a listed address is that address.
    assert.ok(policy.allows('::ffff:10.0.0.7', 8006));
  });

  test('names never match address rules and addresses never match name rules (no DNS lookup)', () => {
    const byAddress = parseTargetPolicy(['127.0.0.0/8', '::1']);
    assert.ok(!byAddress.allows('localhost', 8006), 'localhost resolves to 127.0.0.1, but is not looked up');
    const byName = parseTargetPolicy(['localhost']);
    assert.ok(!byName.allows('127.0.0.1', 8006));
    // Names a resolver would read as IPv4 addresses are not names.
    assert.ok(!parseTargetPolicy(['10.0.0.0/8']).allows('10.1', 8006));
    assert.ok(!parseTargetPolicy(['10.0.0.0/8']).allows('0x0a000001', 8006));
  });

  test('invalid entries are refused with their index and reason', () => {
    const cases: [string, RegExp][] = [
      ['10.0.0.0/33', /prefix length must be 0\.\.32/],
      ['10.0.0.1/24', /host bits set/],
      ['fd00::/129', /prefix length must be 0\.\.128/],
      ['fd00::/64:8006', /goes in brackets: \[fd00::\/64\]:8006/],
      ['*', /only allowed as the whole first label/],
      ['*.com', /at least two labels/],
      ['pve*.example.com', /only allowed as the whole first label/],
      ['*.10.0.0.1', /not a valid host name|wildcard applies to host names/],
      ['pve1:0', /port 0 must be 1\.\.65535/],
      ['pve1:99999', /1\.\.65535/],
      ['https://pve1', /not a URL/],
      ['fe80::1%eth0', /zone ids/],
      ['', /must not be empty/],
      ['10.1', /not a valid host name/],
    ];
    for (const [entry, reason] of cases) {
      assert.throws(
        () => parseTargetPolicy(['pve1', entry]),
        (err: unknown) => err instanceof TargetEntryError && err.index === 2 && reason.test(err.message),
        entry,
      );
    }
  });

  test('the refusal names module, target and the list, and is a TargetRefused', () => {
    const module = { name: 've-01', targets: parseTargetPolicy(['pve1']) };
    assert.doesNotThrow(() => checkTargetAllowed(module, 'pve1', 8006));
    assert.doesNotThrow(() => checkTargetAllowed({ name: 'open' }, 'anything', 1));
    assert.throws(
      () => checkTargetAllowed(module, 'fd00::9', 8006),
      (err: unknown) =>
        err instanceof TargetRefused && /target \[fd00::9\]:8006 is not in the targets allow-list of module "ve-01" \(pve1\); no connection was made/.test(err.message),
    );
  });
});

const SIM_TLS = fileURLToPath(new URL('../sim/tls/', import.meta.url));
const TOKEN = 'allowlist-test-token-5d1c7e2a';

function moduleYaml(extra: Record<string, unknown>): string {
  // verify_ssl: false is the Ansible role's historical default: verification does not stop the leak.
  return YAML.stringify({ default: { user: 'monitoring@pve', token_name: 'exporter', token_value: TOKEN, verify_ssl: false, ...extra } });
}

describe('the exporter sends credentials only where the operator said', () => {
  let catcher: Catcher;
  before(async () => {
    catcher = await startCatcher({
      key: readFileSync(SIM_TLS + 'server-key.pem', 'utf8'),
      cert: readFileSync(SIM_TLS + 'server.pem', 'utf8'),
    });
  });
  after(() => catcher.close());

  async function withExporter(yaml: string, fn: (exp: RunningExporter) => Promise<void>): Promise<void> {
    const exp = await startExporter(yaml);
    try {
      await fn(exp);
    } finally {
      await exp.close();
    }
  }

  test('without targets: the token reaches any host a caller names (the risk, reproduced)', async () => {
    const text = moduleYaml({});
    assert.match(parseConfigText(text, 'pve.yml').warnings.join('\n'), /no "targets:" allow-list/);
    await withExporter(text, async (exp) => {
      const before = catcher.requests.length;
      await get(`${exp.url}/pve?target=127.0.0.1:${catcher.port}`);
      const seen = catcher.requests.slice(before);
      assert.ok(seen.length > 0, 'the catcher was asked');
      assert.ok(seen.every((r) => r.authorization === `PVEAPIToken=monitoring@pve!exporter=${TOKEN}`));
    });
  });

  test('with targets: a target outside the list gets 403 before any connection, on /pve and /pve/sd', async () => {
    await withExporter(moduleYaml({ targets: ['pve1.example.com', '10.0.0.0/8', '127.0.0.1:1'] }), async (exp) => {
      const connections = catcher.connections;
      const requests = catcher.requests.length;
      for (const path of ['/pve', '/pve/sd']) {
        const res = await get(`${exp.url}${path}?target=127.0.0.1:${catcher.port}`);
        assert.equal(res.status, 403, res.body);
        assert.match(res.body, new RegExp(`target 127\\.0\\.0\\.1:${catcher.port} is not in the targets allow-list of module "default"`));
        assert.ok(!res.body.includes(TOKEN));
      }
      // A name that resolves to the catcher is refused too: names are not looked up.
      assert.equal((await get(`${exp.url}/pve?target=localhost:${catcher.port}`)).status, 403);
      assert.equal(catcher.connections, connections, 'no TCP connection reached the catcher');
      assert.equal(catcher.requests.length, requests);
      const metrics = await get(`${exp.url}/metrics`);
      assert.match(metrics.body, /^pve_exporter_target_refused_total\{module="default"\} 3$/m);
      assert.ok(exp.logs.some((l) => l.includes('target refused')));
      assert.ok(!exp.logs.some((l) => l.includes(TOKEN)));
    });
  });

  test('with targets: a listed target is scraped', async () => {
    await withExporter(moduleYaml({ targets: [`127.0.0.1:${catcher.port}`] }), async (exp) => {
      const before = catcher.requests.length;
      const res = await get(`${exp.url}/pve?target=127.0.0.1:${catcher.port}`);
      assert.notEqual(res.status, 403, res.body);
      assert.ok(catcher.requests.length > before);
    });
  });

  test('a zone id in ?target= is a 400 with the reason, not a 500', async () => {
    await withExporter(moduleYaml({ targets: ['fe80::/10'] }), async (exp) => {
      for (const path of ['/pve', '/pve/sd']) {
        const res = await get(`${exp.url}${path}?target=${encodeURIComponent('fe80::1%eth0')}`);
        assert.equal(res.status, 400, res.body);
        assert.match(res.body, /zone ids/);
      }
    });
  });
});
