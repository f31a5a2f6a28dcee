// Before/after capture for writes: columns appended to RETURNING that the wire path strips from what the agent receives.
//
// Every executed write records, per changed row, its primary key and the changed columns before
// and after (DELETE: the row's visible columns before), for the audit trail and for rollback.
// RETURNING gives the values after; from PostgreSQL 18 `RETURNING old.x` the values before.
// Before 18 an UPDATE also joins, on the key, a subquery of the same table (the principal's rows
// only) that is read in the statement's snapshot: its values are the row's values before the
// change, unless a transaction that committed while this one waited for the row changed it. The
// appended items come last, after whatever the agent asked to return; the router
// (results/capture-columns.ts) cuts them off RowDescription and every DataRow, and drops
// both entirely when the agent asked for no RETURNING, so the agent's result is unchanged.
import type { DeleteStmt, InsertStmt, Node, SelectStmt, UpdateStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import type { ReadScope, ScopedTable } from '../../policy/scope';
import { andExpr, parseTemplate, quoteIdent, walk } from './nodes';
import { tenantLiteral, tenantType } from './tenant';

/** Where each captured column lands in the audit record. */
export interface CapturePlan {
  table: string;
  operation: 'insert' | 'update' | 'delete';
  key: string[];
  before: string[];
  after: string[];
  /** Columns appended to RETURNING (key, then before, then after). */
  width: number;
  /** The agent asked for RETURNING: its columns come first and stay. */
  agentReturning: boolean;
  /** The table's tenant column: its rows are the principal's tenant's (a rollback names it too). */
  tenantColumn?: string;
}

const OLD = 'ormai_old';

/** Adds the capture to a checked, completed write; undefined (nothing added) when the table has no visible primary key. */
export function addCapture(
  stmt: InsertStmt & UpdateStmt & DeleteStmt,
  op: CapturePlan['operation'],
  table: ScopedTable,
  ref: string,
  assigned: string[],
  scope: ReadScope,
  principal: Principal,
): CapturePlan | undefined {
  const key = table.primaryKey;
  if (!key || key.length === 0) return undefined;
  const visible = table.columns.map((c) => c.name);
  const changed = [...new Set(assigned)].filter((c) => !key.includes(c));
  const before = op === 'delete' ? visible.filter((c) => !key.includes(c)) : op === 'update' ? changed : [];
  const after = op === 'delete' ? [] : op === 'insert' ? [...new Set([...assigned, ...(table.tenantColumn ? [table.tenantColumn] : [])])].filter((c) => !key.includes(c)) : changed;
  const q = (t: string, c: string) => `${quoteIdent(t)}.${quoteIdent(c)}`;
  // PostgreSQL 18 returns the row as the UPDATE found it (old.x): exact even when the row was
  // changed by a transaction that committed while this one waited for its lock, where the join
  // below reads the version of the statement's snapshot.
  // A relation of the statement named old would be what old.x reads: the join then.
  const returnsOld = op === 'update' && (scope.catalog.serverVersionNum ?? 0) >= 180000 && !namesOld(stmt);
  const items = [
    ...key.map((c) => q(ref, c)),
    ...before.map((c, i) => (op !== 'update' ? q(ref, c) : returnsOld ? `old.${quoteIdent(c)}` : `${OLD}.ormai_before_${i}`)),
    ...after.map((c) => q(ref, c)),
  ].map((expr, i) => `${expr} AS ormai_capture_${i}`);
  const clause = stmt.returningClause as { exprs?: Node[] } | undefined;
  const agentReturning = (clause?.exprs?.length ?? 0) > 0;
  const added = parseTemplate(`SELECT ${items.join(', ')}`, 'write capture').targetList ?? [];
  stmt.returningClause = { ...(clause ?? {}), exprs: [...(clause?.exprs ?? []), ...added] } as UpdateStmt['returningClause'];
  if (op === 'update' && before.length > 0 && !returnsOld) joinOldRow(stmt, table, ref, key, before, scope, principal);
  return { table: `${table.schema}.${table.name}`, operation: op, key, before, after, width: items.length, agentReturning, ...(table.tenantColumn ? { tenantColumn: table.tenantColumn } : {}) };
}

/** Does any relation of the statement (a FROM item, a CTE) go by the name old? */
function namesOld(stmt: UpdateStmt): boolean {
  return walk([stmt], (node) => {
    const alias = (node as { alias?: { aliasname?: string } }).alias?.aliasname;
    if (alias !== undefined) return alias === 'old';
    return node.relname === 'old' || node.ctename === 'old';
  });
}

/**
 * `FROM (SELECT key, before… FROM t WHERE tenant = …) AS ormai_old` and
 * `AND ref.key = ormai_old.key`: one row per target row, in the statement's snapshot.
 *
 * Not fenced (no OFFSET 0): PostgreSQL pulls the subquery up into a join on the key, so the
 * target's key lookup reaches it too (`id = $1` puts both keys in one equivalence class) and an
 * UPDATE by id reads one row on each side. Behind OFFSET 0 the subquery was planned alone: the
 * tenant's every row, for each write (36 ms at 200,000 rows against 0.13 ms). Nothing of the
 * agent's can reach these rows: its names cannot start with ormai_ (expressions.ts refuses them),
 * and what an equivalence class carries over from its conditions is the key's own equality.
 */
function joinOldRow(stmt: UpdateStmt, table: ScopedTable, ref: string, key: string[], before: string[], scope: ReadScope, principal: Principal): void {
  // Renamed, so that the agent's unqualified column names stay unambiguous.
  const cols = [...key.map((k, i) => `${quoteIdent(k)} AS ormai_key_${i}`), ...before.map((c, i) => `${quoteIdent(c)} AS ormai_before_${i}`)].join(', ');
  const tenant = table.tenantColumn ? ` WHERE ${quoteIdent(table.tenantColumn)} = '0'::${tenantType(scope)}` : '';
  const template = parseTemplate(`SELECT FROM (SELECT ${cols} FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)}${tenant}) AS ${OLD}`, 'write capture');
  const sub = (template.fromClause![0] as { RangeSubselect: { subquery: { SelectStmt: SelectStmt } } }).RangeSubselect.subquery.SelectStmt;
  if (table.tenantColumn) ((sub.whereClause as { A_Expr: { rexpr: Node } }).A_Expr.rexpr = tenantLiteral(scope, principal));
  stmt.fromClause = [...(stmt.fromClause ?? []), template.fromClause![0]];
  const join = parseTemplate(`SELECT WHERE ${key.map((k, i) => `${quoteIdent(ref)}.${quoteIdent(k)} = ${OLD}.ormai_key_${i}`).join(' AND ')}`, 'write capture').whereClause!;
  stmt.whereClause = andExpr(stmt.whereClause, join);
}
