// Table-driven cases for the expression checks (functions, casts, join depth): allowed or refused, under a policy, each under both protocols.
import { PG_CATALOG_TYPES } from '../../fixtures/catalog-types';
import type { ErrorCode } from '../../../src/errors/catalogue';
import { analyze, identityRewrite, initAnalysis, type AnalysisContext } from '../../../src/analysis/pipeline';
import { buildPolicy } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';
import { compileScope, type CatalogRelation, type CatalogSnapshot, type ReadScope } from '../../../src/policy/scope';
import { expectRefused } from './golden';

export interface ExprCase {
  sql: string;
  /** The refusal's code; absent = the statement must be allowed. */
  err?: ErrorCode;
  /** A fragment the refusal's message must contain. */
  message?: string;
  /** Policy file keys over the suite's base policy. */
  policy?: Record<string, unknown>;
  /** Run without any policy (ctx.scope absent). */
  noScope?: boolean;
  /** More than one statement: under the extended protocol the case must be a syntax_error. */
  multi?: boolean;
}

let oid = 16384;
function relation(name: string, columns: string[]): CatalogRelation {
  return {
    schema: 'public',
    name,
    oid: oid++,
    kind: 'r',
    rowEstimate: 1000,
    columns: columns.map((c, i) => ({ name: c, attnum: i + 1, type: 'text', typeOid: 25, notNull: false })),
  };
}

const catalog: CatalogSnapshot = {
  database: 'app',
  searchPath: ['public'],
  types: PG_CATALOG_TYPES,
  parameterTypes: new Set(),
  relations: new Map(
    [
      relation('customers', ['id', 'tenant_id', 'name', 'email', 'api_secret']),
      relation('orders', ['id', 'tenant_id', 'customer_id', 'status', 'total', 'created_at', 'tags']),
      relation('order_items', ['id', 'tenant_id', 'order_id', 'product_id', 'qty']),
      relation('products', ['id', 'name', 'price']),
      relation('audit_log', ['id', 'tenant_id', 'event']),
    ].map((r) => [`${r.schema}.${r.name}`, r]),
  ),
};

/** A read scope over customers/orders/order_items/products/audit_log with `extra` policy keys. */
export function scopeFor(extra: Record<string, unknown> = {}, catalogExtra: Partial<CatalogSnapshot> = {}): ReadScope {
  const raw = policySchema.parse({
    name: 'test',
    models: ['customers', 'orders', 'order_items', 'products', 'audit_log'],
    tenant_scope: { column: 'tenant_id' },
    enable_writes: [{ models: ['orders', 'audit_log'] }],
    ...extra,
  });
  return compileScope(buildPolicy(raw, 'test.yaml'), { ...catalog, ...catalogExtra });
}

const PROTOCOLS: AnalysisContext['protocol'][] = ['simple', 'extended'];

/**
 * The context of every case: the policy's scope, and the identity rewrite, so these cases
 * test the expression checks alone (the read-policy rewrite has its own suites).
 */
export function contextFor(protocol: AnalysisContext['protocol'], scope?: ReadScope): AnalysisContext {
  return {
    protocol,
    writeGate: () => true,
    rewrite: identityRewrite,
    principal: { user: 'agent', subject: 'agent', tenantId: '1', roles: [], authMethod: 'password' },
    ...(scope ? { scope } : {}),
  };
}

/** Registers one jest test per case and protocol. */
export function runExpressionCases(cases: ExprCase[], base: Record<string, unknown> = {}): void {
  beforeAll(() => initAnalysis());
  const scopes = new Map<string, ReadScope>();
  const scope = (extra: Record<string, unknown>): ReadScope => {
    const key = JSON.stringify(extra);
    let s = scopes.get(key);
    if (!s) scopes.set(key, (s = scopeFor(extra)));
    return s;
  };
  for (const protocol of PROTOCOLS) {
    describe(protocol, () => {
      test.each(cases.map((c) => [c.sql, c] as const))('%s', (_sql, c) => {
        const result = analyze(c.sql, contextFor(protocol, c.noScope ? undefined : scope({ ...base, ...c.policy })));
        if (c.multi && protocol === 'extended') {
          expectRefused(result, 'syntax_error', 'multiple commands');
        } else if (c.err !== undefined) {
          expectRefused(result, c.err, c.message);
        } else if (!result.ok) {
          throw new Error(`expected the statement to be allowed, got ${result.error.code}: ${result.error.message}`);
        }
      });
    });
  }
}
