// Untyped strings that PostgreSQL would read as reg* names: refused, since the name lookup sees every object of the database.
//
// An explicit `'name'::regclass` is checked against the policy (rewrite/catalog-functions.ts).
// But PostgreSQL also gives an untyped string constant, or a parameter the client left
// unspecified, the type of the values it is brought together with: in COALESCE, CASE results,
// GREATEST/LEAST, an ARRAY, the columns of UNION and VALUES, and the arguments of polymorphic
// functions (parse_coerce.c, select_common_type). Beside a reg* value,
// `coalesce(NULL::regclass, 'payroll')` runs regclassin('payroll'): the oid of a hidden table,
// or an error that tells hidden from missing. An operator is different: reg* types have none of
// their own, so `typinput = 'f'`, a one-item IN, BETWEEN, NULLIF, CASE x WHEN and sub-select
// comparisons read the text as an oid; only operators on reg* arrays (`@>`, `||`, array
// equality) read it as names, and so does an IN list of two or more constants (one array of the
// left side's type). So wherever such a group holds a value that may be of a reg* type (for
// operators, a reg* array) and an untyped constant or parameter, the statement is refused; the
// agent can write the explicit cast, which is checked.
//
// What may be of a reg* type is decided syntactically and fails closed: a cast to a reg* type,
// a function returning one, a catalog column of one, and any column, alias or whole row that a
// sub-select, CTE, VALUES list or FROM function of the statement gives out of such a value.
import type { A_Expr, CaseExpr, ColumnRef, CommonTableExpr, FuncCall, Node, RangeFunction, RangeSubselect, RangeVar, ResTarget, SelectStmt, SubLink, TypeCast } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import { REG_TYPES } from './function-allowlist';
import { nameParts } from './functions';
import { figure } from './range-entries';
import { walk } from './rewrite/nodes';

/** Columns of reg* types in system relations (PostgreSQL 15–18), by relation. */
const REG_COLUMNS: Record<string, readonly string[]> = {
  pg_type: ['typinput', 'typoutput', 'typreceive', 'typsend', 'typmodin', 'typmodout', 'typanalyze', 'typsubscript'],
  pg_range: ['rngcanonical', 'rngsubdiff'],
  pg_am: ['amhandler'],
  pg_proc: ['prosupport'],
  pg_sequences: ['data_type'],
  pg_aggregate: ['aggfnoid', 'aggtransfn', 'aggfinalfn', 'aggcombinefn', 'aggserialfn', 'aggdeserialfn', 'aggmtransfn', 'aggminvtransfn', 'aggmfinalfn'],
  pg_amproc: ['amproc'],
  pg_conversion: ['conproc'],
  pg_operator: ['oprcode', 'oprrest', 'oprjoin'],
  pg_transform: ['trffromsql', 'trftosql'],
  pg_ts_parser: ['prsstart', 'prstoken', 'prsend', 'prsheadline', 'prslextype'],
  pg_ts_template: ['tmplinit', 'tmpllexize'],
  pg_prepared_statements: ['parameter_types', 'result_types'],
};

/** The reg* array columns among them. */
const REG_ARRAY_COLUMNS = new Set(['parameter_types', 'result_types']);

/** Built-in functions that return a reg* type. */
const REG_FUNCTIONS = new Set([
  'pg_typeof', 'regclass', 'to_regclass', 'to_regcollation', 'to_regnamespace', 'to_regoper', 'to_regoperator', 'to_regproc',
  'to_regprocedure', 'to_regrole', 'to_regtype', 'pg_partition_root', 'pg_partition_ancestors', 'pg_filenode_relation',
  'pg_get_replica_identity_index', 'get_current_ts_config',
]);

/** Functions whose arguments PostgreSQL brings to one common type (polymorphic parameters). */
const UNIFYING_FUNCTIONS = new Set([
  'array_append', 'array_prepend', 'array_cat', 'array_position', 'array_positions', 'array_remove', 'array_replace',
  'lag', 'lead', 'width_bucket',
]);

/** The names PostgreSQL gives an unnamed select-list entry it cannot name otherwise. */
const GENERIC_NAMES = ['?column?', 'coalesce', 'case', 'greatest', 'least', 'nullif', 'array', 'row'];

type Any = Record<string, unknown>;

export const lastName = (names: Node[] | undefined): string => nameParts(names).pop() ?? '';

/**
 * The members whose common type is the expression's own: COALESCE's and GREATEST/LEAST's
 * arguments, a CASE's results; undefined for any other node.
 */
function resultMembers(n: Any): Array<Node | undefined> | undefined {
  if ('CoalesceExpr' in n) return (n.CoalesceExpr as { args?: Node[] }).args ?? [];
  if ('MinMaxExpr' in n) return (n.MinMaxExpr as { args?: Node[] }).args ?? [];
  if ('CaseExpr' in n) {
    const c = n.CaseExpr as CaseExpr;
    return [...(c.args ?? []).map((w) => (w as { CaseWhen?: { result?: Node } }).CaseWhen?.result), c.defresult];
  }
  return undefined;
}

/** The items of each row of a VALUES list. */
function valuesRows(select: SelectStmt): Node[][] {
  return (select.valuesLists ?? []).map((row) => ((row as { List?: { items?: Node[] } }).List?.items ?? []) as Node[]);
}

function isRegType(cast: TypeCast): boolean {
  return REG_TYPES.has(lastName(cast.typeName?.names).replace(/^_/, ''));
}

/**
 * A constant string without a type, or a parameter: PostgreSQL types it from the group it is in.
 * A COLLATE clause or a cast to `unknown` leaves it untyped.
 */
function untyped(node: Node | undefined): boolean {
  if (!node) return false;
  if ('ParamRef' in node) return true;
  if ('CollateClause' in node) return untyped(node.CollateClause.arg);
  if ('TypeCast' in node) return lastName(node.TypeCast.typeName?.names) === 'unknown' && untyped(node.TypeCast.arg);
  return 'A_Const' in node && node.A_Const.sval !== undefined;
}

/** Whether a node (by its key in its wrapper) gives a reg* value: a statement with none needs no further check. */
export function isRegSource(key: string, body: unknown): boolean {
  if (key === 'TypeCast') return isRegType(body as TypeCast);
  if (key === 'FuncCall') return REG_FUNCTIONS.has(lastName((body as FuncCall).funcname));
  if (key === 'RangeVar') return Object.hasOwn(REG_COLUMNS, (body as RangeVar).relname ?? '');
  return false;
}

function hasRegSource(tree: Node): boolean {
  return walk([tree], (node) => {
    for (const key in node) if (isRegSource(key, node[key])) return true;
    return false;
  });
}

/** Names (columns, and relation aliases for whole rows) that may stand for a reg* value in this statement. */
class RegNames {
  /** Unqualified column names and whole-row names. */
  readonly names = new Set<string>();
  /** Relation or alias → its columns that may be reg* values. */
  readonly byRelation = new Map<string, Set<string>>();
  /** The names among them that may be reg* arrays (a whole row counts as one: its text is read field by field). */
  readonly arrays = new Set<string>();

  add(relation: string | undefined, columns: readonly string[], arrays: (column: string) => boolean): boolean {
    let changed = false;
    let set: Set<string> | undefined;
    const note = (name: string, array: boolean) => {
      if (!this.names.has(name)) (this.names.add(name), (changed = true));
      if (array && !this.arrays.has(name)) (this.arrays.add(name), (changed = true));
    };
    if (relation !== undefined) {
      set = this.byRelation.get(relation);
      if (!set) this.byRelation.set(relation, (set = new Set()));
      note(relation, true);
    }
    for (const c of columns) {
      note(c, arrays(c));
      set?.add(c);
    }
    return changed;
  }

  /** Whether the reference may be a reg* value (`array`: a reg* array, or a whole row). */
  column(ref: ColumnRef, array = false): boolean {
    const fields = (ref.fields ?? []).map((f) => ('String' in f ? (f.String.sval ?? '') : '*'));
    const column = fields[fields.length - 1];
    const found = (name: string) => this.names.has(name) && (!array || this.arrays.has(name));
    // An unqualified * passes on whatever the FROM items give.
    if (fields.length === 1) return column === '*' ? (array ? this.arrays.size : this.names.size) > 0 : found(column);
    const relation = fields[fields.length - 2];
    const columns = this.byRelation.get(relation);
    // A qualifier this statement does not give reg* columns (a policy table's alias): its columns are ordinary.
    if (columns === undefined) return false;
    return column === '*' || (columns.has(column) && found(column));
  }
}

/** A reg* array: what an operator reads an untyped string beside as names (a scalar reg* value is compared as an oid). */
function mayBeRegArray(node: Node | undefined, regs: RegNames): boolean {
  if (!node) return false;
  const n = node as Any;
  if ('TypeCast' in n) {
    const cast = n.TypeCast as TypeCast;
    return isRegType(cast) && ((cast.typeName?.arrayBounds?.length ?? 0) > 0 || lastName(cast.typeName?.names).startsWith('_'));
  }
  if ('A_ArrayExpr' in n) return ((n.A_ArrayExpr as { elements?: Node[] }).elements ?? []).some((a) => mayBeReg(a, regs));
  if ('SubLink' in n) {
    const s = n.SubLink as SubLink;
    return s.subLinkType === 'ARRAY_SUBLINK' ? outputs(s.subselect).some((t) => mayBeReg(t, regs)) : s.subLinkType === 'EXPR_SUBLINK' && outputs(s.subselect).some((t) => mayBeRegArray(t, regs));
  }
  const members = resultMembers(n);
  if (members) return members.some((a) => mayBeRegArray(a, regs));
  if ('A_Expr' in n) {
    const e = n.A_Expr as A_Expr;
    return e.kind === 'AEXPR_NULLIF' ? mayBeRegArray(e.lexpr, regs) : e.kind === 'AEXPR_OP' && lastName(e.name) === '||' && (mayBeRegArray(e.lexpr, regs) || mayBeRegArray(e.rexpr, regs));
  }
  if ('ColumnRef' in n) return regs.column(n.ColumnRef as ColumnRef, true);
  // A polymorphic function over reg* values may give an array of them back (array_agg, array_append): fail closed.
  if ('FuncCall' in n) return ((n.FuncCall as FuncCall).args ?? []).some((a) => mayBeReg(a, regs));
  if ('A_Indirection' in n) return mayBeRegArray((n.A_Indirection as { arg?: Node }).arg, regs);
  return false;
}

function mayBeReg(node: Node | undefined, regs: RegNames): boolean {
  if (!node) return false;
  const n = node as Any;
  if ('TypeCast' in n) return isRegType(n.TypeCast as TypeCast);
  if ('ColumnRef' in n) return regs.column(n.ColumnRef as ColumnRef);
  if ('FuncCall' in n) {
    const call = n.FuncCall as FuncCall;
    // A polymorphic function may give back the type of any argument (array_agg, max, lag, …): fail closed.
    return REG_FUNCTIONS.has(lastName(call.funcname)) || (call.args ?? []).some((a) => mayBeReg(a, regs));
  }
  const members = resultMembers(n);
  if (members) return members.some((a) => mayBeReg(a, regs));
  if ('A_ArrayExpr' in n) return ((n.A_ArrayExpr as { elements?: Node[] }).elements ?? []).some((a) => mayBeReg(a, regs));
  if ('A_Expr' in n) {
    const e = n.A_Expr as A_Expr;
    // NULLIF gives its first argument's type; || on reg* arrays gives one back (on a scalar, text).
    return e.kind === 'AEXPR_NULLIF' ? mayBeReg(e.lexpr, regs) : e.kind === 'AEXPR_OP' && lastName(e.name) === '||' && (mayBeRegArray(e.lexpr, regs) || mayBeRegArray(e.rexpr, regs));
  }
  if ('A_Indirection' in n) return mayBeReg((n.A_Indirection as { arg?: Node }).arg, regs);
  if ('SubLink' in n) {
    const s = n.SubLink as SubLink;
    return (s.subLinkType === 'EXPR_SUBLINK' || s.subLinkType === 'ARRAY_SUBLINK') && outputs(s.subselect).some((t) => mayBeReg(t, regs));
  }
  return false;
}

/** Every leaf SELECT of a set operation (or the SELECT itself); larg and rarg are bare SelectStmts. */
function leaves(node: Node | undefined): SelectStmt[] {
  const select = node && 'SelectStmt' in node ? node.SelectStmt : undefined;
  return select ? leavesOf(select) : [];
}

function leavesOf(select: SelectStmt): SelectStmt[] {
  if (select.op && select.op !== 'SETOP_NONE') return [...(select.larg ? leavesOf(select.larg) : []), ...(select.rarg ? leavesOf(select.rarg) : [])];
  return [select];
}

/** The output expressions of a query, every leaf and every VALUES row, column by column flattened. */
function outputs(node: Node | undefined): Node[] {
  const out: Node[] = [];
  for (const leaf of leaves(node)) {
    for (const t of leaf.targetList ?? []) {
      const val = (t as { ResTarget?: ResTarget }).ResTarget?.val;
      if (val) out.push(val);
    }
    for (const row of valuesRows(leaf)) out.push(...row);
  }
  return out;
}

/** The output columns of a query that may be reg* values, by name (and their positions, for alias lists). */
function regOutputs(node: Node | undefined, regs: RegNames): { names: string[]; positions: Set<number>; arrays: Set<number> } {
  const names: string[] = [];
  const positions = new Set<number>();
  const arrays = new Set<number>();
  // A set operation's columns take their names from its first branch: every branch's name at a
  // position counts once any branch gives a reg* value there.
  const namesAt = new Map<number, string[]>();
  const note = (val: Node, i: number, named: string[]) => {
    let at = namesAt.get(i);
    if (!at) namesAt.set(i, (at = []));
    at.push(...named);
    if (!mayBeReg(val, regs)) return;
    positions.add(i);
    if (mayBeRegArray(val, regs)) arrays.add(i);
  };
  for (const leaf of leaves(node)) {
    (leaf.targetList ?? []).forEach((t, i) => {
      const target = (t as { ResTarget?: ResTarget }).ResTarget;
      if (!target?.val) return;
      // A * passes on every name that may stand for a reg* value (its columns' positions are not known here).
      const star = starOf(target.val);
      if (star) {
        const names = star === '*' ? [...regs.names] : [...(regs.byRelation.get(star) ?? [])];
        note(target.val, i, names);
        return;
      }
      const name = target.name ?? figure(target.val)?.[0];
      note(target.val, i, name !== undefined ? [name] : GENERIC_NAMES);
    });
    for (const row of valuesRows(leaf)) row.forEach((v, i) => note(v, i, [`column${i + 1}`]));
  }
  for (const i of positions) names.push(...(namesAt.get(i) ?? []));
  return { names, positions, arrays };
}

/** `*` for an unqualified star target, the qualifier of `x.*`, else undefined. */
function starOf(node: Node): string | undefined {
  const fields = 'ColumnRef' in node ? (node.ColumnRef.fields ?? []) : [];
  const last = fields[fields.length - 1];
  if (!last || !('A_Star' in last)) return undefined;
  const qualifier = fields[fields.length - 2];
  return qualifier && 'String' in qualifier ? (qualifier.String.sval ?? '') : '*';
}

const aliasColumns = (colnames: Node[] | undefined, positions: Set<number>): string[] =>
  (colnames ?? []).flatMap((c, i) => (positions.has(i) && 'String' in c ? [c.String.sval ?? ''] : []));

type Outputs = ReturnType<typeof regOutputs>;

/** The names a FROM item or CTE gives its reg* outputs: their own, and the alias list's. */
const derived = (out: Outputs, colnames: Node[] | undefined): string[] => [...out.names, ...aliasColumns(colnames, out.positions)];

/** Which of those names may be reg* arrays (a name given both ways counts as an array). */
function arrayOf(out: Outputs, colnames: Node[] | undefined): (column: string) => boolean {
  const arrays = new Set(aliasColumns(colnames, out.arrays));
  // Output names are not kept by position: any output that may be an array makes every output name one.
  if (out.arrays.size > 0) for (const n of out.names) arrays.add(n);
  return (c) => arrays.has(c);
}

/** What the statement's FROM items, CTEs and sub-selects give out that may be reg* values, to a fixed point. */
function regNames(tree: Node): RegNames {
  const regs = new RegNames();
  for (let round = 0; ; round++) {
    // Names that carry a reg* value through more levels than this are not followed: refused.
    if (round === 16) refuse();
    let changed = false;
    walk([tree], (node) => {
      if ('RangeVar' in node) {
        const rv = node.RangeVar as RangeVar;
        const columns = Object.hasOwn(REG_COLUMNS, rv.relname ?? '') ? REG_COLUMNS[rv.relname!] : undefined;
        if (columns) {
          const array = (c: string) => REG_ARRAY_COLUMNS.has(c);
          changed = regs.add(rv.alias?.aliasname ?? rv.relname, columns, array) || changed;
          if (rv.alias?.aliasname) changed = regs.add(rv.relname, columns, array) || changed;
        }
        // A CTE read by name gives what the CTE gives.
        const cte = regs.byRelation.get(`\u0000cte:${rv.relname ?? ''}`);
        if (cte && rv.alias?.aliasname) changed = regs.add(rv.alias.aliasname, [...cte], (c) => regs.arrays.has(c)) || changed;
      } else if ('RangeSubselect' in node) {
        const sub = node.RangeSubselect as RangeSubselect;
        const out = regOutputs(sub.subquery, regs);
        if (out.positions.size > 0) changed = regs.add(sub.alias?.aliasname, derived(out, sub.alias?.colnames), arrayOf(out, sub.alias?.colnames)) || changed;
      } else if ('CommonTableExpr' in node) {
        const cte = node.CommonTableExpr as CommonTableExpr;
        const out = regOutputs(cte.ctequery, regs);
        if (out.positions.size > 0) {
          const columns = derived(out, cte.aliascolnames);
          changed = regs.add(cte.ctename, columns, arrayOf(out, cte.aliascolnames)) || changed;
          changed = regs.add(`\u0000cte:${cte.ctename ?? ''}`, columns, arrayOf(out, cte.aliascolnames)) || changed;
        }
      } else if ('JoinExpr' in node) {
        // (a JOIN b) AS j: j's columns are a's and b's; every name known so far, fail closed.
        const join = node.JoinExpr as { alias?: { aliasname?: string; colnames?: Node[] } };
        if (join.alias?.aliasname && regs.names.size > 0) {
          changed = regs.add(join.alias.aliasname, [...regs.names, ...nameParts(join.alias.colnames)], () => regs.arrays.size > 0) || changed;
        }
      } else if ('RangeFunction' in node) {
        // unnest(ARRAY[x::regclass]) AS u(r): every name it gives out, when any argument may be reg*
        // (as arrays too: a FROM function may return one).
        const rf = node.RangeFunction as RangeFunction;
        const calls = (rf.functions ?? []).flatMap((f) => ((f as { List?: { items?: Node[] } }).List?.items ?? []).slice(0, 1) as Node[]);
        if (calls.some((c) => mayBeReg(c, regs))) {
          const names = calls.map((c) => figure(c)?.[0]).filter((s): s is string => s !== undefined);
          changed = regs.add(rf.alias?.aliasname ?? names[0], [...names, ...nameParts(rf.alias?.colnames)], () => true) || changed;
        }
      }
      return false;
    });
    if (!changed) break;
  }
  return regs;
}

function refuse(): never {
  throw new ProxyError('function_not_allowed', {
    message: 'an untyped string or parameter beside a reg* value is not allowed',
    hint: "PostgreSQL would look the text up in the system catalogs as a name. Write the cast yourself ('customers'::regclass), which is checked against the policy, or compare oids.",
  });
}

type Typed = (node: Node | undefined, regs: RegNames) => boolean;

/** Refuses when the group has an untyped member and one that `typed` says gives it a reg* type. */
function checkGroup(members: ReadonlyArray<Node | undefined>, regs: RegNames, typed: Typed = mayBeReg): void {
  if (!members.some(untyped)) return;
  if (members.some((m) => typed(m, regs))) refuse();
}

/** Whether the expression reads a column of its own query level (not only inside sub-selects). */
function readsColumns(node: Node): boolean {
  const stack: unknown[] = [node];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      stack.push(...value);
      continue;
    }
    const n = value as Any;
    if ('ColumnRef' in n) return true;
    for (const key in n) if (key !== 'subselect') stack.push(n[key]);
  }
  return false;
}

/** The operands of an operator (a row comparison pairs its members by position), as operators read them. */
function checkOperands(left: Node | undefined, right: Node | undefined, regs: RegNames): void {
  const rowItems = (n: Node | undefined): Node[] | undefined => (n && 'RowExpr' in n ? (n.RowExpr.args ?? []) : undefined);
  const l = rowItems(left);
  const r = rowItems(right);
  if (l && r) {
    for (let i = 0; i < Math.max(l.length, r.length); i++) checkGroup([l[i], r[i]], regs, mayBeRegArray);
    return;
  }
  // ROW(…) IN (ROW(…), …): each row against the left one, column by column.
  const rows = right && 'List' in right ? (right.List.items ?? []).map((item) => rowItems(item)) : [];
  if (l && rows.length > 0 && rows.every(Boolean)) {
    for (let i = 0; i < l.length; i++) checkGroup([l[i], ...rows.map((row) => row![i])], regs, mayBeRegArray);
    return;
  }
  const list = (n: Node | undefined): Array<Node | undefined> => (n && 'List' in n ? (n.List.items ?? []) : [n]);
  checkGroup([...(l ?? list(left)), ...(r ?? list(right))], regs, mayBeRegArray);
}

/**
 * Refuses the statement when PostgreSQL would read an untyped string or parameter as a reg*
 * name. Runs on the agent's own tree; `sources` says whether it has a reg* value at all (the
 * expression walk knows: isRegSource), else the tree is searched.
 */
export function checkRegCoercions(tree: Node, sources = hasRegSource(tree)): void {
  if (!sources) return;
  const regs = regNames(tree);
  walk([tree], (node) => {
    const members = resultMembers(node);
    if (members) {
      checkGroup(members, regs);
      const c = node.CaseExpr as CaseExpr | undefined;
      // CASE x WHEN v compares with =: an operator.
      if (c?.arg) checkGroup([c.arg, ...(c.args ?? []).map((w) => (w as { CaseWhen?: { expr?: Node } }).CaseWhen?.expr)], regs, mayBeRegArray);
    } else if ('A_ArrayExpr' in node) checkGroup((node.A_ArrayExpr as { elements?: Node[] }).elements ?? [], regs);
    else if ('A_Expr' in node) {
      const e = node.A_Expr as A_Expr;
      checkOperands(e.lexpr, e.rexpr, regs);
      // x IN (a, b, …): two or more items without column references become one array of the
      // common type of x and those items (parse_expr.c, transformAExprIn), each read with its input.
      if (e.kind === 'AEXPR_IN' && e.rexpr && 'List' in e.rexpr) {
        // "Constants" as PostgreSQL counts them: no column of this query level (a sub-select's own do not count).
        const constants = (e.rexpr.List.items ?? []).filter((item) => !readsColumns(item));
        if (constants.length >= 2) checkGroup([e.lexpr, ...constants], regs);
      }
    } else if ('FuncCall' in node) {
      const call = node.FuncCall as FuncCall;
      if (UNIFYING_FUNCTIONS.has(lastName(call.funcname))) checkGroup(call.args ?? [], regs);
    } else if ('SubLink' in node) {
      const s = node.SubLink as SubLink;
      if (s.testexpr) {
        const outs = outputs(s.subselect);
        checkOperands(s.testexpr, 'RowExpr' in s.testexpr ? ({ RowExpr: { args: outs } } as Node) : { List: { items: outs } }, regs);
      }
    } else if ('SelectStmt' in node) {
      const select = node.SelectStmt as SelectStmt;
      // The columns of a set operation, and of a VALUES list, are brought to one type each.
      const rows: Node[][] = [];
      if (select.op && select.op !== 'SETOP_NONE') {
        for (const leaf of leaves(node as Node)) {
          if (leaf.valuesLists) rows.push(...valuesRows(leaf));
          else rows.push((leaf.targetList ?? []).map((t) => (t as { ResTarget?: ResTarget }).ResTarget?.val as Node));
        }
      } else rows.push(...valuesRows(select));
      // A * in a leaf stands for columns at positions not known here: every member counts against it.
      if (rows.some((r) => r.some((v) => v !== undefined && starOf(v) !== undefined && mayBeReg(v, regs)))) checkGroup(rows.flat(), regs);
      const width = Math.max(0, ...rows.map((r) => r.length));
      for (let i = 0; i < width; i++) checkGroup(rows.map((r) => r[i]), regs);
    }
    return false;
  });
}
