// Dry runs: a write tagged dry_run='true' becomes the SELECT that shows what it would change, and nothing is written.
//
// The preview is a read of the same rows, under the same tenant predicate, row filter, FROM/USING
// and WHERE as the write (already checked and completed by writes.ts), so it needs no transaction
// to undo, works inside the agent's own transaction (seeing its uncommitted changes) and under
// both protocols with the same parameters: `$n` keeps its meaning. Each row carries the total in
// `affected_rows` (a window count, taken before the row cap), then the primary key, then per
// assigned column `<col>_before` (masked when the column is) and `<col>_after` (the SET
// expression, evaluated on the row). What a preview cannot show: defaults, triggers and
// constraint checks run only by the write itself.
import type { DeleteStmt, InsertStmt, Node, RangeVar, ResTarget, SelectStmt, UpdateStmt, WithClause } from '@pgsql/types';
import { ProxyError } from '../../errors/catalogue';
import type { ScopedTable } from '../../policy/scope';
import { columnSql } from './derived';
import { cloneTree, parseTemplate, quoteIdent } from './nodes';

const COUNT = 'count(*) OVER () AS affected_rows';

function unsupported(what: string): ProxyError {
  return new ProxyError('statement_not_allowed', {
    message: `a dry run of ${what} is not supported`,
    hint: 'Preview the rows with a SELECT using the same WHERE, or send the write without dry_run.',
  });
}

/** The preview of an UPDATE: key, and each assigned column before and after. */
export function previewUpdate(stmt: UpdateStmt, table: ScopedTable, ref: string): SelectStmt {
  const items = (stmt.targetList ?? []).map((t) => (t as { ResTarget: ResTarget }).ResTarget);
  const list = [COUNT, ...keyColumns(table, ref)];
  const afters: Node[] = [];
  for (const item of items) {
    const val = item.val as Node | undefined;
    if (!val || 'MultiAssignRef' in val || 'SetToDefault' in val || item.indirection?.length) throw unsupported('UPDATE … SET (a, b) = …, DEFAULT or a subscript');
    const column = table.columns.find((c) => c.name === item.name)!;
    list.push(columnSql(column, ref, `${column.name}_before`), `NULL AS ${quoteIdent(`${column.name}_after`)}`);
    afters.push(cloneTree(val));
  }
  const select = template(list, table, ref);
  // Each `<col>_after` placeholder (every second item after the count and the key) takes the SET expression.
  const first = 1 + keyColumns(table, ref).length;
  afters.forEach((val, i) => {
    ((select.targetList ?? [])[first + 2 * i + 1] as { ResTarget: ResTarget }).ResTarget.val = val;
  });
  select.fromClause = [{ RangeVar: targetOf(stmt.relation!, table) }, ...cloneTree(stmt.fromClause ?? [])];
  if (stmt.whereClause) select.whereClause = cloneTree(stmt.whereClause);
  withClauseOf(stmt, select);
  return select;
}

/**
 * The write's own WITH goes along: a CTE may shadow a table name that the SET expressions or
 * the WHERE use, and without it that name would reach the real table.
 */
function withClauseOf(stmt: { withClause?: WithClause }, select: SelectStmt): void {
  if (stmt.withClause) select.withClause = cloneTree(stmt.withClause);
}

/** The target, schema-qualified (a CTE of the same name must not take its place) and named as in the write. */
export function targetOf(rv: RangeVar, table: ScopedTable): RangeVar {
  const copy = cloneTree(rv);
  copy.schemaname = table.schema;
  copy.alias = { aliasname: rv.alias?.aliasname ?? rv.relname ?? table.name };
  return copy;
}

/** The preview of a DELETE: the rows that would go, as the agent may see them. */
export function previewDelete(stmt: DeleteStmt, table: ScopedTable, ref: string): SelectStmt {
  const select = template([COUNT, ...table.columns.map((c) => columnSql(c, ref))], table, ref);
  select.fromClause = [{ RangeVar: targetOf(stmt.relation!, table) }, ...cloneTree(stmt.usingClause ?? [])];
  if (stmt.whereClause) select.whereClause = cloneTree(stmt.whereClause);
  withClauseOf(stmt, select);
  return select;
}

/** The previews of INSERTs this module built, with their target: tenant-binding.ts checks their rows as it checks an INSERT's. */
const INSERT_PREVIEWS = new WeakMap<object, ScopedTable>();

/** The target of an INSERT preview (`(<rows>) AS ormai_insert(<columns>)`), when `node` is one. */
export function insertPreviewTarget(node: object): ScopedTable | undefined {
  return INSERT_PREVIEWS.get(node);
}

/** The preview of an INSERT: the rows as they would be inserted (the tenant column included), named by the INSERT's column list. */
export function previewInsert(stmt: InsertStmt, table: ScopedTable): SelectStmt {
  if (stmt.onConflictClause) throw unsupported('INSERT … ON CONFLICT');
  if (!stmt.selectStmt) throw unsupported('INSERT … DEFAULT VALUES');
  const cols = (stmt.cols ?? []).map((c) => quoteIdent((c as { ResTarget: ResTarget }).ResTarget.name ?? ''));
  const select = parseTemplate(`SELECT ${COUNT}, ormai_insert.* FROM (SELECT) AS ormai_insert(${cols.join(', ')})`, 'dry run');
  const rows = (select.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect;
  rows.subquery = cloneTree(stmt.selectStmt);
  INSERT_PREVIEWS.set(rows, table);
  withClauseOf(stmt, select);
  return select;
}

function keyColumns(table: ScopedTable, ref: string): string[] {
  return (table.primaryKey ?? []).map((k) => `${quoteIdent(ref)}.${quoteIdent(k)}`);
}

/** `SELECT <list> FROM <placeholder> ORDER BY <key>`; the caller puts in the write's FROM and WHERE. */
function template(list: string[], table: ScopedTable, ref: string): SelectStmt {
  const order = keyColumns(table, ref);
  return parseTemplate(`SELECT ${list.join(', ')} FROM ormai_placeholder${order.length ? ` ORDER BY ${order.join(', ')}` : ''}`, 'dry run');
}

