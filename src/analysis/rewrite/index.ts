// The read-policy rewrite step: every relation read becomes its policy view, the outermost SELECT is capped, forged tenants flagged.
//
// Plan, then apply: the statement is copied once, relation references are resolved against the
// compiled scope and replaced in the copy, then the row cap goes on the top node. Pure: the same
// (tree, scope, principal) always gives the same tree; the input tree is never modified.
import type { ColumnRef, DeclareCursorStmt, ExplainStmt, FuncCall, Node, RangeFunction, RangeVar, ResTarget, SelectStmt } from '@pgsql/types';
import type { Principal } from '../../auth/principal';
import { ProxyError } from '../../errors/catalogue';
import { SYSTEM_COLUMNS, type ReadScope } from '../../policy/scope';
import { isFalse } from '../classify';
import { nodeBody, nodeTypeOf, type AnalysisContext, type AnalyzedStatement, type RewriteStep } from '../types';
import { derivedTable, withRelationForm } from './derived';
import { cloneTree, intConst, parseTemplate, walk } from './nodes';
import {
  catalogNotAllowed,
  columnAliasesRefused,
  databaseQualifiedRefused,
  modelNotAllowed,
  tableSampleRefused,
  tooDeep,
} from './refusals';
import { dropSchemaQualifiers } from './qualified';
import { guardCatalogCalls } from './catalog-functions';
import { servedRelation, visibility } from './catalog-views';
import { tenantForgery } from './tenant';
import { comparisonsMayRaiseIn } from './collations';
import { NO_CTES, withScope } from './source-arity';
import { checkTenantBinding } from './tenant-binding';
import { approvalsTable, catalogViewColumns, nameLiteral, namespacesTable, rangesTable, typesTable, virtualTable } from './virtual';
import { replaceRelations } from './walk';
import { guardWrite, type WriteInfo } from './writes';

export { replaceRelations, type ReplaceRelation } from './walk';

/** Statements whose reads are rewritten; the rest (transaction control, SET, SHOW) read no relation. */
const READING = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'ExplainStmt', 'DeclareCursorStmt']);

/**
 * The RewriteStep for a session with a read scope (identity without one). Throws ProxyError:
 * model_not_allowed, catalog_not_allowed, statement_not_understood (forms the rewrite would
 * change the meaning of), internal_error (no principal, or a tenant id that does not fit).
 */
export const rewriteReads: RewriteStep = (stmt: AnalyzedStatement, ctx: AnalysisContext): AnalyzedStatement => {
  try {
    const risk = ctx.scope !== undefined && comparisonsMayRaiseIn(stmt.stmt, ctx.scope);
    return withRelationForm({ views: ctx.barrierViews === true, comparisonsMayRaise: risk }, () => rewrite(stmt, ctx));
  } catch (err) {
    // Every walk here is iterative or guarded; this catches what a future change might miss.
    if (err instanceof RangeError) throw tooDeep();
    throw err;
  }
};

function rewrite(stmt: AnalyzedStatement, ctx: AnalysisContext): AnalyzedStatement {
  const scope = ctx.scope;
  if (!scope || !READING.has(stmt.nodeType)) return stmt;
  const principal = ctx.principal;
  if (!principal) throw new ProxyError('internal_error', { logMessage: 'rewrite: a read scope without a principal' });

  const tree = cloneTree(stmt.stmt);
  dropSchemaQualifiers(tree, scope);
  // Before relations are replaced: the lookups the guards add go through the policy views too.
  guardCatalogCalls(tree, scope, principal);
  const system = systemColumnsNamed(tree);
  const replace = (rv: RangeVar, sampled: boolean): Node => policyRelation(rv, sampled, scope, principal, ctx.approvals, system);
  let top: Node | undefined = tree;
  if (stmt.nodeType === 'ExplainStmt') {
    // EXPLAIN shows the plan of what would run: the rewritten statement, without the row cap.
    const explain = nodeBody<ExplainStmt>(tree);
    costsOff(explain);
    structuredWhereIndexesHide(explain, scope);
    // The plan of a catalog read shows how the proxy serves it: its filters name the upstream
    // role, the database and the objects' oids. The agent reads the catalog, it does not plan it.
    const tablesOnly = (rv: RangeVar, sampled: boolean): Node => {
      const kind = scope.resolve(rv.schemaname, rv.relname ?? '').kind;
      if ((rv.schemaname === 'ormai' && rv.relname === 'approvals') || kind === 'catalog' || kind === 'virtual') {
        throw new ProxyError('statement_not_allowed', {
          message: 'EXPLAIN of a catalog read is not allowed',
          hint: 'EXPLAIN works for statements over the tables information_schema.tables lists; run the catalog query itself.',
        });
      }
      return replace(rv, sampled);
    };
    if (explain.query) explain.query = replaceRelations(explain.query, tablesOnly);
    top = explain.query;
  } else if (stmt.nodeType === 'DeclareCursorStmt') {
    // A cursor's query is a read like any other; its rows reach the agent through FETCH, capped below.
    const declare = nodeBody<DeclareCursorStmt>(tree);
    if (declare.query) declare.query = replaceRelations(declare.query, replace);
    top = declare.query;
  } else {
    replaceRelations(tree, replace);
  }
  sessionValues(tree, principal.database, principal.user);

  // Writes inside the top-level WITH of a SELECT go through the same write rules; anywhere else a
  // write below the statement would escape them.
  const cteWrites = top && stmt.nodeType === 'SelectStmt' ? guardCteWrites(top, scope, principal, ctx.tags ?? {}, ctx.captureWrites ?? true) : [];
  if (top && nestedWrites(top, new Set(cteWrites.map((w) => w.body)))) {
    throw new ProxyError('statement_not_allowed', {
      message: 'data-modifying statements inside WITH are not allowed here',
      hint: 'A write may sit in the WITH of a SELECT, not in the WITH of another write, a subquery or EXPLAIN; or send it as its own statement.',
    });
  }
  const guarded = top && nodeTypeOf(top) !== 'SelectStmt' ? guardWrite(top, scope, principal, ctx.tags ?? {}, top !== tree, ctx.captureWrites ?? true) : undefined;
  const write = guarded && top === tree ? guarded.info : cteWrites.length > 0 ? mergedCteWrites(cteWrites.map((w) => w.info)) : undefined;
  const out: AnalyzedStatement = { ...stmt, stmt: tree, ...(write ? { write } : {}) };
  if (guarded?.preview) {
    // A dry run: the preview SELECT is what runs, capped like any read; the write is never sent.
    out.stmt = { SelectStmt: guarded.preview };
    out.nodeType = 'SelectStmt';
  }
  if (out.nodeType === 'SelectStmt') {
    out.stmt = { SelectStmt: capRows(nodeBody<SelectStmt>(out.stmt), scope.policy.maxRows) };
    out.rowLimit = scope.policy.maxRows;
  } else if (out.nodeType === 'DeclareCursorStmt') {
    // The cursor holds at most max_rows + 1 rows; the FETCHes from it share one cap on the wire.
    const declare = nodeBody<DeclareCursorStmt>(out.stmt);
    declare.query = { SelectStmt: capRows(nodeBody<SelectStmt>(declare.query!), scope.policy.maxRows) };
    out.rowLimit = scope.policy.maxRows;
  } else if (write) {
    // A write's RETURNING reaches the agent under the same cap, on the wire (every row is still written).
    out.rowLimit = scope.policy.maxRows;
  }
  const forgery = tenantForgery(stmt.stmt, scope, principal.tenantId);
  if (forgery.forged && !stmt.flags?.includes('tenant_forged')) {
    out.flags = [...(stmt.flags ?? []), 'tenant_forged'];
  }
  if (forgery.params) out.tenantParams = forgery.params;
  // Last, on the tree that is forwarded: every inserted row carries the proxy's tenant (tenant-binding.ts).
  checkTenantBinding(out.stmt, scope, principal);
  return out;
}

/** What a relation reference becomes: a policy view, the policy's information_schema, or a refusal. */
function policyRelation(rv: RangeVar, sampled: boolean, scope: ReadScope, principal: Principal, approvals: AnalysisContext['approvals'], system: readonly string[]): Node {
  if (rv.catalogname !== undefined) throw databaseQualifiedRefused(rv);
  if (rv.schemaname === 'ormai' && rv.relname === 'approvals' && approvals) {
    if (sampled) throw tableSampleRefused(rv);
    if (rv.alias?.colnames?.length) throw columnAliasesRefused(rv);
    return approvalsTable(rv, approvals);
  }
  const resolution = scope.resolve(rv.schemaname, rv.relname ?? '');
  switch (resolution.kind) {
    case 'catalog': {
      if (!catalogViewColumns(scope, resolution.schema, resolution.name) || sampled || rv.alias?.colnames?.length) throw catalogNotAllowed(rv);
      if (scope.catalog.objects) {
        const view = servedRelation(rv, resolution.schema, resolution.name, scope, principal, system.includes('tableoid'));
        if (!view) throw catalogNotAllowed(rv);
        return view;
      }
      return resolution.name === 'pg_type' ? typesTable(rv) : resolution.name === 'pg_range' ? rangesTable(rv) : namespacesTable(rv, scope);
    }
    case 'unknown':
      throw modelNotAllowed(rv);
    case 'table':
    case 'virtual':
      // Both would silently mean something else over a derived table with fewer columns.
      if (sampled) throw tableSampleRefused(rv);
      if (rv.alias?.colnames?.length) throw columnAliasesRefused(rv);
      return resolution.kind === 'table'
        ? derivedTable(resolution.table, rv, scope, principal, system)
        : virtualTable(resolution.name, rv, scope, principal.database);
  }
}

/**
 * The system columns a statement names (as a column or a field), in a fixed order. A policy
 * view is a derived table, which has none of its own: a table whose model sets
 * system_columns carries these, and only these, in its view.
 */
function systemColumnsNamed(tree: Node): string[] {
  const named = new Set<string>();
  walk([tree], (node) => {
    const fields = (node as { ColumnRef?: ColumnRef }).ColumnRef?.fields ?? (node as { A_Indirection?: { indirection?: Node[] } }).A_Indirection?.indirection ?? [];
    for (const f of fields) if ('String' in f && SYSTEM_COLUMNS.includes(f.String.sval ?? '')) named.add(f.String.sval ?? '');
  });
  return SYSTEM_COLUMNS.filter((c) => named.has(c));
}

/**
 * What the agent's session answers about itself, in one walk (parents before children, so a call
 * is still there to be recognised where its output column is named):
 * - `current_database()` answers with the name the agent connected to: the upstream database's
 *   name is the proxy's business, like its role and schema.
 * - CURRENT_USER, SESSION_USER, USER and CURRENT_ROLE answer the agent's own user name, as the
 *   session_authorization the agent was told at login does: the upstream role is the proxy's.
 * - `current_schemas(true)` lists the session's temporary schema once it has one, and the
 *   session's barrier views give it one: the proxy's, not the agent's. The call answers without it.
 * Each keeps the output column name PostgreSQL gives it (FigureColname: the function's or
 * keyword's name through casts and COLLATE; an unaliased function in FROM names its column after
 * itself), which ORMs read the answer by.
 */
function sessionValues(tree: Node, database: string | undefined, user: string): void {
  // The calls put inside current_schemas' replacements: visited next, and left as they are.
  const inner = new WeakSet<object>();
  walk([tree], (node) => {
    const target = (node as { ResTarget?: ResTarget }).ResTarget;
    if (target && target.name === undefined) {
      const value = underCasts(target.val);
      const op = value && 'SQLValueFunction' in value ? value.SQLValueFunction.op : undefined;
      if (isCurrentDatabase(value)) target.name = 'current_database';
      else if (op && IDENTITY_VALUES[op]) target.name = IDENTITY_VALUES[op];
      else if (isCurrentSchemas(value)) target.name = 'current_schemas';
    }
    const range = (node as { RangeFunction?: RangeFunction }).RangeFunction;
    if (range && !range.alias && !range.is_rowsfrom && range.functions?.length === 1) {
      const first = (range.functions[0] as { List?: { items?: Node[] } }).List?.items?.[0];
      if (isCurrentDatabase(first)) range.alias = { aliasname: 'current_database' };
    }
    if (isCurrentDatabase(node as Node)) {
      delete (node as { FuncCall?: FuncCall }).FuncCall;
      Object.assign(node, nameLiteral(database));
      return;
    }
    const fn = (node as { SQLValueFunction?: { op?: string } }).SQLValueFunction;
    if (fn?.op && IDENTITY_VALUES[fn.op]) {
      delete (node as { SQLValueFunction?: unknown }).SQLValueFunction;
      Object.assign(node, nameLiteral(user));
      return;
    }
    if (!isCurrentSchemas(node as Node) || inner.has((node as { FuncCall: FuncCall }).FuncCall)) return;
    const call = (node as { FuncCall: FuncCall }).FuncCall;
    const replacement = withoutTempCall();
    const kept: FuncCall = { ...call, funcname: [{ String: { sval: 'pg_catalog' } }, { String: { sval: 'current_schemas' } }] };
    inner.add(kept);
    replacement.args![0] = { FuncCall: kept };
    (node as { FuncCall: FuncCall }).FuncCall = replacement;
  });
}

function isCurrentSchemas(node: Node | undefined): boolean {
  return isCatalogCall(node, 'current_schemas', 1);
}

/** `array_remove(<the call>, <the session's temporary schema>)`, parsed once; each use takes a copy. */
let withoutTempTemplate: FuncCall | undefined;
function withoutTempCall(): FuncCall {
  withoutTempTemplate ??= ((parseTemplate(
    'SELECT pg_catalog.array_remove(NULL, CAST(CAST(CAST(pg_catalog.pg_my_temp_schema() AS regnamespace) AS text) AS name))',
    'current_schemas without the temporary schema',
  ).targetList![0] as { ResTarget: ResTarget }).ResTarget.val as { FuncCall: FuncCall }).FuncCall;
  return cloneTree({ FuncCall: withoutTempTemplate }).FuncCall;
}

const IDENTITY_VALUES: Record<string, string> = {
  SVFOP_CURRENT_USER: 'current_user',
  SVFOP_SESSION_USER: 'session_user',
  SVFOP_USER: 'user',
  SVFOP_CURRENT_ROLE: 'current_role',
};

function isCurrentDatabase(node: Node | undefined): boolean {
  return isCatalogCall(node, 'current_database', 0);
}

/** A plain call (no aggregate star, no window) of the pg_catalog function `name`, qualified or not, with `args` arguments. */
function isCatalogCall(node: Node | undefined, name: string, args: number): boolean {
  const call = node && 'FuncCall' in node ? node.FuncCall : undefined;
  if (!call || (call.args?.length ?? 0) !== args || call.agg_star || call.over) return false;
  const parts = (call.funcname ?? []).map((n) => ('String' in n ? n.String.sval : ''));
  return parts[parts.length - 1] === name && (parts.length === 1 || (parts.length === 2 && parts[0] === 'pg_catalog'));
}

/** The expression inside any casts and COLLATE clauses: PostgreSQL names an output column after it (FigureColname). */
function underCasts(value: Node | undefined): Node | undefined {
  let node = value;
  while (node && ('TypeCast' in node || 'CollateClause' in node)) node = 'TypeCast' in node ? node.TypeCast.arg : node.CollateClause.arg;
  return node;
}

const WRITE_NODES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** True when a data-modifying statement other than the `allowed` ones occurs anywhere below the top node. */
export function nestedWrites(top: Node, allowed: ReadonlySet<unknown> = new Set()): boolean {
  return walk([nodeBody(top)], (node) => {
    for (const key in node) if (WRITE_NODES.has(key) && !allowed.has(node[key])) return true;
    return false;
  });
}

/**
 * `WITH d AS (UPDATE … RETURNING …) SELECT … FROM d`: each write in the SELECT's own WITH is
 * checked and completed like a statement of its own (grant, reason, tenant, columns, RETURNING
 * masks, max_affected_rows). What needs the write to stand alone is refused: approval rules
 * (the proxy holds whole statements), dry runs (the preview would carry the write along), and
 * MERGE. These writes are not captured before/after, so their events cannot be rolled back.
 */
function guardCteWrites(top: Node, scope: ReadScope, principal: Principal, tags: Record<string, string>, captured: boolean): Array<{ body: unknown; info: WriteInfo }> {
  const out: Array<{ body: unknown; info: WriteInfo }> = [];
  const withClause = nodeBody<SelectStmt>(top).withClause;
  const ctes = (withClause?.ctes ?? []) as Array<{ CommonTableExpr?: { ctename?: string; ctequery?: Node } }>;
  // What each CTE sees of its siblings: an INSERT's source may read one, and is counted through it.
  const visible = withScope(withClause, NO_CTES);
  for (const cte of ctes) {
    const query = cte.CommonTableExpr?.ctequery;
    if (!query || !['InsertStmt', 'UpdateStmt', 'DeleteStmt'].includes(nodeTypeOf(query))) continue;
    const guarded = guardWrite(query, scope, principal, tags, false, false, visible.get(cte.CommonTableExpr?.ctename ?? '')?.scope)!;
    if (guarded.preview) {
      throw new ProxyError('statement_not_allowed', { message: 'a dry run of a write inside WITH is not supported', hint: 'Dry-run the write as its own statement.' });
    }
    if (guarded.info.approval) {
      throw new ProxyError('statement_not_allowed', {
        message: 'a write that may need approval cannot sit inside WITH',
        hint: 'Send the write as its own statement: it can then be held for approval.',
      });
    }
    // The rows it changes reach the statement's result only as the SELECT uses them: the audit
    // trail could record neither them (before and after) nor their number (the tag is the SELECT's).
    if (captured) {
      throw new ProxyError('statement_not_allowed', {
        message: 'a write inside WITH cannot be audited with the rows it changes',
        hint: 'Send the write as its own statement; its RETURNING gives back the rows it changed.',
      });
    }
    out.push({ body: nodeBody(query), info: guarded.info });
  }
  return out;
}

/** One description for a SELECT's writes (the session and audit see one write statement). */
function mergedCteWrites(infos: WriteInfo[]): WriteInfo {
  const [first] = infos;
  return { ...first, hidden: [...new Set(infos.flatMap((i) => i.hidden))], assigned: infos.flatMap((i) => i.assigned) };
}

/**
 * Plans are shown without cost and row estimates: those come from statistics gathered over
 * every tenant's rows (a row estimate for `name = 'x'` says whether another tenant has an x).
 */
function costsOff(explain: ExplainStmt): void {
  const options = explain.options ?? [];
  // PostgreSQL applies every option in order (the last COSTS wins): each one must be off.
  let named = false;
  for (const option of options) {
    const def = 'DefElem' in option ? option.DefElem : undefined;
    if (def?.defname !== 'costs') continue;
    if (!isFalse(def.arg)) {
      throw new ProxyError('statement_not_allowed', {
        message: 'EXPLAIN with COSTS is not allowed',
        hint: 'Cost and row estimates come from statistics over all tenants; use EXPLAIN (COSTS OFF) to see the plan.',
      });
    }
    named = true;
  }
  if (!named) explain.options = [...options, { DefElem: { defname: 'costs', arg: { String: { sval: 'off' } }, defaction: 'DEFELEM_UNSPEC', location: -1 } } as Node];
}

/**
 * A plan names the indexes it uses, and the proxy replaces those the agent cannot see
 * (results/explain.ts). In JSON, YAML and XML it knows where a plan names one: the Index Name
 * property, which no text of the agent's can imitate (those formats escape it). The text format
 * has no such place: a string the statement computes (`'x' || chr(10) || 'Index Scan using …'`)
 * prints as rows of its own. So where the policy's tables have indexes the agent cannot see, a
 * text EXPLAIN runs as FORMAT JSON.
 */
function structuredWhereIndexesHide(explain: ExplainStmt, scope: ReadScope): void {
  if (!scope.catalog.objects || visibility(scope).hiddenIndexNames.length === 0) return;
  const options = explain.options ?? [];
  const format = options.map((o) => ('DefElem' in o ? o.DefElem : undefined)).filter((d) => d?.defname === 'format').pop();
  const value = format ? ((format.arg as { String?: { sval?: string } } | undefined)?.String?.sval ?? '').toLowerCase() : 'text';
  if (value !== 'text') return;
  explain.options = [...options.filter((o) => !('DefElem' in o && o.DefElem.defname === 'format')), { DefElem: { defname: 'format', arg: { String: { sval: 'json' } }, defaction: 'DEFELEM_UNSPEC', location: -1 } } as Node];
}

// The row cap: the outermost LIMIT of a top-level SELECT lets at most max_rows + 1 rows leave the database.

let bigintCast: Node | undefined;

/** `<n>::bigint`: the type PostgreSQL gives a LIMIT parameter, so `LEAST($1, n)` keeps `$1` a bigint. */
function bigint(n: number): Node {
  bigintCast ??= parseTemplate('SELECT 0::bigint', 'bigint cast').targetList?.[0] as Node;
  const cast = cloneTree((bigintCast as { ResTarget: { val: Node } }).ResTarget.val) as { TypeCast: { arg: Node } };
  cast.TypeCast.arg = intConst(n);
  return cast as unknown as Node;
}

function hasParam(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some(hasParam);
  if ('ParamRef' in value) return true;
  return Object.values(value).some(hasParam);
}

/**
 * Caps the top node of a SELECT (for a set operation that is the node holding LIMIT for the
 * whole result; FETCH FIRST n ROWS ONLY is the same field). One row more than max_rows is
 * let through so the wire path can tell a truncated result from one that fits exactly.
 * `LIMIT ALL` is a NULL constant, which LEAST ignores.
 */
export function capRows(select: SelectStmt, maxRows: number): SelectStmt {
  const agent = select.limitCount;
  const cap = maxRows + 1;
  if (select.limitOption === 'LIMIT_OPTION_WITH_TIES' && agent) return tiesCapped(select, cap);
  if (!agent) {
    select.limitCount = intConst(cap);
    // OFFSET alone already sets the option to COUNT.
    select.limitOption = 'LIMIT_OPTION_COUNT';
    return select;
  }
  select.limitCount = { MinMaxExpr: { op: 'IS_LEAST', args: [agent, hasParam(agent) ? bigint(cap) : intConst(cap)] } };
  return select;
}

let tiesTemplate: SelectStmt | undefined;

/**
 * FETCH FIRST n ROWS WITH TIES returns every row that ties with the n-th, so capping n caps
 * nothing: `ORDER BY status FETCH FIRST 1 ROW WITH TIES` can return the whole table. The
 * agent's query keeps its n and becomes the subquery of a SELECT that carries the cap. Nothing
 * between the two re-sorts, so the rows keep the subquery's order. The WITH clause moves up,
 * where PostgreSQL requires a data-modifying CTE to be.
 */
function tiesCapped(select: SelectStmt, cap: number): SelectStmt {
  tiesTemplate ??= parseTemplate('SELECT * FROM (SELECT) AS ormai_ties LIMIT 1', 'WITH TIES cap');
  const outer = cloneTree(tiesTemplate);
  const { withClause, ...inner } = select;
  (outer.fromClause?.[0] as { RangeSubselect: { subquery: Node } }).RangeSubselect.subquery = { SelectStmt: inner };
  if (withClause) outer.withClause = withClause;
  outer.limitCount = intConst(cap);
  return outer;
}
