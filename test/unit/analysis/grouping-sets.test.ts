// How many grouping sets a GROUP BY makes and how many columns they list (src/analysis/grouping-sets.ts),
// and the bound on them (analysis.max_expanded_nodes, each column weighing GROUPING_SET_COLUMN_WEIGHT).
import type { Node } from '@pgsql/types';
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { expandedSize } from '../../../src/analysis/expanded-size';
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

test('as written, every query level counts once: both sides of a set operation, CTEs, subqueries, a recursive CTE\'s terms', () => {
  const sets = (sql: string) => groupingSetsOf(parseStatements(sql)[0]);
  expect(sets('SELECT 1 UNION ALL SELECT count(*) FROM t GROUP BY CUBE(a, b)')).toEqual({ sets: 4, columns: 4 });
  expect(sets('(SELECT 1 FROM t GROUP BY ROLLUP(a)) INTERSECT (SELECT 1 FROM t GROUP BY ROLLUP(b, c))')).toEqual({ sets: 5, columns: 4 });
  expect(sets('WITH RECURSIVE r(n) AS (SELECT count(*) FROM t GROUP BY ROLLUP(a) UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r')).toEqual({ sets: 2, columns: 1 });
  expect(sets('WITH w AS NOT MATERIALIZED (SELECT count(*) FROM t GROUP BY ROLLUP(a, b)) SELECT * FROM w, w AS x')).toEqual({ sets: 3, columns: 3 });
});

test('as PostgreSQL copies them (expanded-size.ts): an inlined CTE at every reference, through the CTEs that read it, and a subquery IN or BETWEEN copies', () => {
  const size = (sql: string) => expandedSize(parseStatements(sql)[0], Number.MAX_SAFE_INTEGER)!;
  const body = `SELECT count(*) AS n FROM t GROUP BY ROLLUP(${list(20)})`;
  const refs = (k: number, name: string) => Array.from({ length: k }, (_, i) => `SELECT n FROM ${name} r${i}`).join(' UNION ALL ');
  // ROLLUP of 20: 21 sets and 210 columns weigh 69,300.
  const weight = 21 * 2500 + 210 * 80;
  expect(size(`WITH w AS NOT MATERIALIZED (${body}) ${refs(10, 'w')}`)).toBeGreaterThanOrEqual(10 * weight);
  expect(size(`WITH w AS MATERIALIZED (${body}) ${refs(10, 'w')}`)).toBeLessThan(2 * weight);
  // Referenced more than once, PostgreSQL materializes a CTE; once, it inlines it into whatever reads it.
  expect(size(`WITH w AS (${body}) ${refs(10, 'w')}`)).toBeLessThan(2 * weight);
  expect(size(`WITH a AS (${body}), b AS NOT MATERIALIZED (SELECT n FROM a) ${refs(10, 'b')}`)).toBeGreaterThanOrEqual(10 * weight);
  // A chain of NOT MATERIALIZED CTEs, each read twice by the next: 2^4 copies.
  const chain = `WITH c0 AS NOT MATERIALIZED (${body}), ${[1, 2, 3, 4].map((i) => `c${i} AS NOT MATERIALIZED (SELECT n FROM c${i - 1} UNION ALL SELECT n FROM c${i - 1})`).join(', ')} SELECT n FROM c4`;
  expect(size(chain)).toBeGreaterThanOrEqual(16 * weight);
  // IN with 10 column entries compares 11 copies of its left operand; BETWEEN SYMMETRIC makes 4.
  expect(size(`SELECT (${body} LIMIT 1) IN (${Array.from({ length: 10 }, (_, i) => `x + ${i}`).join(', ')}) FROM t`)).toBeGreaterThanOrEqual(11 * weight);
  expect(size(`SELECT (${body} LIMIT 1) BETWEEN SYMMETRIC x AND 5 FROM t`)).toBeGreaterThanOrEqual(4 * weight);
  // A derived table and a set operation's sides are planned once.
  expect(size(`SELECT * FROM (${body}) d, (${body}) e`)).toBeLessThan(3 * weight);
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
    // Many columns in few sets: 1,100 columns and ROLLUP of one (2 sets, 2,201 columns) pass; 1,300 do not.
    expect(outcome(`SELECT count(*) FROM t GROUP BY ${list(1100, 100)}, ROLLUP(x)`)).toBe('ok');
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
    expect(outcome(`WITH w AS NOT MATERIALIZED (${half}) SELECT * FROM w, w x`)).toMatch(/^statement_too_complex: the statement grows past 200000 nodes as PostgreSQL expands it: .*ROLLUP, CUBE and GROUPING SETS into their grouping sets/);
    // A set operation's sides count.
    expect(outcome(`SELECT 1 UNION ALL SELECT count(*) FROM t GROUP BY CUBE(${list(12)})`)).toMatch(/^statement_too_complex: GROUP BY expands to 4096 grouping sets/);
  });
});
