// Pulls every PromQL expression out of the shipped Grafana dashboard and Prometheus rule files,
// and turns dashboard expressions into something a plain Prometheus can evaluate (template
// variables substituted).
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const promDir = path.join(repoRoot, 'deploy', 'prometheus');
export const rulesDir = path.join(promDir, 'rules');
export const rulesTestsDir = path.join(rulesDir, 'tests');
export const dashboardFile = path.join(repoRoot, 'deploy', 'grafana', 'pve-exporter.json');

export type ExpressionKind = 'panel' | 'variable' | 'alert' | 'record';

export interface Expression {
  /** Stable, human-readable key, e.g. "dashboard/Node CPU usage/A" or "alert/PveNodeDown". */
  key: string;
  kind: ExpressionKind;
  /** The expression as written in the file. */
  raw: string;
  /** For a variable: the label whose values it lists. */
  label?: string;
}

/** Example Prometheus configurations shipped in deploy/prometheus. */
export function exampleConfigs(): string[] {
  return readdirSync(promDir)
    .filter((f) => /^prometheus\..+\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(promDir, f));
}

/** Rule files (alerting and recording) shipped in deploy/prometheus/rules. */
export function ruleFiles(): string[] {
  return readdirSync(rulesDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(rulesDir, f));
}

/** promtool unit test files in deploy/prometheus/rules/tests. */
export function ruleTestFiles(): string[] {
  return readdirSync(rulesTestsDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(rulesTestsDir, f));
}

interface RuleGroupFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string; for?: string }[] }[];
}

export function readRuleFile(file: string): RuleGroupFile {
  return YAML.parse(readFileSync(file, 'utf8')) as RuleGroupFile;
}

export function ruleExpressions(files = ruleFiles()): Expression[] {
  const out: Expression[] = [];
  for (const file of files) {
    for (const group of readRuleFile(file).groups) {
      for (const rule of group.rules) {
        const name = rule.alert ?? rule.record;
        if (!name || typeof rule.expr !== 'string') {
          throw new Error(`${path.basename(file)}: group ${group.name} has a rule without name or expr`);
        }
        const kind: ExpressionKind = rule.alert ? 'alert' : 'record';
        out.push({ key: `${kind}/${name}`, kind, raw: rule.expr.trim() });
      }
    }
  }
  return out;
}

/** Names of all alerts in the shipped rule files. */
export function alertNames(files = ruleFiles()): string[] {
  return ruleExpressions(files)
    .filter((e) => e.kind === 'alert')
    .map((e) => e.key.slice('alert/'.length));
}

interface Panel {
  title?: string;
  type?: string;
  targets?: { expr?: string; refId?: string; hide?: boolean }[];
  panels?: Panel[];
}

interface Dashboard {
  panels: Panel[];
  templating?: { list: { name: string; type: string; query?: unknown; definition?: string }[] };
}

export function readDashboard(file = dashboardFile): Dashboard {
  return JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
}

/** Every panel (rows' nested panels included), depth first. */
export function allPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  const walk = (ps: Panel[] | undefined): void => {
    for (const p of ps ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

/**
 * Parses the Grafana Prometheus variable query forms this dashboard may use. Anything else is an
 * error, so a new kind of variable query cannot slip past the evaluation test unchecked.
 */
export function variableQueryToExpression(query: string): { expr: string; label: string } {
  const q = query.trim();
  const lv = /^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$/s.exec(q);
  if (lv) return { expr: lv[1].trim(), label: lv[2] };
  const qr = /^query_result\((.+)\)$/s.exec(q);
  if (qr) return { expr: qr[1].trim(), label: '__name__' };
  throw new Error(`unsupported variable query form: ${query}`);
}

export function dashboardExpressions(d: Dashboard = readDashboard()): Expression[] {
  const out: Expression[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (t.hide) continue;
      if (typeof t.expr !== 'string' || t.expr.trim() === '') {
        throw new Error(`panel "${p.title}" target ${t.refId} has no expr`);
      }
      out.push({ key: `dashboard/${p.title}/${t.refId}`, kind: 'panel', raw: t.expr.trim() });
    }
  }
  for (const v of d.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    if (!q) throw new Error(`variable ${v.name} has no query`);
    const { expr, label } = variableQueryToExpression(q);
    out.push({ key: `variable/${v.name}`, kind: 'variable', raw: expr, label });
  }
  return out;
}

export interface DashboardVars {
  /** Values of the dashboard's own variables, already in the form they take inside a query. */
  vars: Record<string, string>;
  /** Grafana's interval variables. */
  rateInterval: string;
  interval: string;
  range: string;
}

/**
 * Replaces Grafana template variables the way Grafana does before sending a query: `$name`,
 * `${name}`, `${name:format}` (format ignored: the values given are already regex-safe) and
 * `[[name]]`, plus the built-in `$__rate_interval`, `$__interval`, `$__range` (and `_s`/`_ms`).
 * Throws on a variable it does not know, so nothing reaches Prometheus half substituted.
 */
export function substituteVariables(expr: string, v: DashboardVars): string {
  const builtins: Record<string, string> = {
    __rate_interval: v.rateInterval,
    __interval: v.interval,
    __range: v.range,
    __range_s: String(durationSeconds(v.range)),
    __range_ms: String(durationSeconds(v.range) * 1000),
    __interval_ms: String(durationSeconds(v.interval) * 1000),
  };
  const lookup = (name: string): string => {
    if (name in builtins) return builtins[name];
    if (name in v.vars) return v.vars[name];
    throw new Error(`unknown dashboard variable $${name} in: ${expr}`);
  };
  return expr
    .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}/g, (_m, n: string) => lookup(n))
    .replace(/\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]/g, (_m, n: string) => lookup(n))
    .replace(/\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, n: string) => lookup(n));
}

function durationSeconds(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (!m) throw new Error(`bad duration ${d}`);
  const n = Number(m[1]);
  return { ms: n / 1000, s: n, m: n * 60, h: n * 3600, d: n * 86400 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
}

/** The alert names each promtool unit test file expects firing, and expects silent, somewhere. */
export function alertTestCoverage(files = ruleTestFiles()): { firing: Set<string>; silent: Set<string> } {
  const firing = new Set<string>();
  const silent = new Set<string>();
  for (const file of files) {
    const doc = YAML.parse(readFileSync(file, 'utf8')) as {
      tests?: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    for (const t of doc.tests ?? []) {
      for (const a of t.alert_rule_test ?? []) {
        if ((a.exp_alerts ?? []).length > 0) firing.add(a.alertname);
        else silent.add(a.alertname);
      }
    }
  }
  return { firing, silent };
}

/** Annotations of every alert in the shipped rule files, by alert name. */
export function alertAnnotations(files = ruleFiles()): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const file of files) {
    const doc = YAML.parse(readFileSync(file, 'utf8')) as { groups: { rules: { alert?: string; annotations?: Record<string, string> }[] }[] };
    for (const g of doc.groups) for (const r of g.rules) if (r.alert) out.set(r.alert, r.annotations ?? {});
  }
  return out;
}
