// How many grouping sets a GROUP BY makes, and how many columns they list in all, as PostgreSQL
// expands them (parse_agg.c, expand_grouping_sets) before it plans them.
//
// ROLLUP of n columns is n + 1 grouping sets (n columns, n - 1, …, none), CUBE of n is 2^n, and
// the items of one GROUP BY multiply: `ROLLUP(a…), ROLLUP(b…)` is every pair of their sets. The
// planner keeps, for each set, the list of its columns (and their bitmaps, sort orders and
// rollup chains), so a backend's memory grows with the columns of all sets together: on
// PostgreSQL 15, ROLLUP of 800 expressions (320,400 columns in 801 sets) held 204 MB, of 1,600
// (1,280,800 columns) 743 MB for 2.1 s, and `ROLLUP(63 expressions), ROLLUP(63 others)` (4,096
// sets, 258,048 columns) 188 MB: 570-670 bytes a column, whatever the shape. PostgreSQL's own
// limits (4,096 sets, 1,664 target entries, CUBE of 12) leave a statement of 20 kB at about
// 800 MB; a few of them on one database is a denial of service.
import type { Node } from '@pgsql/types';

/** The grouping sets one GROUP BY item (or the whole clause) stands for: how many, and their columns together. */
export interface Expansion {
  sets: number;
  columns: number;
}

const NONE: Expansion = { sets: 1, columns: 0 };

/** `(a, b)` inside ROLLUP, CUBE and GROUPING SETS is one element of two columns, not a row value. */
function sublist(node: Node): Node[] | undefined {
  const row = (node as { RowExpr?: { args?: Node[]; row_format?: string } }).RowExpr;
  return row && row.row_format === 'COERCE_IMPLICIT_CAST' ? (row.args ?? []) : undefined;
}

function elementColumns(node: Node): number {
  return sublist(node)?.length ?? 1;
}

interface GroupingSetBody {
  kind?: string;
  content?: Node[];
}

/** What one item of a GROUP BY (or of GROUPING SETS) expands to. */
function item(node: Node): Expansion {
  const set = (node as { GroupingSet?: GroupingSetBody }).GroupingSet;
  if (!set) return { sets: 1, columns: 1 };
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
        const rows = sublist(entry);
        const e = rows ? { sets: 1, columns: rows.length } : item(entry);
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

/** The grouping sets of every query level of a statement together (a GROUP BY without grouping sets is one set). */
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
    const select = record.SelectStmt as { groupClause?: Node[] } | undefined;
    if (select?.groupClause?.some((n) => 'GroupingSet' in n)) {
      const e = groupByExpansion(select.groupClause);
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
