// How many grouping sets a GROUP BY makes and how many columns they list (src/analysis/grouping-sets.ts),
// and the bound on them (analysis.max_expanded_nodes, each column weighing GROUPING_SET_COLUMN_WEIGHT).
import type { Node } from '@pgsql/types';
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { groupByExpansion, groupingSetsOf } from '../../../src/analysis/grouping-sets';
import { parseStatements } from '../../../src/analysis/parser';

beforeAll(async () => {
  await initAnalysis();
});

const clause = (groupBy: string): Node[] =>
  (parseStatements(`SELECT count(*) FROM t GROUP BY ${groupBy}`)[0] as { SelectStmt: { groupClause: Node[] } }).SelectStmt.groupClause;
const expansion = (groupBy: string) => groupByExpansion(clause(groupBy));
const list = (n: number, from = 0): string => Array.from({ length: n }, (_, i) => `(x + ${i + from})`).join(', ');

test.each([
  // A GROUP BY without grouping sets is one set of its columns.
  ['a, b', 1, 2],
  ['ROLLUP(a, b, c)', 4, 6],
  // (a, b) inside ROLLUP is one element of two columns.
  ['ROLLUP((a, b), c)', 3, 5],
  ['CUBE(a, b, c)', 8, 12],
  ['CUBE((a, b), c)', 4, 6],
  ['GROUPING SETS ((), (a, b), c)', 3, 3],
  ['GROUPING SETS (ROLLUP(a, b), CUBE(c))', 5, 4],
  ['GROUPING SETS (GROUPING SETS ((a), (b)), ())', 3, 2],
  ['()', 1, 0],
  // Items multiply: each set of one with each set of the other, a plain column in every set.
  ['a, ROLLUP(b, c)', 3, 6],
  ['ROLLUP(a, b), ROLLUP(c, d)', 9, 18],
  ['CUBE(a, b), GROUPING SETS (c, (d, e))', 8, 20],
])('GROUP BY %s: %d sets of %d columns', (groupBy, sets, columns) => {
  expect(expansion(groupBy)).toEqual({ sets, columns });
});

test('large clauses are counted without listing their sets', () => {
  expect(expansion(`ROLLUP(${list(1600)})`)).toEqual({ sets: 1601, columns: (1600 * 1601) / 2 });
  expect(expansion(`ROLLUP(${list(63)}), ROLLUP(${list(63, 100)})`)).toEqual({ sets: 64 * 64, columns: 2 * 64 * ((63 * 64) / 2) });
  expect(expansion(`CUBE(${list(12)})`)).toEqual({ sets: 4096, columns: 12 * 2048 });
  expect(expansion(`CUBE(${list(12)}), CUBE(${list(12, 20)}), CUBE(${list(12, 40)})`).sets).toBe(4096 ** 3);
});

test('every query level of a statement counts, subqueries and CTEs included', () => {
  const sql = `WITH w AS (SELECT count(*) FROM t GROUP BY ROLLUP(a, b)) SELECT (SELECT 1 FROM t GROUP BY CUBE(c, d) LIMIT 1) FROM w GROUP BY e`;
  // ROLLUP(a, b): 3 sets, 3 columns; CUBE(c, d): 4 sets, 4 columns; the plain GROUP BY e is not counted.
  expect(groupingSetsOf(parseStatements(sql)[0])).toEqual({ sets: 7, columns: 7 });
});

describe('the bound', () => {
  const context = { protocol: 'simple' as const };
  const outcome = (sql: string) => {
    const a = analyze(sql, context);
    return a.ok ? 'ok' : `${a.error.code}: ${a.error.message}`;
  };

  test('ROLLUP of 223 columns passes and of 224 is refused, at the default bound (200,000 / 8 = 25,000 columns)', () => {
    expect(outcome(`SELECT count(*) FROM t GROUP BY ROLLUP(${list(223)})`)).toBe('ok');
    expect(outcome(`SELECT count(*) FROM t GROUP BY ROLLUP(${list(224)})`)).toBe(
      'statement_too_complex: GROUP BY expands to 225 grouping sets of 25200 columns in all; the limit is 25000 columns',
    );
    expect(outcome(`SELECT count(*) FROM t GROUP BY CUBE(${list(12)})`)).toBe('ok');
  });

  test('products of items, and sets nested anywhere, are refused on their total', () => {
    expect(outcome(`SELECT count(*) FROM t GROUP BY ROLLUP(${list(63)}), ROLLUP(${list(63, 100)})`)).toMatch(/^statement_too_complex: GROUP BY expands to 4096 grouping sets of 258048 columns/);
    expect(outcome(`SELECT * FROM (SELECT count(*) FROM t GROUP BY ROLLUP(${list(300)})) s`)).toMatch(/^statement_too_complex: GROUP BY expands/);
    expect(outcome(`SELECT count(*) FROM t GROUP BY CUBE(${list(12)}), CUBE(${list(12, 20)}), CUBE(${list(12, 40)})`)).toMatch(/^statement_too_complex: GROUP BY expands to 68719476736 grouping sets/);
    // Two statements of one Query count together, as one message's work.
    const half = `SELECT count(*) FROM t GROUP BY ROLLUP(${list(160)})`;
    expect(outcome(half)).toBe('ok');
    expect(outcome(`${half}; ${half}`)).toMatch(/^statement_too_complex: GROUP BY expands/);
  });
});
