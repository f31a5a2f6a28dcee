// Comparisons with a tenant column in the agent's own text: what the tenant_forged flag is decided on,
// and the literals the shape cache keeps in its key because that decision reads their values.
import type { A_Expr, CaseExpr, JoinExpr, Node, SelectStmt, SubLink } from '@pgsql/types';
import { walk } from './rewrite/nodes';

export interface TenantComparison {
  /**
   * `<tenant column> = <values>` (IN, `= ANY`, IS NOT DISTINCT FROM, a row's element), the column
   * bare or cast: only whether its values name the principal's tenant matters. Anything else
   * (`<>`, a range, BETWEEN, the column inside an expression) asks about other tenants by its shape.
   */
  equality: boolean;
  /** Constants on the other side (A_Const, NULL excluded), and their source locations. */
  constants: Node[];
  /** Parameters ($n) on the other side; `arrays` are those compared under `= ANY`, holding a list of tenants. */
  params: number[];
  arrays: number[];
  /** The other side is one array literal under `= ANY` (`'{1,2}'`): its constant holds a list of tenants. */
  listLiteral: boolean;
  /** Source locations of every constant in the comparison, both sides. */
  locations: number[];
}

/**
 * The comparisons that involve a tenant column, by name through any alias: a target list or a
 * column alias list that renames an expression of a tenant column gives its name too (so
 * `(SELECT tenant_id AS t FROM orders) s WHERE t = 2` compares a tenant column).
 */
export function tenantComparisons(root: Node, columns: ReadonlySet<string>): TenantComparison[] {
  if (columns.size === 0) return [];
  // The rewrite (tenant_forged) and the shape cache (its pinned literals) ask of the same parsed tree.
  const known = FOUND.get(root);
  if (known?.columns === columns) return known.comparisons;
  const comparisons = compareAll(root, columns);
  FOUND.set(root, { columns, comparisons });
  return comparisons;
}

const FOUND = new WeakMap<object, { columns: ReadonlySet<string>; comparisons: TenantComparison[] }>();

function compareAll(root: Node, columns: ReadonlySet<string>): TenantComparison[] {
  // One walk: what may compare, what may name a column, and whether a tenant column is named at all (most statements: not).
  const compares: Record<string, unknown>[] = [];
  const namers: Record<string, unknown>[] = [];
  let named = false;
  walk([root], (node) => {
    if (node.A_Expr !== undefined || node.SubLink !== undefined || node.CaseExpr !== undefined) compares.push(node);
    else if (node.JoinExpr !== undefined) {
      compares.push(node);
      const join = node.JoinExpr as JoinExpr;
      named ||= join.isNatural === true || (join.usingClause ?? []).some((n) => 'String' in n && columns.has(n.String.sval ?? ''));
    }
    else if (node.SelectStmt !== undefined || node.RangeSubselect !== undefined || node.CommonTableExpr !== undefined) namers.push(node);
    else if (!named && (node.ColumnRef !== undefined || node.A_Indirection !== undefined)) named = isColumn(node as Node, columns);
  });
  if (!named) return [];
  const known: Known = { names: aliasesOf(namers, columns), constants: constantColumns(namers) };
  const out: TenantComparison[] = [];
  for (const node of compares) {
    if (node.A_Expr !== undefined) compareExpr(node.A_Expr as A_Expr, known, out);
    else if (node.SubLink !== undefined) compareSubLink(node.SubLink as SubLink, known, out);
    else if (node.CaseExpr !== undefined) compareCase(node.CaseExpr as CaseExpr, known, out);
    else compareJoin(node.JoinExpr as JoinExpr, known, out);
  }
  return out;
}

function compareExpr(expr: A_Expr, known: Known, out: TenantComparison[]): void {
  const op = operatorName(expr.name);
  const left = rowItems(expr.lexpr);
  const right = rowItems(expr.rexpr);
  if (op === '=' && expr.kind === 'AEXPR_OP' && left && right && left.length === right.length) {
    // (tenant_id, id) = (2, 5): each element is a comparison of its own.
    left.forEach((l, i) => compareSides(l, right[i], true, known, out));
    return;
  }
  const rows = expr.kind === 'AEXPR_IN' && left && expr.rexpr && 'List' in expr.rexpr ? (expr.rexpr.List.items ?? []).map(rowItems) : undefined;
  if (op === '=' && left && rows?.every((row) => row?.length === left.length)) {
    // (tenant_id, id) IN ((1, 1), (1, 2)): element by element, row by row.
    for (const row of rows) left.forEach((l, i) => compareSides(l, row![i], true, known, out));
    return;
  }
  const equality = op === '=' && (expr.kind === 'AEXPR_OP' || expr.kind === 'AEXPR_IN' || expr.kind === 'AEXPR_OP_ANY' || expr.kind === 'AEXPR_NOT_DISTINCT');
  compareSides(expr.lexpr, expr.rexpr, equality, known, out, expr.kind === 'AEXPR_OP_ANY');
}

function compareSubLink(link: SubLink, known: Known, out: TenantComparison[]): void {
  if (!link.testexpr) return;
  const op = operatorName(link.operName);
  const equality = link.subLinkType === 'ANY_SUBLINK' && (op === undefined || op === '=');
  const left = rowItems(link.testexpr);
  const rows = left ? yieldedRows(link.subselect) : undefined;
  if (equality && left && rows && rows.every((row) => row.length === left.length)) {
    // (tenant_id, id) IN (VALUES (1, 5)): element by element, row by row.
    for (const row of rows) left.forEach((l, i) => compareSides(l, row[i], true, known, out));
    return;
  }
  // What the subquery yields: the values of its targets, its VALUES rows, both sides of a set operation.
  compareSides(link.testexpr, { List: { items: yielded(link.subselect) } } as Node, equality, known, out);
}

/** `JOIN … USING (tenant_id)` or NATURAL JOIN with a derived table whose tenant_id holds constants: an equality with them. */
function compareJoin(join: JoinExpr, known: Known, out: TenantComparison[]): void {
  const using = join.isNatural ? [...known.constants.keys()] : (join.usingClause ?? []).map((n) => ('String' in n ? (n.String.sval ?? '') : ''));
  for (const name of using) {
    const constants = known.constants.get(name);
    if (!known.names.has(name) || !constants) continue;
    compareSides({ ColumnRef: { fields: [{ String: { sval: name } }] } } as Node, { List: { items: constants } } as Node, true, known, out);
  }
}

/** The operator's name, bare or qualified with pg_catalog (`OPERATOR(pg_catalog.=)`). */
function operatorName(name: Node[] | undefined): string | undefined {
  const parts = (name ?? []).map((n) => ('String' in n ? n.String.sval : undefined));
  if (parts.length === 1) return parts[0];
  return parts.length === 2 && parts[0] === 'pg_catalog' ? parts[1] : undefined;
}

/** The rows a subquery yields, each as its expressions, when it is VALUES or a SELECT of expressions (set operations: both sides). */
function yieldedRows(node: Node | undefined): Node[][] | undefined {
  const select = (node as { SelectStmt?: SelectStmt } | undefined)?.SelectStmt ?? (node as SelectStmt | undefined);
  if (!select) return undefined;
  if (select.op !== undefined && select.op !== 'SETOP_NONE') {
    const l = yieldedRows(select.larg as Node);
    const r = yieldedRows(select.rarg as Node);
    return l && r ? [...l, ...r] : undefined;
  }
  if (select.valuesLists) return select.valuesLists.map((row) => (row as { List?: { items?: Node[] } }).List?.items ?? []);
  return [(select.targetList ?? []).map((t) => (t as { ResTarget?: { val?: Node } }).ResTarget?.val).filter((n): n is Node => n !== undefined)];
}

interface Known {
  /** The tenant columns' names and their aliases. */
  names: ReadonlySet<string>;
  /** Columns of derived tables and CTEs that hold only constants or parameters: by name, those values. */
  constants: ReadonlyMap<string, Node[]>;
}

/** A bare column (under casts) that stands for constants becomes the list of them; a list, item by item. */
function valued(node: Node | undefined, known: Known): Node | undefined {
  let inner = node;
  while (inner && 'TypeCast' in inner) inner = inner.TypeCast.arg;
  if (inner && 'ColumnRef' in inner) {
    const name = lastField(inner.ColumnRef.fields);
    const constants = known.names.has(name) ? undefined : known.constants.get(name);
    return constants ? ({ List: { items: constants } } as Node) : node;
  }
  if (inner && 'List' in inner) return { List: { items: (inner.List.items ?? []).map((item) => valued(item, known) ?? item) } } as Node;
  return node;
}

/** Columns that hold only constants or parameters: targets `SELECT 2 AS t`, and VALUES or targets renamed by a column alias list. */
function constantColumns(namers: readonly Record<string, unknown>[]): Map<string, Node[]> {
  const out = new Map<string, Node[]>();
  const add = (name: string | undefined, value: Node | undefined): void => {
    if (name === undefined || value === undefined || !valuesOnly(value)) return;
    const list = out.get(name);
    if (list) list.push(value);
    else out.set(name, [value]);
  };
  const byPosition = (query: Node | undefined, aliases: Node[] | undefined): void => {
    if (!aliases) return;
    for (const row of yieldedRows(query) ?? []) row.forEach((value, i) => add(aliases[i] && 'String' in aliases[i] ? aliases[i].String.sval : undefined, value));
  };
  // Each SELECT's targets, and a set operation's arms (bodies without a node wrapper, which the walk does not list).
  const targets = (select: SelectStmt | undefined): void => {
    if (!select) return;
    if (select.op !== undefined && select.op !== 'SETOP_NONE') {
      // Named by its first arm, valued by every arm's row.
      let first: SelectStmt | undefined = select;
      while (first?.op !== undefined && first.op !== 'SETOP_NONE') first = first.larg;
      const names = (first?.targetList ?? []).map((t) => (t as { ResTarget?: { name?: string } }).ResTarget?.name);
      for (const row of yieldedRows({ SelectStmt: select } as Node) ?? []) row.forEach((value, i) => add(names[i], value));
      return;
    }
    for (const target of select.targetList ?? []) {
      const res = (target as { ResTarget?: { name?: string; val?: Node } }).ResTarget;
      add(res?.name, res?.val);
    }
  };
  for (const node of namers) {
    targets(node.SelectStmt as SelectStmt | undefined);
    const sub = node.RangeSubselect as { subquery?: Node; alias?: { colnames?: Node[] } } | undefined;
    byPosition(sub?.subquery, sub?.alias?.colnames);
    const cte = node.CommonTableExpr as { ctequery?: Node; aliascolnames?: Node[] } | undefined;
    byPosition(cte?.ctequery, cte?.aliascolnames);
  }
  return out;
}

/** `CASE tenant_id WHEN 2 THEN …`: the argument compared with each WHEN's value. */
function compareCase(expr: CaseExpr, known: Known, out: TenantComparison[]): void {
  if (!expr.arg) return;
  for (const when of expr.args ?? []) compareSides(expr.arg, (when as { CaseWhen?: { expr?: Node } }).CaseWhen?.expr, true, known, out);
}

/** The expressions a subquery yields as its first column's values (yieldedRows, first of each row). */
function yielded(node: Node | undefined): Node[] {
  return (yieldedRows(node) ?? []).flatMap((row) => (row[0] ? [row[0]] : []));
}

/** One comparison when one side involves a tenant column; `equality` holds only for the bare column against values. */
function compareSides(left: Node | undefined, right: Node | undefined, equality: boolean, known: Known, out: TenantComparison[], underAny = false): void {
  const { names } = known;
  // A column of a derived table or CTE that holds constants stands for them (`JOIN (SELECT 2 AS t) v ON tenant_id = v.t`).
  left = valued(left, known);
  right = valued(right, known);
  const l = involves(left, names);
  const r = involves(right, names);
  if (!l && !r) return;
  if (l && r && equality && !underAny) {
    // `o.tenant_id = v.tenant_id` where v holds constants under the tenant column's own name
    // (`(VALUES (2, 5)) v(tenant_id, id)`): without scopes, the other side may be those constants.
    const name = isColumn(left, names) && isColumn(right, names) ? columnName(right) : undefined;
    const constants = name === undefined ? undefined : known.constants.get(name);
    if (constants) compareSides(left, { List: { items: constants } } as Node, true, known, out);
  }
  const other = l && !r ? right : r && !l ? left : undefined;
  const direct = l && !r ? isColumn(left, names) : r && !l ? isColumn(right, names) && !underAny : false;
  const found = { constants: [] as Node[], params: [] as number[], locations: [] as number[] };
  collect(other, found);
  const all = { constants: [] as Node[], params: [] as number[], locations: [] as number[] };
  collect(left, all);
  collect(right, all);
  const arrays = underAny && other === right ? found.params.filter((n) => isParam(right)?.number === n) : [];
  out.push({
    // Against values only: `tenant_id = 1 + 1` is judged by its shape, not by 1 and 1.
    equality: equality && direct && other !== undefined && valuesOnly(other),
    listLiteral: underAny && other === right && isConstant(right),
    constants: other === undefined ? all.constants : found.constants,
    params: other === undefined ? all.params : found.params,
    arrays,
    locations: all.locations,
  });
}

/** The elements of a ROW(...) or (a, b) on one side of a comparison. */
function rowItems(node: Node | undefined): Node[] | undefined {
  if (node && 'RowExpr' in node) return node.RowExpr.args ?? [];
  return undefined;
}

/** Constants and parameters (under casts), lists and arrays of them: what an equality's other side holds to be judged by value. */
function valuesOnly(node: Node | undefined): boolean {
  while (node && 'TypeCast' in node) node = node.TypeCast.arg;
  if (!node) return false;
  if ('A_Const' in node || 'ParamRef' in node) return true;
  if ('List' in node) return (node.List.items ?? []).every(valuesOnly);
  if ('A_ArrayExpr' in node) return (node.A_ArrayExpr.elements ?? []).every(valuesOnly);
  return false;
}

function isConstant(node: Node | undefined): boolean {
  while (node && 'TypeCast' in node) node = node.TypeCast.arg;
  return node !== undefined && 'A_Const' in node;
}

function isParam(node: Node | undefined): { number: number } | undefined {
  while (node && 'TypeCast' in node) node = node.TypeCast.arg;
  return node && 'ParamRef' in node ? { number: node.ParamRef.number ?? 0 } : undefined;
}

/** A tenant column, bare or under casts, or a row's field of that name (`(o).tenant_id`). */
function isColumn(node: Node | undefined, names: ReadonlySet<string>): boolean {
  while (node && 'TypeCast' in node) node = node.TypeCast.arg;
  if (node && 'A_Indirection' in node) return names.has(lastField(node.A_Indirection.indirection));
  return node !== undefined && 'ColumnRef' in node && names.has(lastField(node.ColumnRef.fields));
}

/** The name of a column reference or a row's field (under casts). */
function columnName(node: Node | undefined): string | undefined {
  while (node && 'TypeCast' in node) node = node.TypeCast.arg;
  if (node && 'A_Indirection' in node) return lastField(node.A_Indirection.indirection);
  return node && 'ColumnRef' in node ? lastField(node.ColumnRef.fields) : undefined;
}

function lastField(fields: Node[] | undefined): string {
  const last = fields?.[fields.length - 1];
  return last && 'String' in last ? (last.String.sval ?? '') : '';
}

/** Does the value mention a tenant column anywhere (an operand, a function argument, a subquery)? */
function involves(value: unknown, names: ReadonlySet<string>): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some((item) => involves(item, names));
  const node = value as Record<string, unknown>;
  if (node.ColumnRef !== undefined) return names.has(lastField((node.ColumnRef as { fields?: Node[] }).fields));
  if (node.A_Indirection !== undefined && names.has(lastField((node.A_Indirection as { indirection?: Node[] }).indirection))) return true;
  for (const key in node) if (involves(node[key], names)) return true;
  return false;
}

function collect(value: unknown, into: { constants: Node[]; params: number[]; locations: number[] }): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const item of value) collect(item, into);
    return;
  }
  const node = value as Record<string, unknown>;
  if (node.A_Const !== undefined) {
    const c = node.A_Const as { isnull?: boolean; location?: number };
    if (c.location !== undefined) into.locations.push(c.location);
    if (!c.isnull) into.constants.push(node as Node);
    return;
  }
  if (node.ParamRef !== undefined) into.params.push((node.ParamRef as { number?: number }).number ?? 0);
  for (const key in node) collect(node[key], into);
}

/** The tenant columns' names and every name given to an expression of one (targets and column alias lists), to a fixed point. */
function aliasesOf(namers: readonly Record<string, unknown>[], columns: ReadonlySet<string>): ReadonlySet<string> {
  const names = new Set(columns);
  for (let pass = 0; pass < 8; pass++) {
    const before = names.size;
    for (const node of namers) {
      const select = node.SelectStmt as { targetList?: Node[] } | undefined;
      if (select) aliasTargets(select.targetList, undefined, names);
      const sub = node.RangeSubselect as { subquery?: Node; alias?: { colnames?: Node[] } } | undefined;
      if (sub?.alias?.colnames) aliasTargets(selectTargets(sub.subquery), sub.alias.colnames, names);
      const cte = node.CommonTableExpr as { ctequery?: Node; aliascolnames?: Node[] } | undefined;
      if (cte?.aliascolnames) aliasTargets(selectTargets(cte.ctequery), cte.aliascolnames, names);
    }
    if (names.size === before) break;
  }
  return names;
}

function selectTargets(node: Node | undefined): Node[] | undefined {
  let select = (node as { SelectStmt?: { targetList?: Node[]; op?: string; larg?: { targetList?: Node[] } } } | undefined)?.SelectStmt;
  // A set operation's columns are named by its first SELECT.
  while (select && select.op !== undefined && select.op !== 'SETOP_NONE' && select.larg) select = select.larg as typeof select;
  return select?.targetList;
}

/** Adds the name (its own, or the alias list's at its position) of each target that involves a tenant column. */
function aliasTargets(targets: Node[] | undefined, aliases: Node[] | undefined, names: Set<string>): void {
  (targets ?? []).forEach((target, i) => {
    const res = (target as { ResTarget?: { name?: string; val?: Node } }).ResTarget;
    if (!res || !involves(res.val, names)) return;
    const alias = aliases?.[i];
    const name = alias && 'String' in alias ? alias.String.sval : res.name;
    if (name) names.add(name);
  });
}
