// The invariant behind every row the proxy lets an agent insert, checked on the tree that is forwarded: one value per column, the tenant's value the proxy's.
//
// The rewrite builds the INSERT in steps (column checks, foreign-key wrappers, the tenant); each
// step is right only if the ones before it were. This check does not trust them: it runs last,
// on the very tree that is printed and forwarded (the deparser's output is parsed back and must
// give this same tree, see deparse.ts), and for every INSERT in it — top level, in any CTE,
// under EXPLAIN — and every INSERT preview of a dry run or an approval it requires
//   (a) the source gives exactly as many columns as the column list names, counted as
//       PostgreSQL counts them (source-arity.ts), and
//   (b) for a tenant-scoped target, the tenant column is listed once and, in every row the
//       source can produce (each VALUES row, the SELECT list, each branch of a set operation),
//       its value is the proxy's own tenant literal, not an expression that may yield it,
// and that no UPDATE or ON CONFLICT DO UPDATE assigns the tenant column. Anything else is
// refused: column_count_mismatch for (a), tenant_forged for the rest.
import type { CommonTableExpr, DeleteStmt, InsertStmt, Node, OnConflictClause, RangeSubselect, ResTarget, SelectStmt, UpdateStmt, WithClause } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import type { ReadScope, ScopedTable } from '../../policy/scope';
import { insertPreviewTarget } from './dry-run';
import { forged } from './insert-rows';
import { columnCount, insertArityError, itemColumns, NO_CTES, withScope, type CteScope } from './source-arity';
import { tenantLiteral } from './tenant';

const LOG = 'final-tree check';

/** Throws unless every INSERT (and INSERT preview) of `tree` writes one value per column and the proxy's tenant. */
export function checkTenantBinding(tree: Node, scope: ReadScope, principal: Principal): void {
  new Checker(scope, principal).visit(tree, NO_CTES);
}

class Checker {
  private literal?: string;
  /** How many INSERT sources (or previews of one) the walk is inside. */
  private sources = 0;

  constructor(
    private readonly scope: ReadScope,
    private readonly principal: Principal,
  ) {}

  visit(value: unknown, ctes: CteScope): void {
    if (value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      for (const item of value) this.visit(item, ctes);
      return;
    }
    const node = value as Record<string, unknown>;
    if ('SelectStmt' in node) return this.select(node.SelectStmt as SelectStmt, ctes);
    if ('InsertStmt' in node) return this.insert(node.InsertStmt as InsertStmt, ctes);
    if ('UpdateStmt' in node) return this.update(node.UpdateStmt as UpdateStmt, ctes);
    if ('DeleteStmt' in node) {
      const del = node.DeleteStmt as DeleteStmt;
      const scope = this.with(del.withClause, ctes);
      for (const key of ['usingClause', 'whereClause', 'returningClause'] as const) this.visit(del[key], scope);
      return;
    }
    if ('RangeSubselect' in node) {
      const sub = node.RangeSubselect as RangeSubselect;
      const target = insertPreviewTarget(sub);
      if (target) {
        this.rows(sub.alias?.colnames?.map((c) => ('String' in c ? (c.String.sval ?? '') : '')) ?? [], sub.subquery as Node, target, ctes, 'INSERT preview');
        return this.source(sub.subquery, ctes);
      }
      if (sub.alias?.aliasname === 'ormai_insert') throw new ProxyError('internal_error', { logMessage: `${LOG}: an INSERT preview of unknown origin` });
      if (this.sources > 0 && sub.alias?.aliasname?.startsWith('ormai_') && sub.alias.colnames?.length) {
        // A wrapper the proxy built (the foreign-key check) names every column it passes on: fewer names would drop values.
        const given = columnCount((sub.subquery as { SelectStmt: SelectStmt }).SelectStmt, ctes);
        if (given !== sub.alias.colnames.length) throw insertArityError(sub.alias.colnames.length, given, `${LOG}: ${sub.alias.aliasname} names ${sub.alias.colnames.length} of ${given} columns`);
      }
    }
    for (const key in node) {
      const child = node[key];
      if (child !== null && typeof child === 'object') this.visit(child, ctes);
    }
  }

  /** The CTE bodies, each under the CTEs it can see; returns the scope of the query the WITH belongs to. */
  private with(clause: WithClause | undefined, outer: CteScope): CteScope {
    const scope = withScope(clause, outer);
    for (const item of clause?.ctes ?? []) {
      const cte = (item as { CommonTableExpr: CommonTableExpr }).CommonTableExpr;
      this.visit(cte.ctequery, scope.get(cte.ctename ?? '')?.scope ?? outer);
    }
    return scope;
  }

  private select(select: SelectStmt, outer: CteScope): void {
    const scope = this.with(select.withClause, outer);
    for (const key of Object.keys(select) as Array<keyof SelectStmt>) {
      if (key === 'withClause') continue;
      // Set-operation branches are bare SELECT bodies.
      if (key === 'larg' || key === 'rarg') this.select(select[key] as SelectStmt, scope);
      else this.visit(select[key], scope);
    }
  }

  private insert(insert: InsertStmt, outer: CteScope): void {
    const scope = this.with(insert.withClause, outer);
    const table = this.target(insert.relation?.schemaname, insert.relation?.relname);
    const cols = (insert.cols ?? []).map((c) => (c as { ResTarget: ResTarget }).ResTarget);
    if (table.tenantColumn && cols.some((c) => c.name === table.tenantColumn && c.indirection?.length)) throw forged(table.tenantColumn, `${LOG}: a subscript of the tenant column`);
    if (!insert.selectStmt) throw new ProxyError('internal_error', { logMessage: `${LOG}: an INSERT without a source` });
    this.rows(cols.map((c) => c.name ?? ''), insert.selectStmt, table, scope, 'INSERT');
    this.assignments(insert.onConflictClause as OnConflictClause | undefined, table);
    this.source(insert.selectStmt, scope);
    for (const key of ['onConflictClause', 'returningClause'] as const) this.visit(insert[key], scope);
  }

  /** The rows of an INSERT or preview: the proxy's own wrappers in it are checked too. */
  private source(rows: unknown, scope: CteScope): void {
    this.sources++;
    this.visit(rows, scope);
    this.sources--;
  }

  private update(update: UpdateStmt, outer: CteScope): void {
    const scope = this.with(update.withClause, outer);
    const table = this.target(update.relation?.schemaname, update.relation?.relname);
    this.assignments({ targetList: update.targetList }, table);
    for (const key of ['targetList', 'fromClause', 'whereClause', 'returningClause'] as const) this.visit(update[key], scope);
  }

  /** SET never names the tenant column (field_not_writable refused it as the agent wrote it). */
  private assignments(clause: { targetList?: Node[] } | undefined, table: ScopedTable): void {
    const tenant = table.tenantColumn;
    if (!tenant) return;
    for (const item of clause?.targetList ?? []) {
      if ((item as { ResTarget: ResTarget }).ResTarget.name === tenant) throw forged(tenant, `${LOG}: an assignment to the tenant column`);
    }
  }

  private target(schema: string | undefined, name: string | undefined): ScopedTable {
    const resolution = this.scope.resolve(schema, name ?? '');
    if (resolution.kind !== 'table') throw new ProxyError('internal_error', { logMessage: `${LOG}: a write target outside the policy` });
    return resolution.table;
  }

  /** (a) and (b) for one list of columns and the rows that fill it. */
  private rows(cols: string[], source: Node, table: ScopedTable, scope: CteScope, what: string): void {
    const select = (source as { SelectStmt?: SelectStmt }).SelectStmt;
    if (!select) throw new ProxyError('internal_error', { logMessage: `${LOG}: ${what} rows that are not a query` });
    const given = columnCount(select, scope);
    if (given !== cols.length) throw insertArityError(cols.length, given, `${LOG}: ${what} of ${cols.length} columns with ${given} values`);
    const tenant = table.tenantColumn;
    if (!tenant) return;
    const at = cols.indexOf(tenant);
    if (at < 0 || cols.lastIndexOf(tenant) !== at) throw forged(tenant, `${LOG}: ${what} without exactly one tenant column`);
    if (!this.bound(select, at, scope)) throw forged(tenant, `${LOG}: ${what} whose tenant value is not the proxy's`);
  }

  /** Is column `at` of every row `select` can produce the proxy's literal? */
  private bound(select: SelectStmt, at: number, outer: CteScope): boolean {
    const scope = withScope(select.withClause, outer);
    if (select.op && select.op !== 'SETOP_NONE') return this.bound(select.larg as SelectStmt, at, scope) && this.bound(select.rarg as SelectStmt, at, scope);
    if (select.valuesLists?.length) return select.valuesLists.every((l) => this.isLiteral((l as { List: { items?: Node[] } }).List.items?.[at]));
    // Under GROUPING SETS an output column left out of a set reads as NULL, a constant included.
    if (select.groupClause?.length) return false;
    let position = 0;
    for (const item of select.targetList ?? []) {
      const res = (item as { ResTarget: ResTarget }).ResTarget;
      const n = itemColumns(res, select.fromClause ?? [], scope);
      // The column must be an item of its own, not one of the columns a `*` expands to.
      if (position === at) return n === 1 && this.isLiteral(res.val as Node | undefined);
      position += n;
      if (position > at) return false;
    }
    return false;
  }

  private isLiteral(node: Node | undefined): boolean {
    this.literal ??= canonical(tenantLiteral(this.scope, this.principal));
    return node !== undefined && canonical(node) === this.literal;
  }
}

/** A node as JSON with sorted keys and without source positions: equal text, equal node. */
function canonical(node: unknown): string {
  return JSON.stringify(node, (key, value: unknown) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    const rec = value as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(rec)
        .filter((k) => k !== 'location')
        .sort()
        .map((k) => [k, rec[k]]),
    );
  });
}
