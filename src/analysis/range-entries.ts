// The range-table entries of one statement, as PostgreSQL names them: refname → the column names of every entry of that name.
//
// What attribute notation needs to know: is `f` a column of whatever `q` can denote? Names follow
// PostgreSQL's rules: a table's (policy-visible) columns, a subquery's or CTE's output names
// (FigureColname for unnamed entries), a function's result columns (chooseScalarFunctionAlias),
// alias column lists. Where a name cannot be known exactly the columns are `undefined`; where
// PostgreSQL would name an entry "?column?" or a keyword the name is left out. Both only make
// the check stricter.
import type { Alias, ColumnDef, ColumnRef, CommonTableExpr, FuncCall, Node, RangeFunction, RangeSubselect, RangeVar, ResTarget, SelectStmt } from '@pgsql/types';
import type { PolicySnapshot } from '../policy/load';
import { SYSTEM_COLUMNS, type ReadScope } from '../policy/scope';
import { isBuiltinFunction, isFunctionAllowed } from './functions';
import { CATALOG_FUNCTIONS, INFORMATION_SCHEMA_FUNCTIONS } from './function-allowlist';
import { APPROVAL_COLUMN_NAMES, catalogViewColumns, virtualColumnNames } from './rewrite/virtual';
import { nodeBody, nodeTypeOf } from './types';

/** The column names of a range-table entry; undefined when the proxy cannot know them exactly. */
type Columns = readonly string[] | undefined;

/** Built-in functions whose result columns are their OUT parameters (pg_proc.proargnames), not the alias. */
export const OUT_COLUMNS: Record<string, readonly string[]> = {
  json_each: ['key', 'value'],
  jsonb_each: ['key', 'value'],
  json_each_text: ['key', 'value'],
  jsonb_each_text: ['key', 'value'],
  json_array_elements: ['value'],
  jsonb_array_elements: ['value'],
  json_array_elements_text: ['value'],
  jsonb_array_elements_text: ['value'],
};

/**
 * The result columns of a call whose OUT parameters name them, as `schema.f` parts: the
 * built-ins above (unqualified or pg_catalog) and information_schema's value functions.
 */
export function outColumns(parts: readonly string[]): readonly string[] | undefined {
  const name = parts[parts.length - 1] ?? '';
  if (parts.length === 1 || (parts.length === 2 && parts[0] === 'pg_catalog')) return Object.hasOwn(OUT_COLUMNS, name) ? OUT_COLUMNS[name] : undefined;
  if (parts.length === 2 && parts[0] === 'information_schema' && Object.hasOwn(INFORMATION_SCHEMA_FUNCTIONS, name)) return INFORMATION_SCHEMA_FUNCTIONS[name];
  return undefined;
}

/**
 * The fields of composite-valued columns, by position in a column list: a select-list entry
 * `f(...) AS k` whose result columns are known makes `(q.k).x` a field of q's column k. A list
 * without an entry here, or a position without fields, knows none.
 */
const FIELDS = new WeakMap<readonly string[], ReadonlyArray<readonly string[] | undefined>>();

/** `next` keeps the positions of `prev` (renamed or extended at the end): its fields carry over. */
function keepFields(next: Columns, prev: Columns): Columns {
  const fields = prev && FIELDS.get(prev);
  if (next && fields && next !== prev) FIELDS.set(next, fields);
  return next;
}

/** Built-ins whose result columns depend on their arguments (a record type, or unnest of a tsvector). */
const ARGUMENT_TYPED = new Set([
  'json_populate_record', 'jsonb_populate_record', 'json_populate_recordset', 'jsonb_populate_recordset',
  'json_to_record', 'jsonb_to_record', 'json_to_recordset', 'jsonb_to_recordset', 'unnest',
]);

export function names(list: Node[] | undefined): string[] {
  return (list ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
}

/** The first names renamed by an alias's column list (PostgreSQL keeps the rest). */
function renamed(columns: Columns, alias: Alias | undefined): Columns {
  const aliases = names(alias?.colnames);
  if (aliases.length === 0 || !columns) return columns;
  return keepFields([...aliases, ...columns.slice(aliases.length)], columns);
}

/** CTE names visible at a point of the statement, with their columns. */
type CteScope = ReadonlyMap<string, Columns>;

/** What one statement's range-table entries are: refname → every entry of that name (any query level). */
export class Entries {
  private readonly byName = new Map<string, Columns[]>();
  private readonly raw = new Set<string>();
  private readonly outputs = new WeakMap<object, Columns>();

  constructor(
    root: Node,
    private readonly scope: ReadScope | undefined,
    private readonly policy: PolicySnapshot | undefined,
  ) {
    // FOR UPDATE OF names entries; it adds none.
    const locked = new WeakSet<object>();
    // Iterative, carrying the CTEs in scope: a non-recursive CTE sees only the ones before it.
    const stack: Array<[unknown, CteScope]> = [[root, new Map()]];
    while (stack.length > 0) {
      const [value, outer] = stack.pop()!;
      if (value === null || typeof value !== 'object') continue;
      if (Array.isArray(value)) {
        for (const item of value) stack.push([item, outer]);
        continue;
      }
      const node = value as Record<string, unknown>;
      for (const clause of (node.lockingClause as Array<{ LockingClause?: { lockedRels?: Node[] } }> | undefined) ?? []) {
        for (const rel of clause.LockingClause?.lockedRels ?? []) if ('RangeVar' in rel) locked.add(rel.RangeVar);
      }
      let inner = outer;
      const withClause = node.withClause as { recursive?: boolean; ctes?: Node[] } | undefined;
      if (withClause?.ctes) {
        const ctes = withClause.ctes.map((c) => (c as { CommonTableExpr: CommonTableExpr }).CommonTableExpr);
        const all = new Map(outer);
        const seen: CteScope[] = [];
        for (const cte of ctes) {
          seen.push(withClause.recursive ? all : new Map(all));
          all.set(cte.ctename ?? '', withClause.recursive ? undefined : this.cteColumns(cte, all));
        }
        // A recursive WITH: every CTE sees every other; their columns from each one's first branch.
        if (withClause.recursive) for (const cte of ctes) all.set(cte.ctename ?? '', this.cteColumns(cte, all));
        ctes.forEach((cte, i) => stack.push([cte.ctequery, seen[i]]));
        inner = all;
      }
      for (const [type, body] of Object.entries(node)) {
        if (type === 'withClause' || body === null || typeof body !== 'object') continue;
        stack.push([body, inner]);
        switch (type) {
          case 'RangeVar': {
            const rv = body as RangeVar;
            if (!locked.has(rv)) for (const columns of this.relationColumns(rv, inner)) this.add(rv.alias?.aliasname ?? rv.relname ?? '', columns);
            break;
          }
          case 'RangeSubselect': {
            const sub = body as RangeSubselect;
            if (sub.alias?.aliasname) this.add(sub.alias.aliasname, renamed(this.output(sub.subquery, inner), sub.alias));
            break;
          }
          case 'RangeFunction': {
            const fn = body as RangeFunction;
            const name = fn.alias?.aliasname ?? this.functionName(fn);
            if (name) this.add(name, this.functionColumns(fn));
            break;
          }
          case 'JoinExpr': {
            const join = body as { alias?: Alias; larg?: Node; rarg?: Node };
            if (join.alias?.aliasname) this.add(join.alias.aliasname, this.fromColumns({ JoinExpr: join } as Node, inner));
            break;
          }
          case 'RangeTableFunc':
          case 'JsonTable': {
            // XMLTABLE and JSON_TABLE: entries whose columns are not worked out here.
            const alias = (body as { alias?: Alias }).alias?.aliasname;
            if (alias) this.add(alias, undefined);
            break;
          }
          case 'InsertStmt':
          case 'UpdateStmt':
          case 'DeleteStmt':
          case 'MergeStmt': {
            // ON CONFLICT's EXCLUDED, and RETURNING's OLD and NEW (or the names WITH (OLD AS o) gives them), are the target's rows.
            const write = body as { relation?: RangeVar; returningClause?: { options?: Node[] } };
            if (!write.relation) break;
            // The target itself (its RangeVar sits unwrapped in `relation`).
            const target = this.relationColumns(write.relation, new Map());
            const extra = [write.relation.alias?.aliasname ?? write.relation.relname ?? '', 'excluded', 'old', 'new'];
            for (const option of write.returningClause?.options ?? []) {
              const name = (option as { ReturningOption?: { value?: string } }).ReturningOption?.value;
              if (name) extra.push(name);
            }
            for (const name of extra) {
              for (const columns of target) this.add(name, columns);
              this.raw.add(name);
            }
            break;
          }
        }
      }
    }
  }

  get(name: string): Columns[] | undefined {
    return this.byName.get(name);
  }

  /**
   * Does the name denote a write target's row (or EXCLUDED, OLD, NEW)? Those rows are the real
   * table's, hidden columns included: only visible columns may be named on them, never a
   * function of the whole row (`c.to_jsonb` is to_jsonb(c) over every column).
   */
  isRaw(name: string): boolean {
    return this.raw.has(name);
  }

  /**
   * Is `field` certainly a field of column `column` of every entry named `qualifier`: a column
   * whose value is a known function's composite result?
   */
  hasField(qualifier: string, column: string, field: string): boolean {
    const readings = this.byName.get(qualifier);
    return (
      readings !== undefined &&
      readings.every((c) => {
        if (!c || !c.includes(column)) return false;
        const fields = FIELDS.get(c);
        return c.every((name, i) => name !== column || (fields?.[i]?.includes(field) ?? false));
      })
    );
  }

  /** Could a bare name be a column of some entry? (Unknown entries could have any column.) */
  mayBeColumn(name: string): boolean {
    for (const list of this.byName.values()) for (const columns of list) if (!columns || columns.includes(name)) return true;
    return false;
  }

  private add(name: string, columns: Columns): void {
    const list = this.byName.get(name);
    if (list) list.push(columns);
    else this.byName.set(name, [columns]);
  }

  /**
   * A relation name is a CTE in scope, else a table. Names the policy does not know (and system
   * catalogs other than pg_type) add no entry: the rewrite refuses them as relations.
   */
  private relationColumns(rv: RangeVar, ctes: CteScope): Columns[] {
    if (!rv.schemaname && ctes.has(rv.relname ?? '')) return [renamed(ctes.get(rv.relname ?? ''), rv.alias)];
    if (rv.schemaname === 'ormai' && rv.relname === 'approvals') return [renamed(APPROVAL_COLUMN_NAMES, rv.alias)];
    if (!this.scope) return [undefined];
    const resolution = this.scope.resolve(rv.schemaname, rv.relname ?? '');
    switch (resolution.kind) {
      case 'table':
        return [renamed([...resolution.table.columns.map((c) => c.name), ...(resolution.table.systemColumns ? SYSTEM_COLUMNS : [])], rv.alias)];
      case 'virtual':
        return [renamed(virtualColumnNames(resolution.name), rv.alias)];
      case 'catalog':
        {
        const columns = catalogViewColumns(this.scope, resolution.schema, resolution.name);
        // A catalog table's view carries tableoid in a statement that names it (catalog-views.ts, servedRelation).
        const table = this.scope.catalog.objects?.systemRelations.get(`${resolution.schema}.${resolution.name}`)?.table === true;
        return columns ? [renamed(table && !columns.includes('tableoid') ? [...columns, 'tableoid'] : columns, rv.alias)] : [];
      }
      case 'unknown':
        return [];
    }
  }

  private cteColumns(cte: CommonTableExpr, ctes: CteScope): Columns {
    const query = cte.ctequery;
    let columns: Columns;
    if (query && nodeTypeOf(query) === 'SelectStmt') columns = this.output(query, ctes);
    else if (query) columns = this.targetNames((nodeBody(query) as { returningClause?: { exprs?: Node[] } }).returningClause?.exprs, undefined, ctes);
    const aliases = names(cte.aliascolnames);
    if (columns && aliases.length) columns = keepFields([...aliases, ...columns.slice(aliases.length)], columns);
    const search = (cte.search_clause as { search_seq_column?: string } | undefined)?.search_seq_column;
    const cycle = cte.cycle_clause as { cycle_mark_column?: string; cycle_path_column?: string } | undefined;
    if (columns && search) columns = keepFields([...columns, search], columns);
    if (columns && cycle?.cycle_mark_column) columns = keepFields([...columns, cycle.cycle_mark_column, cycle.cycle_path_column ?? ''], columns);
    return columns;
  }

  /** The output column names of a query (a set operation's come from its first branch). */
  private output(query: Node | undefined, outer: CteScope): Columns {
    if (!query || nodeTypeOf(query) !== 'SelectStmt') return undefined;
    const select = nodeBody<SelectStmt>(query);
    if (this.outputs.has(select)) return this.outputs.get(select);
    this.outputs.set(select, undefined); // a recursive CTE reads itself: unknown while being computed
    let ctes = outer;
    if (select.withClause?.ctes?.length) {
      // The query's own WITH: its CTEs' columns, as far as `*` over them needs.
      const own = new Map(outer);
      for (const c of select.withClause.ctes) {
        const cte = (c as { CommonTableExpr: CommonTableExpr }).CommonTableExpr;
        own.set(cte.ctename ?? '', select.withClause.recursive ? undefined : this.cteColumns(cte, own));
      }
      ctes = own;
    }
    let result: Columns;
    if (select.op && select.op !== 'SETOP_NONE') result = this.output(select.larg ? { SelectStmt: select.larg } : undefined, ctes);
    else if (select.valuesLists?.length) {
      const first = select.valuesLists[0] as { List?: { items?: Node[] } };
      result = (first.List?.items ?? []).map((_, i) => `column${i + 1}`);
    } else result = this.targetNames(select.targetList, select, ctes);
    this.outputs.set(select, result);
    return result;
  }

  /** Names of a target list: `AS name`, else PostgreSQL's FigureColname; `*` and `q.*` expand over the FROM list. */
  private targetNames(targets: Node[] | undefined, select: SelectStmt | undefined, ctes: CteScope): Columns {
    const out: string[] = [];
    const fields: Array<readonly string[] | undefined> = [];
    const known = (val: Node | undefined): readonly string[] | undefined => {
      if (!val || !('FuncCall' in val)) return undefined;
      const parts = names(val.FuncCall.funcname);
      return isFunctionAllowed(parts, this.policy, true) ? outColumns(parts) : undefined;
    };
    for (const target of targets ?? []) {
      const res = (target as { ResTarget?: ResTarget }).ResTarget;
      if (!res) return undefined;
      fields[out.length] = known(res.val);
      if (res.name) {
        out.push(res.name);
        continue;
      }
      const ref = res.val && 'ColumnRef' in res.val ? (res.val.ColumnRef as ColumnRef).fields ?? [] : [];
      if (ref.length > 0 && 'A_Star' in ref[ref.length - 1]) {
        const expanded = this.starColumns(ref.length === 1 ? undefined : names(ref.slice(0, -1)).pop(), select, ctes);
        if (!expanded) return undefined;
        out.push(...expanded);
        continue;
      }
      // An unnamed expression PostgreSQL calls "?column?" (or a keyword): leaving it out only makes the check stricter.
      const name = figureColname(res.val);
      if (name !== undefined) out.push(name);
    }
    if (fields.some((f) => f !== undefined)) FIELDS.set(out, fields.slice(0, out.length));
    return out;
  }

  private starColumns(qualifier: string | undefined, select: SelectStmt | undefined, ctes: CteScope): Columns {
    const from = select?.fromClause ?? [];
    if (qualifier === undefined) return union(from.map((item) => this.fromColumns(item, ctes)));
    for (const item of from) {
      const columns = this.namedFromColumns(item, qualifier, ctes);
      if (columns !== null) return columns;
    }
    return undefined;
  }

  /** The columns of a FROM item named `name` within `item` (null: no such item there). */
  private namedFromColumns(item: Node | undefined, name: string, ctes: CteScope): Columns | null {
    if (!item) return null;
    const type = nodeTypeOf(item);
    const body = nodeBody<{ alias?: Alias; relname?: string; larg?: Node; rarg?: Node }>(item);
    if (type === 'JoinExpr') {
      if (body.alias?.aliasname === name) return this.fromColumns(item, ctes);
      const left = this.namedFromColumns(body.larg, name, ctes);
      return left !== null ? left : this.namedFromColumns(body.rarg, name, ctes);
    }
    const refname = body.alias?.aliasname ?? (type === 'RangeVar' ? body.relname : type === 'RangeFunction' ? this.functionName(body as RangeFunction) : undefined);
    return refname === name ? this.fromColumns(item, ctes) : null;
  }

  /** The columns a FROM item contributes to `*` (a join: both sides). */
  private fromColumns(item: Node | undefined, ctes: CteScope): Columns {
    if (!item) return undefined;
    const body = nodeBody(item);
    switch (nodeTypeOf(item)) {
      case 'RangeVar': {
        const readings = this.relationColumns(body as RangeVar, ctes);
        return readings.length === 1 ? readings[0] : undefined;
      }
      case 'RangeSubselect':
        return renamed(this.output((body as RangeSubselect).subquery, ctes), (body as RangeSubselect).alias);
      case 'RangeFunction':
        return this.functionColumns(body as RangeFunction);
      case 'JoinExpr': {
        const join = body as { alias?: Alias; larg?: Node; rarg?: Node };
        return join.alias?.colnames?.length ? undefined : union([this.fromColumns(join.larg, ctes), this.fromColumns(join.rarg, ctes)]);
      }
      default:
        return undefined;
    }
  }

  /** Without an alias, a function in FROM (ROWS FROM too) is named after its first function. */
  private functionName(fn: RangeFunction): string | undefined {
    const first = this.functionCalls(fn)[0]?.call;
    return first ? names(first.funcname).pop() : undefined;
  }

  private functionCalls(fn: RangeFunction): Array<{ call?: FuncCall; coldefs: Node[] }> {
    return (fn.functions ?? []).map((f) => {
      const items = (f as { List?: { items?: Node[] } }).List?.items ?? [];
      const call = items[0] && 'FuncCall' in items[0] ? (items[0].FuncCall as FuncCall) : undefined;
      const coldefs = (items[1] as { List?: { items?: Node[] } } | undefined)?.List?.items ?? [];
      return { call, coldefs };
    });
  }

  /**
   * unnest(x) is one column for an array (named by the alias) and three for a tsvector (its
   * OUT parameters). Only the names both readings share are known: `unnest($1::int[]) AS t(id)`
   * has the column id either way. Without an alias list nothing is known.
   */
  private unnestColumns(fn: RangeFunction): Columns {
    if (!fn.alias?.colnames?.length) return undefined;
    const [array, tsvector] = [[fn.alias?.aliasname ?? 'unnest'], ['lexeme', 'positions', 'weights']].map(
      (r) => renamed(fn.ordinality ? [...r, 'ordinality'] : r, fn.alias) as string[],
    );
    return array.filter((c) => tsvector.includes(c));
  }

  /** PostgreSQL's names for a function's result columns (chooseScalarFunctionAlias for scalar results). */
  private functionColumns(fn: RangeFunction): Columns {
    const calls = this.functionCalls(fn);
    const columns: string[] = [];
    for (const { call, coldefs } of calls) {
      const defs = coldefs.length ? coldefs : calls.length === 1 ? (fn.coldeflist ?? []) : [];
      if (defs.length) {
        columns.push(...defs.map((d) => (d as { ColumnDef?: ColumnDef }).ColumnDef?.colname ?? ''));
        continue;
      }
      const parts = names(call?.funcname);
      const name = parts[parts.length - 1] ?? '';
      const out = outColumns(parts);
      if (call && out && isFunctionAllowed(parts, this.policy, true)) {
        columns.push(...out);
        continue;
      }
      const system = parts.length === 1 || (parts.length === 2 && parts[0] === 'pg_catalog');
      if (!call || !system || !(isBuiltinFunction(name) || CATALOG_FUNCTIONS.includes(name)) || !isFunctionAllowed(parts, this.policy, true)) return undefined;
      if (name === 'unnest' && calls.length === 1 && call.args?.length === 1) return this.unnestColumns(fn);
      if (ARGUMENT_TYPED.has(name)) return undefined;
      columns.push(calls.length === 1 && fn.alias?.aliasname ? fn.alias.aliasname : name);
    }
    if (fn.ordinality) columns.push('ordinality');
    return renamed(columns, fn.alias);
  }
}

/** All names of several column lists; unknown when any is. */
function union(lists: Columns[]): Columns {
  if (lists.some((l) => l === undefined)) return undefined;
  return lists.flatMap((l) => l as string[]);
}

/** The name PostgreSQL gives an unnamed select-list entry (FigureColname), for the forms whose name is certain. */
function figureColname(node: Node | undefined): string | undefined {
  return figure(node)?.[0];
}

/**
 * FigureColnameInternal: a name and its strength (2: a column, function or field name; 1: a
 * type name from a cast). A cast takes its argument's name only when that one is strong, so
 * `x::int::text` is x but `(1::int)::text` is text. Forms left out get no name here.
 */
export function figure(node: Node | undefined): [string, number] | undefined {
  if (!node) return undefined;
  if ('ColumnRef' in node) {
    const fields = node.ColumnRef.fields ?? [];
    const last = fields[fields.length - 1];
    return last && 'String' in last ? [last.String.sval ?? '', 2] : undefined;
  }
  if ('FuncCall' in node) {
    const name = names(node.FuncCall.funcname).pop();
    return name === undefined ? undefined : [name, 2];
  }
  if ('A_Indirection' in node) {
    let field: string | undefined;
    for (const f of node.A_Indirection.indirection ?? []) if ('String' in f) field = f.String.sval;
    return field !== undefined ? [field, 2] : figure(node.A_Indirection.arg);
  }
  if ('TypeCast' in node) {
    const inner = figure(node.TypeCast.arg);
    if (inner && inner[1] === 2) return inner;
    const type = names(node.TypeCast.typeName?.names).pop();
    return type === undefined ? undefined : [type, 1];
  }
  return undefined;
}
