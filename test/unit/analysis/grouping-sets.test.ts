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
  // A parenthesised list is its columns, at the top of a GROUP BY and nested at any depth.
  ['(a, b), ROLLUP(c)', 2, 5],
  ['(a, b, d), CUBE(c, e)', 4, 16],
  ['ROLLUP((a, (b, c)), d)', 3, 7],
  ['CUBE((a, (b, (c, d))))', 2, 4],
  ['GROUPING SETS ((a, (b, c)), ())', 2, 3],
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

test('a NOT MATERIALIZED CTE counts once per reference, others once', () => {
  const sets = (sql: string) => groupingSetsOf(parseStatements(sql)[0]);
  const cte = (how: string) => `WITH w AS ${how} (SELECT count(*) FROM t GROUP BY ROLLUP(a, b)) SELECT * FROM w, w AS x, (SELECT * FROM w) y`;
  expect(sets(cte('NOT MATERIALIZED'))).toEqual({ sets: 9, columns: 9 });
  expect(sets(cte('MATERIALIZED'))).toEqual({ sets: 3, columns: 3 });
  expect(sets(cte(''))).toEqual({ sets: 3, columns: 3 });
  // Nested: copied as often as each reference is.
  expect(sets('WITH v AS NOT MATERIALIZED (WITH w AS NOT MATERIALIZED (SELECT 1 FROM t GROUP BY CUBE(a)) SELECT * FROM w, w x) SELECT * FROM v, v x, v y')).toEqual({ sets: 12, columns: 6 });
});

describe('the bound', () => {
  const context = { protocol: 'simple' as const };
  const outcome = (sql: string) => {
    const a = analyze(sql, context);
    return a.ok ? 'ok' : `${a.error.code}: ${a.error.message}`;
  };

  test('at the default bound (each set 2,500, each column 80, against 200,000): ROLLUP of 45 passes, of 46 does not; CUBE of 6 passes, of 7 does not', () => {
    expect(outcome(`SELECT count(*) FROM t GROUP BY ROLLUP(${list(45)})`)).toBe('ok');
    expect(outcome(`SELECT count(*) FROM t GROUP BY ROLLUP(${list(46)})`)).toBe(
      'statement_too_complex: GROUP BY expands to 47 grouping sets of 1081 columns in all, more than the proxy lets PostgreSQL plan (each set counts 2500 and each column 80 against 200000)',
    );
    expect(outcome(`SELECT count(*) FROM t GROUP BY CUBE(${list(6)})`)).toBe('ok');
    expect(outcome(`SELECT count(*) FROM t GROUP BY CUBE(${list(7)})`)).toMatch(/^statement_too_complex: GROUP BY expands to 128 grouping sets/);
    expect(outcome(`SELECT count(*) FROM t GROUP BY GROUPING SETS (${list(77)})`)).toBe('ok');
    expect(outcome(`SELECT count(*) FROM t GROUP BY GROUPING SETS (${list(78)})`)).toMatch(/^statement_too_complex: GROUP BY expands to 78 grouping sets of 78 columns/);
    // Many columns in few sets: 1,200 columns and ROLLUP of one (2 sets, 2,401 columns) pass; 1,300 do not.
    expect(outcome(`SELECT count(*) FROM t GROUP BY ${list(1200, 100)}, ROLLUP(x)`)).toBe('ok');
    expect(outcome(`SELECT count(*) FROM t GROUP BY (${list(1300, 100)}), ROLLUP(x)`)).toMatch(/^statement_too_complex: GROUP BY expands to 2 grouping sets of 2601 columns/);
  });

  test('products of items, and sets nested anywhere, are refused on their total', () => {
    expect(outcome(`SELECT count(*) FROM t GROUP BY ROLLUP(${list(20)}), ROLLUP(${list(20, 100)})`)).toMatch(/^statement_too_complex: GROUP BY expands to 441 grouping sets of 8820 columns/);
    expect(outcome(`SELECT * FROM (SELECT count(*) FROM t GROUP BY ROLLUP(${list(60)})) s`)).toMatch(/^statement_too_complex: GROUP BY expands/);
    expect(outcome(`SELECT count(*) FROM t GROUP BY CUBE(${list(12)}), CUBE(${list(12, 20)}), CUBE(${list(12, 40)})`)).toMatch(/^statement_too_complex: GROUP BY expands to 68719476736 grouping sets/);
    // Two statements of one Query count together, as one message's work; so do the copies of a NOT MATERIALIZED CTE.
    const half = `SELECT count(*) FROM t GROUP BY ROLLUP(${list(30)})`;
    expect(outcome(half)).toBe('ok');
    expect(outcome(`${half}; ${half}`)).toMatch(/^statement_too_complex: GROUP BY expands/);
    expect(outcome(`WITH w AS MATERIALIZED (${half}) SELECT * FROM w, w x`)).toBe('ok');
    expect(outcome(`WITH w AS NOT MATERIALIZED (${half}) SELECT * FROM w, w x`)).toMatch(/^statement_too_complex: GROUP BY expands to 62 grouping sets/);
  });
});
