// The one host:port parser, and its two users besides the allow-list: ?target= and
// --web.listen-address follow the same rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostPortError, isHostName, parseHostPort } from '../src/hostport.ts';
import { parseTarget, QueryError } from '../src/query.ts';
import { parseListenAddress } from '../src/cli.ts';

test('names, IPv4, bracketed IPv6 with port, bare IPv6 without', () => {
  assert.deepEqual(parseHostPort('pve1'), { host: 'pve1', kind: 'name', port: undefined });
  assert.deepEqual(parseHostPort('pve1.example.com.:8006'), { host: 'pve1.example.com.', kind: 'name', port: 8006 });
  assert.deepEqual(parseHostPort('10.0.0.1:65535'), { host: '10.0.0.1', kind: 'ipv4', port: 65535 });
  assert.deepEqual(parseHostPort('[fd00::1]:1'), { host: 'fd00::1', kind: 'ipv6', port: 1 });
  assert.deepEqual(parseHostPort('[fd00::1]'), { host: 'fd00::1', kind: 'ipv6', port: undefined });
  assert.deepEqual(parseHostPort('fd00::1'), { host: 'fd00::1', kind: 'ipv6' });
  assert.deepEqual(parseHostPort('::ffff:10.0.0.1'), { host: '::ffff:10.0.0.1', kind: 'ipv6' });
});

test('refused with a reason', () => {
  const cases: [string, RegExp][] = [
    ['', /must not be empty/],
    ['fe80::1%eth0', /zone ids/],
    ['[fe80::1%25eth0]:8006', /zone ids/],
    ['fd00::1:8006:x', /not a valid IPv6 address .*\[fd00::1\]:8006/],
    ['[pve1]:8006', /not an IPv6 address/],
    ['[fd00::1]8006', /expected \[IPv6 address\]/],
    ['pve1:0', /port 0 must be 1\.\.65535/],
    ['pve1:65536', /must be 1\.\.65535/],
    ['pve1:', /must be a number/],
    ['pve1:http', /must be a number/],
    ['https://pve1', /not a URL/],
    ['user@pve1', /not a URL/],
    ['-pve1', /not a valid host name/],
    ['pve_1..x', /not a valid host name/],
    ['10.1', /not a valid host name/],
    ['0x7f.1', /not a valid host name/],
    ['a'.repeat(64) + '.example', /not a valid host name/],
  ];
  for (const [raw, reason] of cases) {
    assert.throws(() => parseHostPort(raw), (err: unknown) => err instanceof HostPortError && reason.test(err.message), raw);
  }
  assert.ok(isHostName('pve-1.example.com') && isHostName('_srv.example.com') && !isHostName('a..b'));
});

test('?target= uses it: zone ids and bad ports are a QueryError (400) naming the target', () => {
  assert.deepEqual(parseTarget('[fd00::1]:9000', 8006), { host: 'fd00::1', port: 9000, explicitPort: true });
  assert.deepEqual(parseTarget('pve1', 8006), { host: 'pve1', port: 8006, explicitPort: false });
  assert.throws(() => parseTarget('fe80::1%eth0', 8006), (err: unknown) => err instanceof QueryError && /target "fe80::1%eth0": IPv6 zone ids/.test(err.message));
  assert.throws(() => parseTarget('10.1', 8006), QueryError);
  assert.throws(() => parseTarget('   ', 8006), /target must not be empty/);
});

test('--web.listen-address uses it: port 0 and an empty host are allowed there, a missing port is not', () => {
  assert.deepEqual(parseListenAddress('[::]:9221'), { host: '::', port: 9221 });
  assert.deepEqual(parseListenAddress(':0'), { host: undefined, port: 0 });
  assert.deepEqual(parseListenAddress('localhost:9221'), { host: 'localhost', port: 9221 });
  assert.throws(() => parseListenAddress('[::]'), /expected \[host\]:port/);
  assert.throws(() => parseListenAddress('[fe80::1%eth0]:9221'), /zone ids/);
  assert.throws(() => parseListenAddress('0.0.0.0:70000'), /0\.\.65535/);
});
