// The shipped monitoring files (Grafana dashboard, Prometheus rules) read as data: their PromQL, the metric names and label matchers in it; and the /metrics text they are checked against.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export const MONITORING = path.resolve(__dirname, '..', '..', 'monitoring');
export const DASHBOARD_FILE = path.join(MONITORING, 'grafana', 'ormai-proxy.json');
export const RULES_FILE = path.join(MONITORING, 'prometheus', 'ormai-proxy-rules.yaml');
export const RULES_TEST_FILE = path.join(MONITORING, 'prometheus', 'ormai-proxy-rules.test.yaml');

export interface DashboardTarget {
  expr?: string;
  refId?: string;
  datasource?: unknown;
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  datasource?: unknown;
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: DashboardTarget[];
  /** A collapsed row keeps its panels here. */
  panels?: DashboardPanel[];
}

export interface DashboardVariable {
  name: string;
  type: string;
  query?: string | { query?: string };
  datasource?: unknown;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: DashboardVariable[] };
}

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleFile {
  groups: Array<{ name: string; rules: AlertRule[] }>;
}

/** One PromQL expression and where it came from, for messages. */
export interface Expression {
  where: string;
  expr: string;
}

export const loadDashboard = (): Dashboard => JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
export const loadRules = (): RuleFile => parse(readFileSync(RULES_FILE, 'utf8')) as RuleFile;

/** Every panel, those inside collapsed rows included. */
export function allPanels(dashboard: Dashboard): DashboardPanel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function dashboardExpressions(dashboard: Dashboard): Expression[] {
  const targets = allPanels(dashboard).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId ?? ''}`, expr: t.expr ?? '' })));
  const variables = dashboard.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({ where: `variable $${v.name}`, expr: typeof v.query === 'string' ? v.query : (v.query?.query ?? '') }));
  return [...targets, ...variables];
}

export function ruleExpressions(rules: RuleFile): Expression[] {
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `${g.name}/${r.alert ?? r.record}`, expr: r.expr })));
}

/** The expression without its string literals, so that a label value is never read as a metric name. */
const withoutStrings = (expr: string): string => expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');

/** The proxy's metric names an expression reads (identifiers starting ormai_), as written: a histogram's _bucket stays. */
export function metricNames(expr: string): string[] {
  return [...new Set(withoutStrings(expr).match(/\bormai_[a-zA-Z0-9_]*/g) ?? [])];
}

export interface LabelMatcher {
  metric: string;
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
  where: string;
}

/** The label matchers of every `ormai_…{…}` selector in an expression. */
export function labelMatchers(e: Expression): LabelMatcher[] {
  const out: LabelMatcher[] = [];
  for (const selector of e.expr.matchAll(/\b(ormai_[a-zA-Z0-9_]*)\s*\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}/g)) {
    for (const m of selector[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      out.push({ metric: selector[1], label: m[1], op: m[2] as LabelMatcher['op'], value: m[3], where: e.where });
    }
  }
  return out;
}

/** The values a matcher names: itself, or each branch of a plain alternation (`a|b`); undefined for a real regex or a dashboard variable. */
export function literalValues(m: LabelMatcher): string[] | undefined {
  if (m.value.includes('$')) return undefined;
  if (m.op === '=' || m.op === '!=') return [m.value];
  const branches = m.value.split('|');
  return branches.every((b) => /^[a-zA-Z0-9_]+$/.test(b)) ? branches : undefined;
}

/** A histogram's series name (`x_bucket`, `x_sum`, `x_count`) → the metric it belongs to. */
export function histogramBase(name: string): string | undefined {
  return /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
}

/** The exposition as name{labels} → value, checking every line is a comment or a well-formed sample (prom-client writes NaN as Nan; Prometheus reads either). */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* /.test(line)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (-?[0-9.e+-]+|[Nn]a[Nn]|[+-]Inf)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    samples.set(m[1], Number(m[2]));
  }
  return samples;
}

/** `# TYPE name type` lines of a Prometheus text exposition: name → type. */
export function exposedTypes(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/gm)) types.set(m[1], m[2]);
  return types;
}

/** The names in `names` that the exposition has no metric for (a histogram's _bucket/_sum/_count count as its histogram's). */
export function missingFrom(types: Map<string, string>, names: Iterable<string>): string[] {
  return [...names].filter((name) => {
    if (types.has(name)) return false;
    const base = histogramBase(name);
    return !(base && (types.get(base) === 'histogram' || types.get(base) === 'summary'));
  });
}

/**
 * Grafana's variables replaced by values PromQL accepts, so that a dashboard expression can be
 * parsed by promtool: the dashboard's own $job/$instance become `.*`, the interval macros durations,
 * and a variable's `label_values(selector, label)` its selector.
 */
export function withGrafanaVariables(expr: string): string {
  return expr
    .replace(/^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$/, '$1')
    .replace(/\$__rate_interval|\$__interval|\$__range/g, '5m')
    .replace(/\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?/g, '.*');
}

/** promtool from PROMTOOL or the PATH; undefined when it is not installed (Debian/Ubuntu: `apt-get install prometheus`). */
export function findPromtool(): string | undefined {
  const candidates = [process.env.PROMTOOL, ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'promtool'))];
  for (const c of candidates) {
    if (c && existsSync(c) && spawnSync(c, ['--version'], { encoding: 'utf8' }).status === 0) return c;
  }
  return undefined;
}
