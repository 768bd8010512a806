// The container image, as far as it can be checked without a container engine: the facts of
// deploy/container/Containerfile, the build context filter, and the runtime stage reproduced on the
// host: the bundle alone in a read-only directory, run as an unprivileged user with the image's
// ENTRYPOINT/CMD, scraping the PVE simulator, and the image's HEALTHCHECK command run for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { getFreePort, waitForHttp } from './helpers/net.ts';
import { requireTool } from './helpers/tools.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONTAINERFILE = path.join(ROOT, 'deploy/container/Containerfile');
const QUADLET = path.join(ROOT, 'deploy/quadlet/pve-exporter.container');
const IMAGE = 'ghcr.io/pve-exporter/pve-exporter:latest';
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; license: string };

// ---------------------------------------------------------------------------------------------
// Containerfile parsing
// ---------------------------------------------------------------------------------------------

interface Instruction {
  cmd: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Instructions in order: comments dropped, continuation lines joined. */
function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (pending !== '' && line.startsWith('#')) continue; // comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s+([\s\S]*)$/.exec(full);
    assert.ok(m, `cannot parse instruction: ${full}`);
    out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim() });
  }
  assert.equal(pending, '', 'Containerfile ends inside a continued line');
  return out;
}

const instructions = parseInstructions(readFileSync(CONTAINERFILE, 'utf8'));

/** Global ARGs (before the first FROM) with their defaults. */
const globalArgs = new Map<string, string>();
for (const ins of instructions) {
  if (ins.cmd === 'FROM') break;
  if (ins.cmd === 'ARG') {
    const [k, v] = ins.args.split('=', 2);
    globalArgs.set(k!, v ?? '');
  }
}
const expandArgs = (s: string): string => s.replace(/\$\{?(\w+)\}?/g, (all, name: string) => globalArgs.get(name) ?? all);

const stages: Stage[] = [];
for (const ins of instructions) {
  if (ins.cmd === 'FROM') {
    const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--platform='));
    const as = words.findIndex((w) => w.toUpperCase() === 'AS');
    stages.push({ from: expandArgs(words[0]!), name: as >= 0 ? words[as + 1] : undefined, instructions: [] });
  } else if (stages.length > 0) {
    stages[stages.length - 1]!.instructions.push(ins);
  }
}
const runtime = stages[stages.length - 1]!;
const build = stages[0]!;

function runtimeOne(cmd: string): Instruction {
  const found = runtime.instructions.filter((i) => i.cmd === cmd);
  assert.equal(found.length, 1, `runtime stage: expected one ${cmd}, found ${found.length}`);
  return found[0]!;
}

/** Exec (JSON array) form; fails for the shell form. */
function execForm(args: string, what: string): string[] {
  assert.match(args, /^\[/, `${what} must use the exec (JSON array) form, not the shell form`);
  const parsed = JSON.parse(args) as unknown;
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === 'string'), `${what}: not a JSON string array`);
  return parsed as string[];
}

function healthcheck(): { options: string; argv: string[] } {
  const hc = runtimeOne('HEALTHCHECK');
  const m = /^((?:--\S+\s+)*)CMD\s+([\s\S]+)$/.exec(hc.args);
  assert.ok(m, `HEALTHCHECK without CMD: ${hc.args}`);
  return { options: m[1]!.trim(), argv: execForm(m[2]!, 'HEALTHCHECK CMD') };
}

const entrypoint = (): string[] => execForm(runtimeOne('ENTRYPOINT').args, 'ENTRYPOINT');
const cmd = (): string[] => execForm(runtimeOne('CMD').args, 'CMD');

/** COPY flags and operands: [flags, sources..., destination]. */
function copyParts(ins: Instruction): { flags: Map<string, string>; sources: string[]; dest: string } {
  const words = ins.args.split(/\s+/);
  const flags = new Map<string, string>();
  while (words[0]?.startsWith('--')) {
    const [k, v] = words.shift()!.slice(2).split('=', 2);
    flags.set(k!, v ?? '');
  }
  return { flags, sources: words.slice(0, -1), dest: words[words.length - 1]! };
}

// ---------------------------------------------------------------------------------------------
// Static facts
// ---------------------------------------------------------------------------------------------

test('Containerfile: multi-stage, fully qualified base images, Node 22 LTS at runtime', () => {
  assert.ok(stages.length >= 2, 'multi-stage build expected');
  assert.equal(build.name, 'build');
  for (const s of stages) {
    // registry host (with a dot) / path : tag — so no short-name resolution is involved.
    assert.match(s.from, /^[a-z0-9.-]+\.[a-z]+\/[a-z0-9._/-]+:[\w.-]+$/, `base image not fully qualified: ${s.from}`);
  }
  assert.match(runtime.from, /node(js)?[:-]?22/, `runtime is not Node 22: ${runtime.from}`);
  const buildRuns = build.instructions.filter((i) => i.cmd === 'RUN').map((i) => i.args).join('\n');
  assert.match(buildRuns, /\bnpm ci\b/);
  assert.match(buildRuns, /\bnpm run bundle\b/);
  assert.match(readFileSync(CONTAINERFILE, 'utf8'), /FROM --platform=\$BUILDPLATFORM/, 'build stage should run natively');
});

test('Containerfile: the runtime stage adds only the bundle, runs nothing, and has no shell-form commands', () => {
  const copies = runtime.instructions.filter((i) => i.cmd === 'COPY' || i.cmd === 'ADD');
  assert.equal(copies.length, 1, `runtime stage copies: ${copies.map((c) => c.args).join(' | ')}`);
  const copy = copyParts(copies[0]!);
  assert.equal(copies[0]!.cmd, 'COPY');
  assert.equal(copy.flags.get('from'), build.name);
  assert.deepEqual(copy.sources, ['/src/dist/pve-exporter.mjs']);
  assert.equal(copy.dest, '/opt/pve-exporter/pve-exporter.mjs');
  assert.equal(copy.flags.get('chown'), '0:0', 'bundle owned by root, so the runtime user cannot change it');
  const mode = parseInt(copy.flags.get('chmod') ?? '', 8);
  assert.ok(!Number.isNaN(mode) && (mode & 0o022) === 0 && (mode & 0o004) !== 0, `bundle mode ${copy.flags.get('chmod')}`);
  assert.deepEqual(runtime.instructions.filter((i) => i.cmd === 'RUN'), [], 'the runtime image has no shell to RUN in');
  assert.deepEqual(runtime.instructions.filter((i) => i.cmd === 'VOLUME'), [], 'no VOLUME: nothing is written');
  // The bundle the ENTRYPOINT runs is the file that was copied.
  assert.equal(entrypoint().at(-1), copy.dest);
});

test('Containerfile: numeric non-root USER, EXPOSE 9221, OCI labels', () => {
  const user = runtimeOne('USER').args;
  assert.match(user, /^\d+(:\d+)?$/, `USER must be numeric: ${user}`);
  for (const id of user.split(':')) assert.notEqual(Number(id), 0, 'USER must not be root');
  assert.equal(runtimeOne('EXPOSE').args, '9221');

  const labels = new Map<string, string>();
  for (const ins of runtime.instructions.filter((i) => i.cmd === 'LABEL')) {
    for (const m of ins.args.matchAll(/([\w.-]+)="([^"]*)"/g)) labels.set(m[1]!, m[2]!);
  }
  for (const key of ['title', 'description', 'source', 'url', 'documentation', 'licenses', 'version', 'revision', 'created']) {
    assert.ok(labels.get(`org.opencontainers.image.${key}`), `label org.opencontainers.image.${key} missing`);
  }
  assert.equal(labels.get('org.opencontainers.image.licenses'), PKG.license);
  assert.equal(labels.get('org.opencontainers.image.title'), 'pve-exporter');
});

test('Containerfile: HEALTHCHECK runs node (no curl/wget/shell); ENTRYPOINT/CMD in exec form pass flags through', () => {
  const hc = healthcheck();
  assert.match(hc.options, /--interval=\d+s/);
  assert.match(hc.options, /--timeout=\d+s/);
  assert.match(hc.argv[0]!, /\/node$/, `healthcheck runs ${hc.argv[0]}`);
  assert.equal(hc.argv[1], '-e');
  assert.equal(hc.argv.length, 3);
  assert.doesNotMatch(hc.argv.join(' '), /curl|wget|\/bin\/sh/);
  assert.equal(hc.argv[2]!.split('http://127.0.0.1:9221/-/healthy').length, 2, 'healthcheck URL');

  const ep = entrypoint();
  assert.equal(ep.length, 3, 'ENTRYPOINT is node + V8 flag + bundle; everything after the image name becomes flags');
  assert.equal(ep[1], '--max-semi-space-size=4', 'the V8 young-generation size every launcher passes (src/main.ts)');
  assert.equal(ep[0], hc.argv[0], 'ENTRYPOINT and HEALTHCHECK use the same node binary');
  assert.deepEqual(cmd(), ['--config.file=/etc/prometheus/pve.yml']);
});

test('.dockerignore is an allowlist that sends exactly what the build stage copies', () => {
  const lines = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  assert.equal(lines[0], '*', 'the first pattern excludes everything');
  const allowed = lines.slice(1).map((l) => {
    assert.ok(l.startsWith('!'), `only re-inclusions after "*": ${l}`);
    return l.slice(1).replace(/\/$/, '');
  });
  const included = (p: string): boolean => allowed.some((a) => p === a || p.startsWith(`${a}/`));
  const copied = build.instructions
    .filter((i) => i.cmd === 'COPY')
    .flatMap((i) => copyParts(i).sources)
    .map((s) => s.replace(/\/$/, ''));
  assert.ok(copied.length >= 3);
  for (const src of copied) assert.ok(included(src), `build stage copies ${src}, which .dockerignore excludes`);
  for (const secretOrBulk of ['pve.yml', 'node_modules', 'dist/pve-exporter.mjs', 'test/deploy-container.test.ts', '.git/config', 'deploy/ansible']) {
    assert.ok(!included(secretOrBulk), `${secretOrBulk} would be sent to the builder`);
  }
  // Every allowed path exists, so the build does not silently miss a file.
  for (const a of allowed) assert.ok(statSync(path.join(ROOT, a)), `${a} does not exist`);
});

test('Quadlet unit: same image, config path and health check as the image', () => {
  const unit = new Map<string, string[]>();
  let section = '';
  for (const raw of readFileSync(QUADLET, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const h = /^\[(.+)\]$/.exec(line);
    if (h) {
      section = h[1]!;
      continue;
    }
    const i = line.indexOf('=');
    const key = `${section}.${line.slice(0, i)}`;
    unit.set(key, [...(unit.get(key) ?? []), line.slice(i + 1)]);
  }
  const one = (k: string): string => {
    const v = unit.get(k);
    assert.equal(v?.length, 1, `${k}: ${JSON.stringify(v)}`);
    return v![0]!;
  };
  assert.equal(one('Container.Image'), IMAGE);
  assert.equal(one('Container.AutoUpdate'), 'registry');
  assert.equal(one('Container.UserNS'), 'keep-id');
  assert.equal(one('Container.NoNewPrivileges'), 'true');
  assert.equal(one('Container.ReadOnly'), 'true');
  assert.equal(one('Container.LogDriver'), 'journald');
  assert.equal(one('Container.PublishPort'), '9221:9221');
  const [hostPath, containerPath, options] = one('Container.Volume').split(':');
  assert.equal(hostPath, '%h/.config/pve-exporter/pve.yml');
  assert.equal(`--config.file=${containerPath}`, cmd()[0], 'the volume lands where CMD points --config.file');
  assert.deepEqual(options!.split(',').sort(), ['Z', 'ro']);
  assert.deepEqual(JSON.parse(one('Container.HealthCmd')), healthcheck().argv);
  assert.equal(one('Service.Restart'), 'always');
  assert.equal(one('Service.RestartSec'), '5');
  assert.equal(one('Install.WantedBy'), 'default.target');
  assert.equal(unit.get('Container.Exec'), undefined, 'defaults come from the image CMD');
});

// ---------------------------------------------------------------------------------------------
// The runtime stage, reproduced on the host
// ---------------------------------------------------------------------------------------------

const scratch = mkdtempSync(path.join(tmpdir(), 'pve-exporter-container-'));
chmodSync(scratch, 0o755); // traversable by the unprivileged user
const isRoot = process.getuid?.() === 0;
/** As root: run as nobody (65534), like a container's non-root USER. */
const identity = isRoot ? { uid: 65534, gid: 65534 } : {};
const appDir = path.join(scratch, 'opt/pve-exporter');
const bundle = path.join(appDir, 'pve-exporter.mjs');
const configFile = path.join(scratch, 'etc/prometheus/pve.yml');
let sim: Simulator | undefined;
const children: ChildProcess[] = [];

test.before(async () => {
  // `npm run bundle`, once for this file, into a build directory...
  const buildDir = path.join(scratch, 'build');
  const r = spawnSync('npm', ['run', '--silent', 'bundle', '--', '--outfile', path.join(buildDir, 'pve-exporter.mjs')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `npm run bundle failed:\n${r.stdout}\n${r.stderr}`);
  // ...then only the bundle goes to the "image": a directory nobody can write to.
  mkdirSync(appDir, { recursive: true });
  copyFileSync(path.join(buildDir, 'pve-exporter.mjs'), bundle);
  chmodSync(bundle, 0o444);
  chmodSync(appDir, 0o555);
  chmodSync(path.dirname(appDir), 0o555);

  sim = await startSimulator({ scenario: 'default' });
  mkdirSync(path.dirname(configFile), { recursive: true });
  writeFileSync(configFile, exporterConfig(sim), { mode: 0o400 });
  if (isRoot) chownSync(configFile, 65534, 65534);
  chmodSync(path.dirname(configFile), 0o555);
});

test.after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await sim?.close();
  for (const dir of [path.dirname(appDir), appDir, path.dirname(configFile)]) chmodSync(dir, 0o755);
  rmSync(scratch, { recursive: true, force: true });
});

/** The image's environment: PATH and the Containerfile's ENV, nothing from this process. */
function imageEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  for (const ins of runtime.instructions.filter((i) => i.cmd === 'ENV')) {
    for (const m of ins.args.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
  }
  assert.equal(env.NODE_ENV, 'production');
  return env;
}

/** ENTRYPOINT + args, with the image paths mapped to the scratch root and node to this node. */
function imageArgv(args: string[]): string[] {
  const [, v8flag, script] = entrypoint();
  assert.equal(script, '/opt/pve-exporter/pve-exporter.mjs');
  return [v8flag!, bundle, ...args.map((a) => a.replace('/etc/prometheus/pve.yml', configFile))];
}

function runImage(args: string[], wrapper: string[] = []): ChildProcess {
  const argv = imageArgv(args);
  const [file, ...rest] = wrapper.length > 0 ? [...wrapper, process.execPath, ...argv] : [process.execPath, ...argv];
  const child = spawn(file!, rest, { cwd: appDir, env: imageEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...identity });
  children.push(child);
  return child;
}

function collect(child: ChildProcess): { out: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { out: () => out, exit };
}

function runHealthcheck(port: number): { status: number | null; out: string } {
  const [, ...argv] = healthcheck().argv;
  const script = argv[1]!.replace('http://127.0.0.1:9221/', `http://127.0.0.1:${port}/`);
  const r = spawnSync(process.execPath, [argv[0]!, script], { encoding: 'utf8', timeout: 15_000, env: imageEnv(), ...identity });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('as an unprivileged user from a read-only directory, the bundle serves /-/healthy, /pve and /metrics; the HEALTHCHECK passes; SIGTERM stops it cleanly', { timeout: 90_000 }, async () => {
  const port = await getFreePort();
  const child = runImage([...cmd(), `--web.listen-address=127.0.0.1:${port}`]);
  const { out, exit } = collect(child);
  await waitForHttp(`http://127.0.0.1:${port}/-/healthy`, 20_000).catch((err: Error) => {
    throw new Error(`${err.message}\nexporter output:\n${out()}`);
  });

  const healthy = await fetch(`http://127.0.0.1:${port}/-/healthy`);
  assert.equal(healthy.status, 200);
  assert.equal((await healthy.text()).trim(), 'OK');

  const scrape = await fetch(`http://127.0.0.1:${port}/pve?target=127.0.0.1&module=default`);
  const body = await scrape.text();
  assert.equal(scrape.status, 200, body);
  const up = body.split('\n').filter((l) => l.startsWith('pve_up{'));
  assert.ok(up.length >= 4, `pve_up series: ${up.length}\n${body.slice(0, 500)}`);
  assert.ok(up.every((l) => /\s(0|1)$/.test(l)), up.join('\n'));
  assert.ok(up.some((l) => l.startsWith('pve_up{id="node/') && l.endsWith(' 1')));

  const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^# (HELP|TYPE) /m);

  // The image's HEALTHCHECK command itself, against the running exporter.
  const ok = runHealthcheck(port);
  assert.equal(ok.status, 0, ok.out);

  child.kill('SIGTERM');
  const { code, signal } = await exit;
  assert.equal(signal, null, out());
  assert.equal(code, 0, `exit after SIGTERM:\n${out()}`);
  // Nothing was written next to the bundle.
  assert.deepEqual(readdirSync(appDir), ['pve-exporter.mjs']);
  assert.ok(!out().includes(sim!.credentials.tokenValue), 'the token shows up in the output');

  // Nothing listens any more: the HEALTHCHECK must fail.
  const down = runHealthcheck(port);
  assert.notEqual(down.status, 0, 'healthcheck passed with nothing listening');
});

test('the HEALTHCHECK fails when /-/healthy answers an error status', { timeout: 30_000 }, async () => {
  const server = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('not healthy');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    // Asynchronous child so that this process' server can answer meanwhile.
    const [, ...argv] = healthcheck().argv;
    const script = argv[1]!.replace('http://127.0.0.1:9221/', `http://127.0.0.1:${port}/`);
    const child = spawn(process.execPath, [argv[0]!, script], { env: imageEnv(), stdio: 'ignore', ...identity });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
  } finally {
    server.close();
  }
});

test('arguments after the image name are exporter flags: --help and --version work as the unprivileged user', { timeout: 60_000 }, async () => {
  const help = runImage(['--help']);
  const h = collect(help);
  const helpExit = await h.exit;
  assert.equal(helpExit.code, 0, h.out());
  assert.match(h.out(), /Usage: pve-exporter/);
  assert.match(h.out(), /--config\.file/);
  assert.match(h.out(), /--web\.listen-address/);

  const version = runImage(['--version']);
  const v = collect(version);
  assert.equal((await v.exit).code, 0, v.out());
  assert.ok(v.out().includes(PKG.version), `--version printed ${v.out()}`);
});

test('with a missing config file the bundle exits non-zero with the path in the message', { timeout: 30_000 }, async () => {
  const child = runImage(['--config.file=/etc/prometheus/missing.yml', '--web.listen-address=127.0.0.1:0']);
  const c = collect(child);
  const { code } = await c.exit;
  assert.notEqual(code, 0);
  assert.match(c.out(), /missing\.yml/);
});

test('the exporter opens no file for writing and creates, renames or deletes nothing (read-only root)', { timeout: 120_000 }, async (t) => {
  if (!requireTool(t, 'strace', 'apt-get install strace')) return;
  const probe = spawnSync('strace', ['-qq', '-e', 'trace=none', 'true'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip(`ptrace is not permitted here: ${probe.stderr.trim()}`);
    return;
  }
  const traceFile = path.join(scratch, 'strace.out');
  const port = await getFreePort();
  const calls = 'openat,open,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,truncate,link,linkat,symlink,symlinkat,chmod,fchmodat,chown,fchownat';
  // strace runs as this user and the traced exporter as the unprivileged one.
  const child = spawn('strace', ['-f', '-qq', '-o', traceFile, '-e', `trace=${calls}`, ...(isRoot ? ['-u', 'nobody'] : []), process.execPath,
    ...imageArgv([...cmd(), `--web.listen-address=127.0.0.1:${port}`])], { cwd: appDir, env: imageEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const c = collect(child);
  await waitForHttp(`http://127.0.0.1:${port}/-/healthy`, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${c.out()}`);
  });
  const scrape = await fetch(`http://127.0.0.1:${port}/pve?target=127.0.0.1`);
  assert.equal(scrape.status, 200);
  await scrape.text();
  await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  // Stop the traced exporter itself (a signal to strace would only detach it); strace then exits.
  const tracee = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  assert.ok(tracee > 0, 'traced exporter not found');
  process.kill(tracee, 'SIGTERM');
  const stopped = await Promise.race([c.exit, new Promise<null>((resolve) => setTimeout(() => resolve(null), 15_000))]);
  if (stopped === null) {
    process.kill(tracee, 'SIGKILL');
    child.kill('SIGKILL');
    assert.fail(`the traced exporter did not stop on SIGTERM:\n${c.out()}`);
  }
  const trace = readFileSync(traceFile, 'utf8').split('\n').filter((l) => l.trim() !== '');
  assert.ok(trace.some((l) => l.includes(configFile)), 'the trace does not show the config being read; is strace working?');
  const writes = trace.filter(
    (l) => /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(l) || /\b(creat|mkdir|mkdirat|rename|renameat2?|unlink|unlinkat|rmdir|truncate|link|linkat|symlink|symlinkat|chmod|fchmodat|chown|fchownat)\(/.test(l),
  );
  assert.deepEqual(writes, [], 'write-type file system calls');
});
