// Lint findings of `ormai-proxy check`: the record, its one-line text form, the summary and the exit code.

/** error: fails `check`; warning: fails it only under --strict; info: never fails it. */
export type FindingSeverity = 'error' | 'warning' | 'info';

/** The rule identifiers, stable: scripts may filter on them. */
export const LINT_RULES = {
  catalog_mismatch: 'the policy does not compile against the live schema (a model or the tenant column is missing or hidden)',
  tenant_table_unregistered: 'a table has the tenant column but the policy does not register it',
  global_table: 'a registered table has no tenant column: every tenant reads all of its rows',
  tenant_column_nullable: 'the tenant column allows NULL',
  tenant_column_type: "tenant_scope.type does not match the column's type",
  secret_column_visible: 'a column whose name looks secret is neither denied nor masked',
  masked_column_writable: 'a masked column is writable by default (no writable_fields)',
  write_reason_optional: 'writes are enabled without a required reason',
  max_scan_rows_missing: 'no max_scan_rows',
  max_writes_per_minute_missing: 'writes are enabled without max_writes_per_minute',
  approval_rule_unreachable: 'a require_approval rule names a model or operation no write grant allows',
  approval_field_unknown: "a require_approval rule's when.field is not a visible column of the model",
  domain_tool_invalid: "a domain tool's sql does not parse as one statement, or its :name parameters and params do not match",
  domain_tool_refused: "the proxy's analysis refuses a domain tool's statement under the policy (a hidden table or column, DDL, a write no grant allows)",
  domain_tool_tenant_param: 'a domain tool takes the tenant column as a parameter, which the proxy sets itself',
} as const;

export type LintRule = keyof typeof LINT_RULES;

export interface Finding {
  severity: FindingSeverity;
  /** The policy's name. */
  policy: string;
  rule: LintRule;
  /** What the finding is about: `table`, `table.column`, `require_approval[1]`, `tools[0] analytics.weekly_revenue`; absent for policy-wide findings. */
  subject?: string;
  message: string;
}

export interface FindingCounts {
  errors: number;
  warnings: number;
  info: number;
}

const SEVERITY_ORDER: Record<FindingSeverity, number> = { error: 0, warning: 1, info: 2 };

/** Under --strict a warning is an error, in the output as in the exit code, so the two never disagree. */
export function applyStrict(findings: readonly Finding[], strict: boolean): Finding[] {
  return findings.map((f) => (strict && f.severity === 'warning' ? { ...f, severity: 'error' } : f));
}

/**
 * A stable order for output and diffs: policies in file order (the caller lints them in that
 * order), then severity, rule and subject.
 */
export function sortFindings(findings: readonly Finding[], policyOrder: readonly string[]): Finding[] {
  const rank = (p: string) => {
    const i = policyOrder.indexOf(p);
    return i < 0 ? policyOrder.length : i;
  };
  return [...findings].sort(
    (a, b) =>
      rank(a.policy) - rank(b.policy) ||
      SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] ||
      a.rule.localeCompare(b.rule) ||
      (a.subject ?? '').localeCompare(b.subject ?? ''),
  );
}

export function countFindings(findings: readonly Finding[]): FindingCounts {
  return {
    errors: findings.filter((f) => f.severity === 'error').length,
    warnings: findings.filter((f) => f.severity === 'warning').length,
    info: findings.filter((f) => f.severity === 'info').length,
  };
}

/** `warning quickstart max_scan_rows_missing: …` or `error quickstart secret_column_visible customers.ssn: …` */
export function formatFinding(f: Finding): string {
  return `${f.severity.padEnd(7)} ${f.policy} ${f.rule}${f.subject ? ` ${f.subject}` : ''}: ${f.message}`;
}

export function formatCounts(c: FindingCounts): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${plural(c.errors, 'error')}, ${plural(c.warnings, 'warning')}, ${c.info} info`;
}
