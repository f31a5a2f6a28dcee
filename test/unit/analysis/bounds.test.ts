// The pre-parse scan: depth and term estimates on raw text, and the refusals built on them.
import { checkText, DEFAULT_ANALYSIS_LIMITS, scanShape } from '../../../src/analysis/bounds';
import { ProxyError } from '../../../src/errors/catalogue';

const limits = { ...DEFAULT_ANALYSIS_LIMITS, maxNestingDepth: 50, maxTerms: 1000, maxStatementBytes: 30_000 };

function refusal(sql: string): string | undefined {
  try {
    checkText(sql, limits);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyError);
    return `${(err as ProxyError).sqlstate} ${(err as ProxyError).code}`;
  }
}

test.each([
  ['SELECT 1', 1],
  ['SELECT a + b FROM t', 2],
  ['SELECT a + b + c + d', 4],
  ['SELECT a+b, c+d, e+f', 2],
  ['SELECT * FROM t WHERE a = 1 AND b = 2 OR c = 3', 3],
  ['SELECT f(g(h(1)))', 4],
  ['SELECT (((1)))', 4],
  ['SELECT ARRAY[[1,2],[3,4]]', 3],
  ['SELECT CASE WHEN a THEN CASE WHEN b THEN 1 END END', 3],
  ['SELECT x::int::text', 3],
  ['SELECT 1 UNION SELECT 2 UNION SELECT 3', 3],
  ['SELECT NOT NOT true', 3],
  ['SELECT a || b', 2],
  ["SELECT j->>'k'", 2],
  ['SELECT 1+-1', 3],
])('%s has depth %i', (sql, depth) => {
  expect(scanShape(sql).depth).toBe(depth);
});

test.each([
  ["SELECT '((((((((((((((((((((' AS s", 1],
  ['SELECT "a+b+c+d+e+f" FROM t', 1],
  ["SELECT E'\\'((((((((((' AS s", 1],
  ["SELECT $x$ (((((((((( $x$, $1 + 1", 2],
  ['SELECT 1 -- ((((((((((\n', 1],
  ['SELECT 1 /* (((( /* nested (((( */ (((( */', 1],
  ["SELECT 'a''((((((' , b", 1],
])('quoted text and comments do not count: %s', (sql, depth) => {
  expect(scanShape(sql).depth).toBe(depth);
});

test('an escape string cannot hide parentheses from the scan by ending early', () => {
  // In E'…' a backslash escapes the quote; in '…' it does not, and the scan must tell them apart.
  const hidden = "SELECT E'\\'' , " + '('.repeat(60) + '1' + ')'.repeat(60);
  expect(scanShape(hidden).depth).toBeGreaterThan(60);
  const plain = "SELECT '\\' , " + '('.repeat(60) + '1' + ')'.repeat(60);
  expect(scanShape(plain).depth).toBeGreaterThan(60);
});

test('terms count names, literals and parameters', () => {
  expect(scanShape('SELECT a, b, 1, $1, \'x\' FROM t').terms).toBe(8);
  expect(scanShape(`SELECT 1 WHERE id IN (${Array.from({ length: 500 }, (_, i) => i).join(',')})`).terms).toBe(505);
});

test.each([
  ['a chain of 10,000 terms', 'SELECT 1' + '+1'.repeat(9999), '54001 statement_too_complex'],
  ['a chain of OPERATOR()', 'SELECT 1' + ' OPERATOR(pg_catalog.+) 1'.repeat(100), '54001 statement_too_complex'],
  ['a run of prefix signs', 'SELECT 1' + '+-'.repeat(100) + '1', '54001 statement_too_complex'],
  ['a chain of prefix operators', 'SELECT ' + '- '.repeat(100) + '1', '54001 statement_too_complex'],
  ['deep parentheses', 'SELECT ' + '('.repeat(100) + '1' + ')'.repeat(100), '54001 statement_too_complex'],
  ['a chain of joins', 'SELECT 1 FROM t0 ' + Array.from({ length: 60 }, (_, i) => `JOIN t${i + 1} ON true`).join(' '), '54001 statement_too_complex'],
  ['a chain of unions', Array.from({ length: 60 }, (_, i) => `SELECT ${i}`).join(' UNION '), '54001 statement_too_complex'],
  ['too many terms', `SELECT 1 WHERE id IN (${Array.from({ length: 1200 }, (_, i) => i).join(',')})`, '54001 statement_too_complex'],
  ['too many bytes', `SELECT '${'x'.repeat(30_000)}'`, '54000 statement_too_large'],
  ['too many bytes in multi-byte characters', `SELECT '${'é'.repeat(15_000)}'`, '54000 statement_too_large'],
])('%s is refused', (_name, sql, expected) => {
  expect(refusal(sql)).toBe(expected);
});

test.each([
  ['a long flat IN list', `SELECT * FROM t WHERE id IN (${Array.from({ length: 900 }, (_, i) => i).join(',')})`],
  ['a long OR list', 'SELECT * FROM t WHERE ' + Array.from({ length: 300 }, (_, i) => `id = ${i}`).join(' OR ')],
  ['an ORM-style query', 'SELECT "o"."id", "o"."total" FROM "orders" AS "o" LEFT JOIN "customers" AS "c" ON "c"."id" = "o"."customer_id" WHERE ("o"."status" = $1 AND ("o"."total" > $2 OR "o"."total" IS NULL)) ORDER BY "o"."created_at" DESC LIMIT $3 OFFSET $4'],
  ['a CASE of 120 arms', 'SELECT CASE ' + Array.from({ length: 120 }, (_, i) => `WHEN a = ${i} THEN 'v${i}' || 'w'`).join(' ') + ' ELSE b + 1 END FROM t'],
  ['many statements', Array.from({ length: 300 }, (_, i) => `SELECT ${i}`).join('; ')],
])('%s passes', (_name, sql) => {
  expect(refusal(sql)).toBeUndefined();
});

test('the scan is linear: a 1 MiB text takes milliseconds', () => {
  const sql = 'SELECT ' + Array.from({ length: 100_000 }, (_, i) => `c${i}`).join(', ');
  const started = performance.now();
  scanShape(sql);
  expect(performance.now() - started).toBeLessThan(500);
});
