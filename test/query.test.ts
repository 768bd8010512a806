import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScrapeTimeout, parseSwitch, parseTarget, QueryError, readParams } from '../src/query.ts';
import { parseListenAddress } from '../src/cli.ts';

test('targets: names, IPv4, IPv6, with and without port', () => {
  assert.deepEqual(parseTarget('pve1', 8006), { host: 'pve1', port: 8006, explicitPort: false });
  assert.deepEqual(parseTarget('pve1.example.com:8443', 8006), { host: 'pve1.example.com', port: 8443, explicitPort: true });
  assert.deepEqual(parseTarget('10.0.0.1', 8006), { host: '10.0.0.1', port: 8006, explicitPort: false });
  assert.deepEqual(parseTarget('[fd00::1]:9000', 8006), { host: 'fd00::1', port: 9000, explicitPort: true });
  assert.deepEqual(parseTarget('[::1]', 8006), { host: '::1', port: 8006, explicitPort: false });
  assert.deepEqual(parseTarget('fd00::1', 8006), { host: 'fd00::1', port: 8006, explicitPort: false });
});

test('bad targets are rejected with a reason', () => {
  for (const bad of ['', 'https://pve1:8006', 'pve1/api2', 'pve1:0', 'pve1:99999', 'pve1:abc', 'a b', 'user@pve1', '[nothex]:1', '-bad-']) {
    assert.throws(() => parseTarget(bad, 8006), QueryError, bad);
  }
});

test('cluster/node switches follow the reference: only false, 0 and empty turn off (bug 8)', () => {
  assert.equal(parseSwitch(undefined), true);
  for (const off of ['0', 'false', 'FALSE', 'False', '']) assert.equal(parseSwitch(off), false, off);
  // The reference compares the lower-cased value with 'false', '0' and '' only: "no", "off",
  // " 0" and anything else leave the scope on.
  for (const on of ['1', 'true', 'True', 'no', 'NO', 'off', 'yes', 'maybe', ' 0', '00', 'false ']) assert.equal(parseSwitch(on), true, on);
});

test('unknown and repeated parameters are rejected', () => {
  assert.throws(() => readParams(new URLSearchParams('target=a&tagret=b'), ['target']), /unknown parameter "tagret"/);
  assert.throws(() => readParams(new URLSearchParams('target=a&target=b'), ['target']), /given more than once/);
  assert.deepEqual([...readParams(new URLSearchParams('target=a&module=m'), ['target', 'module'])], [['target', 'a'], ['module', 'm']]);
});

test('scrape timeout header', () => {
  assert.equal(parseScrapeTimeout('9.5'), 9.5);
  assert.equal(parseScrapeTimeout(undefined), undefined);
  assert.equal(parseScrapeTimeout('junk'), undefined);
  assert.equal(parseScrapeTimeout('-1'), undefined);
});

test('listen addresses', () => {
  assert.deepEqual(parseListenAddress('[::]:9221'), { host: '::', port: 9221 });
  assert.deepEqual(parseListenAddress(':9221'), { host: undefined, port: 9221 });
  assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.throws(() => parseListenAddress('9221'), /expected \[host\]:port/);
});
