// Scopes for the tool-layer tests: the rewriter's quickstart fixtures, plus a catalog with composite keys, json and array columns.
import { buildPolicy } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';
import { compileScope, type CatalogRelation, type ReadScope } from '../../../src/policy/scope';
import { compileCall } from '../../../src/tools/compile';
import type { CompiledCall } from '../../../src/tools/types';
import { quickstartCatalog, scopeFromFile, QUICKSTART, WITH_COUNTRIES } from '../analysis/rewrite-scope';

export { principal, QUICKSTART, WITH_COUNTRIES } from '../analysis/rewrite-scope';

/** customers, orders (every write, no reason) and countries; customers create/update with a reason, writable name, email, phone. */
export const scope = scopeFromFile(WITH_COUNTRIES);
/** The quickstart policy: orders create only, with a reason. */
export const quickstart = scopeFromFile(QUICKSTART);

/** The quickstart catalog plus order_lines (key tenant_id, order_id, line_no; tags text[]; meta jsonb). */
export function extendedScope(policy: Record<string, unknown> = {}): ReadScope {
  const catalog = quickstartCatalog();
  const lines: CatalogRelation = {
    schema: 'sales',
    name: 'order_lines',
    oid: 16500,
    kind: 'r',
    rowEstimate: -1,
    columns: [
      ['tenant_id', 'integer', 23],
      ['order_id', 'integer', 23],
      ['line_no', 'integer', 23],
      ['sku', 'text', 25],
      ['tags', 'text[]', 1009],
      ['meta', 'jsonb', 3802],
      ['secret_note', 'text', 25],
    ].map(([name, type, typeOid], i) => ({ name: name as string, attnum: i + 1, type: type as string, typeOid: typeOid as number, notNull: i < 3 })),
    primaryKey: ['tenant_id', 'order_id', 'line_no'],
  };
  catalog.relations.set('sales.order_lines', lines);
  catalog.relations.get('public.countries')!.primaryKey = ['code'];
  const raw = policySchema.parse({
    name: 'extended',
    models: ['customers', { table: 'sales.order_lines', name: 'OrderLine' }, { table: 'countries', name: 'Country' }],
    tenant_scope: { column: 'tenant_id' },
    mask_fields: [{ field: 'customers.email', strategy: 'email' }],
    enable_writes: [{ models: ['sales.order_lines'], require_reason: false }],
    ...policy,
  });
  return compileScope(buildPolicy(raw, 'extended.yaml'), catalog);
}

/** Compiles a call under `within` (default: the WITH_COUNTRIES scope). */
export function compile(name: string, args: unknown, within: ReadScope = scope): CompiledCall {
  return compileCall({ name, arguments: args }, { scope: within });
}

/** The ProxyError a call is refused with (fails the test when it compiles). */
export function refusal(name: string, args: unknown, within: ReadScope = scope): { code: string; message: string; hint: string } {
  try {
    const compiled = compile(name, args, within);
    throw new Error(`expected a refusal, got ${compiled.sql}`);
  } catch (err) {
    const e = err as { code?: string; message: string; hint?: string };
    if (e.code === undefined) throw err;
    return { code: e.code, message: e.message, hint: e.hint ?? '' };
  }
}
