// Work bounds on a parsed tree: node count, CTE count and CTE nesting, walked without recursion.
import type { Node } from '@pgsql/types';
import { ProxyError } from '../errors/catalogue';
import { analysisLimits, type AnalysisLimits } from './bounds';
import { expandedSize, lexprCopies } from './expanded-size';
import { GROUPING_SET_COLUMN_WEIGHT, GROUPING_SET_WEIGHT, groupingSetsOf, weightOf } from './grouping-sets';

export interface TreeShape {
  nodes: number;
  ctes: number;
  cteDepth: number;
  /** Derived tables (subqueries in FROM): with the CTEs, what PostgreSQL may pull up. */
  subselects: number;
  /** Operators whose left operand PostgreSQL copies (BETWEEN, IN with non-constant entries). */
  copies: number;
  /** ROLLUP, CUBE and GROUPING SETS clauses: what PostgreSQL expands into lists of sets. */
  groupingSets: number;
}

/** Counts objects (every node and node body) and CTEs; stops counting once a bound is passed. */
export function treeShape(roots: readonly Node[], stopAt: Pick<AnalysisLimits, 'maxParseNodes' | 'maxCtes' | 'maxCteDepth'>): TreeShape {
  const shape: TreeShape = { nodes: 0, ctes: 0, cteDepth: 0, subselects: 0, copies: 0, groupingSets: 0 };
  // Values and the number of CommonTableExpr nodes above each: an explicit stack, since the
  // trees this bounds are the ones deep enough to matter.
  const values: unknown[] = [...roots];
  const depths: number[] = roots.map(() => 0);
  while (values.length > 0) {
    const value = values.pop();
    let depth = depths.pop()!;
    if (value === null || typeof value !== 'object') continue;
    shape.nodes++;
    if (shape.nodes > stopAt.maxParseNodes || shape.ctes > stopAt.maxCtes || shape.cteDepth > stopAt.maxCteDepth) break;
    if (Array.isArray(value)) {
      for (const item of value) {
        values.push(item);
        depths.push(depth);
      }
      continue;
    }
    const record = value as Record<string, unknown>;
    if ('CommonTableExpr' in record) {
      shape.ctes++;
      depth++;
      if (depth > shape.cteDepth) shape.cteDepth = depth;
    }
    if ('RangeSubselect' in record) shape.subselects++;
    else if ('GroupingSet' in record) shape.groupingSets++;
    else if ('A_Expr' in record && lexprCopies(record.A_Expr as Record<string, unknown>) > 1) shape.copies++;
    for (const key in record) {
      const child = record[key];
      if (child !== null && typeof child === 'object') {
        values.push(child);
        depths.push(depth);
      }
    }
  }
  return shape;
}

/** Throws statement_too_complex when a parsed text passes the node, CTE or statement bounds. */
export function checkTree(roots: readonly Node[], protocol: 'simple' | 'extended', limits: AnalysisLimits = analysisLimits()): void {
  if (protocol === 'simple' && roots.length > limits.maxStatementsPerQuery) {
    throw new ProxyError('statement_too_complex', {
      message: `the message holds ${roots.length} statements; the limit is ${limits.maxStatementsPerQuery}`,
    });
  }
  const shape = treeShape(roots, limits);
  if (shape.nodes > limits.maxParseNodes) {
    throw new ProxyError('statement_too_complex', { message: `the statement's tree has more than ${limits.maxParseNodes} nodes` });
  }
  if (shape.ctes > limits.maxCtes) {
    throw new ProxyError('statement_too_complex', { message: `the statement has more than ${limits.maxCtes} common table expressions` });
  }
  if (shape.cteDepth > limits.maxCteDepth) {
    throw new ProxyError('statement_too_complex', { message: `WITH nests more than ${limits.maxCteDepth} levels deep` });
  }
  if (shape.groupingSets > 0) checkGroupingSets(roots, limits.maxExpandedNodes);
  if (shape.ctes + shape.subselects + shape.copies + shape.groupingSets === 0) return;
  for (const root of roots) {
    if (expandedSize(root, limits.maxExpandedNodes) === undefined) {
      throw new ProxyError('statement_too_complex', {
        message: `the statement grows past ${limits.maxExpandedNodes} nodes as PostgreSQL expands it: derived tables and CTEs into each reference to their columns, BETWEEN and IN into a comparison per bound or entry, ROLLUP, CUBE and GROUPING SETS into their grouping sets`,
        hint: 'Nothing was run. Each reference to a column of a subquery in FROM or of a CTE copies that column\'s expression, as BETWEEN and IN copy their left operand, so nesting levels that use a value twice double the statement: compute the value once at the innermost level, or use fewer levels. A CTE PostgreSQL inlines, or a subquery IN or BETWEEN copies, is planned again with its grouping sets at every copy: write it AS MATERIALIZED, or read it once.',
      });
    }
  }
}

function checkGroupingSets(roots: readonly Node[], bound: number): void {
  let sets = 0;
  let columns = 0;
  for (const root of roots) {
    const e = groupingSetsOf(root);
    sets += e.sets;
    columns += e.columns;
  }
  if (weightOf({ sets, columns }) <= bound) return;
  throw new ProxyError('statement_too_complex', {
    message: `GROUP BY expands to ${count(sets)} grouping sets of ${count(columns)} columns in all, more than the proxy lets PostgreSQL plan (each set counts ${GROUPING_SET_WEIGHT} and each column ${GROUPING_SET_COLUMN_WEIGHT} against ${bound})`,
    hint: 'Nothing was run. ROLLUP of n columns is n + 1 grouping sets and CUBE 2^n, and the sets of several ROLLUP, CUBE or GROUPING SETS items in one GROUP BY multiply. Group by fewer columns, or ask for the grouping sets you need, each as its own query.',
  });
}

function count(n: number): string {
  return Number.isFinite(n) && n < 1e15 ? String(n) : 'more than 10^15';
}

/** A wall-clock budget for one analysis, checked between its stages (each stage is bounded by the checks above). */
export class AnalysisBudget {
  private readonly deadline: number;

  constructor(limits: AnalysisLimits = analysisLimits()) {
    this.deadline = performance.now() + limits.analysisBudgetMs;
  }

  check(stage: string): void {
    if (performance.now() > this.deadline) {
      throw new ProxyError('statement_too_complex', {
        message: `checking the statement took longer than ${analysisLimits().analysisBudgetMs} ms`,
        logMessage: `analysis budget spent before ${stage}`,
      });
    }
  }
}
