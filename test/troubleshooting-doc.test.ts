// docs/troubleshooting.md lists the messages the exporter prints, each with its fix. This test
// produces every one of them from the real code — the exporter scraping the simulator over real
// loopback sockets (a closed port, an untrusted or unpinned certificate, a certificate without the
// target's address, a wrong token, PVE faults), and, for "name not found", the transport error
// classifier with a synthetic ENOTFOUND error (no DNS lookup ever leaves the machine) — and checks
// that the page has a section for it whose example shows the same message.
//
// Messages are matched on stable fragments (the error code, the Node.js or PVE phrase, the words
// the exporter adds), not on whole sentences, so rewording around them does not break the test;
// a change that drops a fragment does, and then the page needs updating along with the fragment.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { classifyTransportError } from '../src/pve/errors.ts';
import { get, simModule, startExporter, type RunningExporter } from './helpers/exporter.ts';
import { codeBlocks, markdownSection } from './helpers/markdown.ts';
import { repoRoot } from './helpers/prom-expressions.ts';

const DOC = path.join(repoRoot, 'docs', 'troubleshooting.md');
const SECTION = 'What the exporter says, and what to do';

interface MessageCase {
  /** What the operator sees, in words. */
  name: string;
  /** The text in the doc's `###` heading that identifies the section. */
  heading: string;
  /** Fragments the real message and the doc's example must both contain. */
  fragments: RegExp[];
  /** What the section must tell the operator to do. */
  fix: RegExp;
  produce(): Promise<string>;
}

let sim: Simulator;
let oddSim: Simulator; // listens on an address its certificate does not list
let exporter: RunningExporter;
let closedPort = 0;

before(async () => {
  sim = await startSimulator({ loopbackNodes: true });
  // The simulator's certificate lists 127.0.0.1 and 127.0.0.10-74; 127.0.0.9 is not among them.
  oddSim = await startSimulator({ host: '127.0.0.9' });
  const config =
    simModule(sim, 'default') +
    simModule(sim, 'untrusted', { fingerprint: undefined }) +
    simModule(sim, 'wrongpin', { fingerprint: Array(32).fill('AB').join(':') }) +
    simModule(oddSim, 'othername', { fingerprint: undefined, ca_file: sim.caFile }) +
    simModule(sim, 'badtoken', { token_value: '00000000-0000-4000-8000-000000000000' }) +
    simModule(sim, 'slow', { timeout: 1 }) +
    simModule(sim, 'allowlist', { targets: ['127.0.0.12'] });
  exporter = await startExporter(config);
  closedPort = await new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
});

after(async () => {
  await exporter?.close();
  await sim?.close();
  await oddSim?.close();
});

/** The body of a failed scrape (500 or 400), which is also what Prometheus shows for the target. */
async function scrapeError(query: string, status = 500): Promise<string> {
  const res = await get(`${exporter.url}/pve?${query}`);
  assert.equal(res.status, status, `${query}: expected ${status}, got ${res.status}: ${res.body.slice(0, 300)}`);
  return res.body.trim();
}

/** The `error` of the exporter's "collection failed" log line for a collector. */
async function collectorError(query: string, collector: string): Promise<string> {
  const before = exporter.logs.length;
  const res = await get(`${exporter.url}/pve?${query}`);
  assert.equal(res.status, 200, res.body.slice(0, 300));
  assert.match(res.body, new RegExp(`pve_exporter_collector_success\\{collector="${collector}"\\} 0`));
  const line = exporter.logs
    .slice(before)
    .map((l) => JSON.parse(l) as { msg?: string; collector?: string; error?: string })
    .find((l) => l.msg === 'collection failed' && l.collector === collector);
  assert.ok(line?.error, `no "collection failed" log line for ${collector}:\n${exporter.logs.slice(before).join('')}`);
  return JSON.stringify(line);
}

const node1 = (): string => `target=${sim.nodeAddresses.get('pve1')}`;

const cases: MessageCase[] = [
  {
    name: 'connection refused',
    heading: 'ECONNREFUSED',
    fragments: [/ECONNREFUSED/],
    fix: /8006/,
    produce: () => scrapeError(`target=127.0.0.1:${closedPort}`),
  },
  {
    name: 'name not found',
    heading: 'ENOTFOUND',
    fragments: [/ENOTFOUND/],
    fix: /getent hosts/,
    // A synthetic error as Node's resolver raises it: nothing is looked up.
    produce: async () => {
      const err = Object.assign(new Error('getaddrinfo ENOTFOUND pve1.example.com'), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: 'pve1.example.com' });
      return classifyTransportError(err, '/cluster/status').message;
    },
  },
  {
    name: 'hostname mismatch',
    heading: "does not match certificate's altnames",
    fragments: [/TLS/, /altnames/],
    fix: /subjectAltName/,
    produce: () => scrapeError(`target=127.0.0.9:${oddSim.port}&module=othername`),
  },
  {
    name: 'untrusted certificate',
    heading: 'unable to verify the first certificate',
    fragments: [/TLS/, /unable to verify the first certificate/],
    fix: /ca_file: .*pve-root-ca\.pem/,
    produce: () => scrapeError(`${node1()}&module=untrusted`),
  },
  {
    name: 'fingerprint mismatch',
    heading: 'certificate fingerprint ... does not match',
    fragments: [/TLS/, /fingerprint/, /does not match/],
    fix: /-fingerprint -sha256/,
    produce: () => scrapeError(`${node1()}&module=wrongpin`),
  },
  {
    name: '401: token refused',
    heading: 'authentication failed: 401',
    fragments: [/authentication failed/, /401/],
    fix: /pveum user token list/,
    produce: () => scrapeError(`${node1()}&module=badtoken`),
  },
  {
    name: '403 with the privilege named',
    heading: '403 Permission check failed',
    fragments: [/403 Permission check failed/, /Sys\.Audit/, /collection failed/],
    fix: /pveum acl modify \/ --roles PVEAuditor --tokens/,
    produce: async () => {
      sim.addFault({ path: '/nodes/pve1/subscription', status: 403, reason: 'Permission check failed (/nodes/pve1, Sys.Audit)' });
      try {
        return await collectorError(node1(), 'subscription');
      } finally {
        sim.clearFaults();
      }
    },
  },
  {
    name: 'PVE too slow',
    heading: 'within the module timeout',
    fragments: [/within the module timeout/],
    fix: /timeout:/,
    produce: async () => {
      sim.addFault({ path: '/cluster/status', hang: true });
      try {
        return await collectorError(`${node1()}&module=slow`, 'status');
      } finally {
        sim.clearFaults();
      }
    },
  },
  {
    name: 'target not on the allow-list',
    heading: 'is not in the targets allow-list',
    fragments: [/403/, /is not in the targets allow-list/, /no connection was made/],
    fix: /`targets:`/,
    produce: async () => `403 ${await scrapeError(`${node1()}&module=allowlist`, 403)}`,
  },
  {
    name: 'unknown module',
    heading: "Module '...' not found in config",
    fragments: [/Module '[^']+' not found in config/],
    fix: /top-level key/,
    produce: () => scrapeError(`${node1()}&module=prod`, 400),
  },
  {
    name: '595 from a node that is down',
    heading: '595',
    fragments: [/595/],
    fix: /PveNodeDown/,
    produce: async () => {
      sim.addFault({ path: '/nodes/pve1/replication', status: 595, reason: 'No route to host' });
      try {
        return await collectorError(node1(), 'replication');
      } finally {
        sim.clearFaults();
      }
    },
  },
];

function sections(): Map<string, string> {
  const body = markdownSection(readFileSync(DOC, 'utf8'), SECTION);
  const out = new Map<string, string>();
  for (const part of body.split(/^(?=### )/m)) {
    const m = /^### (.+)\n/.exec(part);
    if (m) out.set(m[1], part);
  }
  return out;
}

for (const c of cases) {
  test(`docs/troubleshooting.md explains "${c.name}" as the exporter prints it`, async () => {
    const message = await c.produce();
    for (const f of c.fragments) assert.match(message, f, `the exporter's message no longer contains ${f}: update docs/troubleshooting.md and this test\n  ${message}`);
    const found = [...sections()].filter(([h]) => h.includes(c.heading));
    assert.equal(found.length, 1, `docs/troubleshooting.md needs one "### ..." heading containing ${JSON.stringify(c.heading)} under "${SECTION}"`);
    const [heading, text] = found[0];
    const examples = codeBlocks(text).filter((b) => b.lang === '');
    assert.ok(examples.length > 0, `${heading}: no example of the message (a plain code block)`);
    for (const f of c.fragments) {
      assert.ok(examples.some((b) => f.test(b.text)), `${heading}: the example does not show ${f} as the exporter prints it:\n  ${message}`);
    }
    assert.match(text, c.fix, `${heading}: the fix (${c.fix}) is missing`);
  });
}

test('every message docs/troubleshooting.md lists is one the test produces', () => {
  const headings = [...sections().keys()];
  assert.ok(headings.length >= cases.length);
  for (const h of headings) {
    assert.ok(cases.some((c) => h.includes(c.heading)), `"### ${h}" is not produced by any case of this test: add one or drop the section`);
  }
});

test('docs/troubleshooting.md says where the logs are and how to check the service, for every deployment', () => {
  const body = markdownSection(readFileSync(DOC, 'utf8'), 'Is the exporter running');
  for (const [dep, re] of [
    ['systemd', /systemctl status pve-exporter[\s\S]*journalctl -u pve-exporter/],
    ['Quadlet', /systemctl --user status pve-exporter[\s\S]*journalctl --user -u pve-exporter/],
    ['container', /(podman|docker) ps[\s\S]*(podman|docker) logs/],
    ['Kubernetes', /kubectl .*get pods[\s\S]*kubectl .*logs/],
  ] as const) {
    assert.match(body, re, `no service check and log for ${dep}`);
  }
});
