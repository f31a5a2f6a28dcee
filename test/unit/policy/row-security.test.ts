// policy/row-security.ts: when a table's row-level security fences the tenant, and the DDL that makes it.
import { initAnalysis } from '../../../src/analysis/parser';
import { rowSecurityApplies, rowSecurityDdl, rowSecurityProblem, tenantCondition } from '../../../src/policy/row-security';
import type { CatalogRelation, CatalogSnapshot, RowSecurityFacts } from '../../../src/policy/scope';

beforeAll(async () => {
  await initAnalysis();
});

const PRINTED = "(tenant_id = (current_setting('ormai.tenant_id'::text))::integer)";

function relation(rowSecurity?: RowSecurityFacts, kind = 'r'): CatalogRelation {
  return { schema: 'public', name: 'orders', oid: 1, kind, rowEstimate: 0, columns: [], ...(rowSecurity ? { rowSecurity } : {}) };
}
const fenced: RowSecurityFacts = { enabled: true, forced: false, owned: false, tenantPolicy: { restrictive: true, command: '*', applies: true, qual: PRINTED, withCheck: PRINTED } };
const catalog = (extra: Partial<CatalogSnapshot> = {}): CatalogSnapshot =>
  ({ database: 'app', searchPath: ['public'], relations: new Map(), types: new Set(), parameterTypes: new Set(), objects: { role: 'ormai_proxy' }, ...extra }) as CatalogSnapshot;

describe('tenantCondition', () => {
  test.each([
    ['integer', `("tenant_id" = (current_setting('ormai.tenant_id'::text))::integer)`],
    ['bigint', `("tenant_id" = (current_setting('ormai.tenant_id'::text))::bigint)`],
    ['uuid', `("tenant_id" = (current_setting('ormai.tenant_id'::text))::uuid)`],
    ['text', `("tenant_id" = current_setting('ormai.tenant_id'::text))`],
  ] as const)('%s', (type, expected) => {
    expect(tenantCondition('tenant_id', type)).toBe(expected);
  });
});

describe('rowSecurityProblem', () => {
  test('a restrictive policy for all commands with the condition as PostgreSQL prints it: fenced', () => {
    expect(rowSecurityProblem(relation(fenced), 'tenant_id', 'integer', catalog())).toBeUndefined();
    // No WITH CHECK: a restrictive policy's USING checks new rows too.
    expect(rowSecurityProblem(relation({ ...fenced, tenantPolicy: { ...fenced.tenantPolicy!, withCheck: null } }), 'tenant_id', 'integer', catalog())).toBeUndefined();
    // Owned but forced.
    expect(rowSecurityProblem(relation({ ...fenced, owned: true, forced: true }), 'tenant_id', 'integer', catalog())).toBeUndefined();
  });

  test.each<[string, CatalogRelation, CatalogSnapshot, RegExp]>([
    ['not a table', relation(fenced, 'v'), catalog(), /is not a table/],
    ['a superuser role', relation(fenced), catalog({ roleBypassesRowSecurity: 'is a superuser' }), /"ormai_proxy" is a superuser/],
    ['row-level security off', relation({ ...fenced, enabled: false }), catalog(), /does not have row-level security enabled/],
    ['owned, not forced', relation({ ...fenced, owned: true }), catalog(), /owns public\.orders/],
    ['no policy', relation({ ...fenced, tenantPolicy: undefined }), catalog(), /has no policy ormai_tenant/],
    ['permissive', relation({ ...fenced, tenantPolicy: { ...fenced.tenantPolicy!, restrictive: false } }), catalog(), /not AS RESTRICTIVE FOR ALL/],
    ['for SELECT only', relation({ ...fenced, tenantPolicy: { ...fenced.tenantPolicy!, command: 'r' } }), catalog(), /not AS RESTRICTIVE FOR ALL/],
    ['not for the role', relation({ ...fenced, tenantPolicy: { ...fenced.tenantPolicy!, applies: false } }), catalog(), /TO the upstream role/],
    ['another column', relation({ ...fenced, tenantPolicy: { ...fenced.tenantPolicy!, qual: PRINTED.replace('tenant_id', 'owner_id') } }), catalog(), /reads USING/],
    ['another setting', relation({ ...fenced, tenantPolicy: { ...fenced.tenantPolicy!, qual: PRINTED.replace('ormai.tenant_id', 'app.tenant') } }), catalog(), /reads USING/],
    ['a wider condition', relation({ ...fenced, tenantPolicy: { ...fenced.tenantPolicy!, qual: `(${PRINTED} OR true)` } }), catalog(), /reads USING/],
    ['another WITH CHECK', relation({ ...fenced, tenantPolicy: { ...fenced.tenantPolicy!, withCheck: 'true' } }), catalog(), /reads WITH CHECK true/],
  ])('%s', (_name, rel, cat, problem) => {
    expect(rowSecurityProblem(rel, 'tenant_id', 'integer', cat)).toMatch(problem);
  });

  test('the type must match the cast', () => {
    expect(rowSecurityProblem(relation(fenced), 'tenant_id', 'bigint', catalog())).toMatch(/reads USING/);
  });
});

describe('rowSecurityApplies', () => {
  test('on, and neither bypassed by the role nor by ownership', () => {
    expect(rowSecurityApplies(relation(fenced), catalog())).toBe(true);
    expect(rowSecurityApplies(relation({ ...fenced, enabled: false }), catalog())).toBe(false);
    expect(rowSecurityApplies(relation({ ...fenced, owned: true }), catalog())).toBe(false);
    expect(rowSecurityApplies(relation({ ...fenced, owned: true, forced: true }), catalog())).toBe(true);
    expect(rowSecurityApplies(relation(fenced), catalog({ roleBypassesRowSecurity: 'has BYPASSRLS' }))).toBe(false);
  });
});

describe('rowSecurityDdl', () => {
  test('enables it with a PUBLIC policy where it was off, forces it for an owner, and makes the restrictive policy idempotently', () => {
    const sql = rowSecurityDdl([{ relation: relation({ enabled: false, forced: false, owned: true }), column: 'tenant_id', type: 'integer' }], 'ormai_proxy');
    expect(sql).toContain('ALTER TABLE "public"."orders" ENABLE ROW LEVEL SECURITY;');
    expect(sql).toContain('CREATE POLICY ormai_unchanged ON "public"."orders" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);');
    expect(sql).toContain('ALTER TABLE "public"."orders" FORCE ROW LEVEL SECURITY;');
    expect(sql).toContain('DROP POLICY IF EXISTS ormai_tenant ON "public"."orders";');
    expect(sql).toContain(`CREATE POLICY ormai_tenant ON "public"."orders" AS RESTRICTIVE FOR ALL TO "ormai_proxy" USING ${tenantCondition('tenant_id', 'integer')} WITH CHECK ${tenantCondition('tenant_id', 'integer')};`);
    expect(sql.trim().startsWith('--')).toBe(true);
    expect(sql).toMatch(/BEGIN;[\s\S]*COMMIT;/);
  });

  test('leaves a table that already has row-level security to its own policies, and quotes every name', () => {
    const sql = rowSecurityDdl([{ relation: { ...relation(fenced), schema: 'Sales', name: 'order"s' }, column: 'Tenant', type: 'text' }], 'proxy role');
    expect(sql).not.toContain('ENABLE ROW LEVEL SECURITY');
    expect(sql).not.toContain('ormai_unchanged');
    expect(sql).toContain('ON "Sales"."order""s" AS RESTRICTIVE FOR ALL TO "proxy role" USING ("Tenant" = current_setting(\'ormai.tenant_id\'::text))');
  });

  test('what it makes is what the check accepts', () => {
    const condition = tenantCondition('tenant_id', 'integer');
    const made = relation({ enabled: true, forced: false, owned: false, tenantPolicy: { restrictive: true, command: '*', applies: true, qual: condition, withCheck: condition } });
    expect(rowSecurityProblem(made, 'tenant_id', 'integer', catalog())).toBeUndefined();
  });
});
