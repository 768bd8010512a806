// The container image, as far as it can be checked without a container engine:
// - deploy/container/Containerfile: syntax (dockerfile-utils, on dockerfile-ast), the facts of each
//   stage, the build context that .dockerignore lets through;
// - the stages executed on the host (test.before): the context copied, each WORKDIR/COPY/RUN
//   applied in a directory standing for the stage's root, so the build stage's own `npm ci` and
//   `npm run bundle` make the bundle and the runtime stage's COPY puts it where ENTRYPOINT points;
// - the runtime stage reproduced: that bundle alone in a read-only directory, run as an
//   unprivileged user with the image's ENTRYPOINT/CMD, scraping the PVE simulator, and the image's
//   HEALTHCHECK command run for real;
// - scripts/build-image.sh (shellcheck, its command, its errors; a real build where an engine
//   works) and the guides' steps for running a locally built image (Quadlet, Ansible, Helm).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { exporterConfig } from '../sim/exporter-config.ts';
import { startSimulator } from '../sim/index.ts';
import type { Simulator } from '../sim/types.ts';
import { copyParts, dockerignoreAllowlist, execForm, inAllowlist, makeBuildContext, parseContainerfile, runStageOnHost, type Instruction, type StageRun } from './helpers/containerfile.ts';
import { getFreePort, waitForHttp } from './helpers/net.ts';
import { DockerfileParser } from 'dockerfile-ast';
import { validate as validateDockerfile } from 'dockerfile-utils';
import { requireTool } from './helpers/tools.ts';
import { parseUnit } from './helpers/unit-file.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONTAINERFILE = path.join(ROOT, 'deploy/container/Containerfile');
const QUADLET = path.join(ROOT, 'deploy/quadlet/pve-exporter.container');
const IMAGE = 'ghcr.io/pve-exporter/pve-exporter:latest';
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; license: string };

// ---------------------------------------------------------------------------------------------
// Containerfile parsing
// ---------------------------------------------------------------------------------------------

const CONTAINERFILE_TEXT = readFileSync(CONTAINERFILE, 'utf8');
const { instructions, stages } = parseContainerfile(CONTAINERFILE_TEXT);
const runtime = stages[stages.length - 1]!;
const build = stages[0]!;
const ALLOWED = dockerignoreAllowlist(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));

function runtimeOne(cmd: string): Instruction {
  const found = runtime.instructions.filter((i) => i.cmd === cmd);
  assert.equal(found.length, 1, `runtime stage: expected one ${cmd}, found ${found.length}`);
  return found[0]!;
}

function healthcheck(): { options: string; argv: string[] } {
  const hc = runtimeOne('HEALTHCHECK');
  const m = /^((?:--\S+\s+)*)CMD\s+([\s\S]+)$/.exec(hc.args);
  assert.ok(m, `HEALTHCHECK without CMD: ${hc.args}`);
  return { options: m[1]!.trim(), argv: execForm(m[2]!, 'HEALTHCHECK CMD') };
}

const entrypoint = (): string[] => execForm(runtimeOne('ENTRYPOINT').args, 'ENTRYPOINT');
const cmd = (): string[] => execForm(runtimeOne('CMD').args, 'CMD');

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
  const included = (p: string): boolean => inAllowlist(ALLOWED, p);
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
  for (const a of ALLOWED) assert.ok(statSync(path.join(ROOT, a)), `${a} does not exist`);
});

/** dockerfile-utils' diagnostics as line + text. */
function dockerfileProblems(text: string): Array<{ line: number; message: string }> {
  return validateDockerfile(text).map((d) => ({ line: d.range.start.line + 1, message: typeof d.message === 'string' ? d.message : d.message.value }));
}

test('Containerfile syntax: dockerfile-utils (dockerfile-ast) reports nothing, and catches broken copies at their lines', () => {
  assert.deepEqual(dockerfileProblems(CONTAINERFILE_TEXT), []);
  const mistakes: Array<{ from: string; to: string; expect: RegExp }> = [
    { from: 'WORKDIR /src', to: 'WORKDR /src', expect: /Unknown instruction: WORKDR/ },
    { from: 'COPY --from=build --chown=0:0 --chmod=0444', to: 'COPY --from=build --chown=0:0 --chmd=0444', expect: /Unknown flag: chmd/ },
    { from: 'EXPOSE 9221', to: 'EXPOSE 9221/tpc', expect: /Invalid proto: tpc/ },
    { from: 'HEALTHCHECK --interval=30s', to: 'HEALTHCHECK --interval=30', expect: /duration|unit/i },
    { from: 'USER 65532:65532', to: 'USER', expect: /argument/i },
  ];
  for (const m of mistakes) {
    const at = CONTAINERFILE_TEXT.indexOf(m.from);
    assert.ok(at >= 0, `"${m.from}" not in the Containerfile`);
    const line = CONTAINERFILE_TEXT.slice(0, at).split('\n').length;
    const found = dockerfileProblems(CONTAINERFILE_TEXT.slice(0, at) + m.to + CONTAINERFILE_TEXT.slice(at + m.from.length));
    assert.ok(
      found.some((p) => m.expect.test(p.message) && p.line === line),
      `"${m.to}": expected ${m.expect} at line ${line}, got ${JSON.stringify(found)}`,
    );
  }
});

test('Containerfile: the instructions these tests read are the ones dockerfile-ast parses', () => {
  const parsed = DockerfileParser.parse(CONTAINERFILE_TEXT).getInstructions();
  assert.deepEqual(
    instructions.map((i) => [i.line, i.cmd]),
    parsed.map((i) => [i.getRange().start.line + 1, i.getKeyword()]),
  );
  // The RUN commands the host build below executes are the builder's, word for word.
  const runs = (list: Array<{ cmd: string; text: string }>): string[] => list.filter((i) => i.cmd === 'RUN').map((i) => i.text.replace(/\s+/g, ' '));
  assert.deepEqual(
    runs(instructions.map((i) => ({ cmd: i.cmd, text: i.args }))),
    runs(parsed.map((i) => ({ cmd: i.getKeyword(), text: i.getArguments().map((a) => a.getValue()).join(' ') }))),
  );
});

test('Quadlet unit: same image, config path and health check as the image', () => {
  const unit = parseUnit(readFileSync(QUADLET, 'utf8'));
  const one = (k: string): string => {
    const [section, key] = k.split('.') as [string, string];
    const v = unit.get(section)?.get(key);
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
  assert.equal(unit.get('Container')?.get('Exec'), undefined, 'defaults come from the image CMD');
});

// ---------------------------------------------------------------------------------------------
// The runtime stage, reproduced on the host
// ---------------------------------------------------------------------------------------------

const scratch = mkdtempSync(path.join(tmpdir(), 'pve-exporter-container-'));
chmodSync(scratch, 0o755); // traversable by the unprivileged user
const isRoot = process.getuid?.() === 0;
/** As root: run as nobody (65534), like a container's non-root USER. */
const identity = isRoot ? { uid: 65534, gid: 65534 } : {};
// Where the ENTRYPOINT's script lands with the runtime stage's root at `scratch`.
const bundle = path.join(scratch, entrypoint().at(-1)!);
const appDir = path.dirname(bundle);
const configFile = path.join(scratch, 'etc/prometheus/pve.yml');
let sim: Simulator | undefined;
const children: ChildProcess[] = [];

/** The stages as executed on the host by test.before, by name. */
const stageRuns = new Map<string, StageRun>();

/** Environment of the build stage's RUN commands: the host's tools, nothing of this process. */
const buildEnv = (): Record<string, string | undefined> => ({ PATH: process.env.PATH, HOME: process.env.HOME });

test.before(async () => {
  // The image, built without a container engine: the context .dockerignore lets through, every
  // stage's WORKDIR/COPY/RUN executed on the host in a directory standing for its root, so the
  // bundle the tests below run is the one the build stage's `npm ci` + `npm run bundle` made and
  // the runtime stage's COPY put where the ENTRYPOINT expects it.
  const context = path.join(scratch, 'context');
  makeBuildContext(ROOT, ALLOWED, context);
  for (const [i, stage] of stages.entries()) {
    const last = i === stages.length - 1;
    const fsRoot = last ? scratch : path.join(scratch, `stage-${stage.name ?? i}`);
    stageRuns.set(stage.name ?? String(i), runStageOnHost(stage, { context, fsRoot, stages: stageRuns, env: buildEnv(), timeoutMs: 240_000 }));
  }
  // The runtime stage's files: a directory nobody can write to.
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
  // Writable again so that rmSync can remove them (any of them may be missing if test.before failed).
  for (const dir of [path.dirname(appDir), appDir, path.dirname(configFile)]) if (existsSync(dir)) chmodSync(dir, 0o755);
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
  assert.equal(path.join(scratch, script!), bundle);
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

// ---------------------------------------------------------------------------------------------
// The build stages, executed on the host (by test.before)
// ---------------------------------------------------------------------------------------------

test('the build stage\'s commands run outside a container: npm ci, npm run bundle, and the bundle prints the version', () => {
  const run = stageRuns.get(build.name!);
  assert.ok(run, 'the build stage did not run');
  const ranCommands = run.steps.filter((s) => s.instruction.cmd === 'RUN');
  assert.ok(ranCommands.length >= 2, 'RUN steps');
  for (const s of ranCommands) assert.equal(s.status, 0, `line ${s.instruction.line}: ${s.instruction.args}\n${s.output}`);
  assert.match(ranCommands.map((s) => s.instruction.args).join('\n'), /\bnpm ci\b[\s\S]*\bnpm run bundle\b/);
  // The last RUN's `node dist/pve-exporter.mjs --version` printed the package version.
  assert.match(ranCommands.at(-1)!.output!, new RegExp(`^${PKG.version.replace(/\./g, '\\.')}$`, 'm'));
  // What the build stage made is exactly what the runtime stage copies, with the COPY's mode.
  const [copy] = runtime.instructions.filter((i) => i.cmd === 'COPY').map(copyParts);
  assert.ok(statSync(path.join(run.root, copy!.sources[0]!)).isFile());
  assert.equal(statSync(bundle).mode & 0o777, parseInt(copy!.flags.get('chmod')!, 8));
  assert.deepEqual(readdirSync(appDir), [path.basename(bundle)]);
  // Only the context went in: nothing from the repository beyond the .dockerignore allowlist.
  for (const entry of readdirSync(path.join(run.root, run.workdir))) {
    assert.ok(['node_modules', 'dist'].includes(entry) || inAllowlist(ALLOWED, entry) || ALLOWED.some((a) => a.startsWith(`${entry}/`)), `unexpected ${entry} in the build stage`);
  }
});

test('the host build fails like a real one: a COPY from outside the context, a RUN that fails (each named by its line)', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-badbuild-'));
  try {
    const context = path.join(dir, 'context');
    makeBuildContext(ROOT, ALLOWED, context);
    const cases: Array<{ after: string; insert: string; expect: RegExp }> = [
      // README.md exists in the repository but .dockerignore keeps it out of the context.
      { after: 'WORKDIR /src\n', insert: 'COPY README.md ./\n', expect: /line \d+ \(COPY README\.md \.\/\): COPY source README\.md is not in the build context/ },
      { after: 'COPY package.json package-lock.json ./\n', insert: 'RUN npm run bundel\n', expect: /line \d+ \(RUN npm run bundel\) exited 1:[\s\S]*bundel/ },
    ];
    for (const [i, c] of cases.entries()) {
      const at = CONTAINERFILE_TEXT.indexOf(c.after);
      assert.ok(at >= 0);
      const text = CONTAINERFILE_TEXT.slice(0, at + c.after.length) + c.insert + CONTAINERFILE_TEXT.slice(at + c.after.length);
      const broken = parseContainerfile(text).stages[0]!;
      const line = text.slice(0, at + c.after.length).split('\n').length;
      assert.throws(
        () => runStageOnHost(broken, { context, fsRoot: path.join(dir, `stage-${i}`), stages: new Map(), env: buildEnv(), timeoutMs: 30_000 }),
        (err: Error) => c.expect.test(err.message) && err.message.includes(`line ${line} `),
        c.insert,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// scripts/build-image.sh
// ---------------------------------------------------------------------------------------------

const BUILD_SCRIPT = path.join(ROOT, 'scripts/build-image.sh');
const LOCAL_IMAGE = 'localhost/pve-exporter';

function buildScript(args: string[], env: Record<string, string | undefined> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('/bin/bash', [BUILD_SCRIPT, ...args], {
    cwd: tmpdir(), // the script finds the repository itself
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The command a --dry-run prints, split into words by bash itself. */
function dryRunArgv(args: string[]): string[] {
  const r = buildScript(['--dry-run', ...args], { SOURCE_DATE_EPOCH: '1700000000' });
  assert.equal(r.status, 0, r.stderr);
  const words = spawnSync('/bin/bash', ['-c', 'eval "set -- $1"; printf "%s\\0" "$@"', '_', r.stdout.trim()], { encoding: 'utf8' });
  return words.stdout.split('\0').slice(0, -1);
}

test('build-image.sh passes shellcheck', (t) => {
  if (!requireTool(t, 'shellcheck', 'apt-get install shellcheck')) return;
  const r = spawnSync('shellcheck', [BUILD_SCRIPT], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('build-image.sh builds the Containerfile from the repository root, tagged localhost/pve-exporter:<version> and :local', () => {
  const revision = spawnSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || 'unknown';
  for (const engine of ['podman', 'docker']) {
    const argv = dryRunArgv(['--engine', engine]);
    assert.equal(argv[0], engine);
    assert.equal(argv[1], 'build');
    assert.equal(argv[argv.indexOf('-f') + 1], CONTAINERFILE);
    assert.equal(argv.at(-1), ROOT, 'the context is the repository root');
    const tags = argv.flatMap((a, i) => (a === '-t' ? [argv[i + 1]] : []));
    assert.deepEqual(tags, [`${LOCAL_IMAGE}:${PKG.version}`, `${LOCAL_IMAGE}:local`]);
    const buildArgs = new Map(argv.flatMap((a, i) => (a === '--build-arg' ? [argv[i + 1]!.split('=', 2) as [string, string]] : [])));
    assert.deepEqual(buildArgs, new Map([['VERSION', PKG.version], ['REVISION', revision], ['CREATED', '2023-11-14T22:13:20Z']]));
    // Exactly the ARGs the runtime stage declares, so none is silently ignored.
    assert.deepEqual([...buildArgs.keys()].sort(), runtime.instructions.filter((i) => i.cmd === 'ARG').map((i) => i.args.split('=')[0]).sort());
    // Podman's default OCI format would drop the HEALTHCHECK.
    assert.equal(argv.includes('--format'), engine === 'podman');
    if (engine === 'podman') assert.equal(argv[argv.indexOf('--format') + 1], 'docker');
  }
  const cross = dryRunArgv(['--engine=docker', '--platform', 'linux/arm64', '--', '--no-cache']);
  assert.equal(cross[cross.indexOf('--platform') + 1], 'linux/arm64');
  assert.deepEqual(cross.slice(-2), ['--no-cache', ROOT]);
});

test('build-image.sh without podman or docker says so and how to get one; bad options exit 2', (t) => {
  // A PATH with only the tools the script itself uses.
  const bin = mkdtempSync(path.join(tmpdir(), 'pve-exporter-nobin-'));
  try {
    for (const tool of ['dirname', 'sed', 'head', 'git', 'date']) {
      const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      if (found) symlinkSync(found, path.join(bin, tool));
    }
    const r = buildScript([], { PATH: bin });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^build-image\.sh: neither podman nor docker is installed/);
    assert.match(r.stderr, /apt-get install podman/);
    const pinned = buildScript(['--engine', 'podman'], { PATH: bin });
    assert.equal(pinned.status, 1);
    assert.match(pinned.stderr, /podman is not installed \(--engine podman\)/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
  const wrongEngine = buildScript(['--engine', 'buildah']);
  assert.equal(wrongEngine.status, 2);
  assert.match(wrongEngine.stderr, /--engine must be podman or docker, not 'buildah'/);
  const wrongOption = buildScript(['--tag', 'x']);
  assert.equal(wrongOption.status, 2);
  assert.match(wrongOption.stderr, /unknown option: --tag/);
  const help = buildScript(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /localhost\/pve-exporter:local/);
  // The docker client is optional here (spawning it fails with ENOENT when it is missing).
  if (spawnSync('docker', ['--version'], { stdio: 'ignore' }).error) t.diagnostic('docker client not installed: the "daemon not answering" message is not checked');
  else {
    // A socket nobody listens on: the client is there, the daemon is not.
    const noDaemon = buildScript(['--engine', 'docker'], { DOCKER_HOST: `unix://${path.join(scratch, 'no-docker.sock')}` });
    assert.equal(noDaemon.status, 1);
    assert.match(noDaemon.stderr, /docker is installed but its daemon does not answer/);
  }
});

/** A container engine that can build here: podman, or docker with a daemon that answers. Neither
 *  is a required tool (no Debian package makes a build work without the base images' registries),
 *  so a missing one is a skip even in CI. */
function workingEngine(): string | undefined {
  for (const engine of ['podman', 'docker']) {
    if (spawnSync(engine, ['info'], { stdio: 'ignore', timeout: 30_000 }).status === 0) return engine;
  }
  return undefined;
}

test('build-image.sh builds a real image that runs --version and has the HEALTHCHECK (where an engine works)', { timeout: 900_000 }, (t) => {
  const engine = workingEngine();
  if (!engine) {
    // No apt package makes this work here: a build also needs the base images' registries.
    t.skip('needs a working podman or docker and access to the base images (apt-get install podman)');
    return;
  }
  const r = spawnSync('/bin/bash', [BUILD_SCRIPT, '--engine', engine], { encoding: 'utf8', timeout: 880_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const run = spawnSync(engine, ['run', '--rm', `${LOCAL_IMAGE}:${PKG.version}`, '--version'], { encoding: 'utf8' });
  assert.equal(run.stdout.trim(), PKG.version, run.stderr);
  // Podman reports the health check at the top level of `image inspect`, Docker under Config.
  const field = engine === 'podman' ? '{{json .Healthcheck}}' : '{{json .Config.Healthcheck}}';
  const inspect = spawnSync(engine, ['image', 'inspect', '--format', field, `${LOCAL_IMAGE}:local`], { encoding: 'utf8' });
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.deepEqual((JSON.parse(inspect.stdout) as { Test: string[] }).Test, ['CMD', ...healthcheck().argv]);
});

// ---------------------------------------------------------------------------------------------
// Running a locally built image: the guides' commands and variable names
// ---------------------------------------------------------------------------------------------

/** The fenced code blocks of a markdown section (heading to the next heading of its level). */
function sectionCode(file: string, heading: string): string {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const start = text.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `${file}: no section "${heading}"`);
  const level = heading.split(' ')[0]!;
  const rest = text.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^#{1,${level.length}} `, 'm'));
  const body = end >= 0 ? rest.slice(0, end) : rest;
  return [...body.matchAll(/```\w*\n([\s\S]*?)```/g)].map((m) => m[1]!).join('\n');
}

test('Quadlet guide: its sed turns the shipped unit into one for the locally built image, nothing else changed', () => {
  const code = sectionCode('docs/deploy-quadlet.md', '## A locally built image');
  // The sed command as written, with its continuation line, run on a copy of the unit.
  const m = /^\$ sudo (sed -i [^\n]*\\\n\s*)(\S+pve-exporter\.container)$/m.exec(code);
  assert.ok(m, `no "sudo sed -i ... pve-exporter.container" in:\n${code}`);
  assert.equal(m[2], '/home/monitoring/.config/containers/systemd/pve-exporter.container');
  const dir = mkdtempSync(path.join(tmpdir(), 'pve-exporter-quadlet-'));
  try {
    const copy = path.join(dir, 'pve-exporter.container');
    writeFileSync(copy, readFileSync(QUADLET, 'utf8'));
    const r = spawnSync('/bin/sh', ['-c', `${m[1]!}"$1"`, 'sh', copy], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const before = parseUnit(readFileSync(QUADLET, 'utf8'));
    const after = parseUnit(readFileSync(copy, 'utf8'));
    // The image build-image.sh tags, with auto-update from local storage.
    const localTag = dryRunArgv(['--engine', 'podman']).flatMap((a, i, all) => (a === '-t' ? [all[i + 1]!] : [])).find((t) => t.endsWith(':local'));
    assert.deepEqual(after.get('Container')?.get('Image'), [localTag]);
    assert.deepEqual(after.get('Container')?.get('AutoUpdate'), ['local']);
    for (const [section, keys] of before) {
      for (const [key, values] of keys) {
        if (section === 'Container' && (key === 'Image' || key === 'AutoUpdate')) continue;
        assert.deepEqual(after.get(section)?.get(key), values, `${section}.${key} changed`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The image goes into the service user's storage, which is where Quadlet's podman looks.
  assert.match(code, /^podman save localhost\/pve-exporter:local \| as_monitoring podman load\b/m);
  assert.match(code, /^scripts\/build-image\.sh\b/m);
});

test('deploy.md: a locally built image from Ansible and Helm uses variables the role and the chart have', () => {
  const text = readFileSync(path.join(ROOT, 'docs/deploy.md'), 'utf8');
  const section = text.slice(text.indexOf('### Running an image you built'), text.indexOf('## Rootless Podman with Quadlet'));
  assert.ok(section.length > 100, 'docs/deploy.md: no section "Running an image you built"');

  const defaults = parseYaml(readFileSync(path.join(ROOT, 'deploy/ansible/roles/pve_exporter/defaults/main.yml'), 'utf8')) as Record<string, unknown>;
  const roleVars = [...new Set([...section.matchAll(/\bpve_exporter_[a-z_]+/g)].map((m) => m[0]))];
  assert.ok(roleVars.includes('pve_exporter_container_image'), 'the role\'s image variable is documented');
  for (const v of roleVars) assert.ok(v in defaults, `docs/deploy.md names ${v}, which the role's defaults do not have`);
  const template = readFileSync(path.join(ROOT, 'deploy/ansible/roles/pve_exporter/templates/pve-exporter.container.j2'), 'utf8');
  assert.match(template, /^Image=\{\{ pve_exporter_container_image \}\}$/m);

  const values = parseYaml(readFileSync(path.join(ROOT, 'deploy/helm/pve-exporter/values.yaml'), 'utf8')) as { image: Record<string, unknown> };
  const chartKeys = [...new Set([...section.matchAll(/\bimage\.([a-zA-Z]+)\b/g)].map((m) => m[1]!))];
  assert.deepEqual([...chartKeys].sort(), ['digest', 'pullPolicy', 'repository', 'tag']);
  for (const k of chartKeys) assert.ok(k in values.image, `docs/deploy.md names image.${k}, which values.yaml does not have`);
  // The --set lines for a local image match what build-image.sh tags.
  assert.match(section, /--set image\.repository=localhost\/pve-exporter --set\s+image\.tag=local --set image\.pullPolicy=Never/);
  assert.match(section, /`Image=localhost\/pve-exporter:local` with `AutoUpdate=local`/);
});
