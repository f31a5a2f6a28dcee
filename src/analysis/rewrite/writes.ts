// Write targets under the read scope, fail closed until the write policy (#4): INSERT … VALUES carries the principal's tenant; the rest is refused.
import type { DeleteStmt, InsertStmt, Node, RangeVar, ResTarget, SelectStmt, UpdateStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { ReadScope, ScopedTable } from '../../policy/scope';
import { nodeBody, nodeTypeOf } from '../types';
import { constantText } from './nodes';
import { modelNotAllowed } from './refusals';
import { isPrincipalTenant, tenantLiteral, tenantType } from './tenant';

const NOT_YET = 'arrives with the write policy';

function refuse(message: string, hint: string): ProxyError {
  return new ProxyError('statement_not_allowed', { message, hint });
}

/** The registered table a write targets; anything else does not exist for the agent. */
function target(rv: RangeVar | undefined, scope: ReadScope): ScopedTable {
  if (!rv) throw new ProxyError('statement_not_understood', { logMessage: 'write without a target' });
  const resolution = scope.resolve(rv.schemaname, rv.relname ?? '');
  if (resolution.kind !== 'table') throw modelNotAllowed(rv);
  return resolution.table;
}

/**
 * Checks (and for INSERT completes) the target of a top-level INSERT/UPDATE/DELETE in place.
 * Until the write policy is enforced: UPDATE and DELETE of registered tables, RETURNING and
 * ON CONFLICT are refused, because their target rows and returned columns are not yet
 * filtered by tenant or masked; INSERT must name its columns, may assign visible columns
 * only, and always writes the principal's tenant (another tenant is `tenant_forged`).
 */
export function guardWrite(tree: Node, scope: ReadScope, principal: Principal): void {
  const type = nodeTypeOf(tree);
  if (type === 'UpdateStmt' || type === 'DeleteStmt') {
    const stmt = nodeBody<UpdateStmt | DeleteStmt>(tree);
    target(stmt.relation, scope);
    throw refuse(`${type === 'UpdateStmt' ? 'UPDATE' : 'DELETE'} ${NOT_YET}`, 'Only INSERT … VALUES is available for now; ask a human operator to change or remove rows.');
  }
  if (type !== 'InsertStmt') return;
  const insert = nodeBody<InsertStmt>(tree);
  const table = target(insert.relation, scope);
  if (insert.returningClause) throw refuse(`INSERT … RETURNING ${NOT_YET}`, 'Send the INSERT without RETURNING, then read the row with a SELECT.');
  if (insert.onConflictClause) throw refuse(`INSERT … ON CONFLICT ${NOT_YET}`, 'Send a plain INSERT … VALUES.');
  const cols = (insert.cols ?? []).map((c) => (c as { ResTarget: ResTarget }).ResTarget);
  if (cols.length === 0) throw refuse('INSERT without a column list is not allowed', 'Name the columns: INSERT INTO t (a, b) VALUES (…).');
  const select = insert.selectStmt ? nodeBody<SelectStmt>(insert.selectStmt) : undefined;
  const rows = select?.valuesLists?.map((l) => (l as { List: { items: Node[] } }).List.items);
  if (!select || !rows || select.op !== 'SETOP_NONE' || select.withClause) {
    throw refuse(`INSERT … SELECT ${NOT_YET}`, 'Use INSERT INTO t (a, b) VALUES (…), (…).');
  }
  const visible = new Set(table.columns.map((c) => c.name));
  for (const col of cols) {
    if (col.indirection?.length || !col.name || !visible.has(col.name)) {
      // A hidden column is written about exactly like a missing one.
      throw new ProxyError('field_not_writable', { message: `column "${col.name ?? '?'}" of relation "${table.name}" does not exist` });
    }
  }
  const tenantColumn = table.tenantColumn;
  if (!tenantColumn) return;
  const at = cols.findIndex((c) => c.name === tenantColumn);
  if (at < 0) {
    insert.cols = [...(insert.cols ?? []), { ResTarget: { name: tenantColumn, location: -1 } } as unknown as Node];
    for (const row of rows) row.push(tenantLiteral(scope, principal));
    return;
  }
  for (const row of rows) {
    const text = constantText(row[at]);
    if (text === undefined || !isPrincipalTenant(text, tenantType(scope), principal.tenantId)) {
      throw new ProxyError('tenant_forged', { message: `"${tenantColumn}" must be your own tenant; leave it out and the proxy sets it` });
    }
  }
}
