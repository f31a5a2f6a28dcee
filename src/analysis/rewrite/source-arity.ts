// How many columns a query gives, counted as PostgreSQL expands them: the arity of an INSERT's source, before and after the rewrite.
//
// PostgreSQL refuses an INSERT whose source gives more or fewer columns than its column list
// names (transformInsertStmt: "INSERT has more expressions than target columns", SQLSTATE
// 42601). The proxy wraps the source of an INSERT (the tenant, foreign-key checks) and maps
// its columns by position, so it must know the count before it builds anything: a wrapper over
// a source with one column too many would shift every value after it. The count is taken on
// the tree after the policy views are in place (a policy table reads as its visible columns,
// which is what `*` expands to for the agent). What cannot be counted without running the
// statement (`*` over a function, a NATURAL join, a composite `(x).*`) is refused.
import type { A_Indirection, ColumnRef, CommonTableExpr, JoinExpr, Node, RangeSubselect, RangeVar, ResTarget, SelectStmt, WithClause } from '@pgsql/types';
import { ProxyError } from '../../errors/catalogue';
import { barrierViewWidth } from './derived';

/** A CTE as seen from a query: its body and the CTEs its body can see. */
interface CteEntry {
  query: Node;
  scope: CteScope;
}

/** The CTEs visible at one point of a statement, by name (inner WITHs shadow outer ones). */
export type CteScope = ReadonlyMap<string, CteEntry>;

export const NO_CTES: CteScope = new Map();

/** PostgreSQL's own refusal, worded as PostgreSQL words it. */
export function columnCountMismatch(message: string, logMessage?: string): ProxyError {
  return new ProxyError('column_count_mismatch', { message, ...(logMessage ? { logMessage } : {}) });
}

/** An INSERT whose source gives `given` columns for `listed` target columns. */
export function insertArityError(listed: number, given: number, logMessage?: string): ProxyError {
  return columnCountMismatch(given > listed ? 'INSERT has more expressions than target columns' : 'INSERT has more target columns than expressions', logMessage);
}

function cannotCount(what: string): ProxyError {
  return new ProxyError('statement_not_allowed', {
    message: `the columns of ${what} cannot be counted before the statement runs`,
    hint: 'Name the columns in the SELECT list instead of using *.',
  });
}

/**
 * The CTEs of `clause` added to `outer`. As in PostgreSQL: a CTE's body sees the CTEs before it
 * in the same WITH (under WITH RECURSIVE, all of them, itself included).
 */
export function withScope(clause: WithClause | undefined, outer: CteScope): CteScope {
  if (!clause?.ctes?.length) return outer;
  const all = new Map(outer);
  let visible: CteScope = outer;
  for (const item of clause.ctes) {
    const cte = (item as { CommonTableExpr: CommonTableExpr }).CommonTableExpr;
    const entry: CteEntry = { query: cte.ctequery as Node, scope: clause.recursive ? all : visible };
    all.set(cte.ctename ?? '', entry);
    visible = new Map(all);
  }
  return all;
}

/** The number of columns `select` gives; refuses what PostgreSQL would refuse for a mismatch inside it. */
export function columnCount(select: SelectStmt, scope: CteScope): number {
  return new Counter().select(select, scope);
}

/** The number of columns one SELECT-list item gives (more than one for `*` and `t.*`). */
export function itemColumns(res: ResTarget, from: Node[], scope: CteScope): number {
  return new Counter().item(res, from, scope);
}

class Counter {
  /** CTEs being counted: a recursive CTE reached again through itself. */
  private readonly open = new Set<CteEntry>();

  select(select: SelectStmt, outer: CteScope): number {
    const scope = withScope(select.withClause, outer);
    if (select.op && select.op !== 'SETOP_NONE') {
      const left = this.select(select.larg as SelectStmt, scope);
      const right = this.select(select.rarg as SelectStmt, scope);
      if (left !== right) throw columnCountMismatch(`each ${select.op.replace('SETOP_', '')} query must have the same number of columns`);
      return left;
    }
    if (select.valuesLists?.length) {
      const lengths = select.valuesLists.map((l) => ((l as { List: { items?: Node[] } }).List.items ?? []).length);
      if (lengths.some((n) => n !== lengths[0])) throw columnCountMismatch('VALUES lists must all be the same length');
      return lengths[0];
    }
    let n = 0;
    for (const item of select.targetList ?? []) n += this.item((item as { ResTarget: ResTarget }).ResTarget, select.fromClause ?? [], scope);
    return n;
  }

  item(res: ResTarget, from: Node[], scope: CteScope): number {
    const val = res.val as Node | undefined;
    if (val && 'A_Indirection' in val && ((val.A_Indirection as A_Indirection).indirection ?? []).some((i) => 'A_Star' in i)) throw cannotCount('a (composite).* expansion');
    const fields = val && 'ColumnRef' in val ? ((val.ColumnRef as ColumnRef).fields ?? []) : [];
    if (fields.length === 0 || !('A_Star' in fields[fields.length - 1])) return 1;
    if (fields.length === 1) {
      if (from.length === 0) throw new ProxyError('syntax_error', { message: 'SELECT * with no tables specified is not valid' });
      return from.reduce((n, f) => n + this.fromItem(f, scope), 0);
    }
    const name = fields.length === 2 && 'String' in fields[0] ? fields[0].String.sval : undefined;
    const named = name === undefined ? undefined : this.find(from, name);
    if (named === undefined) throw cannotCount(`${name ?? 'a qualified name'}.*`);
    return typeof named === 'number' ? named : this.fromItem(named, scope);
  }

  /** The FROM item `name` denotes (a number: a JOIN … USING alias, which has the USING columns). */
  private find(from: Node[], name: string): Node | number | undefined {
    for (const f of from) {
      if ('RangeSubselect' in f && f.RangeSubselect.alias?.aliasname === name) return f;
      if ('RangeVar' in f && (f.RangeVar.alias?.aliasname ?? f.RangeVar.relname) === name) return f;
      if ('RangeFunction' in f && f.RangeFunction.alias?.aliasname === name) return f;
      if ('JoinExpr' in f) {
        const join: JoinExpr = f.JoinExpr;
        if (join.alias) {
          // An aliased join hides the names inside it.
          if (join.alias.aliasname === name) return f;
          continue;
        }
        if (join.join_using_alias?.aliasname === name) return join.usingClause?.length ?? 0;
        const inner = this.find([join.larg as Node, join.rarg as Node], name);
        if (inner !== undefined) return inner;
      }
    }
    return undefined;
  }

  private fromItem(f: Node, scope: CteScope): number {
    if ('RangeSubselect' in f) return this.subselect(f.RangeSubselect, scope);
    if ('RangeVar' in f) return this.relation(f.RangeVar, scope);
    if ('JoinExpr' in f) {
      const join: JoinExpr = f.JoinExpr;
      if (join.isNatural) throw cannotCount('a NATURAL join');
      // JOIN … USING merges each USING column of both sides into one.
      return this.fromItem(join.larg as Node, scope) + this.fromItem(join.rarg as Node, scope) - (join.usingClause?.length ?? 0);
    }
    throw cannotCount('a function or table expression in FROM');
  }

  private subselect(sub: RangeSubselect, scope: CteScope): number {
    const n = this.select((sub.subquery as { SelectStmt: SelectStmt }).SelectStmt, scope);
    const names = sub.alias?.colnames?.length ?? 0;
    // A subquery the proxy built names every column it passes on: fewer names would drop values, more would fail.
    if (sub.alias?.aliasname?.startsWith('ormai_') && names > 0 && names !== n) {
      throw insertArityError(names, n, `rewrite: ${sub.alias.aliasname} names ${names} of ${n} columns`);
    }
    return n;
  }

  /** After the rewrite every policy table is a barrier view or a derived table: any other relation name left is a CTE. */
  private relation(rv: RangeVar, scope: CteScope): number {
    const width = barrierViewWidth(rv);
    if (width !== undefined) return width;
    const entry = rv.schemaname === undefined ? scope.get(rv.relname ?? '') : undefined;
    if (!entry) throw cannotCount(`"${rv.relname}"`);
    if (this.open.has(entry)) throw cannotCount(`the recursive query "${rv.relname}"`);
    this.open.add(entry);
    try {
      const body = entry.query;
      if ('SelectStmt' in body) return this.select(body.SelectStmt as SelectStmt, entry.scope);
      // A data-modifying CTE gives its RETURNING list.
      const write = Object.values(body)[0] as { returningClause?: { exprs?: Node[] } };
      const items = write.returningClause?.exprs ?? [];
      if (items.some((i) => (((i as { ResTarget: ResTarget }).ResTarget.val as { ColumnRef?: ColumnRef } | undefined)?.ColumnRef?.fields ?? []).some((f) => 'A_Star' in f))) {
        throw cannotCount(`RETURNING * of "${rv.relname}"`);
      }
      return items.length;
    } finally {
      this.open.delete(entry);
    }
  }
}
