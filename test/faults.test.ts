// The fault matrix (issue 7): a real exporter process scrapes a target that fails in one way,
// with Prometheus' 4 s scrape timeout. Each row checks the status code (500 when no PVE call
// succeeded, else 200 with the failing collectors' pve_exporter_collector_success 0), that the
// answer comes by the deadline, what is still open afterwards, the process's peak memory, that
// nothing went unhandled, and that no secret reaches the answer or the log. The figures are
// printed as a table at the end (and written as JSON to $FAULTS_MATRIX_JSON when set).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import YAML from 'yaml';
import { SCRAPE_COLLECTORS } from '../src/collectors/registry.ts';
import { exporterModule } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { spawnExporter } from './helpers/exporter-process.ts';
import {
  gzipBomb,
  paddedAnswer,
  refusedPort,
  startFaultyPve,
  startHangingTcp,
  startTlsHandshakeFailure,
  type FaultyPve,
  type FaultyRule,
} from './helpers/faulty-pve.ts';
import { collectorSuccess, parseExposition } from './helpers/promtext.ts';

/** What Prometheus sends as X-Prometheus-Scrape-Timeout-Seconds. */
const SCRAPE_TIMEOUT_S = 4;
/** The issue's bound: the answer arrives within the scrape timeout + 0.5 s. */
const DEADLINE_BOUND_S = SCRAPE_TIMEOUT_S + 0.5;
/**
 * The bound is measured and printed per row; the assertion adds this much headroom so a loaded
 * 2-core machine cannot make it fail. A deadline that is not honoured still fails it: the module
 * timeout below is far longer, so without the deadline a hang lasts MODULE_TIMEOUT_S.
 */
const TIME_HEADROOM_S = 6;
const MODULE_TIMEOUT_S = 30;
/**
 * Peak RSS (VmHWM) of the exporter process over its whole life (one process per row). It idles
 * at ~110 MB under tsx; an unbounded 1 GiB gzip bomb takes it past 2 GB.
 */
const PEAK_RSS_BOUND_BYTES = 400 * 2 ** 20;
/** Once answered, requests the exporter left hanging must be closed within this (ms). */
const PENDING_CLOSE_WAIT_MS = 5_000;

const COLLECTORS = SCRAPE_COLLECTORS.filter((c) => c.defaultEnabled).map((c) => c.name);

/**
 * The project's own collectors (issue 9) that read an endpoint the test breaks: their failing
 * follows from the endpoints the registry declares, so a new collector needs no row changes.
 */
function additionsUsing(matches: (endpoint: string) => boolean): string[] {
  return SCRAPE_COLLECTORS.filter((c) => c.defaultEnabled && c.origin === 'addition' && c.endpoints.some((e) => matches(e.path))).map((c) => c.name);
}
const RESOURCES_USERS = ['status', 'resources', 'config', ...additionsUsing((p) => p === '/cluster/resources')];
const NODES_USERS = ['subscription', 'config', 'replication', ...additionsUsing((p) => p.startsWith('/nodes/'))];

type Want =
  /** No PVE call succeeded: 500 with the reason in the body. */
  | { readonly status: 500; readonly reason: RegExp }
  /** Some calls succeeded: 200, and exactly these collectors report success 0. */
  | { readonly status: 200; readonly failing: readonly string[] };

interface Scene {
  /** target= value */
  readonly target: string;
  /** The pve.yml module the exporter gets. */
  readonly module: Record<string, unknown>;
  /** Extra exporter flags. */
  readonly args?: readonly string[];
  /** Secrets beyond the module's own (tickets issued during the row). */
  readonly secrets?: () => readonly string[];
  /** Connections carrying a request that can never complete (must be closed after the answer). */
  readonly pending?: () => number;
  /** Row-specific checks after the scrape, with the exporter's log. */
  readonly check?: (stderr: string) => void;
  close(): Promise<void>;
}

interface Row {
  readonly name: string;
  readonly want: Want;
  setup(sim: Simulator): Promise<Scene>;
}

interface Measured {
  row: string;
  status: number;
  seconds: number;
  withinBound: boolean;
  collectorSuccess: Record<string, number> | null;
  reason: string | null;
  peakRssMiB: number;
  pendingAfterAnswer: number | null;
  unhandled: boolean;
  secretLeak: boolean;
  exitCode: number | null;
}

function tokenModule(sim: Simulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return exporterModule(sim, { timeout: MODULE_TIMEOUT_S, ...extra });
}

function passwordModule(sim: Simulator): Record<string, unknown> {
  return tokenModule(sim, { token_name: undefined, token_value: undefined, password: sim.credentials.password });
}

/** A scene where the simulator itself carries the fault (sim/types.ts FaultRule). */
function simScene(sim: Simulator, module: Record<string, unknown>): Scene {
  return { target: `${sim.host}:${sim.port}`, module, close: async () => sim.clearFaults() };
}

/** A scene behind a FaultyPve front with `rules`. */
async function frontScene(sim: Simulator, rules: FaultyRule[], module: Record<string, unknown>, extra: Partial<Scene> = {}): Promise<Scene & { front: FaultyPve }> {
  const front = await startFaultyPve(sim, { rules });
  return {
    target: front.target,
    module,
    secrets: () => front.ticketsIssued(),
    pending: () => front.openFaultConnections(),
    close: () => front.close(),
    ...extra,
    front,
  };
}

/** Every API path: all of them start with "/". */
const EVERY_PATH = /^\//;
const THIRTY_MB = 30_000_000;

const ROWS: Row[] = [
  {
    name: 'accept and hang',
    want: { status: 500, reason: /deadline|timeout|time/i },
    async setup(sim) {
      const srv = await startHangingTcp();
      return { target: srv.target, module: tokenModule(sim), pending: () => srv.open(), close: () => srv.close() };
    },
  },
  {
    name: 'slow headers',
    want: { status: 500, reason: /deadline|timeout|time/i },
    setup: (sim) => frontScene(sim, [{ path: EVERY_PATH, behaviour: { kind: 'slow-headers', intervalMs: 500 } }], tokenModule(sim)),
  },
  {
    name: 'body at 1 byte/s (/cluster/resources, password auth)',
    want: { status: 200, failing: RESOURCES_USERS },
    setup: (sim) => frontScene(sim, [{ path: '/cluster/resources', behaviour: { kind: 'slow-body', intervalMs: 1000 } }], passwordModule(sim)),
  },
  {
    name: 'truncated body (/version)',
    want: { status: 200, failing: ['version'] },
    setup: (sim) => frontScene(sim, [{ path: '/version', behaviour: { kind: 'truncated-body' } }], tokenModule(sim)),
  },
  {
    name: 'garbage JSON',
    want: { status: 500, reason: /JSON/i },
    async setup(sim) {
      sim.addFault({ path: EVERY_PATH, garbage: true });
      return simScene(sim, tokenModule(sim));
    },
  },
  {
    name: 'HTML 502 from a reverse proxy',
    want: { status: 500, reason: /502/ },
    setup: (sim) => frontScene(sim, [{ path: EVERY_PATH, behaviour: { kind: 'html-502' } }], tokenModule(sim)),
  },
  {
    name: '401',
    want: { status: 500, reason: /401/ },
    async setup(sim) {
      sim.addFault({ path: EVERY_PATH, status: 401, reason: 'invalid PVE ticket' });
      return simScene(sim, tokenModule(sim));
    },
  },
  {
    name: '403 on one path (/cluster/backup-info/not-backed-up)',
    want: { status: 200, failing: ['backup-info'] },
    async setup(sim) {
      sim.addFault({ path: '/cluster/backup-info/not-backed-up', status: 403, reason: 'Permission check failed (/, Sys.Audit)' });
      return { ...simScene(sim, tokenModule(sim)), check: (log) => assertFailureLogged(log, /403 Permission check failed \(\/, Sys\.Audit\)/, "PVE's reason") };
    },
  },
  {
    name: '500',
    want: { status: 500, reason: /500/ },
    async setup(sim) {
      sim.addFault({ path: EVERY_PATH, status: 500, reason: "unable to open file '/etc/pve/.version' - Input/output error" });
      return simScene(sim, tokenModule(sim));
    },
  },
  {
    name: '501',
    want: { status: 500, reason: /501/ },
    async setup(sim) {
      sim.addFault({ path: EVERY_PATH, status: 501, reason: 'Method not implemented' });
      return simScene(sim, tokenModule(sim));
    },
  },
  {
    name: '595 (/nodes/...)',
    want: { status: 200, failing: NODES_USERS },
    async setup(sim) {
      sim.addFault({ path: /^\/nodes\//, status: 595, reason: 'Connection refused' });
      return { ...simScene(sim, tokenModule(sim)), check: (log) => assertFailureLogged(log, /595 Connection refused/, "PVE's reason") };
    },
  },
  {
    name: 'connection refused',
    want: { status: 500, reason: /refused/i },
    async setup(sim) {
      const port = await refusedPort();
      return { target: `127.0.0.1:${port}`, module: tokenModule(sim), close: async () => undefined };
    },
  },
  {
    name: 'TLS handshake failure',
    want: { status: 500, reason: /TLS|SSL|handshake/i },
    async setup(sim) {
      const srv = await startTlsHandshakeFailure();
      return { target: srv.target, module: tokenModule(sim), close: () => srv.close() };
    },
  },
  {
    name: 'wrong certificate (fingerprint pin of another certificate)',
    want: { status: 500, reason: /fingerprint|certificate/i },
    async setup(sim) {
      const other = Array.from({ length: 32 }, (_, i) => ((i * 37 + 11) & 0xff).toString(16).padStart(2, '0').toUpperCase()).join(':');
      assert.notEqual(other, sim.fingerprint);
      return simScene(sim, tokenModule(sim, { fingerprint: other }));
    },
  },
  {
    name: 'gzip bomb (/cluster/resources: 1 MiB -> 1 GiB)',
    want: { status: 200, failing: RESOURCES_USERS },
    setup: async (sim) =>
      frontScene(sim, [{ path: '/cluster/resources', behaviour: { kind: 'answer', body: await gzipBomb(), gzip: true } }], tokenModule(sim), {
        check: (log) => assertFailureLogged(log, /\/cluster\/resources.*--pve\.max-response-size/, 'the size cap'),
      }),
  },
  {
    name: '30 MB valid answer (/cluster/resources gzipped, password auth)',
    want: { status: 200, failing: [] },
    // Gzipped, as PVE sends answers above 1 KiB: 30 MB once inflated, which the cap counts.
    setup: async (sim) =>
      frontScene(
        sim,
        [{ path: '/cluster/resources', behaviour: { kind: 'answer', body: gzipSync(await paddedAnswer(sim, '/cluster/resources', THIRTY_MB)), gzip: true } }],
        passwordModule(sim),
      ),
  },
  {
    name: '30 MB valid answer (plain) over a 16 MiB --pve.max-response-size',
    want: { status: 200, failing: RESOURCES_USERS },
    async setup(sim) {
      const body = await paddedAnswer(sim, '/cluster/resources', THIRTY_MB);
      const scene = await frontScene(sim, [{ path: '/cluster/resources', behaviour: { kind: 'answer', body } }], tokenModule(sim));
      return {
        ...scene,
        args: ['--pve.max-response-size', '16MiB'],
        check: (log) => assertFailureLogged(log, /\/cluster\/resources.*--pve\.max-response-size/, 'the size cap'),
      };
    },
  },
  {
    name: 'redirect (302 to another host that would answer)',
    want: { status: 500, reason: /302|redirect/i },
    async setup(sim) {
      // Where the redirect points: a working front of the simulator. Following it would succeed,
      // and hand the token to a host nobody configured.
      const elsewhere = await startFaultyPve(sim, { rules: [] });
      const scene = await frontScene(sim, [{ path: EVERY_PATH, behaviour: { kind: 'redirect', location: `https://${elsewhere.target}` } }], tokenModule(sim));
      return {
        ...scene,
        check: () => assert.equal(elsewhere.accepted(), 0, 'the exporter followed the redirect'),
        close: async () => {
          await scene.close();
          await elsewhere.close();
        },
      };
    },
  },
  {
    name: 'node goes offline mid-scrape (after /cluster/status, password auth)',
    want: { status: 200, failing: COLLECTORS.filter((c) => c !== 'node' && c !== 'cluster') },
    async setup(sim) {
      // /cluster/status is answered; every other call is in flight when the node drops all its
      // connections and stops listening; calls made after that are refused.
      const scene = await frontScene(
        sim,
        [
          { path: '/cluster/status', behaviour: { kind: 'offline-after-answer' } },
          { path: /^\/(?!access\/ticket$)/, behaviour: { kind: 'hang' } },
        ],
        passwordModule(sim),
      );
      return { ...scene, check: () => assert.ok(scene.front.wentOffline(), 'the node never went offline') };
    },
  },
];

/** The exporter's log has a "collection failed" line whose error matches `re`. */
function assertFailureLogged(log: string, re: RegExp, what: string): void {
  const errors: string[] = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; error?: unknown };
    if (entry.msg === 'collection failed') errors.push(String(entry.error));
  }
  assert.ok(errors.some((e) => re.test(e)), `${what}: no "collection failed" log line matching ${re}; logged: ${JSON.stringify(errors)}`);
}

async function pollUntilZero(count: () => number, waitMs: number): Promise<number> {
  const until = Date.now() + waitMs;
  let n = count();
  while (n > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    n = count();
  }
  return n;
}


const UNHANDLED = /unhandled|uncaught|ERR_UNHANDLED_REJECTION|triggerUncaughtException/i;
/** Node's process warnings, e.g. "(node:123) MaxListenersExceededWarning": a listener leak. */
const PROCESS_WARNING = /^\(node:\d+\) \w*Warning/m;

function leakedSecrets(text: string, secrets: readonly string[]): string[] {
  return secrets.filter((s) => s.length >= 6 && (text.includes(s) || text.includes(encodeURIComponent(s))));
}

describe('fault matrix: 4 s scrape timeout against a failing target', () => {
  let sim: Simulator;
  const measured: Measured[] = [];

  before(async () => {
    sim = await startSimulator({ scenario: 'default' });
    await gzipBomb(); // built once up front, so no row pays for it
  });

  after(async () => {
    await sim?.close();
    const mib = (n: number) => n.toFixed(0);
    const lines = [
      '| row | status | seconds | <= 4.5 s | collector_success = 0 | peak RSS MiB | left open | unhandled or warning | secret leak |',
      '|---|---|---|---|---|---|---|---|---|',
      ...measured.map((m) => {
        const failed = m.collectorSuccess ? Object.entries(m.collectorSuccess).filter(([, v]) => v === 0).map(([k]) => k).join(', ') || '(none)' : `- (${m.reason ?? ''})`;
        return `| ${m.row} | ${m.status} | ${m.seconds.toFixed(2)} | ${m.withinBound ? 'yes' : 'NO'} | ${failed} | ${mib(m.peakRssMiB)} | ${m.pendingAfterAnswer ?? '-'} | ${m.unhandled ? 'YES' : 'no'} | ${m.secretLeak ? 'YES' : 'no'} |`;
      }),
    ];
    console.log(`\nfault matrix (scrape timeout ${SCRAPE_TIMEOUT_S} s):\n${lines.join('\n')}\n`);
    if (process.env.FAULTS_MATRIX_JSON) writeFileSync(process.env.FAULTS_MATRIX_JSON, JSON.stringify(measured, null, 2) + '\n');
  });

  for (const row of ROWS) {
    test(row.name, async (t) => {
      const scene = await row.setup(sim);
      const exporter = await spawnExporter({ config: YAML.stringify({ default: scene.module }), args: scene.args }).catch(async (err: unknown) => {
        await scene.close();
        throw err;
      });
      try {
        const started = performance.now();
        const res = await fetch(`${exporter.url}/pve?target=${encodeURIComponent(scene.target)}&module=default`, {
          headers: { 'X-Prometheus-Scrape-Timeout-Seconds': String(SCRAPE_TIMEOUT_S) },
          signal: AbortSignal.timeout((MODULE_TIMEOUT_S + 10) * 1000),
        });
        const body = await res.text();
        const seconds = (performance.now() - started) / 1000;
        const peakRss = exporter.peakRssBytes();
        const pendingAfterAnswer = scene.pending ? await pollUntilZero(scene.pending, PENDING_CLOSE_WAIT_MS) : null;
        const aliveAfter = exporter.alive();
        const healthy = aliveAfter ? (await fetch(`${exporter.url}/-/healthy`)).status : 0;
        const exit = await exporter.stop();
        const stderr = exporter.stderr();
        const tickets = scene.secrets?.() ?? [];
        const secrets = [sim.credentials.tokenValue, sim.credentials.password, ...tickets];
        const answerText = `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${body}`;
        const leaks = [...leakedSecrets(answerText, secrets).map(() => 'answer'), ...leakedSecrets(stderr, secrets).map(() => 'log')];
        let success: Record<string, number> | null = null;
        if (res.status === 200) success = collectorSuccess(parseExposition(body));
        const m: Measured = {
          row: row.name,
          status: res.status,
          seconds,
          withinBound: seconds <= DEADLINE_BOUND_S,
          collectorSuccess: success,
          reason: res.status === 200 ? null : body.trim().slice(0, 300),
          peakRssMiB: peakRss / 2 ** 20,
          pendingAfterAnswer,
          unhandled: UNHANDLED.test(stderr) || PROCESS_WARNING.test(stderr),
          secretLeak: leaks.length > 0,
          exitCode: exit.code,
        };
        measured.push(m);
        t.diagnostic(JSON.stringify(m));

        if (row.want.status === 500) {
          assert.equal(res.status, 500, `no PVE call can succeed here, so the answer must be 500; got ${res.status}:\n${body.slice(0, 2000)}`);
          assert.match(body, row.want.reason, 'the 500 answer says why');
          assert.doesNotMatch(body, /^pve_/m, 'a 500 answer carries no metrics');
        } else {
          assert.equal(res.status, 200, `some PVE calls succeed here, so the answer must be 200; got ${res.status}: ${body.slice(0, 500)}`);
          const want = Object.fromEntries(COLLECTORS.map((c) => [c, row.want.status === 200 && row.want.failing.includes(c) ? 0 : 1]));
          assert.deepEqual(success, want, 'pve_exporter_collector_success per collector');
        }
        assert.ok(
          seconds <= DEADLINE_BOUND_S + TIME_HEADROOM_S,
          `answered after ${seconds.toFixed(2)} s: the ${SCRAPE_TIMEOUT_S} s deadline was not honoured (bound ${DEADLINE_BOUND_S} s + ${TIME_HEADROOM_S} s headroom)`,
        );
        assert.ok(peakRss <= PEAK_RSS_BOUND_BYTES, `peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB > ${PEAK_RSS_BOUND_BYTES / 2 ** 20} MiB`);
        if (pendingAfterAnswer !== null) {
          assert.equal(pendingAfterAnswer, 0, `${pendingAfterAnswer} request(s) to PVE still open ${PENDING_CLOSE_WAIT_MS} ms after the answer: work continues past the deadline`);
        }
        assert.ok(aliveAfter, `the exporter died:\n${stderr}`);
        assert.equal(healthy, 200, '/-/healthy after the row');
        assert.doesNotMatch(stderr, UNHANDLED, 'nothing unhandled in the exporter log');
        assert.doesNotMatch(stderr, PROCESS_WARNING, 'no process warning (listener leak, deprecation) in the exporter log');
        assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, `clean exit on SIGTERM; stderr:\n${stderr}`);
        assert.deepEqual(leaks, [], 'no token value, password or ticket in the answer or the log');
        if (scene.module.password !== undefined && scene.secrets) assert.ok(tickets.length > 0, 'a password row logs in, so its ticket is checked too');
        scene.check?.(stderr);
      } finally {
        await exporter.stop();
        await scene.close();
      }
    });
  }
});

describe('a hanging target under overlapping scrapes', () => {
  // Two scrapers take turns so that the target's client is never idle, as with two Prometheus
  // replicas scraping the same node. Every request pending at a scrape's deadline must be cut
  // then, not when the client next has no user: otherwise each connect timeout leaves another
  // --pve.concurrency sockets stuck in their TLS handshake, for as long as the scrapes go on.
  test('connections to the target stay within the pool while scrapes overlap, and close after', async () => {
    const sim = await startSimulator({ scenario: 'default' });
    const hanging = await startHangingTcp();
    // A short module timeout (= connect timeout), so several connect timeouts pass in the run.
    const exporter = await spawnExporter({ config: YAML.stringify({ default: tokenModule(sim, { timeout: 2 }) }) });
    const pool = 8; // --pve.concurrency default: connections per (module, target)
    let stop = false;
    let scrapes = 0;
    const scraper = async (startAfterMs: number) => {
      await new Promise((r) => setTimeout(r, startAfterMs));
      while (!stop) {
        const res = await fetch(`${exporter.url}/pve?target=${hanging.target}`, {
          headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '1' },
          signal: AbortSignal.timeout(30_000),
        });
        await res.text();
        assert.equal(res.status, 500);
        scrapes++;
      }
    };
    try {
      const scrapers = [scraper(0), scraper(500)];
      let maxOpen = 0;
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        maxOpen = Math.max(maxOpen, hanging.open());
        await new Promise((r) => setTimeout(r, 100));
      }
      stop = true;
      await Promise.all(scrapers);
      const left = await pollUntilZero(() => hanging.open(), PENDING_CLOSE_WAIT_MS);
      console.log(`overlapping scrapes of a hanging target: ${scrapes} scrapes, at most ${maxOpen} connections open at once, ${hanging.accepted()} accepted, ${left} left after`);
      assert.ok(maxOpen <= 2 * pool, `${maxOpen} connections open at once at the hanging target (pool ${pool}): abandoned handshakes pile up while the client is in use`);
      assert.equal(left, 0, 'connections left open after the scrapes ended');
      assert.doesNotMatch(exporter.stderr(), UNHANDLED);
    } finally {
      stop = true;
      await exporter.stop();
      await hanging.close();
      await sim.close();
    }
  });
});
