// npm run refresh:reference [-- --from DIR] [--check]
// Makes reference/pve-api and reference/compat exact copies of DIR/pve-api and DIR/compat
// (default DIR: ../shared beside the repository, where the shared reference lives), and prints
// every file it added, changed or removed. With --check nothing is written: the exit code is 1
// when the copies differ from DIR, so a script can tell whether a refresh is due.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

/** The folders of the shared reference that the repository keeps a copy of. */
export const REFERENCE_FOLDERS = ['pve-api', 'compat'] as const;

const USAGE = `usage: npm run refresh:reference [-- [--from DIR] [--to DIR] [--check]]
  --from DIR   the shared reference, holding ${REFERENCE_FOLDERS.join('/ and ')}/ (default: ../shared beside the repository)
  --to DIR     where the copies live (default: reference/ in the repository)
  --check      write nothing; exit 1 when the copies differ from --from`;

export interface RefreshChange {
  kind: 'added' | 'changed' | 'removed';
  /** Path relative to the copy's root, with "/" separators: "pve-api/version.json". */
  file: string;
}

/** Every regular file below `root`, relative to it ("/" separators), sorted. */
function listFiles(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) out.push(child);
    }
  };
  walk('');
  return out.sort();
}

function digest(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Compares (and unless `check`, synchronises) `to/<folder>` with `from/<folder>`. */
export function refreshReference(from: string, to: string, check: boolean): RefreshChange[] {
  const changes: RefreshChange[] = [];
  for (const folder of REFERENCE_FOLDERS) {
    const source = path.join(from, folder);
    if (!existsSync(source) || !statSync(source).isDirectory()) {
      throw new Error(`refresh-reference: ${source} is not a folder (give the shared reference with --from DIR)`);
    }
    const target = path.join(to, folder);
    const wanted = listFiles(source);
    const have = new Set(listFiles(target));
    for (const rel of wanted) {
      const src = path.join(source, ...rel.split('/'));
      const dst = path.join(target, ...rel.split('/'));
      const kind = !have.has(rel) ? 'added' : digest(src) !== digest(dst) ? 'changed' : undefined;
      have.delete(rel);
      if (kind === undefined) continue;
      changes.push({ kind, file: `${folder}/${rel}` });
      if (!check) {
        mkdirSync(path.dirname(dst), { recursive: true });
        copyFileSync(src, dst);
      }
    }
    for (const rel of have) {
      changes.push({ kind: 'removed', file: `${folder}/${rel}` });
      if (!check) rmSync(path.join(target, ...rel.split('/')));
    }
  }
  return changes.sort((a, b) => a.file.localeCompare(b.file));
}

function main(): void {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  let values: { from?: string; to?: string; check?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { from: { type: 'string' }, to: { type: 'string' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const from = path.resolve(values.from ?? path.join(repoRoot, '..', 'shared'));
  const to = path.resolve(values.to ?? path.join(repoRoot, 'reference'));
  const check = values.check === true;
  let changes: RefreshChange[];
  try {
    changes = refreshReference(from, to, check);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  for (const c of changes) process.stdout.write(`${c.kind.padEnd(7)} ${c.file}\n`);
  const verb = check ? 'differ from' : 'refreshed from';
  process.stdout.write(
    changes.length === 0 ? `reference data in ${to} is up to date with ${from}\n` : `${changes.length} file(s) in ${to} ${verb} ${from}\n`,
  );
  if (check && changes.length > 0) process.exit(1);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
