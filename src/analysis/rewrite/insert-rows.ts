// An INSERT's column list and rows: one value per listed column, foreign keys checked per row, and the tenant column's value the proxy's own.
//
// Order matters. The source is counted first, on the agent's tree (source-arity.ts): every
// wrapper built afterwards maps columns by position, and a source with one value too many would
// shift the proxy's tenant value out of its column. Then the agent's own columns get their
// foreign-key checks, and only then is the tenant bound, outermost: appended to every VALUES
// row, or as the last column of `SELECT ormai_source.*, <tenant> FROM (<source>) AS ormai_source`.
// tenant-binding.ts checks the result on the tree that is forwarded.
import type { InsertStmt, Node, ResTarget, SelectStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { WriteRule } from '../../policy/load';
import type { ReadScope, ScopedTable } from '../../policy/scope';
import { nodeBody } from '../types';
import { bareConstantText, parseTemplate } from './nodes';
import { columnCount, insertArityError, NO_CTES, withScope, type CteScope } from './source-arity';
import { isPrincipalTenant, tenantLiteral, tenantType } from './tenant';
import { checkWritable, type Target } from './write-target';

export function forged(column: string, logMessage?: string): ProxyError {
  return new ProxyError('tenant_forged', { message: `"${column}" must be your own tenant; leave it out and the proxy sets it`, ...(logMessage ? { logMessage } : {}) });
}

function columnsOf(insert: InsertStmt): ResTarget[] {
  return (insert.cols ?? []).map((c) => (c as { ResTarget: ResTarget }).ResTarget);
}

/** The rows of an INSERT … VALUES (the VALUES list is the source itself); undefined for any other source. */
export function valuesRows(insert: InsertStmt): Node[][] | undefined {
  const select = insert.selectStmt ? nodeBody<SelectStmt>(insert.selectStmt) : undefined;
  if (!select || select.op !== 'SETOP_NONE' || select.withClause) return undefined;
  return select.valuesLists?.map((l) => (l as { List: { items: Node[] } }).List.items);
}

/**
 * Checks the column list and counts the source, before anything is added to either. Returns
 * the columns the agent assigns (the tenant column is not one of them: its value is the proxy's).
 * `ctes`: the CTEs the INSERT sees from around it (its siblings, for an INSERT in a SELECT's WITH).
 */
export function checkInsert(insert: InsertStmt, target: Target, rule: WriteRule, scope: ReadScope, principal: Principal, ctes: CteScope = NO_CTES): string[] {
  const { table } = target;
  const cols = columnsOf(insert);
  if (cols.length === 0) {
    throw new ProxyError('statement_not_allowed', { message: 'INSERT without a column list is not allowed', hint: 'Name the columns: INSERT INTO t (a, b) VALUES (…).' });
  }
  if (!insert.selectStmt) throw new ProxyError('statement_not_allowed', { message: 'INSERT … DEFAULT VALUES is not allowed', hint: 'Name the columns and give VALUES.' });
  const tenantColumn = table.tenantColumn;
  const names: string[] = [];
  const tenantAt: number[] = [];
  // A column given DEFAULT in every VALUES row is one left out (ORMs write `VALUES (DEFAULT, …)`):
  // no rule about assigning it applies, since nothing is assigned.
  const valueRows = valuesRows(insert);
  const defaulted = (i: number) => valueRows !== undefined && valueRows.length > 0 && valueRows.every((row) => row[i] !== undefined && 'SetToDefault' in row[i]);
  cols.forEach((col, i) => {
    const name = col.name ?? '';
    if (tenantColumn && name === tenantColumn && !col.indirection?.length) {
      tenantAt.push(i); // checked against the principal below
      return;
    }
    // (A hidden column still does not exist, DEFAULT or not.)
    if (defaulted(i) && !col.indirection?.length && target.visible.has(name)) return;
    checkWritable(name, target, rule);
    names.push(name);
  });
  if (tenantColumn && tenantAt.length > 1) throw forged(tenantColumn);

  const given = columnCount(nodeBody<SelectStmt>(insert.selectStmt), withScope(insert.withClause, ctes));
  if (given !== cols.length) throw insertArityError(cols.length, given);

  if (!tenantColumn || tenantAt.length === 0) return names;
  const rows = valueRows;
  // INSERT … SELECT naming the tenant column: its values come from a query and cannot be judged.
  if (!rows) throw forged(tenantColumn);
  for (const row of rows) {
    const value = row[tenantAt[0]];
    // DEFAULT means "the value the column gets when left out": the proxy's.
    if ('SetToDefault' in value) continue;
    // Only a plain constant can be judged; whatever it says, the proxy's own literal is what is written.
    const text = bareConstantText(value);
    if (text === undefined || !isPrincipalTenant(text, tenantType(scope), principal.tenantId)) throw forged(tenantColumn);
  }
  return names;
}

/**
 * The agent's columns of each source row, each through `check` where `checked` names it (the
 * foreign keys into tenant-scoped tables). VALUES rows are checked in place; a query's rows go
 * through `SELECT check(ormai_checked.ormai_c0), … FROM (<source>) AS ormai_checked(ormai_c0, …)`,
 * whose column names cover exactly the columns checkInsert counted.
 */
export function checkRowReferences(insert: InsertStmt, checked: ReadonlySet<string>, tenantColumn: string | undefined, check: (value: Node, column: string) => Node): void {
  const names = columnsOf(insert).map((c) => c.name ?? '');
  const at = (n: string) => checked.has(n) && n !== tenantColumn;
  if (!names.some(at) || !insert.selectStmt) return;
  const rows = valuesRows(insert);
  if (rows) {
    for (const row of rows) names.forEach((n, i) => {
      if (at(n) && row[i] && !('SetToDefault' in row[i])) row[i] = check(row[i], n);
    });
    return;
  }
  const aliases = names.map((_, i) => `ormai_c${i}`);
  const outer = parseTemplate(`SELECT ${aliases.map((a) => `ormai_checked.${a}`).join(', ')} FROM (SELECT) AS ormai_checked(${aliases.join(', ')})`, 'foreign key check');
  names.forEach((n, i) => {
    if (!at(n)) return;
    const res = (outer.targetList![i] as { ResTarget: ResTarget }).ResTarget;
    res.val = check(res.val as Node, n);
  });
  (outer.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = insert.selectStmt;
  insert.selectStmt = { SelectStmt: outer };
}

const SOURCE = 'ormai_source';

/** The tenant column, last and outermost: the proxy's literal in every row, whatever the agent wrote there (a checked constant or DEFAULT). */
export function bindTenant(insert: InsertStmt, table: ScopedTable, scope: ReadScope, principal: Principal): void {
  const tenantColumn = table.tenantColumn;
  if (!tenantColumn || !insert.selectStmt) return;
  const at = columnsOf(insert).findIndex((c) => c.name === tenantColumn && !c.indirection?.length);
  const rows = valuesRows(insert);
  if (rows) {
    if (at >= 0) {
      for (const row of rows) row[at] = tenantLiteral(scope, principal);
      return;
    }
    insert.cols = [...(insert.cols ?? []), { ResTarget: { name: tenantColumn } } as Node];
    for (const row of rows) row.push(tenantLiteral(scope, principal));
    return;
  }
  if (at >= 0) throw forged(tenantColumn); // refused by checkInsert already
  insert.cols = [...(insert.cols ?? []), { ResTarget: { name: tenantColumn } } as Node];
  insert.selectStmt = withTenant(insert.selectStmt, scope, principal);
}

/** `SELECT ormai_source.*, <tenant> FROM (<the checked source>) AS ormai_source` */
function withTenant(query: Node, scope: ReadScope, principal: Principal): Node {
  const outer = parseTemplate(`SELECT ${SOURCE}.*, 0 FROM (SELECT) AS ${SOURCE}`, 'INSERT … SELECT wrapper');
  (outer.targetList![1] as { ResTarget: ResTarget }).ResTarget.val = tenantLiteral(scope, principal);
  (outer.fromClause![0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = query;
  return { SelectStmt: outer };
}
