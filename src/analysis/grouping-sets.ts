// How many grouping sets a GROUP BY makes, and how many columns they list in all, as PostgreSQL
// expands them (parse_agg.c, expand_grouping_sets) before it plans them.
//
// ROLLUP of n columns is n + 1 grouping sets (n columns, n - 1, …, none), CUBE of n is 2^n, the
// items of one GROUP BY multiply (`ROLLUP(a…), ROLLUP(b…)` is every pair of their sets), and a
// parenthesised list `(a, b)` is its columns, at any depth (flatten_grouping_sets). The planner
// then makes a sort or hash for each chain of sets and keeps every set's columns: EXPLAIN on
// PostgreSQL 15, a table of 2,000 rows, analysed:
//
//   GROUP BY                                sets   columns   backend memory   time
//   GROUPING SETS of 256 single columns      256       256      70 MB        0.12 s
//   GROUPING SETS of 1,000 single columns  1,000     1,000     117 MB        0.39 s
//   ROLLUP of 120                            121     7,260      25 MB        0.03 s
//   ROLLUP of 140                            141     9,870     189 MB        0.58 s
//   ROLLUP of 223                            224    24,976     386 MB        1.7 s
//   ROLLUP(20 expressions), ROLLUP(20)       441     8,820     181 MB        0.58 s
//   ROLLUP(40), ROLLUP(40)                 1,681    67,240     965 MB        4.7 s
//   CUBE of 12 (PostgreSQL's largest)      4,096    24,576     467 MB        2.1 s
//   1,000 columns, ROLLUP of 10               11    11,055      50 MB        0.24 s
//
// Neither count alone predicts it, and past a point it grows much faster than either; so both
// are bounded together: as written (tree-bounds.ts, with a message that names them) and as
// PostgreSQL copies the query levels that hold them (expanded-size.ts: a CTE inlined at each
// reference, a scalar subquery copied by IN or BETWEEN).
import type { Node } from '@pgsql/types';

/** The grouping sets one GROUP BY item (or the whole clause) stands for: how many, and their columns together. */
export interface Expansion {
  sets: number;
  columns: number;
}

const NONE: Expansion = { sets: 1, columns: 0 };

/** `(a, b)` in a GROUP BY is a list of two columns, not a row value, at any depth. */
function sublist(node: Node): Node[] | undefined {
  const row = (node as { RowExpr?: { args?: Node[]; row_format?: string } }).RowExpr;
  return row && row.row_format === 'COERCE_IMPLICIT_CAST' ? (row.args ?? []) : undefined;
}

/** The columns an element stands for once its parenthesised lists are flattened. */
function elementColumns(node: Node): number {
  const list = sublist(node);
  if (!list) return 1;
  let n = 0;
  for (const e of list) n += elementColumns(e);
  return n;
}

interface GroupingSetBody {
  kind?: string;
  content?: Node[];
}

/** What one item of a GROUP BY (or of GROUPING SETS) expands to. */
function item(node: Node): Expansion {
  const set = (node as { GroupingSet?: GroupingSetBody }).GroupingSet;
  if (!set) return { sets: 1, columns: elementColumns(node) };
  const content = set.content ?? [];
  switch (set.kind) {
    case 'GROUPING_SET_EMPTY':
      return NONE;
    case 'GROUPING_SET_SIMPLE':
      return { sets: 1, columns: content.reduce((n, e) => n + elementColumns(e), 0) };
    case 'GROUPING_SET_ROLLUP': {
      // The i-th element (from 0) is in every set but the i + 1 shortest.
      let columns = 0;
      content.forEach((e, i) => (columns += elementColumns(e) * (content.length - i)));
      return { sets: content.length + 1, columns };
    }
    case 'GROUPING_SET_CUBE': {
      // Each element is in half of the 2^n sets.
      const half = 2 ** (content.length - 1);
      return { sets: 2 ** content.length, columns: content.reduce((n, e) => n + elementColumns(e) * half, 0) };
    }
    case 'GROUPING_SET_SETS': {
      // The sets of each entry, one after another.
      const out = { sets: 0, columns: 0 };
      for (const entry of content) {
        const e = item(entry);
        out.sets += e.sets;
        out.columns += e.columns;
      }
      return out;
    }
    default:
      // A kind this count does not know: counted as the most it could be, so that it is refused.
      return { sets: Infinity, columns: Infinity };
  }
}

/** A GROUP BY clause: every combination of one set from each item, each listing the columns of the sets combined. */
export function groupByExpansion(clause: readonly Node[]): Expansion {
  let acc = NONE;
  for (const node of clause) {
    const e = item(node);
    acc = { sets: acc.sets * e.sets, columns: acc.columns * e.sets + e.columns * acc.sets };
  }
  return acc;
}

/**
 * What a grouping set and one of its columns weigh against analysis.max_expanded_nodes. The
 * default bound then allows 77 single-column sets, ROLLUP of 45 columns, CUBE of 6, or 2,400
 * columns in a few sets: at most about 32 MB of a backend (1,200 columns and ROLLUP of one,
 * 0.17 s; ROLLUP of 45 took 6 MB), where ROLLUP of 140 took 189 MB and CUBE of 12 467 MB.
 */
export const GROUPING_SET_WEIGHT = 2500;
export const GROUPING_SET_COLUMN_WEIGHT = 80;

/** What grouping sets weigh against analysis.max_expanded_nodes. */
export function weightOf(e: Expansion): number {
  return e.sets * GROUPING_SET_WEIGHT + e.columns * GROUPING_SET_COLUMN_WEIGHT;
}

/** Does a GROUP BY clause hold grouping sets (ROLLUP, CUBE, GROUPING SETS, `()`)? */
function hasGroupingSets(clause: readonly Node[] | undefined): clause is readonly Node[] {
  return Array.isArray(clause) && clause.some((n) => 'GroupingSet' in n);
}

/** The weight of a GROUP BY clause's grouping sets (0 for a GROUP BY without any: one set, planned as any). */
export function groupingWeight(clause: readonly Node[] | undefined): number {
  return hasGroupingSets(clause) ? weightOf(groupByExpansion(clause)) : 0;
}

/**
 * The grouping sets of every query level of a statement as written, each once (a GROUP BY
 * without grouping sets is not counted): both sides of a set operation, CTEs, subqueries.
 */
export function groupingSetsOf(root: Node): Expansion {
  const total = { sets: 0, columns: 0 };
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (const v of value) if (v !== null && typeof v === 'object') stack.push(v);
      continue;
    }
    const record = value as Record<string, unknown>;
    // A SELECT's body, wrapped in a node or not (the sides of a set operation are bare bodies).
    const clause = record.groupClause as Node[] | undefined;
    if (hasGroupingSets(clause)) {
      const e = groupByExpansion(clause);
      total.sets += e.sets;
      total.columns += e.columns;
    }
    for (const key in record) {
      const child = record[key];
      if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
  return total;
}
