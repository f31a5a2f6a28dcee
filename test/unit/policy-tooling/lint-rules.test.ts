// The lint rules of `ormai-proxy check`, each against a hand-made catalog (the quickstart schema plus what the rule needs).
import { loadPolicyFile, buildPolicy } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';
import type { CatalogRelation, CatalogSnapshot } from '../../../src/policy/scope';
import type { Finding } from '../../../src/policy/tooling/findings';
import { lintPolicy, lintPolicyCatalog, lintPolicyStatic } from '../../../src/policy/tooling/lint-rules';
import { QUICKSTART, quickstartCatalog } from '../analysis/rewrite-scope';

type Col = [name: string, type: string, notNull?: boolean];

function withTable(catalog: CatalogSnapshot, schema: string, name: string, cols: Col[]): CatalogSnapshot {
  const oid = 20000 + catalog.relations.size;
  const rel: CatalogRelation = {
    schema,
    name,
    oid,
    kind: 'r',
    rowEstimate: -1,
    columns: cols.map(([n, type, notNull = true], i) => ({ name: n, attnum: i + 1, type, typeOid: type === 'text' ? 25 : 23, notNull })),
  };
  catalog.relations.set(`${schema}.${name}`, rel);
  return catalog;
}

const base = loadPolicyFile(QUICKSTART).raw;
/** The quickstart policy with some keys replaced; max_scan_rows set so that only the rule under test speaks. */
function policy(change: Record<string, unknown> = {}) {
  return buildPolicy(policySchema.parse({ ...base, max_scan_rows: 100000, ...change }), 'test-policy.yaml');
}

const brief = (findings: Finding[]) => findings.map((f) => `${f.severity} ${f.rule}${f.subject ? ` ${f.subject}` : ''}`).sort();

test('the quickstart policy against its own schema: no findings; without max_scan_rows, that one', () => {
  expect(lintPolicy(loadPolicyFile(QUICKSTART), quickstartCatalog())).toEqual([]);
  const findings = lintPolicy(buildPolicy(policySchema.parse({ ...base, max_scan_rows: undefined }), 'test-policy.yaml'), quickstartCatalog());
  expect(brief(findings)).toEqual(['warning max_scan_rows_missing']);
  expect(findings[0]).toMatchObject({ policy: 'quickstart', message: expect.stringMatching(/max_scan_rows: \d+/) });
});

describe('tenant scope', () => {
  test('a table with the tenant column that no model registers is reported, outside system schemas and the proxy’s own tables', () => {
    const catalog = withTable(quickstartCatalog(), 'public', 'invoices', [['id', 'integer'], ['tenant_id', 'integer']]);
    withTable(catalog, 'billing', 'ledgers', [['tenant_id', 'integer']]);
    withTable(catalog, 'public', 'ormai_approvals', [['tenant_id', 'text']]);
    withTable(catalog, 'pg_catalog', 'pg_fake', [['tenant_id', 'integer']]);
    const findings = lintPolicyCatalog(policy(), catalog, { ownTables: new Set(['public.ormai_approvals']) });
    expect(brief(findings)).toEqual(['warning tenant_table_unregistered billing.ledgers', 'warning tenant_table_unregistered invoices']);
    expect(findings.find((f) => f.subject === 'invoices')!.message).toMatch(/tenant column tenant_id but is not in models/);
  });

  test('a registered table without the tenant column is a global lookup table (info)', () => {
    const findings = lintPolicyCatalog(policy({ models: ['customers', 'orders', 'countries'] }), quickstartCatalog());
    expect(brief(findings)).toEqual(['info global_table countries']);
  });

  test('no tenant rules without tenant_scope', () => {
    const catalog = withTable(quickstartCatalog(), 'public', 'invoices', [['tenant_id', 'integer']]);
    expect(lintPolicyCatalog(policy({ tenant_scope: undefined, models: ['countries'], enable_writes: [] }), catalog)).toEqual([]);
  });

  test('a nullable tenant column is a warning', () => {
    const catalog = withTable(quickstartCatalog(), 'public', 'invoices', [['id', 'integer'], ['tenant_id', 'integer', false]]);
    const findings = lintPolicyCatalog(policy({ models: ['customers', 'orders', 'invoices'] }), catalog);
    expect(brief(findings)).toEqual(['warning tenant_column_nullable invoices.tenant_id']);
    expect(findings[0].message).toMatch(/NOT NULL/);
  });

  test('tenant_scope.type against the column type: text vs integer is an error, bigint vs integer a warning', () => {
    const catalog = withTable(quickstartCatalog(), 'public', 'invoices', [['tenant_id', 'text']]);
    withTable(catalog, 'public', 'payments', [['tenant_id', 'bigint']]);
    const findings = lintPolicyCatalog(policy({ models: ['customers', 'orders', 'invoices', 'payments'], enable_writes: [] }), catalog);
    expect(brief(findings)).toEqual(['error tenant_column_type invoices.tenant_id', 'warning tenant_column_type payments.tenant_id']);
    const text = lintPolicyCatalog(policy({ models: ['invoices'], enable_writes: [], tenant_scope: { column: 'tenant_id', type: 'text' } }), catalog);
    expect(text.filter((f) => f.rule === 'tenant_column_type')).toEqual([]);
  });
});

describe('columns', () => {
  const people = () =>
    withTable(quickstartCatalog(), 'public', 'people', [
      ['id', 'integer'],
      ['tenant_id', 'integer'],
      ['ssn', 'text'],
      ['creditCardNumber', 'text'],
      ['pin_code', 'text'],
      ['password_hash', 'text'],
      ['pinned_at', 'text'],
      ['email', 'text'],
    ]);
  const models = ['customers', 'orders', 'people'];

  test('secret-looking columns the agent reads in clear are errors; always-denied ones are already hidden', () => {
    const findings = lintPolicyCatalog(policy({ models }), people());
    expect(brief(findings)).toEqual(['error secret_column_visible people.creditCardNumber', 'error secret_column_visible people.pin_code', 'error secret_column_visible people.ssn']);
    expect(findings.find((f) => f.subject === 'people.ssn')!.message).toMatch(/social security number.*deny_fields.*mask_fields/);
  });

  test('denied or masked, a secret-looking column is fine', () => {
    const findings = lintPolicyCatalog(policy({ models, deny_fields: ['people.ssn', '*card*'], mask_fields: [{ field: 'people.pin_code', strategy: 'null' }] }), people());
    expect(findings).toEqual([]);
  });

  test('a masked column is writable when the grant lists no writable_fields for the table', () => {
    const grant = { models: ['customers'], operations: ['create', 'update', 'delete'] };
    const findings = lintPolicyCatalog(policy({ enable_writes: [grant], max_writes_per_minute: 5 }), quickstartCatalog());
    expect(brief(findings)).toEqual(['warning masked_column_writable customers.email', 'warning masked_column_writable customers.phone']);
    expect(findings[0].message).toMatch(/writable \(create, update\).*writable_fields/);
    const listed = { ...grant, writable_fields: { customers: ['name'] } };
    expect(lintPolicyCatalog(policy({ enable_writes: [listed] }), quickstartCatalog())).toEqual([]);
    expect(lintPolicyCatalog(policy({ enable_writes: [{ models: ['customers'], operations: ['delete'] }] }), quickstartCatalog())).toEqual([]);
  });
});

describe('writes and budgets (no database needed)', () => {
  test('max_scan_rows missing; max_writes_per_minute missing only when writes are enabled', () => {
    expect(brief(lintPolicyStatic(policy({ max_scan_rows: undefined, max_writes_per_minute: undefined })))).toEqual(['warning max_scan_rows_missing', 'warning max_writes_per_minute_missing']);
    expect(brief(lintPolicyStatic(policy({ max_writes_per_minute: undefined, enable_writes: [] })))).toEqual([]);
  });

  test('a grant without a required reason, explicit or from the dev profile, is a warning per table', () => {
    const explicit = lintPolicyStatic(policy({ enable_writes: [{ models: ['orders', 'customers'], operations: ['create', 'update'], require_reason: false }] }));
    expect(brief(explicit)).toEqual(['warning write_reason_optional customers', 'warning write_reason_optional orders']);
    expect(explicit[0].message).toBe('create, update run without a reason (require_reason: false): the audit trail will not say why a row changed; set require_reason: true');
    const dev = lintPolicyStatic(policy({ profile: 'dev', enable_writes: [{ models: ['orders'], operations: ['create'] }] }));
    expect(dev.map((f) => f.message)).toEqual([expect.stringMatching(/^create run without a reason \(profile dev does not require one\)/)]);
    // The first covering grant decides, as in the proxy: a later grant's require_reason: false is shadowed.
    const shadowed = [{ models: ['orders'], operations: ['create'] }, { models: ['orders'], operations: ['create', 'delete'], require_reason: false }];
    expect(lintPolicyStatic(policy({ enable_writes: shadowed })).map((f) => f.message)).toEqual([expect.stringMatching(/^delete run without a reason/)]);
  });

  test('require_approval rules that can never apply are errors', () => {
    const rules = [
      { operation: 'create', model: 'orders' },
      { operation: 'update', model: 'orders' },
      { operation: 'delete', model: 'refunds' },
    ];
    const findings = lintPolicyStatic(policy({ require_approval: rules }));
    expect(brief(findings)).toEqual(['error approval_rule_unreachable require_approval[1]', 'error approval_rule_unreachable require_approval[2]']);
    expect(findings[0].message).toMatch(/^update on orders: no enable_writes grant allows it/);
    expect(findings[1].message).toMatch(/"refunds" is not in models/);
  });

  test("a require_approval condition on a column the agent cannot see is an error", () => {
    const rules = [
      { operation: 'create', model: 'orders', when: { field: 'status', equals: 'paid' } },
      { operation: 'create', model: 'orders', when: { field: 'priority', equals: 'high' } },
    ];
    expect(brief(lintPolicyCatalog(policy({ require_approval: rules }), quickstartCatalog()))).toEqual(['error approval_field_unknown require_approval[1]']);
  });
});

test('a policy that does not compile against the catalog gets one catalog_mismatch error, and the static rules still run', () => {
  const findings = lintPolicy(policy({ models: ['customers', 'invoices'], enable_writes: [], max_scan_rows: undefined }), quickstartCatalog());
  expect(brief(findings)).toEqual(['error catalog_mismatch', 'warning max_scan_rows_missing']);
  expect(findings.find((f) => f.rule === 'catalog_mismatch')!.message).toBe('table "invoices" does not exist in the database');
});
