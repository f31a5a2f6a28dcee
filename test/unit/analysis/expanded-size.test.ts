// The size of a statement once PostgreSQL pulls its derived tables and CTEs up and expands BETWEEN and IN
// (src/analysis/expanded-size.ts): every way of reaching a subquery's column copies its expression, and
// statements that copy nothing stay their own size.
import { analyze, initAnalysis } from '../../../src/analysis/pipeline';
import { expandedSize } from '../../../src/analysis/expanded-size';
import { parseStatements } from '../../../src/analysis/parser';
import { treeShape } from '../../../src/analysis/tree-bounds';
import { CORPUS, fill } from './read-corpus';

beforeAll(async () => {
  await initAnalysis();
});

const size = (sql: string): number => expandedSize(parseStatements(sql)[0], Number.MAX_SAFE_INTEGER)!;
const nodes = (sql: string): number => treeShape(parseStatements(sql), { maxParseNodes: Infinity, maxCtes: Infinity, maxCteDepth: Infinity }).nodes;

/** `levels` levels, each made by `wrap` around the one inside it, over orders. */
function nested(levels: number, wrap: (inner: string, i: number) => string): string {
  let sql = 'SELECT id AS x FROM orders';
  for (let i = 0; i < levels; i++) sql = wrap(sql, i);
  return sql;
}

// Each shape reaches the column of the level below twice: four levels more copy it sixteen times more.
const DOUBLING: [string, (inner: string, i: number) => string][] = [
  ['unqualified names', (inner, i) => `SELECT x + x AS x FROM (${inner}) s${i}`],
  ['qualified names', (inner, i) => `SELECT s${i}.x * s${i}.x AS x FROM (${inner}) s${i}`],
  ['column aliases of the derived table', (inner, i) => `SELECT y - y FROM (${inner}) s${i}(y)`],
  ['an output named after its column', (inner, i) => `SELECT b${i}.x + x AS x FROM (SELECT x FROM (${inner}) a${i}) b${i}`],
  ['SELECT * between levels', (inner, i) => `SELECT * FROM (SELECT x + x AS x FROM (${inner}) s${i}) t${i}`],
  ['s.* between levels', (inner, i) => `SELECT t${i}.* FROM (SELECT x + x AS x FROM (${inner}) s${i}) t${i}`],
  ['a correlated scalar subquery', (inner, i) => `SELECT (SELECT s${i}.x + s${i}.x) AS x FROM (${inner}) s${i}`],
  ['a LATERAL subquery', (inner, i) => `SELECT l${i}.x FROM orders, LATERAL (SELECT x + x AS x FROM (${inner}) s${i}) l${i}`],
  ['a join', (inner, i) => `SELECT s${i}.x + s${i}.x AS x FROM (${inner}) s${i} JOIN customers c ON c.id = s${i}.x`],
  ['a join alias', (inner, i) => `SELECT j${i}.x + j${i}.x AS x FROM ((${inner}) s${i} JOIN customers c ON true) j${i}`],
  ['UNION ALL', (inner, i) => `SELECT x + x AS x FROM (${inner} UNION ALL SELECT 1) s${i}`],
  ['VALUES', (inner, i) => `SELECT v.a + v.a AS x FROM (${inner}) s${i}, LATERAL (VALUES (s${i}.x)) v(a)`],
  ['a whole-row reference', (inner, i) => `SELECT s${i} IS NULL AND s${i} IS NULL AS x FROM (${inner}) s${i}`],
  // Targets without AS take the name PostgreSQL gives them (FigureColname).
  ['the name of a function', (inner, i) => `SELECT abs(abs + abs) FROM (${inner}) s${i}`],
  ['the name of an operator', (inner, i) => `SELECT "?column?" + "?column?" FROM (${inner}) s${i}`],
  ['the name of a field', (inner, i) => `SELECT (t${i}).x FROM (SELECT x + x AS x FROM (${inner}) s${i}) t${i}`],
  ['the name of a cast', (inner, i) => `SELECT (x + x)::int8 AS x FROM (SELECT x::int8 FROM (${inner}) a${i}) s${i}`],
  ['a name it does not know', (inner, i) => `SELECT x + x AS x FROM (SELECT current_date, x FROM (${inner}) a${i}) s${i}`],
  ['the name of a CASE, its ELSE\'s', (inner, i) => `SELECT CASE WHEN x > 0 THEN x + x ELSE x END FROM (${inner}) s${i}`],
  ['the name of a field past a subscript', (inner, i) => `SELECT (p${i}).x[:] FROM (SELECT ARRAY[x[1] + x[1]] AS x FROM (${inner}) r${i}) p${i}`],
  ['the name of a scalar subquery of *', (inner, i) => `SELECT (SELECT * FROM (SELECT x + x AS x) z${i}) FROM (${inner}) s${i}`],
  ['a USING alias', (inner, i) => `SELECT j${i}.x + j${i}.x AS x FROM (${inner}) s${i} JOIN (SELECT 1 AS x) o${i} USING (x) AS j${i}`],
  ['the column aliases of a join', (inner, i) => `SELECT p + p AS x FROM ((${inner}) s${i} CROSS JOIN (SELECT 1 AS y) o${i}) AS j${i}(p, q)`],
];

describe.each(DOUBLING)('a derived table reached through %s is copied at each reference', (_name, wrap) => {
  test('four levels more weigh at least sixteen times more', () => {
    const four = size(nested(4, wrap));
    const eight = size(nested(8, wrap));
    expect(eight).toBeGreaterThanOrEqual(16 * four * 0.9);
  });
});

test('CTEs are counted as the derived tables they are inlined as', () => {
  const chain = (levels: number): string =>
    `WITH c0 AS (SELECT id AS x FROM orders), ${Array.from({ length: levels }, (_, i) => `c${i + 1} AS (SELECT x * x AS x FROM c${i})`).join(', ')} SELECT x FROM c${levels}`;
  expect(size(chain(8))).toBeGreaterThanOrEqual(16 * size(chain(4)) * 0.9);
  // Column aliases of a CTE name its columns.
  const aliased = (levels: number): string =>
    `WITH c0(y) AS (SELECT id FROM orders), ${Array.from({ length: levels }, (_, i) => `c${i + 1}(y) AS (SELECT y + y FROM c${i})`).join(', ')} SELECT y FROM c${levels}`;
  expect(size(aliased(8))).toBeGreaterThanOrEqual(16 * size(aliased(4)) * 0.9);
});

describe('operators whose left operand PostgreSQL copies are counted with their copies', () => {
  const chain = (levels: number, op: (inner: string) => string): string => {
    let expr = 'id';
    for (let i = 0; i < levels; i++) expr = `(${op(expr)})::int`;
    return `SELECT ${expr} AS v FROM orders`;
  };
  test.each([
    ['BETWEEN SYMMETRIC', (e: string) => `${e} BETWEEN SYMMETRIC 1 AND 2`, 16],
    ['NOT BETWEEN', (e: string) => `${e} NOT BETWEEN 1 AND 2`, 4],
    ['IN with columns', (e: string) => `${e} IN (customer_id, total_cents, 7)`, 9],
    ['NOT IN with expressions', (e: string) => `${e} NOT IN (id + 1, 2, 3)`, 4],
    ['the bounds of BETWEEN SYMMETRIC', (e: string) => `id BETWEEN SYMMETRIC (${e}) AND customer_id`, 4],
  ])('%s: two levels more weigh that many times more', (_name, op, factor) => {
    expect(size(chain(6, op))).toBeGreaterThanOrEqual(factor * size(chain(4, op)) * 0.9);
  });
  test('IN with constants and parameters only, and a plain comparison, copy nothing', () => {
    for (const op of [(e: string) => `${e} IN (1, 2, $1, '3'::int)`, (e: string) => `${e} = 2`]) {
      expect(size(chain(6, op))).toBeLessThan(2 * size(chain(4, op)));
    }
  });
  test('ten levels of BETWEEN SYMMETRIC, 377 bytes, are refused', () => {
    const sql = chain(10, (e) => `${e} BETWEEN SYMMETRIC 1 AND 2`);
    expect(sql.length).toBeLessThan(450);
    const refused = analyze(sql, { protocol: 'simple' });
    expect(!refused.ok && refused.error.code).toBe('statement_too_complex');
  });
});

test('a NOT MATERIALIZED CTE is copied at each reference; one PostgreSQL materializes is not', () => {
  const chain = (levels: number, how: string): string =>
    `WITH c0 AS (SELECT id AS x FROM orders), ${Array.from({ length: levels }, (_, i) => `c${i + 1} AS ${how}(SELECT x FROM c${i} UNION ALL SELECT x FROM c${i})`).join(', ')} SELECT count(*) FROM c${levels}`;
  expect(size(chain(8, 'NOT MATERIALIZED '))).toBeGreaterThanOrEqual(16 * size(chain(4, 'NOT MATERIALIZED ')) * 0.9);
  expect(size(chain(8, ''))).toBeLessThan(4 * size(chain(4, '')));
  expect(size(chain(8, 'MATERIALIZED '))).toBeLessThan(4 * size(chain(4, 'MATERIALIZED ')));
});

test('writes count the derived tables of their FROM, USING, source and SELECT', () => {
  const deep = nested(8, DOUBLING[0][1]);
  for (const sql of [
    `UPDATE orders SET status = q.x::text FROM (${deep}) q WHERE orders.id = q.x`,
    `DELETE FROM orders USING (${deep}) q WHERE orders.id = q.x`,
    `INSERT INTO orders (id) SELECT x FROM (${deep}) q`,
    `MERGE INTO orders o USING (${deep}) q ON o.id = q.x WHEN MATCHED THEN DELETE`,
  ]) {
    expect(size(sql)).toBeGreaterThan(size(deep));
  }
});

test('a statement that copies nothing is about its own size', () => {
  const plain = [
    ...CORPUS.map((template) => fill(template, 0)),
    'SELECT o.id, o.total_cents FROM (SELECT * FROM orders WHERE status = $1) o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 20',
    'WITH recent AS (SELECT id, customer_id FROM orders ORDER BY id DESC LIMIT 10) SELECT c.name FROM recent r JOIN customers c ON c.id = r.customer_id',
    'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT n FROM r',
    'SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT id, status FROM orders) a) b) c WHERE id = 1',
  ];
  expect(plain.filter((sql) => size(sql) > 2 * nodes(sql))).toEqual([]);
  expect(plain.filter((sql) => size(sql) < nodes(sql) / 2)).toEqual([]);
});

test('the walk stops once the bound is passed: 2^40 copies are never walked', () => {
  expect(expandedSize(parseStatements(nested(40, DOUBLING[0][1]))[0], 200_000)).toBeUndefined();
});

test('the analysis refuses a statement past the bound, under both protocols, and passes one below it', () => {
  for (const protocol of ['simple', 'extended'] as const) {
    const refused = analyze(nested(13, DOUBLING[0][1]), { protocol });
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.error.code).toBe('statement_too_complex');
    expect(!refused.ok && refused.error.message).toMatch(/grows past 200000 nodes as PostgreSQL expands it: derived tables and CTEs into each reference/);
    expect(analyze(nested(10, DOUBLING[0][1]), { protocol }).ok).toBe(true);
  }
});
