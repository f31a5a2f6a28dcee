// The principal's tenant: as a typed SQL constant in every predicate, and the tenant_forged flag when the agent's text names another.
import type { A_Expr, ColumnRef, Node, ResTarget, TypeCast } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { ReadScope } from '../../policy/scope';
import type { TenantType } from '../../policy/schema';
import { tenantFitsType } from '../../policy/tenant';
import { cloneTree, constantText, parseTemplate, walk } from './nodes';

const casts = new Map<TenantType, TypeCast>();

/** The cast node `'<placeholder>'::type` exactly as the parser builds it, once per type. */
function castTemplate(type: TenantType): TypeCast {
  let cast = casts.get(type);
  if (!cast) {
    const select = parseTemplate(`SELECT '0'::${type}`, `tenant type ${type}`);
    const val = (select.targetList?.[0] as { ResTarget: ResTarget }).ResTarget.val as { TypeCast: TypeCast };
    cast = val.TypeCast;
    casts.set(type, cast);
  }
  return cast;
}

export function tenantType(scope: ReadScope): TenantType {
  return scope.tenantType ?? 'integer';
}

/**
 * `'<tenant>'::<type>`: the id travels as the value of a string constant node, never as SQL
 * text, so no quoting of it can go wrong. An id that does not fit the type is a credential
 * the proxy should never have accepted: internal_error, with the reason in the log only.
 */
export function tenantLiteral(scope: ReadScope, principal: Principal | undefined): Node {
  const type = tenantType(scope);
  if (!principal) {
    throw new ProxyError('internal_error', { logMessage: 'rewrite: a read scope without a principal' });
  }
  if (!tenantFitsType(principal.tenantId, type)) {
    throw new ProxyError('internal_error', { logMessage: `rewrite: the principal's tenant id is not a valid ${type}` });
  }
  const cast = cloneTree(castTemplate(type));
  return { TypeCast: { ...cast, arg: { A_Const: { sval: { sval: principal.tenantId } } } } };
}

/** Does a constant's text denote the principal's tenant, read as the tenant column's type? */
export function isPrincipalTenant(text: string, type: TenantType, tenantId: string): boolean {
  switch (type) {
    case 'integer':
    case 'bigint':
      return sameInteger(text, tenantId);
    case 'uuid':
      return normalizeUuid(text) === normalizeUuid(tenantId);
    case 'text':
      return text === tenantId;
  }
}

function sameInteger(a: string, b: string): boolean {
  const trimmed = a.trim();
  if (!/^-?\d+$/.test(b)) return false;
  if (/^[+-]?\d+$/.test(trimmed)) return BigInt(trimmed) === BigInt(b);
  // A numeric constant such as 1.0 compares equal to 1 in SQL.
  const n = Number(trimmed);
  return Number.isFinite(n) && trimmed !== '' && n === Number(b);
}

function normalizeUuid(value: string): string {
  return value.trim().toLowerCase().replace(/[{}-]/g, '');
}

const TENANT_COLUMNS = new WeakMap<ReadScope, ReadonlySet<string>>();

/** The tenant column names of a scope's tables (a column is a tenant column by name, through any alias). */
export function tenantColumnNames(scope: ReadScope): ReadonlySet<string> {
  let columns = TENANT_COLUMNS.get(scope);
  if (!columns) {
    columns = new Set([...scope.tables.values()].flatMap((t) => (t.tenantColumn ? [t.tenantColumn] : [])));
    TENANT_COLUMNS.set(scope, columns);
  }
  return columns;
}

// tenant_forged: the agent's own text compares a tenant column with a constant naming another tenant.

/**
 * True when some comparison `<tenant column> = <constant>` (also `IN (...)`, `= ANY(ARRAY[...])`,
 * `IS NOT DISTINCT FROM`, either side) names a tenant other than the principal's. The query
 * still runs: the injected tenant predicate makes it match nothing foreign; the flag is for
 * the audit trail. A column counts as a tenant column by name, through any alias: with a read
 * scope every relation is a policy table, and a table having the tenant column is tenant-scoped.
 * Parameters ($n) are not constants here; their values arrive only at Bind.
 */
export function forgesTenant(root: Node, scope: ReadScope, tenantId: string): boolean {
  const columns = tenantColumnNames(scope);
  if (columns.size === 0) return false;
  const type = tenantType(scope);
  const foreign = (node: Node | undefined): boolean => {
    const text = constantText(node);
    return text !== undefined && !isPrincipalTenant(text, type, tenantId);
  };

  return walk([root], (node) => {
    const expr = (node as { A_Expr?: A_Expr }).A_Expr;
    if (!expr || !isEquality(expr)) return false;
    if (isTenantColumn(expr.lexpr, columns) && constantsOf(expr).some(foreign)) return true;
    return isTenantColumn(expr.rexpr, columns) && expr.kind !== 'AEXPR_IN' && expr.kind !== 'AEXPR_OP_ANY' && foreign(expr.lexpr);
  });
}

function isEquality(expr: A_Expr): boolean {
  const op = expr.name?.length === 1 && 'String' in expr.name[0] ? expr.name[0].String.sval : undefined;
  if (op !== '=') return false;
  return expr.kind === 'AEXPR_OP' || expr.kind === 'AEXPR_IN' || expr.kind === 'AEXPR_OP_ANY' || expr.kind === 'AEXPR_NOT_DISTINCT';
}

function isTenantColumn(node: Node | undefined, columns: ReadonlySet<string>): boolean {
  if (!node || !('ColumnRef' in node)) return false;
  const fields = (node.ColumnRef as ColumnRef).fields ?? [];
  const last = fields[fields.length - 1];
  return last !== undefined && 'String' in last && columns.has(last.String.sval ?? '');
}

/** The constants a tenant column is compared with: the right side, an IN list, or an ARRAY[...] under ANY. */
function constantsOf(expr: A_Expr): Array<Node | undefined> {
  const r = expr.rexpr;
  if (!r) return [];
  if (expr.kind === 'AEXPR_IN' && 'List' in r) return r.List.items ?? [];
  if (expr.kind === 'AEXPR_OP_ANY' && 'A_ArrayExpr' in r) return r.A_ArrayExpr.elements ?? [];
  return [r];
}
