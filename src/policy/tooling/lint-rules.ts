// The policy lint rules of `ormai-proxy check`: pure functions of a policy and (when the database answered) its catalog.
import type { PolicySnapshot } from '../load';
import { profileDefaults, type RawPolicy, type WriteOperation } from '../schema';
import { compileScope, PolicyCatalogError, type CatalogSnapshot, type ReadScope, type ScopedTable } from '../scope';
import { domainAnalysisFindings, domainTemplateFindings } from './domain-lint';
import type { Finding, FindingSeverity, LintRule } from './findings';

export interface LintOptions {
  /** Tables the proxy itself owns (`schema.name`, e.g. the approvals table): never reported as unregistered. */
  ownTables?: ReadonlySet<string>;
}

const SYSTEM_SCHEMA = /^(pg_catalog|information_schema|pg_toast.*|pg_temp.*)$/;

function tableName(ref: string): string {
  return ref.toLowerCase().split('.').pop()!;
}

type Grant = RawPolicy['enable_writes'][number];

/** The grant that applies to a table and operation: the first that covers both, as the proxy decides (load.ts writeRule). */
function coveringGrant(raw: RawPolicy, table: string, op: WriteOperation): { grant: Grant; index: number } | undefined {
  const index = raw.enable_writes.findIndex((g) => g.operations.includes(op) && g.models.some((m) => tableName(m) === table));
  return index < 0 ? undefined : { grant: raw.enable_writes[index], index };
}

function finding(policy: PolicySnapshot, severity: FindingSeverity, rule: LintRule, subject: string | undefined, message: string): Finding {
  return { severity, policy: policy.name, rule, ...(subject ? { subject } : {}), message };
}

/** Rules that need only the policy file (and, for domain tools, the parser). */
export function lintPolicyStatic(policy: PolicySnapshot): Finding[] {
  const { raw } = policy;
  const out: Finding[] = [];
  if (raw.max_scan_rows === undefined) {
    out.push(finding(policy, 'warning', 'max_scan_rows_missing', undefined, 'no max_scan_rows: a read is never checked against the planner estimate, so one query may scan whole tables; set a budget such as max_scan_rows: 100000'));
  }
  if (raw.enable_writes.length > 0 && raw.max_writes_per_minute === undefined) {
    out.push(finding(policy, 'warning', 'max_writes_per_minute_missing', undefined, 'writes are enabled but max_writes_per_minute is not set: an agent may write as fast as the database accepts; set a budget such as max_writes_per_minute: 20'));
  }
  for (const model of policy.models) {
    const optional: string[] = [];
    let explicit = false;
    for (const op of ['create', 'update', 'delete'] as const) {
      const covering = coveringGrant(raw, model.table, op);
      if (!covering || (covering.grant.require_reason ?? profileDefaults[raw.profile].require_reason)) continue;
      optional.push(op);
      explicit ||= covering.grant.require_reason === false;
    }
    if (optional.length === 0) continue;
    const why = explicit ? 'require_reason: false' : `profile ${raw.profile} does not require one`;
    out.push(finding(policy, 'warning', 'write_reason_optional', model.table, `${optional.join(', ')} run without a reason (${why}): the audit trail will not say why a row changed; set require_reason: true`));
  }
  raw.require_approval.forEach((rule, i) => {
    const table = tableName(rule.model);
    const subject = `require_approval[${i}]`;
    if (!policy.tables.has(table)) {
      out.push(finding(policy, 'error', 'approval_rule_unreachable', subject, `${rule.operation} on ${rule.model}: "${rule.model}" is not in models, so the rule never applies`));
    } else if (!coveringGrant(raw, table, rule.operation)) {
      out.push(
        finding(policy, 'error', 'approval_rule_unreachable', subject, `${rule.operation} on ${rule.model}: no enable_writes grant allows it, so the write is refused (model_writes_disabled) before approval is considered; add a grant or remove the rule`),
      );
    }
  });
  return [...out, ...domainTemplateFindings(policy)];
}

function displayName(catalog: CatalogSnapshot, rel: { schema: string; name: string }): string {
  return catalog.searchPath[0] === rel.schema ? rel.name : `${rel.schema}.${rel.name}`;
}

/** How a column's type (format_type text) matches the policy's tenant type: integer vs bigint still compares, text vs integer does not. */
function tenantTypeFit(policyType: string, columnType: string): 'same' | 'compatible' | 'wrong' {
  const family = (t: string) =>
    /^(smallint|integer|bigint|int[248]?)$/.test(t) ? 'int' : /^(text|character varying|character|varchar|char)\b/.test(t) ? 'text' : t === 'uuid' ? 'uuid' : t;
  const want = policyType === 'text' ? 'text' : policyType === 'uuid' ? 'uuid' : 'int';
  if (family(columnType) !== want) return 'wrong';
  return want !== 'int' || columnType === policyType ? 'same' : 'compatible';
}

function tenantFindings(policy: PolicySnapshot, scope: ReadScope, catalog: CatalogSnapshot, options: LintOptions): Finding[] {
  const tenant = policy.raw.tenant_scope;
  if (!tenant) return [];
  const column = tenant.column.toLowerCase();
  const out: Finding[] = [];
  for (const table of scope.tables.values()) {
    const name = displayName(catalog, table);
    if (!table.tenantColumn) {
      out.push(finding(policy, 'info', 'global_table', name, `no ${column} column: a global lookup table, every tenant reads all of its rows`));
      continue;
    }
    const col = catalog.relations.get(`${table.schema}.${table.name}`)?.columns.find((c) => c.name === column);
    if (!col) continue;
    if (!col.notNull) {
      out.push(finding(policy, 'warning', 'tenant_column_nullable', `${name}.${column}`, `the tenant column allows NULL: such rows are invisible to every agent and belong to no tenant; add NOT NULL`));
    }
    const fit = tenantTypeFit(tenant.type, col.type);
    if (fit !== 'same') {
      const effect = fit === 'wrong' ? 'every read and write of the table fails' : 'tenant ids outside the narrower type are refused or never match';
      out.push(finding(policy, fit === 'wrong' ? 'error' : 'warning', 'tenant_column_type', `${name}.${column}`, `tenant_scope.type is ${tenant.type} but the column is ${col.type}: ${effect}`));
    }
  }
  for (const rel of catalog.relations.values()) {
    const key = `${rel.schema}.${rel.name}`;
    if (SYSTEM_SCHEMA.test(rel.schema) || scope.tables.has(key) || options.ownTables?.has(key)) continue;
    if (!rel.columns.some((c) => c.name === column)) continue;
    out.push(finding(policy, 'warning', 'tenant_table_unregistered', displayName(catalog, rel), `has the tenant column ${column} but is not in models: agents cannot read it; if that is an oversight, register it (reads are scoped to the tenant)`));
  }
  return out;
}

function columnFindings(policy: PolicySnapshot, scope: ReadScope, catalog: CatalogSnapshot): Finding[] {
  const out: Finding[] = [];
  for (const table of scope.tables.values()) {
    const name = displayName(catalog, table);
    for (const col of table.columns) {
      const kind = col.mask ? undefined : secretKind(col.name);
      if (kind) {
        out.push(finding(policy, 'error', 'secret_column_visible', `${name}.${col.name}`, `looks like a ${kind} and the agent reads it in clear: add it to deny_fields, or to mask_fields if the agent needs a hint of it`));
      }
    }
    for (const col of maskedWritable(policy.raw, table)) {
      out.push(
        finding(policy, 'warning', 'masked_column_writable', `${name}.${col.name}`, `masked, yet writable (${col.ops.join(', ')}) because the grant has no writable_fields for ${table.name}: the agent can overwrite a value it only sees masked; list the assignable columns in writable_fields`),
      );
    }
  }
  return out;
}

/** Masked columns a grant lets the agent assign because it lists no writable_fields for the table. */
function maskedWritable(raw: RawPolicy, table: ScopedTable): Array<{ name: string; ops: string[] }> {
  const ops = (['create', 'update'] as const).filter((op) => {
    const covering = coveringGrant(raw, table.name, op);
    return covering && !Object.keys(covering.grant.writable_fields ?? {}).some((m) => tableName(m) === table.name);
  });
  if (ops.length === 0) return [];
  return table.columns.filter((c) => c.mask).map((c) => ({ name: c.name, ops: [...ops] }));
}

function approvalFieldFindings(policy: PolicySnapshot, scope: ReadScope): Finding[] {
  const out: Finding[] = [];
  policy.raw.require_approval.forEach((rule, i) => {
    const field = rule.when?.field?.toLowerCase();
    const table = [...scope.tables.values()].find((t) => t.name === tableName(rule.model));
    if (!field || !table || table.columns.some((c) => c.name === field)) return;
    out.push(finding(policy, 'error', 'approval_field_unknown', `require_approval[${i}]`, `when.field "${field}" is not a visible column of ${table.name}: no write assigns it, so the condition never holds and the rule never applies`));
  });
  return out;
}

/** Rules that need the live catalog; a policy that does not compile against it gets one error and nothing else. */
export function lintPolicyCatalog(policy: PolicySnapshot, catalog: CatalogSnapshot, options: LintOptions = {}): Finding[] {
  let scope: ReadScope;
  try {
    scope = compileScope(policy, catalog);
  } catch (err) {
    if (!(err instanceof PolicyCatalogError)) throw err;
    return [finding(policy, 'error', 'catalog_mismatch', undefined, err.message.replace(`policy ${policy.name}: `, ''))];
  }
  return [
    ...tenantFindings(policy, scope, catalog, options),
    ...columnFindings(policy, scope, catalog),
    ...approvalFieldFindings(policy, scope),
    ...domainAnalysisFindings(policy, scope),
  ];
}

/** Every rule; the catalog ones only when a catalog is given (domain tools are then analysed against it, else without it). */
export function lintPolicy(policy: PolicySnapshot, catalog: CatalogSnapshot | undefined, options: LintOptions = {}): Finding[] {
  return [...lintPolicyStatic(policy), ...(catalog ? lintPolicyCatalog(policy, catalog, options) : domainAnalysisFindings(policy, undefined))];
}

// ---- secret-looking column names (secret_column_visible) ----
//
// The always-denied globs (schema.ts ALWAYS_DENIED) already hide the credential names; this
// list is wider because a match does not hide anything by itself: it fails `check` until the
// policy's author denies or masks the column. Short words (ssn, pin, cvv) are matched as whole
// words of the name, so `pinned_at` or `lesson` do not match.

/** Whole words: one part of the name split at `_`, `-`, digits and camelCase boundaries. */
const WORDS: ReadonlyMap<string, string> = new Map([
  ['password', 'password'],
  ['passwd', 'password'],
  ['pwd', 'password'],
  ['passphrase', 'password'],
  ['secret', 'secret'],
  ['token', 'token'],
  ['apikey', 'api key'],
  ['credential', 'credential'],
  ['credentials', 'credential'],
  ['salt', 'password salt'],
  ['otp', 'one-time password'],
  ['totp', 'one-time password'],
  ['ssn', 'social security number'],
  ['cvv', 'card security code'],
  ['cvc', 'card security code'],
  ['pin', 'PIN'],
  ['iban', 'bank account number'],
  ['passport', 'passport number'],
]);

/** Adjacent word pairs, e.g. `api_key`, `creditCard`, `card_number`. */
const PAIRS: ReadonlyMap<string, string> = new Map([
  ['api key', 'api key'],
  ['private key', 'private key'],
  ['secret key', 'secret key'],
  ['access key', 'access key'],
  ['signing key', 'signing key'],
  ['encryption key', 'encryption key'],
  ['session key', 'session key'],
  ['credit card', 'credit card number'],
  ['card number', 'card number'],
  ['cc number', 'card number'],
  ['account number', 'bank account number'],
  ['routing number', 'bank routing number'],
  ['social security', 'social security number'],
  ['tax id', 'tax id'],
  ['national id', 'national id'],
  ['drivers license', 'driving licence number'],
  ['driver license', 'driving licence number'],
]);

/** Written without separators these still read as secrets (`apikey`, `creditcardnumber`); long enough to be safe as substrings. */
const SUBSTRINGS: ReadonlyArray<[string, string]> = [
  ['password', 'password'],
  ['secret', 'secret'],
  ['token', 'token'],
  ['apikey', 'api key'],
  ['privatekey', 'private key'],
  ['creditcard', 'credit card number'],
  ['cardnumber', 'card number'],
];

function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .split(/[^a-z]+/)
    .filter((w) => w.length > 0);
}

/** What the name looks like (e.g. "social security number"), or undefined when it looks harmless. */
export function secretKind(column: string): string | undefined {
  const parts = words(column);
  for (let i = 0; i + 1 < parts.length; i++) {
    const pair = PAIRS.get(`${parts[i]} ${parts[i + 1]}`);
    if (pair) return pair;
  }
  for (const w of parts) {
    const kind = WORDS.get(w);
    if (kind) return kind;
  }
  const flat = parts.join('');
  return SUBSTRINGS.find(([s]) => flat.includes(s))?.[1];
}
