// The relation that stands in for a policy table: visible columns only, masks applied (as SQL), filtered by tenant and row filter.
//
// Two forms, with the same columns and rows:
//   a barrier view   pg_temp.ormai_<table>_<hash>, a session's own view WITH (security_barrier)
//                    (docs/read-scope.md): PostgreSQL runs the policy's conditions first and lets
//                    only leakproof conditions of the agent reach the table, so its indexes serve;
//                    a plain view where the table's row-level security fences the tenant
//                    (policy/row-security.ts), so joins reach its indexes too;
//   a fenced table   (SELECT … WHERE <tenant> OFFSET 0) AS t, when the session has no views (a
//                    replica, read_scope: fence, a transaction begun before a reload made them).
import { createHash } from 'node:crypto';
import type { A_Expr, BoolExpr, Node, RangeVar, SelectStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import type { ReadScope, ScopedTable, VisibleColumn } from '../../policy/scope';
import { deparseVerified } from '../deparse';
import { cloneTree, parseTemplate, quoteIdent, templateError } from './nodes';
import { tenantLiteral, tenantType } from './tenant';

/**
 * `OFFSET 0` keeps PostgreSQL from pulling the subquery up into the agent's query. Without
 * it the agent's predicates join the tenant predicate in one list on the table scan, and
 * the planner may evaluate a cheap one first: an error it raises on another tenant's row
 * (an invalid regular expression, a division by zero) would reveal that row. The cost is
 * that the agent's own predicates are applied above the tenant scan instead of in it.
 */
const FENCE = ' OFFSET 0';

/** One parsed template per compiled table; the scope is immutable, so the template never goes stale. */
const templates = new WeakMap<ScopedTable, SelectStmt>();

/** A session's view of one policy table for one principal: its name in pg_temp and the statement that makes it. */
export interface BarrierView {
  name: string;
  sql: string;
  /** The policy table it stands in for, as `schema.name`. */
  table: string;
}

/**
 * Which form the rewrite in progress gives policy tables, and whether the statement's leakproof
 * comparisons may raise (collations.ts; then it is always the fenced form, and a write guards
 * every condition). The rewrite is synchronous and sets both for its own duration only
 * (withRelationForm), so every place that builds a policy relation (reads, foreign-key checks,
 * write sources) or a write's guard agrees without each taking another argument.
 */
let barrierViews = false;
let raises = false;

export function withRelationForm<T>(form: { views: boolean; comparisonsMayRaise: boolean }, run: () => T): T {
  const before = { barrierViews, raises };
  barrierViews = form.views && !form.comparisonsMayRaise;
  raises = form.comparisonsMayRaise;
  try {
    return run();
  } finally {
    ({ barrierViews, raises } = before);
  }
}

/** The statement being rewritten may raise from a leakproof comparison (withRelationForm). */
export function comparisonsMayRaise(): boolean {
  return raises;
}

/** Does the table need a fence at all? Without a tenant or row filter there is nothing for the agent's predicates to overtake. */
function filtered(table: ScopedTable): boolean {
  return table.tenantColumn !== undefined || table.rowFilter !== undefined;
}

/**
 * The policy relation for a reference `rv` to `table`: the session's barrier view when the
 * rewrite is in that form and the view can say what the reference means, else the fenced
 * derived table. A view has no system columns and always includes inheritance children, so a
 * statement naming ctid or xmin, or reading ONLY the table, gets the fenced form.
 */
export function derivedTable(table: ScopedTable, rv: RangeVar, scope: ReadScope, principal: Principal | undefined, system: readonly string[] = []): Node {
  if (barrierViews && principal && filtered(table) && rv.inh === true && (system.length === 0 || !table.systemColumns)) {
    const ref: RangeVar = { schemaname: 'pg_temp', relname: barrierView(table, scope, principal).name, inh: true, relpersistence: 'p', alias: { aliasname: rv.alias?.aliasname ?? rv.relname } };
    VIEW_WIDTHS.set(ref, table.columns.length);
    return { RangeVar: ref };
  }
  return fencedTable(table, rv, scope, principal, system);
}

/**
 * `(SELECT <key> AS ormai_key FROM schema.table WHERE <tenant>) AS <alias>`: the parent of a
 * foreign-key check (foreign-keys.ts), whose only condition is `ormai_key = <value>`.
 *
 * Not fenced when the table has no row filter: PostgreSQL pulls it up, so each check is one
 * lookup by the key instead of a scan of the tenant's rows (a 2,000-row INSERT made 2,000 such
 * scans; over the barrier view, each check expanded the view and the INSERT ran past its
 * timeout). The agent's value cannot name the parent's row (the alias and the key's name start
 * with ormai_, which the agent cannot write, so an unqualified `id` in it means the target's), so
 * what it computes or fails on is the same for every row the scan meets. What depends on the
 * rows is how often it runs: where the planner scans instead of looking the key up, the value
 * runs on each row that passed the conditions before it. The tenant's condition costs one
 * operator, the least any condition can, and comes first, so the value never runs on another
 * tenant's rows; the agent's own rows it may count anyway.
 *
 * Fenced (OFFSET 0) when the table has a row filter: the filter usually costs more than the
 * agent's value is estimated to, so PostgreSQL would run the value on the tenant's rows the
 * filter hides too, and an expensive value's time (or a statement timeout) would count them
 * (an adversarial review measured it). Behind the fence the value meets visible rows only.
 * Fenced as well when the statement's leakproof comparisons may raise (collations.ts): the key's
 * comparison with the value is one, and pulled up, PostgreSQL may run it before the tenant's.
 */
export function parentKeys(table: ScopedTable, rv: RangeVar, scope: ReadScope, principal: Principal, key: VisibleColumn[]): Node {
  const narrowed = { ...table, columns: key };
  const select = buildTemplate(narrowed, scope, table.rowFilter !== undefined || raises);
  (select.targetList![0] as { ResTarget: { name?: string } }).ResTarget.name = 'ormai_key';
  return policyRelation(narrowed, select, rv, scope, principal, []);
}

/** `(SELECT <visible columns> [, <system columns named>] FROM [ONLY] schema.table WHERE <tenant> [AND (<row filter>)] OFFSET 0) AS <alias>` */
function fencedTable(table: ScopedTable, rv: RangeVar, scope: ReadScope, principal: Principal | undefined, system: readonly string[]): Node {
  let template = templates.get(table);
  if (!template) {
    template = buildTemplate(table, scope, true);
    templates.set(table, template);
  }
  return policyRelation(table, cloneTree(template), rv, scope, principal, system);
}

/** The template `select` (a copy of its own) for one reference and principal: system columns, ONLY, the tenant, the alias. */
function policyRelation(table: ScopedTable, select: SelectStmt, rv: RangeVar, scope: ReadScope, principal: Principal | undefined, system: readonly string[]): Node {
  // Only the system columns the statement names, and only where the policy lets it read them.
  if (table.systemColumns) for (const name of system) select.targetList?.push({ ResTarget: { val: { ColumnRef: { fields: [{ String: { sval: name } }] } } } });
  const from = select.fromClause?.[0] as { RangeVar: RangeVar };
  if (rv.inh) from.RangeVar.inh = true;
  else delete from.RangeVar.inh;
  const tenant = tenantComparison(select, table);
  if (tenant) tenant.rexpr = tenantLiteral(scope, principal);
  const view = { subquery: { SelectStmt: select }, alias: { aliasname: rv.alias?.aliasname ?? rv.relname } };
  POLICY_VIEWS.add(view);
  return { RangeSubselect: view };
}

/** The barrier-view references this module built, with the number of columns each view has (what `*` expands to). */
const VIEW_WIDTHS = new WeakMap<RangeVar, number>();

/** The column count of a barrier-view reference this module built; undefined for any other relation. */
export function barrierViewWidth(rv: RangeVar): number | undefined {
  return VIEW_WIDTHS.get(rv);
}

/** The derived tables this module built: the proxy's own SQL, which the write checks do not read as the agent's. */
const POLICY_VIEWS = new WeakSet<object>();

export function isPolicyView(node: unknown): boolean {
  return typeof node === 'object' && node !== null && POLICY_VIEWS.has(node);
}

/** Per compiled table, per tenant: the view (its definition embeds the tenant as a constant). */
const MAX_TENANT_VIEWS = 1000;
const views = new WeakMap<ScopedTable, Map<string, BarrierView>>();

/**
 * `CREATE OR REPLACE TEMP VIEW pg_temp.ormai_<table>_<hash> WITH (security_barrier) AS SELECT
 * <visible columns, masked> FROM schema.table WHERE <tenant> [AND (<row filter>)]`. The name
 * is a hash of the definition: a reload that leaves a table's scope alone keeps its view and
 * every statement prepared over it; one that changes it gives a new name.
 */
export function barrierView(table: ScopedTable, scope: ReadScope, principal: Principal): BarrierView {
  let byTenant = views.get(table);
  if (!byTenant) {
    byTenant = new Map();
    views.set(table, byTenant);
  }
  const cached = byTenant.get(principal.tenantId);
  if (cached) return cached;
  // One entry per tenant seen under this scope: bounded, since a JWT issuer may name many.
  if (byTenant.size >= MAX_TENANT_VIEWS) byTenant.clear();
  const select = buildTemplate(table, scope, false);
  const tenant = tenantComparison(select, table);
  if (tenant) tenant.rexpr = tenantLiteral(scope, principal);
  const body = deparseVerified([{ SelectStmt: select }])[0];
  // Under the table's row-level security (policy/row-security.ts) the view is a plain one: the
  // planner flattens it, so a join reaches the table's indexes, and the policy, not the view,
  // keeps the agent's conditions behind the tenant's.
  const barrier = table.rowSecurity ? '' : ' WITH (security_barrier)';
  const hash = createHash('sha256').update(`${table.schema}.${table.name}\u0000${barrier}\u0000${body}`).digest('hex').slice(0, 16);
  const name = `ormai_${table.name.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 24)}_${hash}`;
  const view = { name, sql: `CREATE OR REPLACE TEMP VIEW ${name}${barrier} AS ${body}`, table: `${table.schema}.${table.name}` };
  byTenant.set(principal.tenantId, view);
  return view;
}

/**
 * The Query that makes `views`: one implicit transaction (a multi-statement Query) that starts
 * READ WRITE, so a read-only session can run it, and an error undoes all of it and leaves the
 * connection idle, never in a failed transaction block.
 */
export function barrierViewsCreation(views: readonly BarrierView[]): string {
  return ['SET TRANSACTION READ WRITE', ...views.map((v) => v.sql)].join('; ');
}

/** Every barrier view a principal's session needs under `scope`: one per filtered table. */
export function barrierViewsOf(scope: ReadScope, principal: Principal): BarrierView[] {
  const out: BarrierView[] = [];
  for (const table of scope.tables.values()) if (filtered(table)) out.push(barrierView(table, scope, principal));
  return out;
}

function buildTemplate(table: ScopedTable, scope: ReadScope, fence: boolean): SelectStmt {
  const what = `${table.schema}.${table.name}`;
  const columns = table.columns.map((c) => columnSql(c)).join(', ');
  // The tenant constant is a placeholder replaced by a node per principal; the row filter, too, is spliced as a node.
  const conditions: string[] = [];
  if (table.tenantColumn) conditions.push(`${quoteIdent(table.tenantColumn)} = '0'::${tenantType(scope)}`);
  if (table.rowFilter) conditions.push('(true)');
  // Without a filter there is nothing for the agent's predicates to overtake: no fence needed.
  const where = conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}${fence ? FENCE : ''}` : '';
  const select = parseTemplate(`SELECT ${columns} FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)}${where}`, what);
  if (table.rowFilter) {
    const filter = parseRowFilter(table.rowFilter, what);
    const where = select.whereClause as Node;
    if ('BoolExpr' in where) (where.BoolExpr as BoolExpr).args![1] = filter;
    else select.whereClause = filter;
  }
  return select;
}

/** The tenant comparison inside a template: the whole WHERE, or its first conjunct. */
function tenantComparison(select: SelectStmt, table: ScopedTable): A_Expr | undefined {
  if (!table.tenantColumn) return undefined;
  const where = select.whereClause as Node;
  const first = 'BoolExpr' in where ? (where.BoolExpr.args?.[0] as Node) : where;
  return (first as { A_Expr: A_Expr }).A_Expr;
}

/**
 * A policy row filter is one boolean expression over the table's columns. It is parsed on
 * its own and spliced in as a node, so a filter that closes a parenthesis, adds a clause or a
 * second statement can never change the shape of the query around it.
 */
function parseRowFilter(filter: string, what: string): Node {
  const select = parseTemplate(`SELECT WHERE ${filter}`, `the row filter of ${what}`);
  const extra = Object.keys(select).filter((k) => !['whereClause', 'limitOption', 'op'].includes(k));
  if (extra.length > 0 || select.op !== 'SETOP_NONE' || select.limitOption !== 'LIMIT_OPTION_DEFAULT' || !select.whereClause) {
    throw templateError(`the row filter of ${what}`, 'not a single boolean expression');
  }
  return select.whereClause;
}

// Masks are SQL expressions inside the derived table, so every use of the column sees only the masked value.

/** Types whose masked value keeps the declared type; any other masked column reads as text. */
const STRING_TYPE = /^(text|citext|character varying|varchar|character|char|bpchar)\b/;

function isStringType(type: string): boolean {
  return STRING_TYPE.test(type);
}

/** The type a column has as the agent sees it: a mask turns non-string columns into text. */
export function visibleType(column: VisibleColumn): string {
  if (!column.mask || column.mask === 'null' || isStringType(column.type)) return column.type;
  return 'text';
}

/**
 * The select-list entry for a column: its plain name (qualified when a qualifier is given),
 * or for a masked column the masking expression aliased to the column's name (or `alias`). Text over a catalog type name (format_type output,
 * already valid SQL) and quoted identifiers only; the caller parses it.
 */
export function columnSql(column: VisibleColumn, qualifier?: string, alias?: string): string {
  const name = quoteIdent(alias ?? column.name);
  const ref = qualifier === undefined ? quoteIdent(column.name) : `${quoteIdent(qualifier)}.${quoteIdent(column.name)}`;
  if (!column.mask) return alias === undefined ? ref : `${ref} AS ${name}`;
  if (column.mask === 'null') return `CAST(NULL AS ${column.type}) AS ${name}`;
  const value = isStringType(column.type) ? ref : `CAST(${ref} AS text)`;
  return `CAST(${maskSql(column.mask, value)} AS ${visibleType(column)}) AS ${name}`;
}

/**
 * NULL stays NULL in every strategy (each expression is strict in its input).
 *   email   jane@acme.com → j***@acme.com; no '@' → ***
 *   phone   first 2 and last 2 kept, the rest starred; 4 characters or fewer fully starred
 *   last4   all but the last 4 starred
 */
function maskSql(strategy: NonNullable<VisibleColumn['mask']>, v: string): string {
  switch (strategy) {
    case 'email':
      // split_part with -1 takes the text after the last '@' (PostgreSQL 14 and later).
      return `CASE WHEN strpos(${v}, '@') = 0 THEN '***' ELSE left(${v}, 1) || '***@' || split_part(${v}, '@', -1) END`;
    case 'phone':
    case 'partial':
      return `CASE WHEN length(${v}) <= 4 THEN repeat('*', length(${v})) ELSE left(${v}, 2) || repeat('*', length(${v}) - 4) || right(${v}, 2) END`;
    case 'last4':
      return `repeat('*', length(${v}) - 4) || right(${v}, 4)`;
    case 'hash':
    case 'null':
      // hash is refused when the policy loads; null is handled by the caller.
      return 'NULL';
  }
}
