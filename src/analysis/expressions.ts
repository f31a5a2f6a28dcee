// One walk over a classified read or write: function allow-list (attribute notation too), reg* casts and coercions, names in schemas, session value functions, join depth.
import type { Alias, ColumnRef, CommonTableExpr, FuncCall, Node, RangeTableSample, RangeVar, SQLValueFunction, TypeName } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import { checkAttributeNotation } from './attributes';
import { checkFuncCall, checkSampleMethod, checkTypeName, checkValueFunction } from './functions';
import { checkJoinDepth } from './join-depth';
import { checkRegCoercions, isRegSource } from './reg-coercion';
import { checkCollation, checkConfigArgument, checkOperator, visibleSchemas } from './schema-names';
import { walk } from './rewrite/nodes';
import { nodeBody, nodeTypeOf, type AnalysisContext, type AnalyzedStatement } from './types';

/**
 * Checks every expression of a read or write (EXPLAIN's statement included) and every query
 * level's join count; throws the ProxyError that refuses the statement. Runs on the agent's
 * own tree, before any rewrite, so what the proxy itself adds is never counted or refused.
 *
 * Nodes are recognised by their type wherever they sit (target lists, WHERE, FROM functions,
 * ORDER BY, window specs, FILTER, CTEs, subqueries, VALUES, RETURNING, ON CONFLICT, ...), so
 * no clause can be forgotten. The walk is iterative: trees can be very deep.
 *
 * Without a policy (no ctx.scope) functions are still checked against the built-ins alone:
 * fail closed. Join depth needs the policy's limit and is skipped.
 */
export function checkExpressions(stmt: AnalyzedStatement, ctx: AnalysisContext, relationsFirst?: () => unknown): void {
  try {
    walkExpressions(stmt, ctx);
  } catch (err) {
    // A statement that reads a system catalog is refused for that first (psql's \d calls
    // catalog functions, and drivers' catalog queries join many relations): the catalog hint
    // tells the agent what to use instead.
    if (err instanceof ProxyError && (err.code === 'function_not_allowed' || err.code === 'join_depth_exceeded') && relationsFirst) {
      try {
        relationsFirst();
      } catch (relationErr) {
        if (relationErr instanceof ProxyError && relationErr.code === 'catalog_not_allowed') throw relationErr;
      }
    }
    throw err;
  }
  if (stmt.kind !== 'read' && stmt.kind !== 'write') return;
  try {
    checkAttributeNotation(stmt.stmt, ctx.scope, ctx.scope?.policy);
  } catch (err) {
    // Checked last: a refusal by the relation or write rules names the problem more precisely.
    try {
      relationsFirst?.();
    } catch (other) {
      if (other instanceof ProxyError) throw other;
    }
    throw err;
  }
}

const RESERVED_PREFIX = 'ormai_';

/** Names with the prefix that the agent does see: information_schema.columns' mask column. */
const PUBLIC_NAMES = new Set(['ormai_mask']);

function reserved(name: string | undefined): void {
  const lower = name?.toLowerCase();
  if (lower?.startsWith(RESERVED_PREFIX) && !PUBLIC_NAMES.has(lower)) {
    throw new ProxyError('statement_not_allowed', {
      message: `names starting with "${RESERVED_PREFIX}" are reserved for the proxy`,
      hint: 'Use another name for this alias, CTE or column.',
    });
  }
}

function cteNames(tree: Node): Set<string> {
  const names = new Set<string>();
  walk([tree], (node) => {
    const cte = node.CommonTableExpr as CommonTableExpr | undefined;
    if (cte?.ctename) names.add(cte.ctename);
  });
  return names;
}

function walkExpressions(stmt: AnalyzedStatement, ctx: AnalysisContext): void {
  if (stmt.kind !== 'read' && stmt.kind !== 'write') return;
  const scope = ctx.scope;
  const policy = scope?.policy;
  // Catalog helpers and reg* casts are confined to visible objects by the read rewrite: only
  // allowed when it is the one that runs (tests may put another in its place).
  const guarded = scope !== undefined && ctx.rewrite === undefined;
  // System relations are served as small policy views (the visible objects only): catalog
  // queries of drivers and psql join many of them, and they do not count towards the limit.
  // A CTE may take a catalog's name; an unqualified name any CTE has is counted.
  let ctes: Set<string> | undefined;
  const counted = (item: Node): boolean => {
    if (!scope || nodeTypeOf(item) !== 'RangeVar') return true;
    const rv = nodeBody<RangeVar>(item);
    ctes ??= cteNames(stmt.stmt);
    if (rv.schemaname === undefined && ctes.has(rv.relname ?? '')) return true;
    const kind = scope.resolve(rv.schemaname, rv.relname ?? '').kind;
    return kind !== 'catalog' && kind !== 'virtual';
  };
  const maxJoins = policy?.maxJoinDepth;
  const schemas = visibleSchemas(scope);
  let regSources = false;
  const stack: unknown[] = [stmt.stmt];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push(value[i]);
      continue;
    }
    const node = value as Record<string, unknown>;
    if (maxJoins !== undefined) checkJoinDepth(node, maxJoins, counted);
    for (const key in node) {
      const child = node[key];
      if (child === null || typeof child !== 'object') continue;
      if (!regSources && isRegSource(key, child)) regSources = true;
      switch (key) {
        case 'FuncCall':
          checkFuncCall(child as FuncCall, policy, guarded, scope?.catalog.userFunctions);
          checkConfigArgument(child as FuncCall, schemas);
          break;
        case 'TypeCast': {
          // A cast to regclass, regtype, … is confined to visible objects by the read rewrite
          // (rewrite/catalog-functions.ts); a reg* type anywhere else (a column definition list)
          // is refused below.
          const cast = child as { arg?: unknown; typeName?: TypeName };
          if (cast.typeName) checkTypeName(cast.typeName, ctx.scope?.catalog.types, guarded);
          stack.push(cast.arg);
          continue;
        }
        case 'SQLValueFunction':
          checkValueFunction(child as SQLValueFunction, ctx.scope !== undefined && ctx.principal !== undefined && (stmt.kind === 'read' || stmt.kind === 'write'));
          break;
        case 'RangeTableSample':
          checkSampleMethod(child as RangeTableSample, policy);
          break;
        // TypeCast.typeName, coldef lists, XMLSERIALIZE/RETURNING types: unwrapped; elsewhere wrapped.
        case 'typeName':
        case 'TypeName':
          checkTypeName(child as TypeName, ctx.scope?.catalog.types);
          break;
        // Names the proxy gives what it adds (ormai_old, ormai_source, ormai_count, …) are not the agent's to use.
        case 'ColumnRef':
          for (const f of (child as ColumnRef).fields ?? []) if ('String' in f) reserved(f.String.sval);
          break;
        case 'alias':
          reserved((child as Alias).aliasname);
          break;
        case 'CommonTableExpr':
          reserved((child as CommonTableExpr).ctename);
          break;
        // Operators, wherever a statement names one: an expression, a sub-select comparison, ORDER BY … USING.
        case 'A_Expr': {
          // BETWEEN and its forms carry the keyword as their name; PostgreSQL runs >= and <=.
          const expr = child as { kind?: string; name?: Node[] };
          if (!/BETWEEN/.test(expr.kind ?? '')) checkOperator(expr.name, scope);
          break;
        }
        case 'SubLink':
          checkOperator((child as { operName?: Node[] }).operName, scope);
          break;
        case 'SortBy':
          checkOperator((child as { useOp?: Node[] }).useOp, scope);
          break;
        case 'CollateClause':
          checkCollation((child as { collname?: Node[] }).collname, schemas);
          break;
      }
      stack.push(child);
    }
  }
  checkRegCoercions(stmt.stmt, regSources);
}
