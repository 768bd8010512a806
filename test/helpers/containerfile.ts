// deploy/container/Containerfile as data (instructions, stages, COPY operands, exec forms), the
// build context that .dockerignore lets through, and a stage executed on the host without a
// container engine: WORKDIR, COPY and RUN applied to a directory that stands for the stage's root
// file system. Only what our Containerfile uses is supported; anything else is an error, so the
// test never silently skips an instruction that would matter in a real build.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export interface Instruction {
  cmd: string;
  args: string;
  /** 1-based line of the instruction's first line. */
  line: number;
}
export interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}
export interface Containerfile {
  instructions: Instruction[];
  /** ARGs before the first FROM, with their defaults. */
  globalArgs: Map<string, string>;
  stages: Stage[];
}

/** Instructions in order: comments dropped, continuation lines joined. */
export function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending !== '' && line.startsWith('#')) return; // comment inside a continued instruction
    if (pending === '') start = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s+([\s\S]*)$/.exec(full);
    assert.ok(m, `Containerfile line ${start}: cannot parse instruction: ${full}`);
    out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  });
  assert.equal(pending, '', 'Containerfile ends inside a continued line');
  return out;
}

export function parseContainerfile(text: string): Containerfile {
  const instructions = parseInstructions(text);
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
  return { instructions, globalArgs, stages };
}

/** Exec (JSON array) form; fails for the shell form. */
export function execForm(args: string, what: string): string[] {
  assert.match(args, /^\[/, `${what} must use the exec (JSON array) form, not the shell form`);
  const parsed = JSON.parse(args) as unknown;
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === 'string'), `${what}: not a JSON string array`);
  return parsed as string[];
}

/** COPY flags and operands: [flags, sources..., destination]. */
export function copyParts(ins: Instruction): { flags: Map<string, string>; sources: string[]; dest: string } {
  const words = ins.args.split(/\s+/);
  const flags = new Map<string, string>();
  while (words[0]?.startsWith('--')) {
    const [k, v] = words.shift()!.slice(2).split('=', 2);
    flags.set(k!, v ?? '');
  }
  return { flags, sources: words.slice(0, -1), dest: words[words.length - 1]! };
}

// ---------------------------------------------------------------------------------------------
// Build context
// ---------------------------------------------------------------------------------------------

/** The paths a `*` + `!path` allowlist .dockerignore re-includes (asserts that form). */
export function dockerignoreAllowlist(text: string): string[] {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  assert.equal(lines[0], '*', '.dockerignore: the first pattern excludes everything');
  return lines.slice(1).map((l) => {
    assert.ok(l.startsWith('!'), `.dockerignore: only re-inclusions after "*": ${l}`);
    return l.slice(1).replace(/\/$/, '');
  });
}

export const inAllowlist = (allowed: string[], p: string): boolean => allowed.some((a) => p === a || p.startsWith(`${a}/`));

/** Copies what the allowlist lets through from `root` into `dir`: the context a builder receives. */
export function makeBuildContext(root: string, allowed: string[], dir: string): void {
  for (const a of allowed) {
    const from = path.join(root, a);
    assert.ok(existsSync(from), `.dockerignore re-includes ${a}, which does not exist`);
    mkdirSync(path.dirname(path.join(dir, a)), { recursive: true });
    cpSync(from, path.join(dir, a), { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// A stage executed on the host
// ---------------------------------------------------------------------------------------------

export interface StageStep {
  instruction: Instruction;
  status?: number | null;
  output?: string;
}
export interface StageRun {
  /** Host directory standing for the stage's `/`. */
  root: string;
  /** The stage's working directory at the end, as a container path. */
  workdir: string;
  env: Record<string, string>;
  steps: StageStep[];
}
export interface StageRunOptions {
  /** The build context (see makeBuildContext). */
  context: string;
  /** Host directory that stands for the stage's `/`. */
  fsRoot: string;
  /** Earlier stages by name, for COPY --from. */
  stages: Map<string, StageRun>;
  /** Environment of RUN commands besides the stage's ENV (PATH, HOME). */
  env: Record<string, string | undefined>;
  timeoutMs: number;
}

const onHost = (root: string, containerPath: string): string => path.join(root, containerPath);

function chmodTree(p: string, mode: number): void {
  if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chmodTree(path.join(p, e), mode);
  else chmodSync(p, mode);
}

/** Runs one stage's WORKDIR, ENV, COPY and RUN instructions; throws naming the line that failed. */
export function runStageOnHost(stage: Stage, opts: StageRunOptions): StageRun {
  const run: StageRun = { root: opts.fsRoot, workdir: '/', env: {}, steps: [] };
  mkdirSync(opts.fsRoot, { recursive: true });
  const where = (ins: Instruction): string => `Containerfile line ${ins.line} (${ins.cmd} ${ins.args})`;
  for (const ins of stage.instructions) {
    const step: StageStep = { instruction: ins };
    run.steps.push(step);
    switch (ins.cmd) {
      case 'WORKDIR':
        run.workdir = path.posix.resolve(run.workdir, ins.args);
        mkdirSync(onHost(opts.fsRoot, run.workdir), { recursive: true });
        break;
      case 'ENV':
        for (const m of ins.args.matchAll(/(\w+)=(\S+)/g)) run.env[m[1]!] = m[2]!;
        break;
      case 'COPY': {
        const { flags, sources, dest } = copyParts(ins);
        const from = flags.get('from');
        const source = from === undefined ? undefined : opts.stages.get(from);
        assert.ok(from === undefined || source, `${where(ins)}: no earlier stage named ${from}`);
        const destPath = path.posix.resolve(run.workdir, dest);
        const destIsDir = dest.endsWith('/') || sources.length > 1;
        for (const src of sources) {
          // Without --from, sources are relative to the context and cannot leave it.
          const srcPath = source ? onHost(source.root, src) : path.join(opts.context, path.posix.normalize(`/${src}`));
          assert.ok(existsSync(srcPath), source ? `${where(ins)}: stage ${from} has no ${src}` : `${where(ins)}: COPY source ${src} is not in the build context (missing, or left out by .dockerignore)`);
          const isDir = statSync(srcPath).isDirectory();
          // A directory's contents go into the destination; a file goes into it when it is a directory.
          const target = onHost(opts.fsRoot, isDir || !destIsDir ? destPath : path.posix.join(destPath, path.basename(src)));
          mkdirSync(isDir ? target : path.dirname(target), { recursive: true });
          cpSync(srcPath, target, { recursive: true });
          if (flags.has('chmod')) chmodTree(target, parseInt(flags.get('chmod')!, 8));
          if (flags.has('chown') && process.getuid?.() === 0) {
            const [uid, gid] = flags.get('chown')!.split(':').map(Number);
            chownSync(target, uid!, gid ?? uid!);
          }
        }
        break;
      }
      case 'RUN': {
        // Shell form runs under /bin/sh -c, as in the image; exec form directly.
        const argv = ins.args.startsWith('[') ? execForm(ins.args, `${where(ins)}`) : ['/bin/sh', '-c', ins.args];
        const r = spawnSync(argv[0]!, argv.slice(1), {
          cwd: onHost(opts.fsRoot, run.workdir),
          env: { ...opts.env, ...run.env },
          encoding: 'utf8',
          timeout: opts.timeoutMs,
        });
        step.status = r.status;
        step.output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
        assert.equal(r.status, 0, `${where(ins)} exited ${r.status ?? r.signal}${r.error ? ` (${r.error.message})` : ''}:\n${step.output}`);
        break;
      }
      // Metadata only: nothing on the file system changes.
      case 'ARG':
      case 'LABEL':
      case 'USER':
      case 'EXPOSE':
      case 'HEALTHCHECK':
      case 'ENTRYPOINT':
      case 'CMD':
        break;
      default:
        assert.fail(`${where(ins)}: the host executor does not know ${ins.cmd}; teach it before using it`);
    }
  }
  return run;
}
