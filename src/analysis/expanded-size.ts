// The size of a statement as PostgreSQL plans it, once derived tables and CTEs are pulled up
// and the operators that repeat an operand are expanded.
//
// The planner pulls a simple subquery in FROM (and a CTE referenced once) up into its parent,
// replacing every reference to one of its columns by a copy of that column's expression
// (prepjointree.c, pull_up_simple_subquery). A column used twice at each of n nested levels is
// copied 2^n times, and planning does not check for cancellation: over a table, 16 levels of
// `SELECT x + x AS x FROM (…)` planned for 1.6–2.4 s on PostgreSQL 15 whatever the
// statement_timeout, and 17 levels under `WHERE x > 0` for 13–18 s.
// Parse analysis copies operands too (lexprCopies). So a statement is refused when its expanded
// size passes a bound, counted in the parse tree's objects as the node bound is. The count assumes
// every derived table is pulled up and every CTE PostgreSQL may inline is (NOT MATERIALIZED, or
// a SELECT referenced once: what stops PostgreSQL — OFFSET 0, aggregates, volatile functions —
// only makes it smaller), names targets as PostgreSQL does (figure), and takes, where a name could
// mean several columns (or one it cannot name), the largest. A query level's grouping sets
// (ROLLUP, CUBE, GROUPING SETS) weigh what grouping-sets.ts says, at every copy of the level.
import type { Node } from '@pgsql/types';
import { figureName, stringOf } from './column-names';
import { groupingWeight } from './grouping-sets';
import { nodeBody } from './types';

/** Objects of a column reference to a table's own column (wrapper, body, fields, one String): its expansion is itself. */
const OWN_COLUMN = 5;

/** The columns a FROM item gives its query: those with an expression of their own, by name and by position. */
interface Columns {
  named: Map<string, number>;
  ordered: { name: string | undefined; size: number }[];
  /** The largest column whose name is not known here: it may be the one any name means. */
  wild: number;
}

/** The size of the column a name means in these columns (the largest, when several could be). */
function columnSize(columns: Columns | undefined, name: string): number {
  return columns ? Math.max(columns.named.get(name) ?? 0, columns.wild) : 0;
}

interface Relation {
  alias: string | undefined;
  /** undefined: a table (or function) whose every column is itself. */
  columns: Columns | undefined;
}

interface Cte {
  columns: Columns;
  /** Its body's size, which every reference copies when the CTE is inlined. */
  size: number;
  inlined: boolean;
  /** Its node in the tree: what its references are counted by. */
  node: object;
}

interface Scope {
  relations: Relation[];
  ctes: Map<string, Cte>;
  outer: Scope | undefined;
}

/** Thrown inside the walk once the bound is passed, so that the rest is not counted. */
class Beyond extends Error {}

/**
 * The expanded size of a statement's tree, or `undefined` once it passes `bound` (the walk stops there).
 * A tree without derived tables, CTEs or operators that copy an operand is its own size; the caller skips those.
 */
export function expandedSize(root: Node, bound: number): number | undefined {
  try {
    // PostgreSQL inlines a CTE referenced once: the first walk counts each CTE's references
    // (inlining none but NOT MATERIALIZED ones, so it is the smaller), the second inlines.
    const references = new Map<object, number>();
    new Walker(bound, references, undefined).size(root, undefined);
    const walker = new Walker(bound, new Map(), references);
    walker.size(root, undefined);
    return walker.total;
  } catch (err) {
    if (err instanceof Beyond) return undefined;
    throw err;
  }
}

class Walker {
  /** Every object counted, expansions included: what the planner holds at once, at most. */
  total = 0;

  /**
   * `references`: filled with how often each CTE (by its node) is referenced; `known`: those
   * counts from an earlier walk, when CTEs referenced once are to be inlined.
   */
  constructor(
    private readonly bound: number,
    private readonly references: Map<object, number>,
    private readonly known: ReadonlyMap<object, number> | undefined,
  ) {}

  private count(n: number): void {
    this.total += n;
    if (this.total > this.bound) throw new Beyond();
  }

  /** The expanded size of any value: a node, a node body, a list. */
  size(value: unknown, scope: Scope | undefined): number {
    if (value === null || typeof value !== 'object') return 0;
    if (Array.isArray(value)) {
      let n = 1;
      for (const item of value) n += this.size(item, scope);
      this.count(1);
      return n;
    }
    const record = value as Record<string, unknown>;
    if (record.ColumnRef !== undefined) return this.columnRef(record.ColumnRef as { fields?: Node[] }, scope);
    if (record.SelectStmt !== undefined) return this.select(record.SelectStmt as Record<string, unknown>, scope).size + 1;
    const write = record.InsertStmt ?? record.UpdateStmt ?? record.DeleteStmt ?? record.MergeStmt;
    if (write !== undefined) return this.level(write as Record<string, unknown>, scope).size + 1;
    if (record.A_Expr !== undefined) return this.aExpr(record.A_Expr as Record<string, unknown>, scope);
    let n = 1;
    this.count(1);
    for (const key in record) {
      const child = record[key];
      if (child !== null && typeof child === 'object') n += this.size(child, scope);
    }
    return n;
  }

  /** An operator expression, its operands counted as often as PostgreSQL's parse analysis copies them. */
  private aExpr(expr: Record<string, unknown>, scope: Scope | undefined): number {
    const copies = lexprCopies(expr);
    let n = 2;
    this.count(2);
    for (const key in expr) {
      const child = expr[key];
      if (child === null || typeof child !== 'object') continue;
      const size = this.size(child, scope);
      n += size;
      const times = key === 'lexpr' ? copies : key === 'rexpr' ? rexprCopies(expr) : 1;
      if (times > 1) {
        this.count(size * (times - 1));
        n += size * (times - 1);
      }
    }
    return n;
  }

  /** A column reference costs what the column it names expands to. */
  private columnRef(ref: { fields?: Node[] }, scope: Scope | undefined): number {
    const fields = ref.fields ?? [];
    const names = fields.map((f) => ('String' in f ? (f.String as { sval?: string }).sval : undefined));
    const star = fields.length > 0 && 'A_Star' in fields[fields.length - 1];
    let n = OWN_COLUMN;
    if (star && fields.length === 1) n = Math.max(n, sumOf(innermost(scope)));
    else if (star && fields.length === 2 && names[0] !== undefined) n = Math.max(n, sumOf(relationsNamed(scope, names[0])));
    else if (fields.length === 1 && names[0] !== undefined) {
      // A column of any visible relation, or the whole row of a relation of that name.
      n = Math.max(n, columnAnywhere(scope, names[0]), sumOf(relationsNamed(scope, names[0])));
    } else if (fields.length === 2 && names[0] !== undefined && names[1] !== undefined) {
      for (const relation of relationsNamed(scope, names[0])) n = Math.max(n, columnSize(relation.columns, names[1]));
    }
    this.count(n);
    return n;
  }

  /** A SELECT: its size and the columns it gives whoever reads it. */
  private select(body: Record<string, unknown>, outer: Scope | undefined): { size: number; columns: Columns } {
    if (body.op !== undefined && body.op !== 'SETOP_NONE') {
      const scope = this.withCtes(body, outer);
      // The two sides are SelectStmt bodies, without the node wrapper.
      const left = this.select((body.larg ?? {}) as Record<string, unknown>, scope);
      const right = this.select((body.rarg ?? {}) as Record<string, unknown>, scope);
      let size = left.size + right.size;
      for (const key of ['sortClause', 'limitCount', 'limitOffset', 'lockingClause']) size += this.size(body[key], scope);
      // A set operation's column is either side's: the larger counts.
      const ordered = left.columns.ordered.map((c, i) => ({ name: c.name, size: Math.max(c.size, right.columns.ordered[i]?.size ?? 0) }));
      return { size, columns: columnsOf(ordered) };
    }
    const { size, scope } = this.levelWithScope(body, outer, ['targetList', 'valuesLists']);
    let total = size;
    // Its grouping sets, planned with it wherever it is copied.
    const grouping = groupingWeight(body.groupClause as Node[] | undefined);
    if (grouping > 0) {
      this.count(grouping);
      total += grouping;
    }
    const ordered: Columns['ordered'] = [];
    for (const target of (body.targetList as Node[] | undefined) ?? []) {
      const res = nodeBody(target) as { name?: string; val?: Node };
      const val = res.val as Record<string, unknown> | undefined;
      const ref = val && 'ColumnRef' in val ? (val.ColumnRef as { fields?: Node[] }).fields ?? [] : undefined;
      if (ref && ref.length > 0 && 'A_Star' in ref[ref.length - 1]) {
        // `*` and `s.*` give the columns of what they name, one each.
        const from = ref.length === 1 ? innermost(scope) : relationsNamed(scope, stringOf(ref[0]) ?? '');
        for (const relation of from) ordered.push(...(relation.columns?.ordered ?? []));
        total += this.size(target, scope);
        continue;
      }
      const n = this.size(target, scope);
      total += n;
      ordered.push({ name: res.name ?? figureName(res.val), size: n });
    }
    for (const row of (body.valuesLists as Node[] | undefined) ?? []) {
      const items = (nodeBody(row) as { items?: Node[] }).items ?? [];
      items.forEach((item, i) => {
        const n = this.size(item, scope);
        total += n;
        ordered[i] = { name: `column${i + 1}`, size: Math.max(ordered[i]?.size ?? 0, n) };
      });
    }
    return { size: total, columns: columnsOf(ordered) };
  }

  /** An INSERT, UPDATE, DELETE or MERGE: its CTEs, its FROM/USING, then the rest. */
  private level(body: Record<string, unknown>, outer: Scope | undefined): { size: number } {
    return this.levelWithScope(body, outer, []);
  }

  /** A statement's CTEs and FROM items make its scope; every other field (but `skip`) is counted in it. */
  private levelWithScope(body: Record<string, unknown>, outer: Scope | undefined, skip: readonly string[]): { size: number; scope: Scope } {
    const scope = this.withCtes(body, outer);
    let size = 0;
    for (const key of FROM_KEYS) {
      const items = body[key];
      for (const item of Array.isArray(items) ? items : items ? [items] : []) size += this.fromItem(item as Node, scope);
    }
    for (const key in body) {
      if (key === 'withClause' || FROM_KEYS.includes(key) || skip.includes(key)) continue;
      size += this.size(body[key], scope);
    }
    return { size, scope };
  }

  /** The scope of a statement's WITH: each CTE sees the ones before it (and, when recursive, itself as a table). */
  private withCtes(body: Record<string, unknown>, outer: Scope | undefined): Scope {
    const scope: Scope = { relations: [], ctes: new Map(), outer };
    const clause = body.withClause as { ctes?: Node[]; recursive?: boolean } | undefined;
    for (const cte of clause?.ctes ?? []) {
      const c = nodeBody(cte) as { ctename?: string; aliascolnames?: Node[]; ctequery?: Node; ctematerialized?: string };
      const query = c.ctequery as Record<string, unknown> | undefined;
      // A recursive CTE is never inlined; NOT MATERIALIZED is, at every reference, and a SELECT
      // referenced once is unless MATERIALIZED (subselect.c, SS_process_ctes).
      const node = cte as object;
      const once = this.known !== undefined && this.known.get(node) === 1 && c.ctematerialized !== 'CTEMaterializeAlways' && query !== undefined && 'SelectStmt' in query;
      const inlined = !clause?.recursive && (c.ctematerialized === 'CTEMaterializeNever' || once);
      // An inlined CTE counts where it is referenced, as often as it is, not where it is defined.
      const before = this.total;
      let result = { size: 0, columns: columnsOf([]) };
      if (query && 'SelectStmt' in query) result = this.select(query.SelectStmt as Record<string, unknown>, scope);
      else result.size = this.size(query, scope);
      if (inlined) this.total = before;
      if (c.ctename !== undefined) scope.ctes.set(c.ctename, { columns: renamed(result.columns, c.aliascolnames), size: result.size, inlined, node });
    }
    return scope;
  }

  /** One FROM item: adds the relations it names to the scope and returns the size of what it holds. */
  private fromItem(item: Node, scope: Scope): number {
    const record = item as Record<string, unknown>;
    if ('RangeVar' in record) {
      const rv = record.RangeVar as { relname?: string; schemaname?: string; alias?: { aliasname?: string; colnames?: Node[] } };
      const cte = rv.schemaname === undefined && rv.relname !== undefined ? cteNamed(scope, rv.relname) : undefined;
      if (cte) this.references.set(cte.node, (this.references.get(cte.node) ?? 0) + 1);
      scope.relations.push({ alias: rv.alias?.aliasname ?? rv.relname, columns: cte ? renamed(cte.columns, rv.alias?.colnames) : undefined });
      if (cte?.inlined) this.count(cte.size);
      return this.size(item, undefined) + (cte?.inlined ? cte.size : 0);
    }
    if ('RangeSubselect' in record) {
      const rs = record.RangeSubselect as { subquery?: Node; alias?: { aliasname?: string; colnames?: Node[] } };
      const query = rs.subquery as Record<string, unknown> | undefined;
      // A LATERAL subquery sees the items before it; counting them visible to any subquery only makes names match more.
      const inner: Scope = { relations: [...scope.relations], ctes: new Map(), outer: scope };
      const result = query && 'SelectStmt' in query ? this.select(query.SelectStmt as Record<string, unknown>, inner) : { size: this.size(query, inner), columns: columnsOf([]) };
      scope.relations.push({ alias: rs.alias?.aliasname, columns: renamed(result.columns, rs.alias?.colnames) });
      return result.size + 1;
    }
    if ('JoinExpr' in record) {
      type Alias = { aliasname?: string; colnames?: Node[] };
      const join = record.JoinExpr as { larg?: Node; rarg?: Node; quals?: Node; usingClause?: Node[]; alias?: Alias; join_using_alias?: Alias };
      const before = scope.relations.length;
      let size = 1 + (join.larg ? this.fromItem(join.larg, scope) : 0) + (join.rarg ? this.fromItem(join.rarg, scope) : 0);
      size += this.size(join.quals, scope) + this.size(join.usingClause, scope);
      const sides = scope.relations.slice(before);
      if (join.alias?.aliasname !== undefined) {
        // `(a JOIN b) AS j(p, q)` names the columns of both sides, renamed by position.
        scope.relations.push({ alias: join.alias.aliasname, columns: renamed(columnsOf(sides.flatMap((r) => r.columns?.ordered ?? [])), join.alias.colnames) });
      }
      if (join.join_using_alias?.aliasname !== undefined) {
        // `JOIN … USING (x) AS j`: j.x is the merged column, either side's.
        const merged = (join.usingClause ?? []).map((n) => {
          const name = stringOf(n);
          return { name, size: name === undefined ? 0 : Math.max(0, ...sides.map((r) => columnSize(r.columns, name))) };
        });
        scope.relations.push({ alias: join.join_using_alias.aliasname, columns: columnsOf(merged) });
      }
      return size;
    }
    // A function, a table sample, XMLTABLE: counted as written, its columns are its own.
    const alias = (Object.values(record)[0] as { alias?: { aliasname?: string } } | undefined)?.alias?.aliasname;
    scope.relations.push({ alias, columns: undefined });
    return this.size(item, scope);
  }
}

/**
 * How many copies of its left operand PostgreSQL's parse analysis makes (parse_expr.c):
 * `a BETWEEN x AND y` is `a >= x AND a <= y`, twice; SYMMETRIC is that for both orders, four
 * times; `a IN (b, c, …)` compares `a` once with the constants (one array) and once with each
 * other entry (`a = b OR a = c …`). Nested, they multiply: `((id BETWEEN SYMMETRIC 1 AND 2)::int
 * BETWEEN SYMMETRIC 1 AND 2)…` ten levels deep, 377 bytes, held 1.2 GB in a backend that had
 * been planning for 5 s past its statement_timeout.
 */
export function lexprCopies(expr: Record<string, unknown>): number {
  switch (expr.kind) {
    case 'AEXPR_BETWEEN':
    case 'AEXPR_NOT_BETWEEN':
      return 2;
    case 'AEXPR_BETWEEN_SYM':
    case 'AEXPR_NOT_BETWEEN_SYM':
      return 4;
    case 'AEXPR_IN': {
      const items = (expr.rexpr as { List?: { items?: Node[] } } | undefined)?.List?.items ?? [];
      return 1 + items.filter((item) => !isConstant(item)).length;
    }
    default:
      return 1;
  }
}

/** SYMMETRIC compares both orders: each bound is copied once more. */
function rexprCopies(expr: Record<string, unknown>): number {
  return expr.kind === 'AEXPR_BETWEEN_SYM' || expr.kind === 'AEXPR_NOT_BETWEEN_SYM' ? 2 : 1;
}

/** A constant or a parameter, under casts: what an IN list gathers into one array. */
function isConstant(node: Node): boolean {
  while ('TypeCast' in node && node.TypeCast.arg) node = node.TypeCast.arg;
  return 'A_Const' in node || 'ParamRef' in node;
}

/** The fields of a statement body that are FROM items. */
const FROM_KEYS = ['fromClause', 'usingClause', 'relation', 'sourceRelation'];

function columnsOf(ordered: Columns['ordered']): Columns {
  const named = new Map<string, number>();
  let wild = 0;
  for (const c of ordered) {
    if (c.name !== undefined) named.set(c.name, Math.max(named.get(c.name) ?? 0, c.size));
    else if (c.size > wild) wild = c.size;
  }
  return { named, ordered, wild };
}

/** Column aliases (`AS s(a, b)`, `WITH c(a, b)`) rename the first columns by position. */
function renamed(columns: Columns, names: Node[] | undefined): Columns {
  if (!names || names.length === 0) return columns;
  return columnsOf(columns.ordered.map((c, i) => (i < names.length ? { name: stringOf(names[i]), size: c.size } : c)));
}

function cteNamed(scope: Scope | undefined, name: string): Cte | undefined {
  for (let s = scope; s; s = s.outer) {
    const cte = s.ctes.get(name);
    if (cte) return cte;
  }
  return undefined;
}

function relationsNamed(scope: Scope | undefined, alias: string): Relation[] {
  const found: Relation[] = [];
  for (let s = scope; s; s = s.outer) for (const r of s.relations) if (r.alias === alias) found.push(r);
  return found;
}

/** The relations of the nearest scope that has any: what `*` expands. */
function innermost(scope: Scope | undefined): Relation[] {
  for (let s = scope; s; s = s.outer) if (s.relations.length > 0) return s.relations;
  return [];
}

/** The largest column of that name in any scope (an outer one is what a correlated reference reaches). */
function columnAnywhere(scope: Scope | undefined, name: string): number {
  let n = 0;
  for (let s = scope; s; s = s.outer) for (const r of s.relations) n = Math.max(n, columnSize(r.columns, name));
  return n;
}

function sumOf(relations: readonly Relation[]): number {
  let n = 0;
  for (const r of relations) for (const c of r.columns?.ordered ?? []) n += c.size;
  return n;
}
