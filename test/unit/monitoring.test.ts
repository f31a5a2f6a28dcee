// The shipped Grafana dashboard and Prometheus rules: their structure, that they read only metrics and label values the proxy has, and promtool's checks and rule tests when promtool is installed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { ANALYSIS_ERROR_CODES, BUDGET_CODES, CONNECTION_REFUSALS, metricCode, ProxyMetrics } from '../../src/admin/metrics';
import { catalogue } from '../../src/errors/catalogue';
import {
  allPanels,
  dashboardExpressions,
  type Expression,
  exposedTypes,
  findPromtool,
  labelMatchers,
  literalValues,
  loadDashboard,
  loadRules,
  metricNames,
  missingFrom,
  RULES_FILE,
  RULES_TEST_FILE,
  ruleExpressions,
  withGrafanaVariables,
} from '../support/monitoring';

const dashboard = loadDashboard();
const rules = loadRules();
const alerts = rules.groups.flatMap((g) => g.rules);
const everyExpression: Expression[] = [...dashboardExpressions(dashboard), ...ruleExpressions(rules)];
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

/** Labels Prometheus adds to every scraped series, and a histogram's bucket bound. */
const TARGET_LABELS = new Set(['job', 'instance']);

/** Each labelled metric's labels and the values the proxy can give them (src/admin/metrics.ts). */
const KNOWN_VALUES: Record<string, Record<string, ReadonlySet<string> | ((v: string) => boolean)>> = {
  ormai_statements_total: {
    kind: new Set(['read', 'write', 'transaction', 'session', 'unknown', 'other']),
    decision: new Set(['allowed', 'refused', 'held', 'error', 'other']),
    // metricCode keeps a value only if it is a catalogue code or a SQLSTATE.
    code: (v) => metricCode(v) === v,
  },
  ormai_budget_refusals_total: { code: new Set(BUDGET_CODES) },
  ormai_approvals_total: { decision: new Set(['approved', 'denied', 'expired', 'executed', 'failed']) },
  ormai_analysis_errors_total: { code: new Set(ANALYSIS_ERROR_CODES) },
  ormai_connections_refused_total: { reason: new Set([...CONNECTION_REFUSALS, 'other']) },
  ormai_logins_total: { method: new Set(['scram-sha-256', 'password', 'jwt', 'other']), outcome: new Set(['success', 'failure']) },
  ormai_parser_recycles_total: { reason: new Set(['failure', 'memory']) },
  ormai_policy_info: { name: () => true, hash: () => true },
  ormai_build_info: { version: () => true, node: () => true },
};

let exposition: Map<string, string>;
beforeAll(async () => {
  exposition = exposedTypes(await new ProxyMetrics().text());
});

describe('the Grafana dashboard', () => {
  const panels = allPanels(dashboard);

  test('uses a Prometheus data source variable, never a data source uid of its own', () => {
    const variable = dashboard.templating.list.find((v) => v.type === 'datasource');
    expect(variable).toMatchObject({ name: 'datasource', query: 'prometheus' });
    for (const p of panels.filter((x) => x.type !== 'row')) {
      expect({ panel: p.id, datasource: p.datasource }).toEqual({ panel: p.id, datasource: DATASOURCE });
      for (const t of p.targets ?? []) expect({ panel: p.id, datasource: t.datasource }).toEqual({ panel: p.id, datasource: DATASOURCE });
    }
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) expect(v.datasource).toEqual(DATASOURCE);
    // The only other data source is Grafana's own, for its built-in annotations.
    const uids = [...JSON.stringify(dashboard).matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1]);
    expect(new Set(uids)).toEqual(new Set([dashboard.uid, '${datasource}', '-- Grafana --']));
  });

  test('has unique panel ids, and every panel but a row queries PromQL with unique refIds', () => {
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      if (p.type === 'row') continue;
      expect({ panel: p.title, targets: (p.targets ?? []).length > 0 }).toEqual({ panel: p.title, targets: true });
      for (const t of p.targets ?? []) expect({ panel: p.title, expr: t.expr?.trim() !== '' && t.expr !== undefined }).toEqual({ panel: p.title, expr: true });
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
      expect(p.gridPos!.x + p.gridPos!.w).toBeLessThanOrEqual(24);
    }
  });

  test('every selector of a proxy metric is filtered by the $job and $instance variables', () => {
    for (const e of dashboardExpressions(dashboard).filter((x) => x.where.startsWith('panel'))) {
      const selectors = [...e.expr.matchAll(/\b(?:ormai_[a-zA-Z0-9_]*|up)\{([^}]*)\}/g)];
      expect({ where: e.where, bare: /\bormai_[a-zA-Z0-9_]*\s*(?![{a-zA-Z0-9_])/.test(e.expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) }).toEqual({ where: e.where, bare: false });
      for (const s of selectors) expect({ where: e.where, selector: s[1] }).toEqual({ where: e.where, selector: expect.stringContaining('job=~"$job", instance=~"$instance"') });
    }
  });

  test('shows what an operator needs: sessions, statements, refusals, latency, audit, approvals, reloads, cache, store', () => {
    const used = new Set(dashboardExpressions(dashboard).flatMap((e) => metricNames(e.expr)));
    for (const name of [
      'ormai_sessions_active',
      'ormai_statements_total',
      'ormai_budget_refusals_total',
      'ormai_upstream_duration_seconds_bucket',
      'ormai_rewrite_duration_seconds_bucket',
      'ormai_audit_queue_depth',
      'ormai_audit_failures_total',
      'ormai_audit_dropped_total',
      'ormai_approvals_pending',
      'ormai_approvals_oldest_pending_seconds',
      'ormai_approvals_total',
      'ormai_policy_reloads_total',
      'ormai_policy_reload_failures_total',
      'ormai_statement_cache_hits_total',
      'ormai_statement_cache_misses_total',
      'ormai_rate_limit_store_up',
    ]) {
      expect(used).toContain(name);
    }
    // Latency quantiles come from the histograms' buckets, aggregated by le.
    const quantiles = dashboardExpressions(dashboard).filter((e) => e.expr.includes('histogram_quantile'));
    expect(quantiles.map((e) => /histogram_quantile\((0\.\d+),/.exec(e.expr)?.[1])).toEqual(['0.5', '0.95', '0.99', '0.5', '0.95', '0.99']);
    for (const e of quantiles) expect(e.expr).toMatch(/sum by \(le\) \(rate\(ormai_[a-z_]+_seconds_bucket\{/);
  });
});

describe('the alert rules', () => {
  test('each alert has a unique name, a severity, and a summary and description', () => {
    const names = alerts.map((r) => r.alert);
    expect(names.every((n) => typeof n === 'string' && /^Ormai[A-Za-z]+$/.test(n))).toBe(true);
    expect(new Set(names).size).toBe(names.length);
    for (const r of alerts) {
      expect({ alert: r.alert, severity: r.labels?.severity }).toEqual({ alert: r.alert, severity: expect.stringMatching(/^(critical|warning)$/) });
      expect({ alert: r.alert, summary: (r.annotations?.summary ?? '').length > 10, description: (r.annotations?.description ?? '').length > 40 }).toEqual({ alert: r.alert, summary: true, description: true });
    }
  });

  test('cover the failures the proxy can have', () => {
    const exprOf = (name: string) => alerts.find((r) => r.alert === name)?.expr ?? '';
    expect(exprOf('OrmaiProxyDown')).toMatch(/^up\{job="ormai-proxy"\} == 0$/);
    expect(exprOf('OrmaiAuditSinkFailing')).toContain('ormai_audit_failures_total');
    expect(exprOf('OrmaiAuditQueueBacklog')).toContain('ormai_audit_queue_depth');
    expect(exprOf('OrmaiAuditEventsDropped')).toContain('ormai_audit_dropped_total');
    expect(exprOf('OrmaiRefusalSpike')).toContain('decision="refused"');
    expect(exprOf('OrmaiWriteRateBudgetExhausted')).toContain('ormai_budget_refusals_total{code="write_rate_limited"}');
    expect(exprOf('OrmaiStatementTimeouts')).toContain('code="57014"');
    expect(exprOf('OrmaiStatementDeadlineExceeded')).toContain('code="statement_deadline_exceeded"');
    expect(exprOf('OrmaiApprovalPendingTooLong')).toContain('ormai_approvals_oldest_pending_seconds');
    expect(exprOf('OrmaiPolicyReloadFailing')).toContain('ormai_policy_reload_failures_total');
    expect(exprOf('OrmaiRateLimitStoreDown')).toContain('ormai_rate_limit_store_up == 0');
  });

  test('the promtool tests cover every alert, each with a time it fires and a time it does not', () => {
    const file = parse(readFileSync(RULES_TEST_FILE, 'utf8')) as { rule_files: string[]; tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }> };
    expect(file.rule_files).toEqual([path.basename(RULES_FILE)]);
    const cases = file.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const r of alerts) {
      const own = cases.filter((c) => c.alertname === r.alert);
      expect({ alert: r.alert, fires: own.some((c) => (c.exp_alerts ?? []).length > 0), quiet: own.some((c) => (c.exp_alerts ?? []).length === 0) }).toEqual({ alert: r.alert, fires: true, quiet: true });
    }
  });

  test('the codes they select are the ones the proxy emits for these events', () => {
    // PostgreSQL cancels a statement at statement_timeout with 57014 (query_canceled); the proxy's
    // own deadline, past the timeout and its margin, is a catalogue code with the same SQLSTATE.
    expect(catalogue.statement_deadline_exceeded.sqlstate).toBe('57014');
    expect(catalogue.write_rate_limited).toBeDefined();
    expect(BUDGET_CODES).toContain('write_rate_limited');
  });
});

describe('dashboard and rules against the metrics the proxy has', () => {
  test('every ormai_ metric they read is registered by ProxyMetrics (a histogram by its _bucket/_sum/_count)', () => {
    const used = new Set(everyExpression.flatMap((e) => metricNames(e.expr)));
    expect(used.size).toBeGreaterThan(20);
    expect(missingFrom(exposition, used)).toEqual([]);
  });

  test('every label they match on is one the metric has, with values the proxy can give it', () => {
    const matchers = everyExpression.flatMap(labelMatchers);
    expect(matchers.length).toBeGreaterThan(50);
    for (const m of matchers) {
      if (TARGET_LABELS.has(m.label)) continue;
      if (m.label === 'le') {
        expect(m.metric).toMatch(/_bucket$/);
        continue;
      }
      const known = KNOWN_VALUES[m.metric]?.[m.label];
      expect({ where: m.where, metric: m.metric, label: m.label, known: known !== undefined }).toEqual({ where: m.where, metric: m.metric, label: m.label, known: true });
      const values = literalValues(m);
      expect({ where: m.where, matcher: `${m.label}${m.op}"${m.value}"`, literal: values !== undefined }).toEqual({ where: m.where, matcher: `${m.label}${m.op}"${m.value}"`, literal: true });
      for (const v of values ?? []) {
        const ok = typeof known === 'function' ? known(v) : known!.has(v);
        expect({ where: m.where, [m.label]: v, emitted: ok }).toEqual({ where: m.where, [m.label]: v, emitted: true });
        // A code is a catalogue code, or a five-character SQLSTATE from PostgreSQL itself.
        if (m.label === 'code' && !/^[0-9A-Z]{5}$/.test(v)) expect(Object.keys(catalogue)).toContain(v);
      }
    }
  });

  test('the label names in KNOWN_VALUES are the metrics\' real label names', () => {
    const proxy = new ProxyMetrics({ defaultMetrics: false });
    for (const [metric, labels] of Object.entries(KNOWN_VALUES)) {
      // prom-client keeps a metric's label names on the instance without typing them.
      const registered = proxy.registry.getSingleMetric(metric) as unknown as { labelNames: string[] } | undefined;
      expect({ metric, labels: [...(registered?.labelNames ?? [])].sort() }).toEqual({ metric, labels: Object.keys(labels).sort() });
    }
  });
});

const promtool = findPromtool();
const NO_PROMTOOL = 'promtool is not installed (Debian/Ubuntu: apt-get install prometheus; or set PROMTOOL=/path/to/promtool): skipped';
if (!promtool) process.stderr.write(`\nmonitoring.test.ts: ${NO_PROMTOOL}\n`);

// CI sets ORMAI_REQUIRE_PROMTOOL=1, so that a runner without promtool fails instead of skipping.
(process.env.ORMAI_REQUIRE_PROMTOOL === '1' ? test : test.skip)('promtool is installed (ORMAI_REQUIRE_PROMTOOL=1)', () => {
  expect(promtool).toBeDefined();
});

describe(promtool ? `promtool (${promtool})` : `promtool: ${NO_PROMTOOL}`, () => {
  const run = (args: string[], cwd?: string) => {
    const r = spawnSync(promtool!, args, { encoding: 'utf8', cwd });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  };
  const maybe = promtool ? test : test.skip;

  maybe('check rules: the rule file is valid', () => {
    const r = run(['check', 'rules', RULES_FILE]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  maybe('test rules: each alert fires on its input series and stays quiet on the others', () => {
    const r = run(['test', 'rules', path.basename(RULES_TEST_FILE)], path.dirname(RULES_TEST_FILE));
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  maybe('every dashboard expression is valid PromQL (checked as recording rules, Grafana variables filled in)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ormai-dashboard-promql-'));
    try {
      const exprs = dashboardExpressions(dashboard);
      const file = path.join(dir, 'dashboard.yaml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `ormai:dashboard:expr_${i}`, expr: withGrafanaVariables(e.expr) })) }] }));
      const r = run(['check', 'rules', file]);
      expect(r.output).toContain(`SUCCESS: ${exprs.length} rules found`);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
